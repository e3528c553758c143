#include "core/network.h"

#include "core/logging.h"

namespace spinnet {

Network::Network(const NetworkConfig& config, const DeviceParams& device,
                 const Vector& params)
    : config_(config), device_(device), params_(params), layout_(config) {
  SPINNET_CHECK(params.size() == layout_.size());
  const double i_th = device.threshold_current_amp;
  energy_per_z2_ = device.resistance_ohm * i_th * i_th * config.h() * 1e-9;
}

void Network::InitState(Index batch, NetworkState* state) const {
  const int L = config_.layers, N = config_.neurons;
  const bool stno = config_.cell == CellType::kStno;
  state->a.resize(L);
  state->s.resize(L);
  state->y.resize(L);
  for (int l = 0; l < L; ++l) {
    state->a[l].setConstant(N, batch, stno ? config_.p0 : 0.0);
    state->s[l].setConstant(N, batch, stno ? config_.p0 : 0.0);
    state->y[l].setZero(N, batch);
  }
}

void Network::InputDrive(const Eigen::Ref<const Matrix>& u,
                         Matrix* drive0) const {
  drive0->noalias() = ParamLayout::Map(params_, layout_.w_ext(0)) * u;
}

void Network::Step(const Matrix& drive0, NetworkState* state,
                   std::vector<Matrix>* z, SequenceStats* stats) const {
  const int L = config_.layers;
  const bool stno = config_.cell == CellType::kStno;
  const double h = config_.h();
  const double h_tau = h / config_.tau;
  // zeta_l = zeta_bias + b_l + W_ext[l] x_{l-1} + W_int[l] y_l  (model.md 2)
  for (int l = 0; l < L; ++l) {
    Matrix& zl = (*z)[l];
    zl.noalias() = ParamLayout::Map(params_, layout_.w_int(l)) * state->y[l];
    if (l == 0) {
      zl += drive0;
      // Cumulative drive D: (1/tau) * integral of mean_i |zeta_0 - bias|.
      stats->drive += (h_tau / config_.neurons) * zl.cwiseAbs().colwise().sum();
    } else {
      zl.noalias() +=
          ParamLayout::Map(params_, layout_.w_ext(l)) * state->y[l - 1];
    }
    zl.colwise() += ParamLayout::Map(params_, layout_.bias(l)).col(0);
    if (stno) zl.array() += config_.zeta_bias;
  }
  const double h_hp = h / config_.tau_hp;
  for (int l = 0; l < L; ++l) {
    auto a = state->a[l].array();
    const auto zl = (*z)[l].array();
    if (stno) {
      auto s = state->s[l].array();
      // s' = (p - s)/tau_hp, from p(t): advance s before p.
      s += h_hp * (a - s);
      // dp/dt = (p/tau)(zeta(1-p) - (1 + Q p)) + p_th/tau, clamped to [0,1].
      a = (a + h_tau * (a * (zl * (1.0 - a) - 1.0 - config_.q * a) +
                        config_.p_th))
              .max(0.0)
              .min(1.0);
      // y = a_l (p - s)
      const double amp = params_[layout_.amplification().offset + l];
      state->y[l].array() = amp * (a - s);
      // E += R (zeta I_th)^2 h, summed over neurons.
      stats->energy_joules += energy_per_z2_ * (*z)[l].colwise().squaredNorm();
    } else {
      // tau dh/dt = -h + tanh(z);  y = h
      a += h_tau * (zl.tanh() - a);
      state->y[l] = state->a[l];
    }
  }
}

void Network::Logits(const NetworkState& state, Matrix* logits) const {
  logits->noalias() =
      ParamLayout::Map(params_, layout_.w_out()) * state.y.back();
  logits->colwise() += ParamLayout::Map(params_, layout_.b_out()).col(0);
}

void Network::Softmax(const Matrix& logits, Matrix* probs) {
  *probs = (logits.rowwise() - logits.colwise().maxCoeff()).array().exp();
  probs->array().rowwise() /= probs->colwise().sum().array();
}

}  // namespace spinnet
