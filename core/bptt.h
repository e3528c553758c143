// Batched forward pass with softmax cross-entropy, and its exact reverse-mode
// gradient through every Euler step (model.md section 4; the equations are in
// core/MODEL.md, "Backward pass").
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

// Reusable per-thread workspace: buffers are kept between calls, so steady
// state training allocates nothing per batch or time step.
template <typename T>
class Bptt {
 public:
  Bptt(const NetworkConfig& config, const DeviceParams& device);

  // Later Runs integrate the perturbed network `devices` (which must outlive
  // them; nullptr: the nominal network), column b of the inputs with the
  // thermal noise of sequence first_sequence + b. The backward pass uses the
  // same devices and noise as its forward pass.
  void SetDevices(const Devices* devices, uint64_t first_sequence = 0) {
    devices_ = devices;
    first_sequence_ = first_sequence;
  }

  // Runs sequences `inputs` ((K*d) x B: column b is sequence b, time step k
  // in rows k*d .. k*d+d-1) with integer labels in [0, C), or with no labels
  // (inference: loss and accuracy stay 0). If grad is not null (labels
  // required), adds loss_scale * d(loss_sum)/d(params) into *grad (unmasked).
  BatchResult Run(const VectorT<T>& params,
                  const Eigen::Ref<const MatrixT<T>>& inputs,
                  const std::vector<int>& labels, double loss_scale,
                  VectorT<T>* grad);

  // Class probabilities (C x B) and per-sequence stats of the last Run.
  const MatrixT<T>& probabilities() const { return probs_; }
  const SequenceStats& stats() const { return stats_; }

 private:
  void Backward(const Network<T>& net,
                const Eigen::Ref<const MatrixT<T>>& inputs,
                const std::vector<int>& labels, double loss_scale,
                VectorT<T>* grad);

  NetworkConfig config_;
  DeviceParams device_;
  const Devices* devices_ = nullptr;
  uint64_t first_sequence_ = 0;
  Index steps_ = 0;  // Euler steps T of the last Run
  Trajectory<T> tr_;
  MatrixT<T> drive0_, logits_, probs_;
  SequenceStats stats_;
  // Backward: adjoints of a_l, s_l at the current step and of y; dL/dz of
  // every layer at two steps, stacked like Trajectory::y (L*N x 2B); and
  // [W_int[l]^T W_ext[l+1]^T] per layer (W_int^T for the top one).
  std::vector<MatrixT<T>> g_a_, g_s_, w_back_;
  MatrixT<T> g_z_, g_y_, g_sum_;
};

extern template class Bptt<float>;
extern template class Bptt<double>;

}  // namespace spinnet

#endif  // SPINNET_CORE_BPTT_H_
