// Finite-difference check of the hand-written BPTT gradient (model.md 4):
// every parameter, both cells, sparsity masks on, double precision.
#include <cmath>

#include "core/bptt.h"
#include "core/parameters.h"
#include "core/random.h"
#include "gtest/gtest.h"

namespace spinnet {
namespace {

struct Problem {
  NetworkConfig config;
  DeviceParams device;
  Vector params;
  Matrix inputs;
  std::vector<int> labels;
};

Problem MakeProblem(CellType cell) {
  Problem pr;
  NetworkConfig& c = pr.config;
  c.cell = cell;
  c.layers = 3;
  c.neurons = 5;
  c.input_dim = 2;
  c.num_classes = 3;
  c.substeps = 3;
  c.dt_in = 0.6;
  c.q = 0.3;
  c.train_amplification = true;
  c.density_int = 0.6;
  c.density_ext = 0.7;
  const Vector mask = MakeTrainableMask(c, 7);
  pr.params = InitParameters(c, mask, 0.5, 7);
  // Non-zero biases and readout biases, so every term is exercised.
  Rng rng(11);
  const ParamLayout layout(c);
  for (int l = 0; l < c.layers; ++l) {
    for (Index i = 0; i < c.neurons; ++i) {
      pr.params[layout.bias(l).offset + i] = 0.3 * rng.Normal();
    }
  }
  for (Index i = 0; i < c.num_classes; ++i) {
    pr.params[layout.b_out().offset + i] = 0.1 * rng.Normal();
  }
  const int K = 6, B = 4;
  pr.inputs.resize(K * c.input_dim, B);
  for (Index i = 0; i < pr.inputs.size(); ++i) {
    pr.inputs.data()[i] = rng.Uniform();
  }
  pr.labels = {0, 2, 1, 2};
  return pr;
}

double Loss(Problem& pr, const Vector& params) {
  Bptt<double> bptt(pr.config, pr.device);
  return bptt.Run(params, pr.inputs, pr.labels, 1.0, nullptr).loss_sum /
         pr.labels.size();
}

void CheckGradient(CellType cell) {
  Problem pr = MakeProblem(cell);
  Bptt<double> bptt(pr.config, pr.device);
  Vector grad = Vector::Zero(pr.params.size());
  bptt.Run(pr.params, pr.inputs, pr.labels, 1.0 / pr.labels.size(), &grad);
  const ParamLayout layout(pr.config);
  const Index amp_begin = layout.amplification().offset;
  int checked = 0;
  for (Index i = 0; i < pr.params.size(); ++i) {
    if (cell == CellType::kCtrnn && i >= amp_begin) {
      EXPECT_EQ(grad[i], 0.0) << "CTRNN has no amplification factor";
      continue;
    }
    const double eps = 1e-5 * std::max(1.0, std::abs(pr.params[i]));
    Vector plus = pr.params, minus = pr.params;
    plus[i] += eps;
    minus[i] -= eps;
    const double fd = (Loss(pr, plus) - Loss(pr, minus)) / (2 * eps);
    // Relative error; gradients below 1e-6 are compared against that floor
    // because the difference quotient's rounding error is about 1e-11.
    const double denom = std::max(std::abs(fd) + std::abs(grad[i]), 1e-6);
    EXPECT_LT(std::abs(fd - grad[i]) / denom, 1e-4)
        << "param " << i << " analytic " << grad[i] << " fd " << fd;
    ++checked;
  }
  const Index expected = cell == CellType::kStno ? pr.params.size() : amp_begin;
  EXPECT_EQ(checked, expected);
}

TEST(GradientTest, StnoMatchesFiniteDifferences) {
  CheckGradient(CellType::kStno);
}

TEST(GradientTest, CtrnnMatchesFiniteDifferences) {
  CheckGradient(CellType::kCtrnn);
}

}  // namespace
}  // namespace spinnet
