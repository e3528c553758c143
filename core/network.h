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
#include "core/random.h"

namespace spinnet {

// The devices of one chip (MODEL.md "Device variability"): per layer, one
// factor per neuron, drawn from a DeviceVariability.
struct Devices {
  std::vector<Vector> threshold;      // I_th,i / I_th
  std::vector<Vector> tau;            // tau_i / tau
  std::vector<Vector> amplification;  // a_l,i / a_l
  double thermal_noise = 0;           // DeviceVariability::thermal_noise
  uint64_t noise_seed = 0;            // sequence n's noise: (seed, n)
};

// Draws *out (reusing its memory): for every layer, then neuron, three
// x ~ N(0, 1) clipped to [-3, 3] (threshold, tau, amplification; drawn even
// when a spread is 0, so one seed is one chip whatever the spreads), each
// factor 1 + spread x. The CTRNN's threshold and amplification factors are
// 1 (it has neither).
void DrawDevices(const NetworkConfig& config, const DeviceVariability& v,
                 Devices* out);

// The per-device values of a perturbed network at batch width, written by
// Network::Init: what the Euler step and its adjoint read instead of scalars.
template <typename T>
struct DeviceArrays {
  std::vector<MatrixT<T>> h_tau;       // h / tau_i, N x B per layer
  std::vector<MatrixT<T>> zeta_scale;  // I_th / I_th,i
  std::vector<MatrixT<T>> amp_scale;   // a_l,i / a_l
  std::vector<VectorT<T>> noise_sd;    // thermal_noise sqrt(h / tau_i), N
  MatrixT<T> noise;                    // one layer's noise of one step
  Eigen::ArrayXXf u1, u2;              // its uniform draws (Box-Muller)
  std::vector<FastRng> rng;            // thermal noise, one per sequence
};

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
  DeviceArrays<T> devices;  // filled only for a perturbed Network

  // Sizes the buffers; reuses the memory when the sizes are unchanged.
  void Resize(const NetworkConfig& config, Index batch, Index slots,
              Index z_slots);
  auto Slot(std::vector<MatrixT<T>>& m, int l, Index slot) {
    return m[l].middleCols(slot * batch, batch);
  }
  auto Slot(const std::vector<MatrixT<T>>& m, int l, Index slot) const {
    return m[l].middleCols(slot * batch, batch);
  }
  // Asks the cache for the states in `slot` and the z in `z_slot` ahead of
  // use, to be written (`write`) or read: a slot of a layer is one 4 KiB
  // page at the defaults, where the hardware prefetchers stop, and BPTT's
  // trajectory is larger than L2.
  void Prefetch(Index slot, Index z_slot, bool write) const;
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
  // With `devices` (which must outlive it too) each neuron has its own
  // parameters and thermal noise; nullptr is the nominal network.
  Network(const NetworkConfig& config, const DeviceParams& device,
          const VectorT<T>& params, const Devices* devices = nullptr);

  const NetworkConfig& config() const { return config_; }
  const ParamLayout& layout() const { return layout_; }
  const VectorT<T>& params() const { return params_; }
  bool perturbed() const { return devices_ != nullptr; }

  // Writes the initial state into `slot`: p = s = p0 (so y = 0) for the
  // STNO, h = 0 for the CTRNN. A perturbed network also writes its device
  // arrays at the trajectory's batch width, with the thermal noise of
  // column b drawn from stream (noise_seed, first_sequence + b).
  void Init(Trajectory<T>* tr, Index slot, uint64_t first_sequence = 0) const;

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
  // Thermal noise of layer l for one Euler step: N(0, noise_sd^2), by
  // Box-Muller on whole blocks in float (Eigen vectorises float log and cos,
  // not double), from one 64-bit draw per value.
  static void FillNoise(int l, DeviceArrays<T>* d);

  NetworkConfig config_;
  const VectorT<T>& params_;
  const Devices* devices_;
  ParamLayout layout_;
  double energy_per_z2_;  // R * I_th^2 * h [J per zeta^2 per neuron-step]
};

extern template struct Trajectory<float>;
extern template struct Trajectory<double>;
extern template class Network<float>;
extern template class Network<double>;

}  // namespace spinnet

#endif  // SPINNET_CORE_NETWORK_H_
