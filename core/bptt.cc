#include "core/bptt.h"

#include <cmath>

#include "core/logging.h"
#include "core/small_gemm.h"

namespace spinnet {

template <typename T>
Bptt<T>::Bptt(const NetworkConfig& config, const DeviceParams& device)
    : config_(config), device_(device) {}

template <typename T>
BatchResult Bptt<T>::Run(const VectorT<T>& params,
                         const Eigen::Ref<const MatrixT<T>>& inputs,
                         const std::vector<int>& labels, double loss_scale,
                         VectorT<T>* grad) {
  const Network<T> net(config_, device_, params, devices_);
  const int d = config_.input_dim, S = config_.substeps;
  const Index B = inputs.cols();
  SPINNET_CHECK(inputs.rows() % d == 0);
  SPINNET_CHECK(labels.empty() || static_cast<Index>(labels.size()) == B);
  SPINNET_CHECK(grad == nullptr || !labels.empty());
  const Index K = inputs.rows() / d;
  const Index T_steps = K * S;
  const bool record = grad != nullptr;
  steps_ = T_steps;

  // Recording keeps every step for the backward pass; otherwise two slots.
  tr_.Resize(config_, B, record ? T_steps + 1 : 2, record ? T_steps : 1);
  net.Init(&tr_, 0, first_sequence_);
  stats_.Reset(B);
  for (Index k = 0; k < K; ++k) {
    net.InputDrive(inputs.middleRows(k * d, d), &drive0_);
    for (int j = 0; j < S; ++j) {
      const Index t = k * S + j;
      if (record) {
        if (t + 2 <= T_steps) tr_.Prefetch(t + 2, t + 1, /*write=*/true);
        net.Step(drive0_, &tr_, t, t + 1, t, &stats_);
      } else {
        net.Step(drive0_, &tr_, t % 2, (t + 1) % 2, 0, &stats_);
      }
    }
  }
  net.Logits(tr_, record ? T_steps : T_steps % 2, &logits_);
  Network<T>::Softmax(logits_, &probs_);

  BatchResult r;
  r.energy_sum = stats_.energy_joules.sum();
  r.drive_sum = stats_.drive.sum();
  if (labels.empty()) return r;
  for (Index b = 0; b < B; ++b) {
    const int label = labels[b];
    SPINNET_CHECK(label >= 0 && label < config_.num_classes);
    const double max_logit = logits_.col(b).maxCoeff();
    double sum = 0;
    for (Index c = 0; c < logits_.rows(); ++c) {
      sum += std::exp(static_cast<double>(logits_(c, b)) - max_logit);
    }
    r.loss_sum += max_logit + std::log(sum) - logits_(label, b);
    Index argmax;
    probs_.col(b).maxCoeff(&argmax);
    r.correct += argmax == label;
  }
  if (record) Backward(net, inputs, labels, loss_scale, grad);
  return r;
}

template <typename T>
void Bptt<T>::Backward(const Network<T>& net,
                       const Eigen::Ref<const MatrixT<T>>& inputs,
                       const std::vector<int>& labels, double loss_scale,
                       VectorT<T>* grad) {
  const ParamLayout& layout = net.layout();
  const VectorT<T>& params = net.params();
  VectorT<T>& g = *grad;
  const int L = config_.layers, N = config_.neurons, d = config_.input_dim;
  const int S = config_.substeps;
  const Index B = tr_.batch, T_steps = steps_;
  const bool stno = config_.cell == CellType::kStno;
  const T h_tau = static_cast<T>(config_.h() / config_.tau);
  const T h_hp = static_cast<T>(config_.h() / config_.tau_hp);
  const T q = static_cast<T>(config_.q);
  const bool perturbed = net.perturbed();
  const DeviceArrays<T>& dev = tr_.devices;

  // Readout: dL/dlogits = (softmax - onehot) * loss_scale.
  MatrixT<T>& g_logits = logits_;  // logits are not needed any more
  g_logits = probs_;
  for (Index b = 0; b < B; ++b) g_logits(labels[b], b) -= 1;
  g_logits *= static_cast<T>(loss_scale);
  ParamLayout::Map(g, layout.w_out()).noalias() +=
      g_logits * tr_.Y(L - 1, T_steps).transpose();
  ParamLayout::Map(g, layout.b_out()) += g_logits.rowwise().sum();

  g_a_.resize(L);
  g_s_.resize(L);
  w_back_.resize(L);
  for (int l = 0; l < L; ++l) {
    g_a_[l].setZero(N, B);
    g_s_[l].setZero(stno ? N : 0, stno ? B : 0);
  }
  g_y_.resize(N, B);
  // dL/dz of every layer at steps t and t+1 (slots t % 2), stacked like
  // Trajectory::y: the weight gradients are summed step by step, so no
  // step's dL/dz is kept longer.
  g_z_.resize(L * N, 2 * B);
  auto g_z = [&](int l, Index t, int count = 1) {
    return g_z_.block(l * N, (t % 2) * B, count * N, B);
  };
  // dL/dy_l = W_int[l]^T dL/dz_l + W_ext[l+1]^T dL/dz_{l+1}: one product with
  // [W_int[l]^T W_ext[l+1]^T] and the stacked [dz_l; dz_{l+1}] (the top
  // layer: W_int^T alone).
  for (int l = 0; l < L; ++l) {
    w_back_[l].resize(N, l + 1 < L ? 2 * N : N);
    w_back_[l].leftCols(N) =
        ParamLayout::Map(params, layout.w_int(l)).transpose();
    if (l + 1 < L) {
      w_back_[l].rightCols(N) =
          ParamLayout::Map(params, layout.w_ext(l + 1)).transpose();
    }
  }
  // The adjoint g_y_ of y_l(t) flows into p_l, s_l (STNO: y = a_l (p - s))
  // or h_l (CTRNN: y = h).
  auto add_output_adjoint = [&](int l, Index t) {
    if (stno) {
      const Index amp_index = layout.amplification().offset + l;
      const T amp = params[amp_index];
      // y = a_l (p - s), times a_l,i / a_l for a perturbed network.
      const auto back = [&](const auto&... scale) {
        g_a_[l].array() += ((amp * g_y_.array()) * ... * scale);
        g_s_[l].array() -= ((amp * g_y_.array()) * ... * scale);
        g[amp_index] += (g_y_.array() * ... * scale)
                            .cwiseProduct(tr_.Slot(tr_.a, l, t).array() -
                                          tr_.Slot(tr_.s, l, t).array())
                            .sum();
      };
      if (perturbed) {
        back(dev.amp_scale[l].array());
      } else {
        back();
      }
    } else {
      g_a_[l] += g_y_;
    }
  };
  g_y_.noalias() =
      ParamLayout::Map(params, layout.w_out()).transpose() * g_logits;
  add_output_adjoint(L - 1, T_steps);

  for (Index t = T_steps - 1; t >= 0; --t) {
    if (t > 0) tr_.Prefetch(t - 1, t - 1, /*write=*/false);
    // Through the state update t -> t+1 of every layer.
    for (int l = 0; l < L; ++l) {
      const auto p = tr_.Slot(tr_.a, l, t).array();
      const auto z = tr_.Slot(tr_.z, l, t).array();
      auto gz = g_z(l, t).array();
      auto ga = g_a_[l].array();
      if (stno) {
        // The clamp passes no gradient where the update (with its noise)
        // left [0, 1], i.e. where p(t+h) is 0 or 1.
        const auto p_next = tr_.Slot(tr_.a, l, t + 1).array();
        ga = (p_next > T(0) && p_next < T(1)).select(ga, T(0));
        // zeta_eff = zeta_scale zeta (perturbed) or zeta; dL/dzeta carries
        // the zeta_scale factor once more.
        const auto back = [&](const auto& c, const auto& zeta_eff,
                              const auto&... zeta_scale) {
          gz = ((ga * (c * p * (1 - p))) * ... * zeta_scale);
          ga = ga * (1 + c * (zeta_eff * (1 - 2 * p) - 1 - 2 * q * p)) +
               h_hp * g_s_[l].array();
        };
        if (!perturbed) {
          back(h_tau, z);
        } else {
          back(dev.h_tau[l].array(), z * dev.zeta_scale[l].array(),
               dev.zeta_scale[l].array());
        }
        g_s_[l] *= 1 - h_hp;
      } else {
        // z holds tanh(pre-activation) for the CTRNN.
        const auto back = [&](const auto& c) {
          gz = ga * c * (1 - z.square());
          ga *= 1 - c;
        };
        if (perturbed) {
          back(dev.h_tau[l].array());
        } else {
          back(h_tau);
        }
      }
    }
    // Weight gradients of step t (layer 0: g_W_int[0] += dz_0 y_0^T):
    // g_[W_ext[l] W_int[l]] += dz_l [y_{l-1}; y_l]^T, g_b_l += rowsum(dz_l).
    for (int l = 0; l < L; ++l) {
      const auto dz = g_z(l, t);
      ParamLayout::Map(g, layout.bias(l)) += dz.rowwise().sum();
      const ParamBlock& w = l == 0 ? layout.w_int(0) : layout.w_ext_int(l);
      SmallGemm<true>(
          N, w.cols, B, Lhs(dz),
          RhsTransposed(tr_.Y(l == 0 ? 0 : l - 1, t, l == 0 ? 1 : 2)),
          g.data() + w.offset, N);
    }
    // W_ext[0] sees input u_k during all substeps of interval k.
    if (t % S == S - 1) {
      g_sum_ = g_z(0, t);
    } else {
      g_sum_ += g_z(0, t);
    }
    if (t % S == 0) {
      ParamLayout::Map(g, layout.w_ext(0)).noalias() +=
          g_sum_ * inputs.middleRows((t / S) * d, d).transpose();
    }
    // Through zeta_l(t) into the outputs y(t) that fed it.
    for (int l = 0; l < L; ++l) {
      SmallGemm<false>(N, B, w_back_[l].cols(), Lhs(w_back_[l]),
                       Rhs(g_z(l, t, l + 1 < L ? 2 : 1)), g_y_.data(), N);
      add_output_adjoint(l, t);
    }
  }
}

template class Bptt<float>;
template class Bptt<double>;

}  // namespace spinnet
