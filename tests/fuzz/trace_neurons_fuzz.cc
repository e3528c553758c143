// TraceNeurons on arbitrary bytes parsed as a TraceNeuronsRequest: the
// model is looked up as the handler does, and the server's TraceSequences
// (streaming/unary_inference.h) answers within its bounds.
#include <cstddef>
#include <cstdint>

#include "server/streaming/unary_inference.h"
#include "tests/fuzz/fuzz_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  spinnet::v1::TraceNeuronsRequest req;
  if (!spinnet::fuzz::ParseInput(data, size, &req)) return 0;
  const std::optional<spinnet::server::LoadedModel> model =
      spinnet::fuzz::FindModel(req.model(), req.version());
  if (!model.has_value()) return 0;
  spinnet::v1::TraceNeuronsResponse resp;
  absl::Status s = spinnet::server::TraceSequences(*model, req, &resp);
  if (!s.ok()) {
    FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(resp.sequences_size() == req.sequences_size());
  FUZZ_CHECK(resp.neurons_size() >= 1 &&
             resp.neurons_size() <= spinnet::server::kMaxTraceNeurons);
  const int d = model->model->network.input_dim;
  const int steps = req.sequences(0).values_size() / d;
  FUZZ_CHECK(resp.time_ns_size() == steps);
  int64_t values = 0;
  for (const spinnet::v1::SequenceTrace& t : resp.sequences()) {
    FUZZ_CHECK(t.traces_size() == resp.neurons_size());
    for (const spinnet::v1::NeuronTrace& n : t.traces()) {
      FUZZ_CHECK(n.values_size() == steps);
      values += n.values_size();
    }
  }
  FUZZ_CHECK(values <= spinnet::server::kMaxTraceValues);
  return 0;
}
