// All trainable parameters live in one flat vector; ParamLayout names the
// blocks (model.md section 2). One flat vector makes the optimizer, gradient
// clipping, masking, checkpoints and the finite-difference check one loop each.
#ifndef SPINNET_CORE_PARAMETERS_H_
#define SPINNET_CORE_PARAMETERS_H_

#include <cstdint>
#include <vector>

#include "core/config.h"
#include "core/eigen_types.h"

namespace spinnet {

struct ParamBlock {
  Index offset = 0;
  Index rows = 0;
  Index cols = 0;
  Index size() const { return rows * cols; }
};

// Per layer: W_ext[l], W_int[l] (adjacent, column-major), b_l; then W_out,
// b_out and the amplification factors.
class ParamLayout {
 public:
  explicit ParamLayout(const NetworkConfig& config);

  const ParamBlock& w_ext(int l) const { return w_ext_[l]; }  // N x (d or N)
  const ParamBlock& w_int(int l) const { return w_int_[l]; }  // N x N
  const ParamBlock& bias(int l) const { return bias_[l]; }    // N x 1
  // [W_ext[l] W_int[l]] as one N x 2N block, for l >= 1.
  ParamBlock w_ext_int(int l) const {
    return {w_ext_[l].offset, w_ext_[l].rows, w_ext_[l].cols + w_int_[l].cols};
  }
  const ParamBlock& w_out() const { return w_out_; }          // C x N
  const ParamBlock& b_out() const { return b_out_; }          // C x 1
  const ParamBlock& amplification() const { return amp_; }    // L x 1
  Index size() const { return size_; }

  template <typename T>
  static Eigen::Map<MatrixT<T>> Map(VectorT<T>& flat, const ParamBlock& b) {
    return Eigen::Map<MatrixT<T>>(flat.data() + b.offset, b.rows, b.cols);
  }
  template <typename T>
  static Eigen::Map<const MatrixT<T>> Map(const VectorT<T>& flat,
                                          const ParamBlock& b) {
    return Eigen::Map<const MatrixT<T>>(flat.data() + b.offset, b.rows,
                                        b.cols);
  }

 private:
  ParamBlock Add(Index rows, Index cols);

  std::vector<ParamBlock> w_ext_, w_int_, bias_;
  ParamBlock w_out_, b_out_, amp_;
  Index size_ = 0;
};

// The trainable mask: 1 where a parameter is trained, 0 where it is fixed at
// its value (sparsity masks keep weights at 0; the amplification factors are
// fixed unless config.train_amplification).
Vector MakeTrainableMask(const NetworkConfig& config, uint64_t seed);

// Initial parameters (model.md section 4): W ~ N(0, 1/fan_in), W_int scaled
// by init_int_scale, biases 0, a_l = config.amplification; masked entries 0.
Vector InitParameters(const NetworkConfig& config, const Vector& mask,
                      double init_int_scale, uint64_t seed);

}  // namespace spinnet

#endif  // SPINNET_CORE_PARAMETERS_H_
