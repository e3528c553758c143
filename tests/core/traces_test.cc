// Neuron traces: every traced point equals the network's own Euler steps,
// the classification equals Classify's, bad neurons and sequences are
// rejected by name.
#include "core/traces.h"

#include <memory>
#include <vector>

#include "core/network.h"
#include "core/parameters.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace spinnet {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<Model> MakeModel(CellType cell, int input_dim) {
  auto m = std::make_shared<Model>();
  m->network.cell = cell;
  m->network.layers = 2;
  m->network.input_dim = input_dim;
  m->network.num_classes = 3;
  m->network.neurons = 6;
  m->network.dt_in = 0.5;
  m->mask = MakeTrainableMask(m->network, 5);
  m->params = InitParameters(m->network, m->mask, 0.5, 5);
  m->class_labels = {"a", "b", "c"};
  m->sequence_steps = 12;
  return m;
}

// y of every layer after each input interval of sequence `u` ((K*d) x 1),
// straight from Network::Step: (L*N) x K.
Matrix NetworkOutputs(const Model& model, const Vector& u) {
  const NetworkConfig& c = model.network;
  Network<double> net(c, model.device, model.params);
  Trajectory<double> tr;
  tr.Resize(c, 1, 2, 1);
  SequenceStats stats;
  stats.Reset(1);
  net.Init(&tr, 0);
  const Index steps = u.size() / c.input_dim;
  Matrix out(c.layers * c.neurons, steps), drive0;
  Index slot = 0;
  for (Index k = 0; k < steps; ++k) {
    net.InputDrive(u.segment(k * c.input_dim, c.input_dim), &drive0);
    for (int s = 0; s < c.substeps; ++s) {
      net.Step(drive0, &tr, slot, 1 - slot, 0, &stats);
      slot = 1 - slot;
    }
    out.col(k) = tr.Y(0, slot, c.layers);
  }
  return out;
}

TEST(TracesTest, TracesAreTheNetworksOutputsAndClassifyAgrees) {
  for (CellType cell : {CellType::kStno, CellType::kCtrnn}) {
    SCOPED_TRACE(cell == CellType::kStno ? "STNO" : "CTRNN");
    auto model = MakeModel(cell, 2);
    const int K = 12, d = 2;
    const Matrix seqs = (Matrix::Random(K * d, 3).array() + 1) / 2;
    const std::vector<NeuronRef> neurons = {{1, 5}, {0, 0}, {1, 2}};
    auto traces = TraceNeurons(model, seqs, neurons);
    ASSERT_TRUE(traces.ok()) << traces.status();
    ASSERT_EQ(traces->time_ns.size(), K);
    EXPECT_DOUBLE_EQ(traces->time_ns[0], 0.5);
    EXPECT_DOUBLE_EQ(traces->time_ns[K - 1], 6.0);
    auto whole = Classify(*model, seqs, 1);
    ASSERT_TRUE(whole.ok()) << whole.status();
    ASSERT_EQ(traces->sequences.size(), 3u);
    for (int j = 0; j < 3; ++j) {
      const SequenceTrace& t = traces->sequences[j];
      ASSERT_EQ(t.values.rows(), 3);
      ASSERT_EQ(t.values.cols(), K);
      const Matrix want = NetworkOutputs(*model, seqs.col(j));
      for (size_t i = 0; i < neurons.size(); ++i) {
        const Index row = neurons[i].layer * 6 + neurons[i].index;
        for (int k = 0; k < K; ++k) {
          EXPECT_EQ(t.values(i, k), want(row, k))
              << "sequence " << j << ", neuron " << i << ", step " << k;
        }
      }
      // The outputs move: a trace of the initial state would be all zero.
      EXPECT_GT(t.values.cwiseAbs().maxCoeff(), 1e-6);
      const Classification& c = (*whole)[j];
      EXPECT_EQ(t.classification.class_index, c.class_index);
      EXPECT_EQ(t.classification.label, c.label);
      EXPECT_LT((t.classification.probabilities - c.probabilities)
                    .cwiseAbs()
                    .maxCoeff(),
                1e-12);
      EXPECT_NEAR(t.classification.energy_joules, c.energy_joules,
                  1e-12 * c.energy_joules);
    }
    // Different inputs, different traces.
    EXPECT_NE(traces->sequences[0].values, traces->sequences[1].values);
  }
}

TEST(TracesTest, BadNeuronsAndSequencesAreRejected) {
  auto model = MakeModel(CellType::kStno, 2);
  const Matrix good = Matrix::Constant(8, 2, 0.5);
  struct Case {
    std::vector<NeuronRef> neurons;
    const char* message;
  };
  const Case cases[] = {
      {{}, "no neurons to trace"},
      {{{0, 0}, {2, 0}},
       "neuron 1 (layer 2, index 0): layer 2 out of range; the model has 2 "
       "layer(s), 0..1"},
      {{{-1, 0}}, "layer -1 out of range"},
      {{{1, 6}},
       "neuron 0 (layer 1, index 6): index 6 out of range; each layer has 6 "
       "neuron(s), 0..5"},
      {{{0, -3}}, "index -3 out of range"},
  };
  for (const Case& c : cases) {
    auto r = TraceNeurons(model, good, c.neurons);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), HasSubstr(c.message));
  }
  const std::vector<NeuronRef> one = {{0, 0}};
  EXPECT_EQ(TraceNeurons(model, Matrix(7, 1), one).status().code(),
            absl::StatusCode::kInvalidArgument);  // 7 not a multiple of d=2
  EXPECT_EQ(TraceNeurons(model, Matrix(0, 1), one).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TraceNeurons(model, Matrix(4, 0), one).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace spinnet
