// The network's forward dynamics (model.md sections 1-3, 6, 7, 8): one
// explicit-Euler step of every layer for a batch of sequences, and the
// readout. Used by training (bptt.h), batch classification and the stepping
// session (inference.h), so all three integrate exactly the same equations.
#ifndef SPINNET_CORE_NETWORK_H_
#define SPINNET_CORE_NETWORK_H_

#include <vector>

#include "core/config.h"
#include "core/eigen_types.h"
#include "core/parameters.h"

namespace spinnet {

// Dynamic state of L layers for a batch of B sequences (columns).
struct NetworkState {
  std::vector<Matrix> a;  // p_l (STNO power) or h_l (CTRNN), N x B
  std::vector<Matrix> s;  // high-pass filter state s_l (STNO), N x B
  std::vector<Matrix> y;  // layer output y_l, N x B
};

// Per-sequence accumulators (one entry per batch column).
struct SequenceStats {
  Eigen::RowVectorXd energy_joules;  // model.md section 8
  Eigen::RowVectorXd drive;          // model.md section 7, D before averaging
  void Reset(Index batch) {
    energy_joules.setZero(batch);
    drive.setZero(batch);
  }
};

class Network {
 public:
  // `params` must outlive the Network; its layout is ParamLayout(config).
  Network(const NetworkConfig& config, const DeviceParams& device,
          const Vector& params);

  const NetworkConfig& config() const { return config_; }
  const ParamLayout& layout() const { return layout_; }
  const Vector& params() const { return params_; }

  // p = p0, s = p0 (so y starts at 0) for STNO; h = 0 for the CTRNN.
  void InitState(Index batch, NetworkState* state) const;

  // W_ext[0] u for input samples u (d x B): constant over an input interval.
  void InputDrive(const Eigen::Ref<const Matrix>& u, Matrix* drive0) const;

  // One Euler step t -> t+h of every layer, all from the state at t.
  // Writes zeta_l(t) (STNO: normalized current; CTRNN: pre-activation) to
  // (*z)[l], N x B, preallocated. Adds energy and drive into *stats.
  void Step(const Matrix& drive0, NetworkState* state, std::vector<Matrix>* z,
            SequenceStats* stats) const;

  // logits = W_out y_{L-1} + b_out, C x B.
  void Logits(const NetworkState& state, Matrix* logits) const;

  // Column-wise softmax of logits, numerically stable.
  static void Softmax(const Matrix& logits, Matrix* probs);

 private:
  NetworkConfig config_;
  DeviceParams device_;
  const Vector& params_;
  ParamLayout layout_;
  double energy_per_z2_;  // R * I_th^2 * h [J per (zeta^2 neuron step)]
};

}  // namespace spinnet

#endif  // SPINNET_CORE_NETWORK_H_
