#include "core/bptt.h"

#include <cmath>

#include "core/logging.h"

namespace spinnet {

Bptt::Bptt(const NetworkConfig& config, const DeviceParams& device)
    : config_(config), device_(device) {}

BatchResult Bptt::Run(const Vector& params, const Eigen::Ref<const Matrix>& inputs,
                      const std::vector<int>& labels, double loss_scale,
                      Vector* grad) {
  const Network net(config_, device_, params);
  const int L = config_.layers, N = config_.neurons, d = config_.input_dim;
  const Index B = inputs.cols();
  SPINNET_CHECK(inputs.rows() % d == 0);
  SPINNET_CHECK(labels.empty() || static_cast<Index>(labels.size()) == B);
  SPINNET_CHECK(grad == nullptr || !labels.empty());
  const Index K = inputs.rows() / d;
  const Index T = K * config_.substeps;
  const bool record = grad != nullptr;

  if (record && (B != batch_ || T != steps_)) {
    batch_ = B;
    steps_ = T;
    for (auto* v : {&traj_a_, &traj_s_, &traj_y_, &traj_z_, &grad_z_}) {
      v->resize(L);
    }
    for (int l = 0; l < L; ++l) {
      traj_a_[l].resize(N, (T + 1) * B);
      traj_s_[l].resize(N, (T + 1) * B);
      traj_y_[l].resize(N, (T + 1) * B);
      traj_z_[l].resize(N, T * B);
      grad_z_[l].resize(N, T * B);
    }
  }
  net.InitState(B, &state_);
  z_.resize(L);
  for (auto& z : z_) z.resize(N, B);
  stats_.Reset(B);

  auto save_state = [&](Index t) {
    for (int l = 0; l < L; ++l) {
      traj_a_[l].middleCols(t * B, B) = state_.a[l];
      traj_s_[l].middleCols(t * B, B) = state_.s[l];
      traj_y_[l].middleCols(t * B, B) = state_.y[l];
    }
  };
  if (record) save_state(0);
  for (Index k = 0; k < K; ++k) {
    net.InputDrive(inputs.middleRows(k * d, d), &drive0_);
    for (int j = 0; j < config_.substeps; ++j) {
      const Index t = k * config_.substeps + j;
      net.Step(drive0_, &state_, &z_, &stats_);
      if (record) {
        for (int l = 0; l < L; ++l) traj_z_[l].middleCols(t * B, B) = z_[l];
        save_state(t + 1);
      }
    }
  }
  net.Logits(state_, &logits_);
  Network::Softmax(logits_, &probs_);

  BatchResult r;
  r.energy_sum = stats_.energy_joules.sum();
  r.drive_sum = stats_.drive.sum();
  if (labels.empty()) return r;
  for (Index b = 0; b < B; ++b) {
    const int label = labels[b];
    SPINNET_CHECK(label >= 0 && label < config_.num_classes);
    const double max_logit = logits_.col(b).maxCoeff();
    const double lse =
        max_logit + std::log((logits_.col(b).array() - max_logit).exp().sum());
    r.loss_sum += lse - logits_(label, b);
    Index argmax;
    probs_.col(b).maxCoeff(&argmax);
    r.correct += argmax == label;
  }
  if (record) Backward(net, inputs, labels, loss_scale, grad);
  return r;
}

void Bptt::Backward(const Network& net, const Eigen::Ref<const Matrix>& inputs,
                    const std::vector<int>& labels, double loss_scale,
                    Vector* grad) {
  const ParamLayout& layout = net.layout();
  const int L = config_.layers, N = config_.neurons, d = config_.input_dim;
  const Index B = batch_, T = steps_;
  const Index K = T / config_.substeps;
  const bool stno = config_.cell == CellType::kStno;
  const double h_tau = config_.h() / config_.tau;
  const double h_hp = config_.h() / config_.tau_hp;
  const double q = config_.q;
  const Vector& params = net.params();
  Vector& g = *grad;

  // Readout: dL/dlogits = (softmax - onehot) * loss_scale.
  Matrix g_logits = probs_;
  for (Index b = 0; b < B; ++b) g_logits(labels[b], b) -= 1.0;
  g_logits *= loss_scale;
  const auto y_top = traj_y_[L - 1].middleCols(T * B, B);
  ParamLayout::Map(g, layout.w_out()).noalias() += g_logits * y_top.transpose();
  ParamLayout::Map(g, layout.b_out()) += g_logits.rowwise().sum();

  g_a_.resize(L);
  g_s_.resize(L);
  for (int l = 0; l < L; ++l) {
    g_a_[l].setZero(N, B);
    g_s_[l].setZero(N, B);
  }
  g_y_.resize(N, B);
  // Adjoint of y_l(t) flows into p, s (STNO: y = a (p - s)) or h (CTRNN).
  auto add_output_adjoint = [&](int l, Index t) {
    if (stno) {
      const Index amp_i = layout.amplification().offset + l;
      const double a_l = params[amp_i];
      g_a_[l] += a_l * g_y_;
      g_s_[l] -= a_l * g_y_;
      g[amp_i] += (g_y_.array() * (traj_a_[l].middleCols(t * B, B) -
                                   traj_s_[l].middleCols(t * B, B))
                                      .array())
                      .sum();
    } else {
      g_a_[l] += g_y_;
    }
  };
  g_y_.noalias() =
      ParamLayout::Map(params, layout.w_out()).transpose() * g_logits;
  add_output_adjoint(L - 1, T);

  for (Index t = T - 1; t >= 0; --t) {
    // Through the state update t -> t+1 of every layer.
    for (int l = 0; l < L; ++l) {
      const auto p = traj_a_[l].middleCols(t * B, B).array();
      const auto z = traj_z_[l].middleCols(t * B, B).array();
      auto gz = grad_z_[l].middleCols(t * B, B).array();
      auto ga = g_a_[l].array();
      if (stno) {
        // Clamp: no gradient where the unclamped update left [0, 1].
        const auto pre =
            p + h_tau * (p * (z * (1.0 - p) - 1.0 - q * p) + config_.p_th);
        ga = ((pre > 0.0) && (pre < 1.0)).select(ga, 0.0);
        gz = ga * (h_tau * p * (1.0 - p));
        ga = ga * (1.0 + h_tau * (z * (1.0 - 2.0 * p) - 1.0 - 2.0 * q * p)) +
             h_hp * g_s_[l].array();
        g_s_[l].array() *= 1.0 - h_hp;
      } else {
        gz = ga * h_tau * (1.0 - z.tanh().square());
        ga *= 1.0 - h_tau;
      }
    }
    // Through zeta(t) into the outputs y(t) that fed it.
    for (int l = 0; l < L; ++l) {
      g_y_.noalias() = ParamLayout::Map(params, layout.w_int(l))
                           .transpose() *
                       grad_z_[l].middleCols(t * B, B);
      if (l + 1 < L) {
        g_y_.noalias() += ParamLayout::Map(params, layout.w_ext(l + 1))
                              .transpose() *
                          grad_z_[l + 1].middleCols(t * B, B);
      }
      add_output_adjoint(l, t);
    }
  }

  // Weight gradients as one large product per matrix over all time steps.
  for (int l = 0; l < L; ++l) {
    const auto y_prev = traj_y_[l].leftCols(T * B);
    ParamLayout::Map(g, layout.w_int(l)).noalias() +=
        grad_z_[l] * y_prev.transpose();
    ParamLayout::Map(g, layout.bias(l)) += grad_z_[l].rowwise().sum();
    if (l > 0) {
      ParamLayout::Map(g, layout.w_ext(l)).noalias() +=
          grad_z_[l] * traj_y_[l - 1].leftCols(T * B).transpose();
    }
  }
  // W_ext[0] sees input u_k for all substeps of interval k.
  auto g_ext0 = ParamLayout::Map(g, layout.w_ext(0));
  for (Index k = 0; k < K; ++k) {
    g_sum_ = grad_z_[0].middleCols(k * config_.substeps * B, B);
    for (int j = 1; j < config_.substeps; ++j) {
      g_sum_ += grad_z_[0].middleCols((k * config_.substeps + j) * B, B);
    }
    g_ext0.noalias() += g_sum_ * inputs.middleRows(k * d, d).transpose();
  }
}

}  // namespace spinnet
