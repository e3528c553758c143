// Neuron traces: the output of chosen neurons after every input interval of
// a few sequences (what the paper plots in Figs 1b-d and 2c-e), with each
// sequence's classification. The stepping is StreamingSession's, so a trace
// ends where Classify's answer comes from.
#ifndef SPINNET_CORE_TRACES_H_
#define SPINNET_CORE_TRACES_H_

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/config.h"
#include "core/eigen_types.h"
#include "core/inference.h"
#include "core/model_io.h"

namespace spinnet {

// One neuron: `index` (0..N-1) of hidden layer `layer` (0..L-1).
struct NeuronRef {
  int layer = 0;
  int index = 0;
};

struct SequenceTrace {
  // neurons x K: row j is neuron j's output y (model.md 2; h for the
  // CTRNN) at the end of each input interval, i.e. at NeuronTraces::time_ns.
  Matrix values;
  Classification classification;  // of the whole sequence, as Classify's
};

struct NeuronTraces {
  Vector time_ns;  // K: (k + 1) * dt_in, the end of input interval k
  std::vector<SequenceTrace> sequences;  // one per column of the input
};

// INVALID_ARGUMENT when `neurons` is empty or one of them is not in the
// network (the message names it by its position, layer and index).
absl::Status ValidateNeurons(const NetworkConfig& network,
                             absl::Span<const NeuronRef> neurons);

// Runs every column of `sequences` ((K*d) x n, as Classify takes) through
// `model` from the initial state and records the outputs of `neurons`.
// INVALID_ARGUMENT for bad sequences (ValidateSequences) or neurons
// (ValidateNeurons).
absl::StatusOr<NeuronTraces> TraceNeurons(std::shared_ptr<const Model> model,
                                          const Matrix& sequences,
                                          absl::Span<const NeuronRef> neurons);

}  // namespace spinnet

#endif  // SPINNET_CORE_TRACES_H_
