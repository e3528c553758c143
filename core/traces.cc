#include "core/traces.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace spinnet {

absl::Status ValidateNeurons(const NetworkConfig& network,
                             absl::Span<const NeuronRef> neurons) {
  if (neurons.empty()) {
    return absl::InvalidArgumentError("no neurons to trace; name at least one");
  }
  for (size_t j = 0; j < neurons.size(); ++j) {
    const NeuronRef& n = neurons[j];
    const std::string which = absl::StrCat("neuron ", j, " (layer ", n.layer,
                                           ", index ", n.index, "): ");
    if (n.layer < 0 || n.layer >= network.layers) {
      return absl::InvalidArgumentError(absl::StrCat(
          which, "layer ", n.layer, " out of range; the model has ",
          network.layers, " layer(s), 0..", network.layers - 1));
    }
    if (n.index < 0 || n.index >= network.neurons) {
      return absl::InvalidArgumentError(absl::StrCat(
          which, "index ", n.index, " out of range; each layer has ",
          network.neurons, " neuron(s), 0..", network.neurons - 1));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<NeuronTraces> TraceNeurons(std::shared_ptr<const Model> model,
                                          const Matrix& sequences,
                                          absl::Span<const NeuronRef> neurons) {
  RETURN_IF_ERROR(ValidateSequences(*model, sequences));
  RETURN_IF_ERROR(ValidateNeurons(model->network, neurons));
  const int d = model->network.input_dim;
  const Index steps = sequences.rows() / d;
  const Index count = static_cast<Index>(neurons.size());
  NeuronTraces out;
  out.time_ns.resize(steps);
  for (Index k = 0; k < steps; ++k) {
    out.time_ns[k] = static_cast<double>(k + 1) * model->network.dt_in;
  }
  out.sequences.resize(sequences.cols());
  StreamingSession session(std::move(model));
  for (Index j = 0; j < sequences.cols(); ++j) {
    SequenceTrace& trace = out.sequences[j];
    trace.values.resize(count, steps);
    session.Reset();
    for (Index k = 0; k < steps; ++k) {
      RETURN_IF_ERROR(session.Feed(
          {sequences.col(j).data() + k * d, static_cast<size_t>(d)}));
      for (Index i = 0; i < count; ++i) {
        trace.values(i, k) = session.Output(neurons[i].layer, neurons[i].index);
      }
    }
    ASSIGN_OR_RETURN(trace.classification, session.Current());
  }
  return out;
}

}  // namespace spinnet
