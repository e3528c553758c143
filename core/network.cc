#include "core/network.h"

#include <algorithm>
#include <cmath>

#include "core/logging.h"
#include "core/small_gemm.h"

namespace spinnet {

void DrawDevices(const NetworkConfig& config, const DeviceVariability& v,
                 Devices* out) {
  const int L = config.layers, N = config.neurons;
  const bool stno = config.cell == CellType::kStno;
  Rng rng(v.seed, kDeviceStream);
  for (auto* f : {&out->threshold, &out->tau, &out->amplification}) {
    f->resize(L);
    for (Vector& layer : *f) layer.resize(N);
  }
  for (int l = 0; l < L; ++l) {
    for (int i = 0; i < N; ++i) {
      double x[3];
      for (double& xi : x) xi = std::clamp(rng.Normal(), -3.0, 3.0);
      out->threshold[l][i] = stno ? 1 + v.threshold_spread * x[0] : 1;
      out->tau[l][i] = 1 + v.tau_spread * x[1];
      out->amplification[l][i] = stno ? 1 + v.amplification_spread * x[2] : 1;
    }
  }
  out->thermal_noise = stno ? v.thermal_noise : 0;
  out->noise_seed = v.seed;
}

template <typename T>
void Trajectory<T>::Resize(const NetworkConfig& config, Index b, Index slots,
                           Index z_slots) {
  batch = b;
  neurons = config.neurons;
  const bool stno = config.cell == CellType::kStno;
  for (auto* m : {&a, &s, &z}) m->resize(config.layers);
  for (int l = 0; l < config.layers; ++l) {
    a[l].resize(config.neurons, slots * b);
    s[l].resize(stno ? config.neurons : 0, stno ? slots * b : 0);
    z[l].resize(config.neurons, z_slots * b);
  }
  y.resize(config.layers * config.neurons, slots * b);
}

template <typename T>
void Trajectory<T>::Prefetch(Index slot, Index z_slot, bool write) const {
  // A slot of one matrix is contiguous: its columns have no gaps.
  const auto fetch = [write](const T* begin, Index size) {
    const char* p = reinterpret_cast<const char*>(begin);
    for (Index i = 0; i < size * Index(sizeof(T)); i += 64) {
      if (write) {
        __builtin_prefetch(p + i, 1);
      } else {
        __builtin_prefetch(p + i, 0);
      }
    }
  };
  const Index n = neurons * batch;
  for (size_t l = 0; l < a.size(); ++l) {
    fetch(a[l].data() + slot * n, n);
    if (s[l].size() > 0) fetch(s[l].data() + slot * n, n);
    fetch(z[l].data() + z_slot * n, n);
  }
  fetch(y.data() + slot * y.rows() * batch, y.rows() * batch);
}

template <typename T>
Network<T>::Network(const NetworkConfig& config, const DeviceParams& device,
                    const VectorT<T>& params, const Devices* devices)
    : config_(config), params_(params), devices_(devices), layout_(config) {
  SPINNET_CHECK(params.size() == layout_.size());
  const double i_th = device.threshold_current_amp;
  energy_per_z2_ = device.resistance_ohm * i_th * i_th * config.h() * 1e-9;
}

template <typename T>
void Network<T>::Init(Trajectory<T>* tr, Index slot,
                      uint64_t first_sequence) const {
  const bool stno = config_.cell == CellType::kStno;
  for (int l = 0; l < config_.layers; ++l) {
    tr->Slot(tr->a, l, slot).setConstant(stno ? config_.p0 : 0);
    if (stno) tr->Slot(tr->s, l, slot).setConstant(config_.p0);
  }
  tr->Y(0, slot, config_.layers).setZero();
  if (devices_ == nullptr) return;
  // MODEL.md "Device variability": h / tau_i, zeta_i = zeta I_th / I_th,i,
  // a_l,i; the per-neuron values repeated over the batch's columns, so the
  // step multiplies whole blocks.
  DeviceArrays<T>& d = tr->devices;
  const Index B = tr->batch;
  const int L = config_.layers;
  for (auto* m : {&d.h_tau, &d.zeta_scale, &d.amp_scale}) m->resize(L);
  d.noise_sd.resize(L);
  for (int l = 0; l < L; ++l) {
    const Vector h_tau = config_.h() / (config_.tau * devices_->tau[l].array());
    d.h_tau[l] = h_tau.cast<T>().replicate(1, B);
    d.zeta_scale[l] =
        devices_->threshold[l].cwiseInverse().cast<T>().replicate(1, B);
    d.amp_scale[l] = devices_->amplification[l].cast<T>().replicate(1, B);
    d.noise_sd[l] = (devices_->thermal_noise * h_tau.array().sqrt())
                        .matrix()
                        .template cast<T>();
  }
  d.rng.clear();
  if (devices_->thermal_noise > 0) {
    d.noise.resize(config_.neurons, B);
    d.u1.resize(config_.neurons, B);
    d.u2.resize(config_.neurons, B);
    for (Index b = 0; b < B; ++b) {
      d.rng.emplace_back(
          DeriveSeed(devices_->noise_seed, kNoiseStream, first_sequence + b));
    }
  }
}

template <typename T>
void Network<T>::InputDrive(const Eigen::Ref<const MatrixT<T>>& u,
                            MatrixT<T>* drive0) const {
  drive0->noalias() = ParamLayout::Map(params_, layout_.w_ext(0)) * u;
}

template <typename T>
void Network<T>::Step(const MatrixT<T>& drive0, Trajectory<T>* tr, Index from,
                      Index to, Index z_slot, SequenceStats* stats) const {
  const int L = config_.layers;
  const bool stno = config_.cell == CellType::kStno;
  const T h_tau = static_cast<T>(config_.h() / config_.tau);
  const T h_hp = static_cast<T>(config_.h() / config_.tau_hp);
  const T q = static_cast<T>(config_.q);
  const T p_th = static_cast<T>(config_.p_th);
  const T zeta_bias = static_cast<T>(stno ? config_.zeta_bias : 0);
  for (int l = 0; l < L; ++l) {
    // zeta_l = zeta_bias + b_l + W_ext[l] x_{l-1} + W_int[l] y_l (model.md 2)
    auto z = tr->Slot(tr->z, l, z_slot);
    const Index N = config_.neurons, B = tr->batch;
    if (l == 0) {
      const auto w = ParamLayout::Map(params_, layout_.w_int(0));
      SmallGemm<false>(N, B, N, Lhs(w), Rhs(tr->Y(0, from)), z.data(),
                       z.outerStride());
      z += drive0;
      // Cumulative drive: (1/tau) * integral of mean_i |zeta_0 - bias| dt.
      stats->drive += (config_.h() / config_.tau / config_.neurons) *
                      z.cwiseAbs().colwise().sum().template cast<double>();
    } else {
      const auto w = ParamLayout::Map(params_, layout_.w_ext_int(l));
      SmallGemm<false>(N, B, 2 * N, Lhs(w), Rhs(tr->Y(l - 1, from, 2)),
                       z.data(), z.outerStride());
    }
    z.colwise() += ParamLayout::Map(params_, layout_.bias(l)).col(0);
    const auto p = tr->Slot(tr->a, l, from).array();
    auto p_new = tr->Slot(tr->a, l, to).array();
    auto y_new = tr->Y(l, to).array();
    // The nominal network multiplies by scalars; a perturbed one by its
    // per-device arrays (MODEL.md "Device variability"), same equations.
    DeviceArrays<T>& dev = tr->devices;
    if (stno) {
      z.array() += zeta_bias;
      // dp/dt = (p/tau)(zeta(1-p) - (1 + Q p)) + p_th/tau (+ thermal noise
      // per Euler step), clamped to [0,1].
      const auto advance = [&](const auto& c, const auto& zeta,
                               const auto&... noise) {
        p_new =
            ((p + c * (p * (zeta * (1 - p) - 1 - q * p) + p_th)) + ... + noise)
                .max(T(0))
                .min(T(1));
      };
      // s' = (p - s)/tau_hp from p(t);  y = a_l (p - s).
      const auto s = tr->Slot(tr->s, l, from).array();
      auto s_new = tr->Slot(tr->s, l, to).array();
      s_new = s + h_hp * (p - s);
      const T amp = params_[layout_.amplification().offset + l];
      if (devices_ == nullptr) {
        advance(h_tau, z.array());
        y_new = amp * (p_new - s_new);
      } else {
        if (dev.rng.empty()) {
          advance(dev.h_tau[l].array(), z.array() * dev.zeta_scale[l].array());
        } else {
          FillNoise(l, &dev);
          advance(dev.h_tau[l].array(), z.array() * dev.zeta_scale[l].array(),
                  dev.noise.array());
        }
        y_new = amp * dev.amp_scale[l].array() * (p_new - s_new);
      }
      // E += R (zeta I_th)^2 h over the layer's neurons (the current that
      // flows: zeta in units of the nominal I_th).
      stats->energy_joules +=
          energy_per_z2_ * z.colwise().squaredNorm().template cast<double>();
    } else {
      // tau dh/dt = -h + tanh(z);  y = h. tanh via exp vectorises for double.
      z.array() = 1 - 2 / ((2 * z.array()).exp() + 1);
      if (devices_ == nullptr) {
        p_new = p + h_tau * (z.array() - p);
      } else {
        p_new = p + dev.h_tau[l].array() * (z.array() - p);
      }
      y_new = p_new;
    }
  }
}

template <typename T>
void Network<T>::FillNoise(int l, DeviceArrays<T>* d) {
  constexpr float kTwoPi = 6.28318530717958647692f;
  for (Index b = 0; b < d->noise.cols(); ++b) {
    FastRng& rng = d->rng[b];
    for (Index i = 0; i < d->noise.rows(); ++i) {
      // Two 24-bit uniforms: u1 in (0, 1] (log finite), u2 in [0, 1).
      const uint64_t x = rng.Bits();
      d->u1(i, b) = static_cast<float>((x >> 40) + 1) * 0x1p-24f;
      d->u2(i, b) = static_cast<float>((x >> 16) & 0xffffff) * 0x1p-24f;
    }
  }
  // Two plain float assignments, so that Eigen vectorises log and cos.
  d->u1 = (-2 * d->u1.log()).sqrt();
  d->u1 *= (kTwoPi * d->u2).cos();
  d->noise.array() =
      d->u1.template cast<T>().colwise() * d->noise_sd[l].array();
}

template <typename T>
void Network<T>::Logits(const Trajectory<T>& tr, Index slot,
                        MatrixT<T>* logits) const {
  const int top = config_.layers - 1;
  logits->noalias() =
      ParamLayout::Map(params_, layout_.w_out()) * tr.Y(top, slot);
  logits->colwise() += ParamLayout::Map(params_, layout_.b_out()).col(0);
}

template <typename T>
void Network<T>::Softmax(const MatrixT<T>& logits, MatrixT<T>* probs) {
  *probs = (logits.rowwise() - logits.colwise().maxCoeff()).array().exp();
  probs->array().rowwise() /= probs->colwise().sum().array();
}

template struct Trajectory<float>;
template struct Trajectory<double>;
template class Network<float>;
template class Network<double>;

}  // namespace spinnet
