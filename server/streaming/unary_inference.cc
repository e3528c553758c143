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

namespace {

// A call's sequences: between 1 and `limit` of them, each whole time steps
// of `d` finite values.
absl::Status CheckSequences(
    const google::protobuf::RepeatedPtrField<v1::Sequence>& sequences, int d,
    int limit, absl::string_view verb) {
  if (sequences.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequences: none to ", verb, "; send at least one"));
  }
  if (sequences.size() > limit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sequences: ", sequences.size(), " in one call; the limit is ", limit));
  }
  for (int i = 0; i < sequences.size(); ++i) {
    absl::Status s =
        CheckSteps(absl::MakeConstSpan(sequences.Get(i).values()), d);
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", i, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

// The core classifies a batch of equal-length sequences, so the sequences
// go in one batch per length.
absl::Status ClassifySequences(const Model& model,
                               const v1::ClassifyRequest& req,
                               const std::function<bool()>& cancelled,
                               v1::ClassifyResponse* resp) {
  const int d = model.network.input_dim;
  RETURN_IF_ERROR(CheckSequences(req.sequences(), d, kMaxSequencesPerClassify,
                                 "classify"));
  const int n = req.sequences_size();
  std::map<int, std::vector<int>> by_length;  // values per sequence -> indices
  for (int i = 0; i < n; ++i) {
    by_length[req.sequences(i).values_size()].push_back(i);
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
  const NetworkConfig& network = model.model->network;
  const int d = network.input_dim;
  RETURN_IF_ERROR(
      CheckSequences(req.sequences(), d, kMaxTraceSequences, "trace"));
  if (req.neurons_size() > kMaxTraceNeurons) {
    return absl::InvalidArgumentError(
        absl::StrCat("neurons: ", req.neurons_size(),
                     " selected; the limit is ", kMaxTraceNeurons));
  }
  const int n = req.sequences_size();
  const int length = req.sequences(0).values_size();
  for (int i = 1; i < n; ++i) {
    if (req.sequences(i).values_size() != length) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sequence ", i, ": ", req.sequences(i).values_size(),
          " values, but sequence 0 has ", length,
          "; traced sequences share one time axis"));
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
