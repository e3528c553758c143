#include "core/network.h"

#include "core/logging.h"

namespace spinnet {

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
Network<T>::Network(const NetworkConfig& config, const DeviceParams& device,
                    const VectorT<T>& params)
    : config_(config), params_(params), layout_(config) {
  SPINNET_CHECK(params.size() == layout_.size());
  const double i_th = device.threshold_current_amp;
  energy_per_z2_ = device.resistance_ohm * i_th * i_th * config.h() * 1e-9;
}

template <typename T>
void Network<T>::Init(Trajectory<T>* tr, Index slot) const {
  const bool stno = config_.cell == CellType::kStno;
  for (int l = 0; l < config_.layers; ++l) {
    tr->Slot(tr->a, l, slot).setConstant(stno ? config_.p0 : 0);
    if (stno) tr->Slot(tr->s, l, slot).setConstant(config_.p0);
  }
  tr->Y(0, slot, config_.layers).setZero();
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
    if (l == 0) {
      z.noalias() = ParamLayout::Map(params_, layout_.w_int(0)) *
                    tr->Y(0, from);
      z += drive0;
      // Cumulative drive: (1/tau) * integral of mean_i |zeta_0 - bias| dt.
      stats->drive += (config_.h() / config_.tau / config_.neurons) *
                      z.cwiseAbs().colwise().sum().template cast<double>();
    } else {
      z.noalias() = ParamLayout::Map(params_, layout_.w_ext_int(l)) *
                    tr->Y(l - 1, from, 2);
    }
    z.colwise() += ParamLayout::Map(params_, layout_.bias(l)).col(0);
    const auto p = tr->Slot(tr->a, l, from).array();
    auto p_new = tr->Slot(tr->a, l, to).array();
    auto y_new = tr->Y(l, to).array();
    if (stno) {
      z.array() += zeta_bias;
      const auto zeta = z.array();
      // dp/dt = (p/tau)(zeta(1-p) - (1 + Q p)) + p_th/tau, clamped to [0,1].
      p_new = (p + h_tau * (p * (zeta * (1 - p) - 1 - q * p) + p_th))
                  .max(T(0))
                  .min(T(1));
      // s' = (p - s)/tau_hp from p(t);  y = a_l (p - s).
      const auto s = tr->Slot(tr->s, l, from).array();
      auto s_new = tr->Slot(tr->s, l, to).array();
      s_new = s + h_hp * (p - s);
      y_new = params_[layout_.amplification().offset + l] * (p_new - s_new);
      // E += R (zeta I_th)^2 h over the layer's neurons.
      stats->energy_joules +=
          energy_per_z2_ * z.colwise().squaredNorm().template cast<double>();
    } else {
      // tau dh/dt = -h + tanh(z);  y = h. tanh via exp vectorises for double.
      z.array() = 1 - 2 / ((2 * z.array()).exp() + 1);
      p_new = p + h_tau * (z.array() - p);
      y_new = p_new;
    }
  }
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
