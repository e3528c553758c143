// Device variability (core/MODEL.md "Device variability"): zero variability
// is today's network, a spread changes it reproducibly per seed, thermal
// noise is keyed by sequence, training with spreads resumes bit for bit, and
// the flags read and validate.
#include <cstring>
#include <numeric>

#include "core/bptt.h"
#include "core/dataset.h"
#include "core/inference.h"
#include "core/trainer.h"
#include "core/training_flags.h"
#include "gtest/gtest.h"

namespace spinnet {
namespace {

struct Digits {
  Digits() {
    auto digits = LoadDigits(DefaultDigitsPath());
    EXPECT_TRUE(digits.ok()) << digits.status();
    std::vector<int> train_idx(300), test_idx(40);
    std::iota(train_idx.begin(), train_idx.end(), 0);
    std::iota(test_idx.begin(), test_idx.end(), 300);
    train = digits->Subset(train_idx);
    test = digits->Subset(test_idx);
  }
  Dataset train, test;
};

const Digits& SharedDigits() {
  static const Digits* d = new Digits();
  return *d;
}

// A real model: trained for 4 epochs on 300 digits (once per cell).
std::shared_ptr<const Model> Train(CellType cell) {
  TrainConfig train;
  train.epochs = 4;
  train.batch = 10;
  train.seed = 4;
  NetworkConfig network;
  network.cell = cell;
  if (cell == CellType::kCtrnn) network.tau = 5;
  auto start =
      StartTraining(network, DeviceParams(), train, SharedDigits().train);
  EXPECT_TRUE(start.ok()) << start.status();
  auto done = Train(*start, SharedDigits().train, SharedDigits().test, nullptr);
  EXPECT_TRUE(done.ok()) << done.status();
  return std::make_shared<const Model>(done->model);
}

std::shared_ptr<const Model> TrainedModel(CellType cell) {
  static const auto* stno =
      new std::shared_ptr<const Model>(Train(CellType::kStno));
  static const auto* ctrnn =
      new std::shared_ptr<const Model>(Train(CellType::kCtrnn));
  return cell == CellType::kStno ? *stno : *ctrnn;
}

double MaxProbabilityDifference(const std::vector<Classification>& a,
                                const std::vector<Classification>& b) {
  EXPECT_EQ(a.size(), b.size());
  double diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(
        diff, (a[i].probabilities - b[i].probabilities).cwiseAbs().maxCoeff());
  }
  return diff;
}

std::vector<Classification> ClassifyOn(const Model& model,
                                       const DeviceVariability& v,
                                       int threads = 1) {
  auto out = Classify(model, SharedDigits().test.values, threads, v);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : std::vector<Classification>();
}

DeviceVariability Spread(double s, uint64_t seed) {
  DeviceVariability v;
  v.threshold_spread = v.tau_spread = v.amplification_spread = s;
  v.seed = seed;
  return v;
}

// The perturbed code path with every factor exactly 1 and no noise (a zero
// spread drawn explicitly) reproduces the nominal network's probabilities
// and energies to 1e-12, for a trained model of each cell; so does Classify
// with the default (no) variability.
TEST(VariabilityTest, ZeroSpreadEqualsNominalInference) {
  for (CellType cell : {CellType::kStno, CellType::kCtrnn}) {
    auto model = TrainedModel(cell);
    const Matrix& seqs = SharedDigits().test.values;
    Bptt<double> nominal(model->network, model->device);
    Bptt<double> perturbed(model->network, model->device);
    Devices ones;
    DrawDevices(model->network, Spread(0, 9), &ones);
    perturbed.SetDevices(&ones);
    const auto labels = SharedDigits().test.labels;
    const BatchResult a = nominal.Run(model->params, seqs, labels, 0, nullptr);
    const BatchResult b =
        perturbed.Run(model->params, seqs, labels, 0, nullptr);
    EXPECT_LT((nominal.probabilities() - perturbed.probabilities())
                  .cwiseAbs()
                  .maxCoeff(),
              1e-12);
    EXPECT_NEAR(a.loss_sum, b.loss_sum, 1e-12 * a.loss_sum);
    EXPECT_NEAR(a.energy_sum, b.energy_sum, 1e-12 * (a.energy_sum + 1e-30));
    EXPECT_EQ(a.correct, b.correct);
    EXPECT_GT(a.correct, 10) << "above chance (4 of 40): a trained model";

    auto today = Classify(*model, seqs);
    ASSERT_TRUE(today.ok());
    EXPECT_LT(
        MaxProbabilityDifference(*today, ClassifyOn(*model, Spread(0, 9))),
        1e-12);
    for (int i = 0; i < seqs.cols(); ++i) {
      EXPECT_LT((nominal.probabilities().col(i) - (*today)[i].probabilities)
                    .cwiseAbs()
                    .maxCoeff(),
                1e-12);
    }
  }
}

TEST(VariabilityTest, SpreadChangesOutputsReproduciblyPerSeed) {
  auto model = TrainedModel(CellType::kStno);
  const auto nominal = ClassifyOn(*model, DeviceVariability());
  const auto a = ClassifyOn(*model, Spread(0.1, 1));
  EXPECT_GT(MaxProbabilityDifference(nominal, a), 1e-3);
  EXPECT_EQ(MaxProbabilityDifference(a, ClassifyOn(*model, Spread(0.1, 1))),
            0.0);
  EXPECT_EQ(MaxProbabilityDifference(a, ClassifyOn(*model, Spread(0.1, 1), 2)),
            0.0)
      << "the chip does not depend on threads";
  EXPECT_GT(MaxProbabilityDifference(a, ClassifyOn(*model, Spread(0.1, 2))),
            1e-3);
  // Each parameter alone matters.
  DeviceVariability v;
  v.seed = 1;
  for (double* spread :
       {&v.threshold_spread, &v.tau_spread, &v.amplification_spread}) {
    *spread = 0.1;
    EXPECT_GT(MaxProbabilityDifference(nominal, ClassifyOn(*model, v)), 1e-4);
    *spread = 0;
  }
}

TEST(VariabilityTest, CtrnnVariesOnlyTau) {
  auto model = TrainedModel(CellType::kCtrnn);
  const auto nominal = ClassifyOn(*model, DeviceVariability());
  DeviceVariability v;
  v.seed = 1;
  v.tau_spread = 0.1;
  EXPECT_GT(MaxProbabilityDifference(nominal, ClassifyOn(*model, v)), 1e-4);
  v.tau_spread = 0;
  v.threshold_spread = v.amplification_spread = 0.1;
  v.thermal_noise = 0.05;
  EXPECT_LT(MaxProbabilityDifference(nominal, ClassifyOn(*model, v)), 1e-12);
}

// Thermal noise: changes the outputs, is reproducible, keyed by sequence
// (independent of threads), and a streaming session's n-th sequence gets
// Classify's column n.
TEST(VariabilityTest, ThermalNoiseIsKeyedBySequence) {
  auto model = TrainedModel(CellType::kStno);
  DeviceVariability v = Spread(0.05, 3);
  v.thermal_noise = 0.02;
  const auto noisy = ClassifyOn(*model, v);
  EXPECT_GT(
      MaxProbabilityDifference(ClassifyOn(*model, Spread(0.05, 3)), noisy),
      1e-4);
  EXPECT_EQ(MaxProbabilityDifference(noisy, ClassifyOn(*model, v, 2)), 0.0);
  const Matrix& seqs = SharedDigits().test.values;
  StreamingSession session(model, v);
  for (int j = 0; j < 3; ++j) {
    if (j > 0) session.Reset();
    for (int k = 0; k < seqs.rows(); ++k) {
      ASSERT_TRUE(session.Feed({seqs.col(j).data() + k, 1}).ok());
    }
    auto c = session.Current();
    ASSERT_TRUE(c.ok());
    EXPECT_LT((c->probabilities - noisy[j].probabilities).cwiseAbs().maxCoeff(),
              1e-12);
    EXPECT_NEAR(c->energy_joules, noisy[j].energy_joules,
                1e-12 * noisy[j].energy_joules);
  }
}

TEST(VariabilityTest, BadVariabilityIsInvalidArgument) {
  auto model = TrainedModel(CellType::kStno);
  DeviceVariability v;
  v.tau_spread = 0.31;
  auto r = Classify(*model, SharedDigits().test.values, 1, v);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  // tau (1 - 3 s) must stay >= h / 2: h = 1 ns here, tau 1 ns, so s <= 1/6.
  NetworkConfig coarse = model->network;
  coarse.substeps = 1;
  v.tau_spread = 0.2;
  EXPECT_TRUE(coarse.Validate().ok());
  EXPECT_FALSE(v.Validate(coarse).ok());
  v.tau_spread = 0.15;
  EXPECT_TRUE(v.Validate(coarse).ok());
  v.thermal_noise = -1;
  EXPECT_FALSE(v.Validate(coarse).ok());
}

// Training with a train spread, a test spread and thermal noise resumes bit
// for bit; the test spread changes only the evaluation, not the training.
TEST(VariabilityTest, TrainingWithVariabilityResumesBitForBit) {
  const Digits& d = SharedDigits();
  NetworkConfig network;
  network.neurons = 16;
  DeviceParams device;
  device.thermal_noise = 0.01;
  TrainConfig train;
  train.epochs = 3;
  train.batch = 20;
  train.seed = 8;
  train.train_spread = 0.1;
  train.test_spread = 0.1;
  train.vary = kVaryThreshold | kVaryTau;
  auto start = StartTraining(network, device, train, d.train);
  ASSERT_TRUE(start.ok()) << start.status();

  struct Keep : TrainingObserver {
    void OnEpoch(const EpochMetrics&, const Checkpoint& c) override {
      checkpoints.push_back(c);
    }
    std::vector<Checkpoint> checkpoints;
  } keep;
  auto full = Train(*start, d.train, d.test, &keep);
  ASSERT_TRUE(full.ok()) << full.status();
  auto loaded = ParseCheckpoint(SerializeCheckpoint(keep.checkpoints[0]));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto resumed = Train(*loaded, d.train, d.test, nullptr);
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(0,
            std::memcmp(resumed->model.params.data(), full->model.params.data(),
                        full->model.params.size() * sizeof(double)));
  EXPECT_EQ(resumed->history.back().test_loss, full->history.back().test_loss);

  // Another test chip: the same training, another evaluation.
  Checkpoint other = *start;
  other.model.train.test_spread = 0.2;
  auto evaluated = Train(other, d.train, d.test, nullptr);
  ASSERT_TRUE(evaluated.ok());
  EXPECT_EQ(
      0, std::memcmp(evaluated->model.params.data(), full->model.params.data(),
                     full->model.params.size() * sizeof(double)));
  EXPECT_NE(evaluated->history.back().test_loss,
            full->history.back().test_loss);
  // Training without the spread is another training.
  Checkpoint plain = *start;
  plain.model.train.train_spread = 0;
  auto trained = Train(plain, d.train, d.test, nullptr);
  ASSERT_TRUE(trained.ok());
  EXPECT_GT((trained->model.params - full->model.params).norm(), 1e-3);
}

TEST(VariabilityTest, FlagsReadWriteAndValidate) {
  auto spec = MakeTrainingSpec({{"train-spread", "0.1"},
                                {"test-spread", "0.2"},
                                {"thermal-noise", "0.01"},
                                {"vary", "tau+threshold"}});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->train.train_spread, 0.1);
  EXPECT_EQ(spec->train.test_spread, 0.2);
  EXPECT_EQ(spec->device.thermal_noise, 0.01);
  EXPECT_EQ(spec->train.vary, kVaryThreshold | kVaryTau);
  EXPECT_EQ(FindTrainingFlag("vary")->get(*spec), "threshold+tau");
  EXPECT_EQ(FindTrainingFlag("vary")->get(DefaultTrainingSpec(CellType::kStno)),
            "threshold+tau+amplification");
  EXPECT_EQ(*ParseVaryingParams("all"), kVaryAll);
  EXPECT_EQ(*ParseVaryingParams("amplification"), kVaryAmplification);
  auto bad = MakeTrainingSpec({{"vary", "tau,damping"}});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("unknown device parameter"),
            std::string::npos);
  auto big = MakeTrainingSpec({{"train-spread", "0.5"}});
  ASSERT_TRUE(big.ok());
  EXPECT_FALSE(big->train.Validate().ok());
  auto fine = MakeTrainingSpec({{"test-spread", "0.3"}});
  ASSERT_TRUE(fine.ok());
  EXPECT_TRUE(fine->train.Validate().ok());
  // The largest spread must keep every device tau's Euler step stable.
  fine->network.substeps = 1;
  EXPECT_FALSE(
      ValidateVariability(fine->network, fine->device, fine->train).ok());
  EXPECT_FALSE(StartTraining(fine->network, fine->device, fine->train,
                             SharedDigits().train)
                   .ok());
}

}  // namespace
}  // namespace spinnet
