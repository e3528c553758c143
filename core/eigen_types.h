// One place for the Eigen types the core uses (column-major). The network
// and BPTT are templates on the scalar: double for inference and gradient
// checks, float for fast training.
#ifndef SPINNET_CORE_EIGEN_TYPES_H_
#define SPINNET_CORE_EIGEN_TYPES_H_

#include <Eigen/Core>

namespace spinnet {

using Index = Eigen::Index;
template <typename T>
using MatrixT = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
template <typename T>
using VectorT = Eigen::Matrix<T, Eigen::Dynamic, 1>;
using Matrix = MatrixT<double>;
using Vector = VectorT<double>;
using MatrixMap = Eigen::Map<Matrix>;
using ConstMatrixMap = Eigen::Map<const Matrix>;

}  // namespace spinnet

#endif  // SPINNET_CORE_EIGEN_TYPES_H_
