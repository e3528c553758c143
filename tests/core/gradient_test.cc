// Finite-difference check of the hand-written BPTT gradient (model.md 4):
// every parameter, both cells, sparsity masks on, double precision; also on
// a perturbed chip (device variability, thermal noise) held fixed.
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

// neurons and batch size pick the paths of core/small_gemm.h: 5 x 4 takes
// only its scalar loops; 17 x 9 its SIMD blocks (16 rows of double, 8
// columns) and the leftover row and column.
Problem MakeProblem(CellType cell, int neurons = 5, int batch = 4) {
  Problem pr;
  NetworkConfig& c = pr.config;
  c.cell = cell;
  c.layers = 3;
  c.neurons = neurons;
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
  const int K = 6;
  pr.inputs.resize(K * c.input_dim, batch);
  for (Index i = 0; i < pr.inputs.size(); ++i) {
    pr.inputs.data()[i] = rng.Uniform();
  }
  pr.labels = {0, 2, 1, 2};
  pr.labels.resize(batch);
  for (int b = 4; b < batch; ++b) pr.labels[b] = b % c.num_classes;
  return pr;
}

double Loss(Problem& pr, const Vector& params, const Devices* devices) {
  Bptt<double> bptt(pr.config, pr.device);
  bptt.SetDevices(devices, 3);
  return bptt.Run(params, pr.inputs, pr.labels, 1.0, nullptr).loss_sum /
         pr.labels.size();
}

void CheckGradient(CellType cell, const Devices* devices = nullptr,
                   int neurons = 5, int batch = 4) {
  Problem pr = MakeProblem(cell, neurons, batch);
  Bptt<double> bptt(pr.config, pr.device);
  bptt.SetDevices(devices, 3);
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
    const double fd =
        (Loss(pr, plus, devices) - Loss(pr, minus, devices)) / (2 * eps);
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

TEST(GradientTest, StnoMatchesFiniteDifferencesThroughSimdProducts) {
  CheckGradient(CellType::kStno, nullptr, 17, 9);
}

TEST(GradientTest, CtrnnMatchesFiniteDifferences) {
  CheckGradient(CellType::kCtrnn);
}

// The devices of one draw, as in one training batch with --train-spread.
Devices Chip(CellType cell, double spread, double thermal_noise) {
  DeviceVariability v;
  v.threshold_spread = v.tau_spread = v.amplification_spread = spread;
  v.thermal_noise = thermal_noise;
  v.seed = 21;
  Devices d;
  DrawDevices(MakeProblem(cell).config, v, &d);
  return d;
}

TEST(GradientTest, StnoWithDeviceVariabilityMatchesFiniteDifferences) {
  const Devices d = Chip(CellType::kStno, 0.2, 0);
  // The draw really perturbs every parameter.
  for (int l = 0; l < 3; ++l) {
    EXPECT_GT((d.threshold[l].array() - 1).abs().maxCoeff(), 0.05);
    EXPECT_GT((d.tau[l].array() - 1).abs().maxCoeff(), 0.05);
    EXPECT_GT((d.amplification[l].array() - 1).abs().maxCoeff(), 0.05);
  }
  CheckGradient(CellType::kStno, &d);
}

TEST(GradientTest, StnoWithThermalNoiseMatchesFiniteDifferences) {
  const Devices d = Chip(CellType::kStno, 0.1, 0.02);
  CheckGradient(CellType::kStno, &d);
}

TEST(GradientTest, CtrnnWithTauSpreadMatchesFiniteDifferences) {
  const Devices d = Chip(CellType::kCtrnn, 0.2, 0);
  EXPECT_GT((d.tau[0].array() - 1).abs().maxCoeff(), 0.05);
  CheckGradient(CellType::kCtrnn, &d);
}

// The check can fail: a gradient of the nominal network is not that of a
// perturbed one.
TEST(GradientTest, NominalGradientDiffersOnAPerturbedChip) {
  Problem pr = MakeProblem(CellType::kStno);
  const Devices d = Chip(CellType::kStno, 0.2, 0);
  Bptt<double> nominal(pr.config, pr.device), perturbed(pr.config, pr.device);
  perturbed.SetDevices(&d);
  Vector g0 = Vector::Zero(pr.params.size()), g1 = g0;
  nominal.Run(pr.params, pr.inputs, pr.labels, 1.0, &g0);
  perturbed.Run(pr.params, pr.inputs, pr.labels, 1.0, &g1);
  EXPECT_GT((g0 - g1).norm(), 1e-3 * g0.norm());
}

}  // namespace
}  // namespace spinnet
