#include "server/streaming/unary_inference.h"

#include <algorithm>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "core/inference.h"
#include "core/status_macros.h"
#include "core/traces.h"
#include "server/streaming/stream_protocol.h"

namespace spinnet::server {

// The core classifies a batch of equal-length sequences, so the sequences
// go in one batch per length.
absl::Status ClassifySequences(const Model& model,
                               const v1::ClassifyRequest& req,
                               const std::function<bool()>& cancelled,
                               v1::ClassifyResponse* resp) {
  const int n = req.sequences_size();
  if (n == 0) {
    return absl::InvalidArgumentError(
        "no sequences to classify; send at least one");
  }
  if (n > kMaxSequencesPerClassify) {
    return absl::InvalidArgumentError(absl::StrCat(
        n, " sequences in one call; the limit is ", kMaxSequencesPerClassify));
  }
  const int d = model.network.input_dim;
  std::map<int, std::vector<int>> by_length;  // values per sequence -> indices
  for (int i = 0; i < n; ++i) {
    const auto& values = req.sequences(i).values();
    absl::Status s = CheckSteps(absl::MakeConstSpan(values), d);
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", i, ": ", s.message()));
    }
    by_length[values.size()].push_back(i);
  }
  for (int i = 0; i < n; ++i) resp->add_results();
  for (const auto& [length, indices] : by_length) {
    if (cancelled()) {
      return absl::CancelledError(
          "the call was cancelled or its deadline passed");
    }
    Matrix batch(length, static_cast<Index>(indices.size()));
    for (size_t j = 0; j < indices.size(); ++j) {
      batch.col(j) =
          ConstMatrixMap(req.sequences(indices[j]).values().data(), length, 1);
    }
    ASSIGN_OR_RETURN(std::vector<Classification> results,
                     spinnet::Classify(model, batch, 1));
    for (size_t j = 0; j < indices.size(); ++j) {
      ToProto(results[j], length / d, resp->mutable_results(indices[j]));
    }
  }
  return absl::OkStatus();
}

absl::Status TraceSequences(const LoadedModel& model,
                            const v1::TraceNeuronsRequest& req,
                            v1::TraceNeuronsResponse* resp) {
  const int n = req.sequences_size();
  if (n == 0) {
    return absl::InvalidArgumentError(
        "sequences: none to trace; send at least one");
  }
  if (n > kMaxTraceSequences) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sequences: ", n, " in one call; the limit is ", kMaxTraceSequences));
  }
  if (req.neurons_size() > kMaxTraceNeurons) {
    return absl::InvalidArgumentError(
        absl::StrCat("neurons: ", req.neurons_size(),
                     " selected; the limit is ", kMaxTraceNeurons));
  }
  const NetworkConfig& network = model.model->network;
  const int d = network.input_dim;
  const int length = req.sequences(0).values_size();
  for (int i = 0; i < n; ++i) {
    const auto& values = req.sequences(i).values();
    absl::Status s = CheckSteps(absl::MakeConstSpan(values), d);
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", i, ": ", s.message()));
    }
    if (values.size() != length) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sequence ", i, ": ", values.size(), " values, but sequence 0 has ",
          length, "; traced sequences share one time axis"));
    }
  }
  std::vector<NeuronRef> neurons;
  for (const v1::NeuronSelector& s : req.neurons()) {
    neurons.push_back({s.layer(), s.index()});
  }
  if (neurons.empty()) {  // the last layer, the one the readout sees
    for (int i = 0; i < std::min(network.neurons, kMaxTraceNeurons); ++i) {
      neurons.push_back({network.layers - 1, i});
    }
  }
  const int64_t steps = length / d;
  const int64_t traced =
      int64_t{n} * static_cast<int64_t>(neurons.size()) * steps;
  if (traced > kMaxTraceValues) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sequences x neurons x steps = ", n, " x ", neurons.size(), " x ",
        steps, " = ", traced, " traced values; the limit is ", kMaxTraceValues,
        ": trace fewer sequences, neurons or steps"));
  }
  Matrix batch(length, n);
  for (int i = 0; i < n; ++i) {
    batch.col(i) = ConstMatrixMap(req.sequences(i).values().data(), length, 1);
  }
  ASSIGN_OR_RETURN(NeuronTraces traces,
                   spinnet::TraceNeurons(model.model, batch, neurons));
  resp->set_model_version(model.info.version());
  resp->mutable_time_ns()->Add(traces.time_ns.data(),
                               traces.time_ns.data() + traces.time_ns.size());
  for (const NeuronRef& neuron : neurons) {
    v1::NeuronSelector* s = resp->add_neurons();
    s->set_layer(neuron.layer);
    s->set_index(neuron.index);
  }
  for (const SequenceTrace& trace : traces.sequences) {
    v1::SequenceTrace* out = resp->add_sequences();
    ToProto(trace.classification, steps, out->mutable_classification());
    for (Index j = 0; j < trace.values.rows(); ++j) {
      auto* values = out->add_traces()->mutable_values();
      values->Reserve(static_cast<int>(steps));
      for (Index k = 0; k < steps; ++k) values->Add(trace.values(j, k));
    }
  }
  return absl::OkStatus();
}

}  // namespace spinnet::server
