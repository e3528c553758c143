// Properties of the neuron and network dynamics (model.md sections 1-3, 6-8).
#include "core/network.h"

#include <cmath>

#include "core/parameters.h"
#include "core/random.h"
#include "gtest/gtest.h"

namespace spinnet {
namespace {

// A network whose weights are all zero: each neuron then follows the
// single-oscillator equation with zeta = zeta_bias + b.
struct Isolated {
  explicit Isolated(NetworkConfig c) : config(c), params(ParamLayout(c).size()) {
    params.setZero();
    ParamLayout::Map(params, ParamLayout(c).amplification())
        .setConstant(c.amplification);
  }
  // Runs `steps` Euler steps with input u = 0; returns the final state
  // (slot 0 of the returned trajectory).
  Trajectory<double> Run(int steps, SequenceStats* stats = nullptr) {
    Network<double> net(config, device, params);
    Trajectory<double> tr;
    tr.Resize(config, 1, 2, 1);
    net.Init(&tr, 0);
    Matrix drive0 = Matrix::Zero(config.neurons, 1);
    SequenceStats local;
    if (stats == nullptr) stats = &local;
    stats->Reset(1);
    for (int t = 0; t < steps; ++t) net.Step(drive0, &tr, t % 2, 1 - t % 2, 0, stats);
    if (steps % 2 == 1) {  // move the final state to slot 0
      for (auto* m : {&tr.a, &tr.s}) {
        for (auto& layer : *m) {
          if (layer.size() > 0) layer.col(0) = layer.col(1);
        }
      }
      tr.y.col(0) = tr.y.col(1);
    }
    return tr;
  }
  NetworkConfig config;
  DeviceParams device;
  Vector params;
};

NetworkConfig OneNeuron(double zeta) {
  NetworkConfig c;
  c.layers = 1;
  c.neurons = 1;
  c.zeta_bias = zeta;
  c.substeps = 20;  // h = 0.05 tau: close to the continuous dynamics
  return c;
}

// Positive root of (p/tau)(zeta(1-p) - 1 - Qp) + p_th/tau = 0.
double FixedPoint(double zeta, double q, double p_th) {
  const double a = zeta + q, b = -(zeta - 1), c = -p_th;
  return (-b + std::sqrt(b * b - 4 * a * c)) / (2 * a);
}

TEST(StnoDynamics, BelowThresholdDecaysToThermalFloor) {
  Isolated net(OneNeuron(0.5));
  const double p = net.Run(4000).a[0](0, 0);
  EXPECT_LT(p, 0.01);  // from p0 = 0.05 down to ~p_th / (1 - zeta)
  EXPECT_NEAR(p, FixedPoint(0.5, 0, 1e-3), 1e-9);
  EXPECT_GT(p, 0.0);  // the thermal floor keeps p = 0 from being absorbing
}

TEST(StnoDynamics, AboveThresholdRelaxesToOneMinusInverseZeta) {
  for (double zeta : {1.5, 2.0, 4.0}) {
    Isolated net(OneNeuron(zeta));
    net.config.p_th = 0;
    const double p = net.Run(4000).a[0](0, 0);
    EXPECT_NEAR(p, 1 - 1 / zeta, 1e-9) << "zeta " << zeta;
  }
}

TEST(StnoDynamics, NonlinearDampingLowersThePower) {
  Isolated net(OneNeuron(2.0));
  net.config.q = 1.5;
  const double p = net.Run(4000).a[0](0, 0);
  EXPECT_NEAR(p, FixedPoint(2.0, 1.5, 1e-3), 1e-9);
  EXPECT_LT(p, 0.5);
}

TEST(StnoDynamics, RelaxationTimeScalesWithTau) {
  // Linearised decay below threshold: rate (1 - zeta)/tau. Halving tau at a
  // fixed wall time equals doubling the elapsed time at the original tau.
  Isolated slow(OneNeuron(0.0)), fast(OneNeuron(0.0));
  slow.config.p_th = fast.config.p_th = 0;
  fast.config.tau = 0.5;
  fast.config.substeps = 40;  // same h / tau as `slow`
  EXPECT_NEAR(fast.Run(800).a[0](0, 0), slow.Run(800).a[0](0, 0), 1e-15);
  EXPECT_NEAR(slow.Run(20).a[0](0, 0), 0.05 * std::pow(1 - 0.05, 20), 1e-6);
}

TEST(StnoDynamics, PowerStaysInUnitIntervalUnderExtremeDrive) {
  NetworkConfig c;
  c.layers = 2;
  c.neurons = 8;
  c.input_dim = 3;
  c.substeps = 1;
  c.dt_in = 1.9;  // coarse steps overshoot without the clamp
  const Vector mask = MakeTrainableMask(c, 1);
  Vector params = InitParameters(c, mask, 3.0, 1);
  params *= 20;
  DeviceParams device;
  Network<double> net(c, device, params);
  Trajectory<double> tr;
  tr.Resize(c, 4, 2, 1);
  net.Init(&tr, 0);
  Matrix drive0;
  SequenceStats stats;
  stats.Reset(4);
  Rng rng(3);
  bool saw_zero = false, saw_one = false;
  for (int t = 0; t < 500; ++t) {
    Matrix u(3, 4);
    for (Index i = 0; i < u.size(); ++i) u.data()[i] = 10 * rng.Normal();
    net.InputDrive(u, &drive0);
    net.Step(drive0, &tr, t % 2, 1 - t % 2, 0, &stats);
    for (int l = 0; l < 2; ++l) {
      const Matrix p = tr.Slot(tr.a, l, 1 - t % 2);
      ASSERT_GE(p.minCoeff(), 0.0);
      ASSERT_LE(p.maxCoeff(), 1.0);
      saw_zero |= p.minCoeff() == 0.0;
      saw_one |= p.maxCoeff() == 1.0;
    }
  }
  EXPECT_TRUE(saw_zero && saw_one) << "the drive should hit both clamps";
}

TEST(StnoDynamics, HighPassOutputStartsAtZeroAndSettles) {
  Isolated net(OneNeuron(2.0));
  EXPECT_EQ(net.Run(0).y(0, 0), 0.0);  // s(0) = p(0)
  EXPECT_GT(net.Run(20).y(0, 0), 0.1);  // p rose faster than its mean
  const Trajectory<double> late = net.Run(20000);
  EXPECT_NEAR(late.y(0, 0), 0.0, 1e-9);  // constant p: nothing passes
}

TEST(StnoDynamics, EnergyIsJouleHeatingOfTheDriveCurrent) {
  NetworkConfig c = OneNeuron(0.8);
  c.layers = 3;
  c.neurons = 4;
  c.substeps = 4;
  Isolated net(c);
  SequenceStats stats;
  net.Run(64 * 4, &stats);
  // E = sum over neurons and steps of R (zeta I_th)^2 h, zeta = 0.8 fixed.
  const double h_seconds = 0.25e-9;
  const double expected = 3 * 4 * 256 * 100.0 * std::pow(0.8 * 0.2e-3, 2) *
                          h_seconds;
  EXPECT_NEAR(stats.energy_joules[0], expected, 1e-12 * expected);
  EXPECT_EQ(stats.drive[0], 0.0);  // no input: zeta_0 == bias throughout
}

TEST(StnoDynamics, CumulativeDriveIntegratesInputCurrent) {
  NetworkConfig c = OneNeuron(0.8);
  c.neurons = 2;
  c.tau = 2.0;
  c.substeps = 4;
  Isolated net(c);
  const ParamLayout layout(c);
  // W_ext[0] = [0.5; -1.5]: mean |zeta - bias| = 1 for u = 1.
  ParamLayout::Map(net.params, layout.w_ext(0)) << 0.5, -1.5;
  Network<double> network(c, net.device, net.params);
  Trajectory<double> tr;
  tr.Resize(c, 1, 2, 1);
  network.Init(&tr, 0);
  Matrix drive0, u = Matrix::Ones(1, 1);
  SequenceStats stats;
  stats.Reset(1);
  network.InputDrive(u, &drive0);
  for (int t = 0; t < 10 * 4; ++t) {
    network.Step(drive0, &tr, t % 2, 1 - t % 2, 0, &stats);
  }
  // D = (1/tau) * integral of 1 dt over 10 ns = 10 / 2.
  EXPECT_NEAR(stats.drive[0], 5.0, 1e-12);
}

TEST(CtrnnDynamics, RelaxesToTanhOfBias) {
  NetworkConfig c = OneNeuron(0);
  c.cell = CellType::kCtrnn;
  c.neurons = 3;
  Isolated net(c);
  ParamLayout::Map(net.params, ParamLayout(c).bias(0)) << -1.0, 0.2, 3.0;
  const Trajectory<double> s = net.Run(4000);
  EXPECT_NEAR(s.y(0, 0), std::tanh(-1.0), 1e-9);
  EXPECT_NEAR(s.y(1, 0), std::tanh(0.2), 1e-9);
  EXPECT_NEAR(s.y(2, 0), std::tanh(3.0), 1e-9);
}

TEST(NetworkConfigTest, RejectsUnstableEulerStep) {
  NetworkConfig c;
  c.dt_in = 5;
  c.substeps = 1;
  EXPECT_EQ(c.Validate().code(), absl::StatusCode::kInvalidArgument);
  c.substeps = 4;
  EXPECT_TRUE(c.Validate().ok());
  c.density_int = 1.5;
  EXPECT_EQ(c.Validate().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace spinnet
