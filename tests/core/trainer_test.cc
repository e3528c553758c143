// Training: learning on real data, bit-exact resumption, cancellation,
// sparsity masks, threads and precisions.
#include "core/trainer.h"

#include <numeric>

#include "core/bptt.h"
#include "core/parameters.h"
#include "core/training_flags.h"
#include "gtest/gtest.h"

namespace spinnet {
namespace {

// A small, fast problem: 300 digits to train on, 100 to test.
struct SmallDigits {
  SmallDigits() {
    auto digits = LoadDigits(DefaultDigitsPath());
    EXPECT_TRUE(digits.ok()) << digits.status();
    std::vector<int> train_idx(300), test_idx(100);
    std::iota(train_idx.begin(), train_idx.end(), 0);
    std::iota(test_idx.begin(), test_idx.end(), 300);
    train = digits->Subset(train_idx);
    test = digits->Subset(test_idx);
    config.epochs = 4;
    config.batch = 10;
    config.seed = 5;
  }
  absl::StatusOr<Checkpoint> Start() const {
    return StartTraining(network, device, config, train);
  }
  Dataset train, test;
  NetworkConfig network;
  DeviceParams device;
  TrainConfig config;
};

// Records every epoch's checkpoint; optionally stops after `stop_after`
// batches.
class Recorder : public TrainingObserver {
 public:
  explicit Recorder(int stop_after = -1) : stop_after_(stop_after) {}
  void OnBatch(int, int, int) override { ++batches_; }
  void OnEpoch(const EpochMetrics& m, const Checkpoint& c) override {
    metrics.push_back(m);
    checkpoints.push_back(c);
  }
  bool StopRequested() override {
    return stop_after_ >= 0 && batches_ >= stop_after_;
  }
  std::vector<EpochMetrics> metrics;
  std::vector<Checkpoint> checkpoints;

 private:
  int stop_after_;
  int batches_ = 0;
};

TEST(TrainerTest, LearnsDigitsAndReportsEveryMetric) {
  SmallDigits p;
  p.config.epochs = 6;
  auto start = p.Start();
  ASSERT_TRUE(start.ok()) << start.status();
  Recorder rec;
  auto done = Train(*start, p.train, p.test, &rec);
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(rec.metrics.size(), 6u);
  EXPECT_EQ(done->epochs_done, 6);
  EXPECT_EQ(done->history.size(), 6u);
  const EpochMetrics& first = rec.metrics.front();
  const EpochMetrics& last = rec.metrics.back();
  // 300 training digits, 6 epochs: about 50 % on held-out digits (README's
  // full run reaches 90 %); chance is 10 %.
  EXPECT_LT(last.train_loss, 0.6 * first.train_loss);
  EXPECT_GT(last.test_accuracy, 0.3);
  for (const EpochMetrics& m : rec.metrics) {
    EXPECT_GT(m.samples_per_second, 0);
    EXPECT_GT(m.cumulative_drive, 0);
    EXPECT_GT(m.energy_per_sample_joules, 1e-14);
    EXPECT_LT(m.energy_per_sample_joules, 1e-9);
    EXPECT_GT(m.grad_norm, 0);
  }
  // Cosine schedule: from lr down to lr * lr_final_fraction.
  EXPECT_DOUBLE_EQ(first.learning_rate, p.config.lr);
  EXPECT_DOUBLE_EQ(last.learning_rate, p.config.lr * 0.05);
}

TEST(TrainerTest, ResumedRunEqualsUninterruptedBitForBit) {
  for (Precision precision : {Precision::kFloat32, Precision::kFloat64}) {
    SmallDigits p;
    p.config.precision = precision;
    Recorder full_rec;
    auto full = Train(*p.Start(), p.train, p.test, &full_rec);
    ASSERT_TRUE(full.ok());
    // Resume from the epoch-2 checkpoint, after a save/load round trip.
    auto bytes = SerializeCheckpoint(full_rec.checkpoints[1]);
    auto loaded = ParseCheckpoint(bytes);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    ASSERT_EQ(loaded->epochs_done, 2);
    auto resumed = Train(*loaded, p.train, p.test, nullptr);
    ASSERT_TRUE(resumed.ok());
    ASSERT_EQ(resumed->model.params.size(), full->model.params.size());
    EXPECT_EQ(0, std::memcmp(resumed->model.params.data(),
                             full->model.params.data(),
                             full->model.params.size() * sizeof(double)))
        << PrecisionName(precision);
    EXPECT_EQ(resumed->history.back().test_loss,
              full->history.back().test_loss);
    EXPECT_EQ(resumed->adam_step, full->adam_step);
  }
}

TEST(TrainerTest, CancelStopsBetweenBatches) {
  SmallDigits p;
  Recorder rec(/*stop_after=*/40);  // 30 batches per epoch
  auto done = Train(*p.Start(), p.train, p.test, &rec);
  EXPECT_EQ(done.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(rec.metrics.size(), 1u);  // epoch 1 finished, epoch 2 did not
}

TEST(TrainerTest, MaskedWeightsStayZero) {
  SmallDigits p;
  p.network.density_int = 0.3;
  p.network.density_ext = 0.5;
  p.config.epochs = 2;
  auto start = p.Start();
  ASSERT_TRUE(start.ok());
  const Vector& mask = start->model.mask;
  const ParamLayout layout(p.network);
  for (int l = 0; l < p.network.layers; ++l) {
    const double kept =
        ParamLayout::Map(mask, layout.w_int(l)).sum() / layout.w_int(l).size();
    EXPECT_NEAR(kept, 0.3, 0.01);
  }
  auto done = Train(*start, p.train, p.test, nullptr);
  ASSERT_TRUE(done.ok());
  int masked = 0, moved = 0;
  for (Index i = 0; i < mask.size(); ++i) {
    if (i >= layout.amplification().offset) break;
    if (mask[i] == 0) {
      ++masked;
      EXPECT_EQ(done->model.params[i], 0.0) << "masked weight " << i;
    } else {
      moved += done->model.params[i] != start->model.params[i];
    }
  }
  EXPECT_GT(masked, 100);
  EXPECT_GT(moved, 100);
  // The amplification factors are not trained by default.
  EXPECT_EQ(ParamLayout::Map(done->model.params, layout.amplification()),
            ParamLayout::Map(start->model.params, layout.amplification()));
}

TEST(TrainerTest, ThreadsChangeOnlySummationOrder) {
  SmallDigits p;
  p.config.epochs = 1;
  p.config.precision = Precision::kFloat64;
  auto one = Train(*p.Start(), p.train, p.test, nullptr);
  p.config.threads = 2;
  auto two = Train(*p.Start(), p.train, p.test, nullptr);
  ASSERT_TRUE(one.ok() && two.ok());
  const double diff =
      (one->model.params - two->model.params).cwiseAbs().maxCoeff();
  EXPECT_LT(diff, 1e-9);
}

TEST(TrainerTest, FloatGradientTracksDouble) {
  SmallDigits p;
  auto start = p.Start();
  ASSERT_TRUE(start.ok());
  const Vector& params = start->model.params;
  const Matrix inputs = p.train.values.leftCols(16);
  const std::vector<int> labels(p.train.labels.begin(),
                                p.train.labels.begin() + 16);
  Bptt<double> exact(p.network, p.device);
  Bptt<float> fast(p.network, p.device);
  Vector g64 = Vector::Zero(params.size());
  VectorT<float> g32 = VectorT<float>::Zero(params.size());
  exact.Run(params, inputs, labels, 1.0 / 16, &g64);
  fast.Run(params.cast<float>(), inputs.cast<float>(), labels, 1.0 / 16, &g32);
  EXPECT_LT((g32.cast<double>() - g64).norm() / g64.norm(), 1e-4);
}

TEST(TrainerTest, RejectsMismatchedData) {
  SmallDigits p;
  p.network.input_dim = 2;
  EXPECT_EQ(p.Start().status().code(), absl::StatusCode::kInvalidArgument);
  p.network.input_dim = 1;
  p.network.num_classes = 3;
  EXPECT_EQ(p.Start().status().code(), absl::StatusCode::kInvalidArgument);
  p.network.num_classes = 10;
  p.config.lr = -1;
  EXPECT_EQ(p.Start().status().code(), absl::StatusCode::kInvalidArgument);
}

// Found by fuzzing SubmitTrainingJob (tests/fuzz/regressions/submit_job/):
// 64 layers of 4096 neurons passed every range check and made the
// submission itself allocate gigabytes. The bound is checked before any
// allocation; the default network is far below it.
TEST(TrainerTest, RefusesTrainingThatWouldTakeTooMuchMemory) {
  SmallDigits p;
  p.network.layers = 64;
  p.network.neurons = 4096;
  absl::StatusOr<Checkpoint> huge = p.Start();
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(huge.status().message().find("MiB"), std::string::npos)
      << huge.status();
  // Many substeps make the BPTT trajectory too long, not the parameters.
  p.network = NetworkConfig();
  p.network.substeps = 10000;
  p.network.neurons = 256;
  p.config.batch = 300;
  EXPECT_GT(TrainingBytes(p.network, p.config, 64, 300), kMaxTrainingBytes);
  EXPECT_EQ(p.Start().status().code(), absl::StatusCode::kInvalidArgument);
  const TrainingSpec defaults = DefaultTrainingSpec(CellType::kStno);
  EXPECT_LT(TrainingBytes(defaults.network, defaults.train, 64, 1437),
            64.0 * (1 << 20));
  p.network = NetworkConfig();
  p.config.batch = 10;
  EXPECT_TRUE(p.Start().ok());
}

}  // namespace
}  // namespace spinnet
