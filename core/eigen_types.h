// One place for the Eigen types the core uses (column-major, double).
#ifndef SPINNET_CORE_EIGEN_TYPES_H_
#define SPINNET_CORE_EIGEN_TYPES_H_

#include <Eigen/Core>

namespace spinnet {

using Index = Eigen::Index;
using Matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic>;
using Vector = Eigen::Matrix<double, Eigen::Dynamic, 1>;
using MatrixMap = Eigen::Map<Matrix>;
using ConstMatrixMap = Eigen::Map<const Matrix>;

}  // namespace spinnet

#endif  // SPINNET_CORE_EIGEN_TYPES_H_
