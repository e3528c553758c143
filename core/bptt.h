// Batched forward pass with softmax cross-entropy, and its exact reverse-mode
// gradient through every Euler step (model.md section 4; equations in
// core/MODEL.md "Backward").
#ifndef SPINNET_CORE_BPTT_H_
#define SPINNET_CORE_BPTT_H_

#include <vector>

#include "core/config.h"
#include "core/eigen_types.h"
#include "core/network.h"

namespace spinnet {

struct BatchResult {
  double loss_sum = 0;    // sum over the batch of -log p(label)
  int correct = 0;        // argmax == label
  double energy_sum = 0;  // sum of per-sequence energies [J]
  double drive_sum = 0;   // sum of per-sequence cumulative drive D
};

// Reusable per-thread workspace: buffers grow to the largest batch seen and
// are reused, so steady-state training allocates nothing per time step.
class Bptt {
 public:
  Bptt(const NetworkConfig& config, const DeviceParams& device);

  // Runs sequences `inputs` ((K*d) x B: column b is sequence b, time step k
  // in rows k*d .. k*d+d-1) with integer labels in [0, C), or with no labels
  // (inference: loss and accuracy stay 0). If grad is not null (labels
  // required), adds loss_scale * d(loss_sum)/d(params) into *grad (unmasked).
  BatchResult Run(const Vector& params, const Eigen::Ref<const Matrix>& inputs,
                  const std::vector<int>& labels, double loss_scale,
                  Vector* grad);

  // Class probabilities (C x B) and per-sequence stats of the last Run.
  const Matrix& probabilities() const { return probs_; }
  const SequenceStats& stats() const { return stats_; }

 private:
  void Backward(const Network& net, const Eigen::Ref<const Matrix>& inputs,
                const std::vector<int>& labels, double loss_scale,
                Vector* grad);

  NetworkConfig config_;
  DeviceParams device_;
  Index batch_ = 0;
  Index steps_ = 0;  // Euler steps T
  // Trajectory, per layer: state columns [t*B, (t+1)*B) hold time t.
  std::vector<Matrix> traj_a_, traj_s_, traj_y_;  // N x (T+1)B
  std::vector<Matrix> traj_z_, grad_z_;           // N x TB
  NetworkState state_;
  std::vector<Matrix> z_;
  Matrix drive0_, logits_, probs_;
  SequenceStats stats_;
  // Backward scratch.
  std::vector<Matrix> g_a_, g_s_;
  Matrix g_y_, g_tmp_, g_sum_;
};

}  // namespace spinnet

#endif  // SPINNET_CORE_BPTT_H_
