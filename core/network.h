// The network's forward dynamics (model.md sections 1-3, 6, 7, 8): one
// explicit-Euler step of every layer for a batch of sequences, and the
// readout. Training (bptt.h), batch classification and the stepping session
// (inference.h) all integrate with Network::Step.
#ifndef SPINNET_CORE_NETWORK_H_
#define SPINNET_CORE_NETWORK_H_

#include <vector>

#include "core/config.h"
#include "core/eigen_types.h"
#include "core/parameters.h"

namespace spinnet {

// Network states of a batch of B sequences in numbered time slots: per
// layer, columns [slot*B, (slot+1)*B) of each matrix hold one time. BPTT
// keeps one slot per Euler step; a forward-only pass alternates two.
template <typename T>
struct Trajectory {
  Index batch = 0;
  std::vector<MatrixT<T>> a;  // p_l (STNO power) or h_l (CTRNN), N x slots*B
  std::vector<MatrixT<T>> s;  // high-pass filter state s_l (STNO only)
  // Outputs of all layers stacked, L*N x slots*B: rows l*N..(l+1)*N hold
  // y_l, so [y_{l-1}; y_l] is one block and W_ext[l] y_{l-1} + W_int[l] y_l
  // is one matrix product with [W_ext[l] W_int[l]] (adjacent in ParamLayout).
  MatrixT<T> y;
  int neurons = 0;
  // Per Euler step (z slots): zeta_l (STNO) or tanh of the CTRNN
  // pre-activation, the quantity the backward pass differentiates through.
  std::vector<MatrixT<T>> z;

  // Sizes the buffers; reuses the memory when the sizes are unchanged.
  void Resize(const NetworkConfig& config, Index batch, Index slots,
              Index z_slots);
  auto Slot(std::vector<MatrixT<T>>& m, int l, Index slot) {
    return m[l].middleCols(slot * batch, batch);
  }
  auto Slot(const std::vector<MatrixT<T>>& m, int l, Index slot) const {
    return m[l].middleCols(slot * batch, batch);
  }
  // y_l .. y_{l+count-1} at `slot`.
  auto Y(int l, Index slot, int count = 1) {
    return y.block(l * neurons, slot * batch, count * neurons, batch);
  }
  auto Y(int l, Index slot, int count = 1) const {
    return y.block(l * neurons, slot * batch, count * neurons, batch);
  }
};

// Per-sequence accumulators (one entry per batch column), in double.
struct SequenceStats {
  Eigen::RowVectorXd energy_joules;  // model.md section 8
  Eigen::RowVectorXd drive;          // model.md section 7 (one sequence's D)
  void Reset(Index batch) {
    energy_joules.setZero(batch);
    drive.setZero(batch);
  }
};

template <typename T>
class Network {
 public:
  // `params` must outlive the Network; its layout is ParamLayout(config).
  Network(const NetworkConfig& config, const DeviceParams& device,
          const VectorT<T>& params);

  const NetworkConfig& config() const { return config_; }
  const ParamLayout& layout() const { return layout_; }
  const VectorT<T>& params() const { return params_; }

  // Writes the initial state into `slot`: p = s = p0 (so y = 0) for the
  // STNO, h = 0 for the CTRNN.
  void Init(Trajectory<T>* tr, Index slot) const;

  // W_ext[0] u for input samples u (d x B): constant over an input interval.
  void InputDrive(const Eigen::Ref<const MatrixT<T>>& u,
                  MatrixT<T>* drive0) const;

  // One Euler step t -> t+h of every layer, all computed from slot `from`,
  // written to slot `to`; the z of step t goes to z slot `z_slot`. Adds each
  // sequence's energy and cumulative drive into *stats.
  void Step(const MatrixT<T>& drive0, Trajectory<T>* tr, Index from, Index to,
            Index z_slot, SequenceStats* stats) const;

  // logits = W_out y_{L-1} + b_out (C x B) for the state in `slot`.
  void Logits(const Trajectory<T>& tr, Index slot, MatrixT<T>* logits) const;

  // Column-wise softmax, numerically stable.
  static void Softmax(const MatrixT<T>& logits, MatrixT<T>* probs);

 private:
  NetworkConfig config_;
  const VectorT<T>& params_;
  ParamLayout layout_;
  double energy_per_z2_;  // R * I_th^2 * h [J per zeta^2 per neuron-step]
};

extern template struct Trajectory<float>;
extern template struct Trajectory<double>;
extern template class Network<float>;
extern template class Network<double>;

}  // namespace spinnet

#endif  // SPINNET_CORE_NETWORK_H_
