// Inference: whole-sequence classification and the stepping session.
#include "core/inference.h"

#include <cmath>

#include "core/dataset.h"
#include "core/parameters.h"
#include "gtest/gtest.h"

namespace spinnet {
namespace {

std::shared_ptr<Model> MakeModel(CellType cell, int input_dim) {
  auto m = std::make_shared<Model>();
  m->network.cell = cell;
  m->network.input_dim = input_dim;
  m->network.num_classes = 4;
  m->network.neurons = 10;
  m->network.density_int = 0.5;
  m->mask = MakeTrainableMask(m->network, 3);
  m->params = InitParameters(m->network, m->mask, 0.5, 3);
  m->class_labels = {"a", "b", "c", "d"};
  m->sequence_steps = 20;
  return m;
}

Matrix RandomSequences(int rows, int cols) {
  return (Matrix::Random(rows, cols).array() + 1) / 2;
}

TEST(InferenceTest, SteppingEqualsWholeSequence) {
  for (CellType cell : {CellType::kStno, CellType::kCtrnn}) {
    auto model = MakeModel(cell, 3);
    const int K = 20, d = 3;
    const Matrix seqs = RandomSequences(K * d, 5);
    auto whole = Classify(*model, seqs, 2);
    ASSERT_TRUE(whole.ok()) << whole.status();
    StreamingSession session(model);
    for (int j = 0; j < seqs.cols(); ++j) {
      session.Reset();
      for (int k = 0; k < K; ++k) {
        ASSERT_TRUE(session.Feed({seqs.col(j).data() + k * d, 3}).ok());
      }
      auto step = session.Current();
      ASSERT_TRUE(step.ok());
      const Classification& w = (*whole)[j];
      EXPECT_EQ(step->class_index, w.class_index);
      EXPECT_EQ(step->label, w.label);
      EXPECT_LT((step->probabilities - w.probabilities).cwiseAbs().maxCoeff(),
                1e-12);
      EXPECT_NEAR(step->energy_joules, w.energy_joules,
                  1e-12 * w.energy_joules);
      EXPECT_NEAR(w.probabilities.sum(), 1.0, 1e-12);
      if (cell == CellType::kStno) {
        EXPECT_GT(w.energy_joules, 0);
      } else {
        EXPECT_EQ(w.energy_joules, 0);  // no device behind a CTRNN
      }
    }
  }
}

TEST(InferenceTest, ProvisionalAnswersChangeAsStepsArrive) {
  auto model = MakeModel(CellType::kStno, 1);
  StreamingSession session(model);
  EXPECT_EQ(session.Current().status().code(),
            absl::StatusCode::kFailedPrecondition);
  const double one = 1.0;
  ASSERT_TRUE(session.Feed({&one, 1}).ok());
  const Vector early = session.Current()->probabilities;
  for (int k = 0; k < 10; ++k) ASSERT_TRUE(session.Feed({&one, 1}).ok());
  EXPECT_EQ(session.steps(), 11);
  EXPECT_GT((session.Current()->probabilities - early).norm(), 1e-6);
  session.Reset();
  EXPECT_EQ(session.steps(), 0);
}

TEST(InferenceTest, BadInputIsRejectedAndStateKept) {
  auto model = MakeModel(CellType::kStno, 2);
  StreamingSession session(model);
  const double good[2] = {0.1, 0.2};
  ASSERT_TRUE(session.Feed(good).ok());
  const Vector before = session.Current()->probabilities;
  const double nan[2] = {0.1, std::nan("")};
  EXPECT_EQ(session.Feed(nan).code(), absl::StatusCode::kInvalidArgument);
  const double three[3] = {0, 0, 0};
  EXPECT_EQ(session.Feed(three).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(session.steps(), 1);
  EXPECT_EQ(session.Current()->probabilities, before);

  EXPECT_EQ(Classify(*model, Matrix(5, 1), 1).status().code(),
            absl::StatusCode::kInvalidArgument);  // 5 not a multiple of d=2
  EXPECT_EQ(Classify(*model, Matrix(0, 1), 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  Matrix inf = Matrix::Zero(4, 1);
  inf(3, 0) = INFINITY;
  EXPECT_EQ(Classify(*model, inf, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Found by fuzzing Classify (tests/fuzz/regressions/classify/): finite
// inputs of magnitude 1e185 overflowed the state, and the answer was NaN
// probabilities naming an arbitrary class. Now an error naming the sequence
// (Classify) or until the next Reset (StreamingSession).
TEST(InferenceTest, InputsThatOverflowTheStateAreAnError) {
  Matrix batch = Matrix::Constant(6, 2, 0.1);
  batch(2, 1) = 1.9e185;  // the fuzzer's values
  batch(5, 1) = 8.8e223;
  const double huge[2] = {1.9e185, 8.8e223};
  const double good[2] = {0.1, 0.2};

  auto stno = MakeModel(CellType::kStno, 2);
  absl::StatusOr<std::vector<Classification>> classified =
      Classify(*stno, batch, 1);
  EXPECT_EQ(classified.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(classified.status().message().find("sequence 1: "),
            std::string::npos)
      << classified.status();
  StreamingSession session(stno);
  ASSERT_TRUE(session.Feed(huge).ok());
  EXPECT_EQ(session.Current().status().code(),
            absl::StatusCode::kInvalidArgument);
  session.Reset();
  ASSERT_TRUE(session.Feed(good).ok());
  EXPECT_TRUE(session.Current().ok());

  // The CTRNN's tanh saturates: the same inputs give a finite answer.
  auto ctrnn = MakeModel(CellType::kCtrnn, 2);
  classified = Classify(*ctrnn, batch, 1);
  ASSERT_TRUE(classified.ok()) << classified.status();
  EXPECT_TRUE((*classified)[1].probabilities.allFinite());
}

}  // namespace
}  // namespace spinnet
