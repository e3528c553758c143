// Classify on arbitrary bytes parsed as a ClassifyRequest: the model named
// (the shared service's "stno" or "ctrnn", or any other name or version)
// is looked up as the handler does, and the server's ClassifySequences
// (streaming/unary_inference.h) answers. Answers come one per sequence
// with probabilities that sum to 1.
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "server/streaming/unary_inference.h"
#include "tests/fuzz/fuzz_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  spinnet::v1::ClassifyRequest req;
  if (!spinnet::fuzz::ParseInput(data, size, &req)) return 0;
  const std::optional<spinnet::server::LoadedModel> model =
      spinnet::fuzz::FindModel(req.model(), req.version());
  if (!model.has_value()) return 0;
  spinnet::v1::ClassifyResponse resp;
  absl::Status s = spinnet::server::ClassifySequences(
      *model->model, req, [] { return false; }, &resp);
  if (!s.ok()) {
    FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(resp.results_size() == req.sequences_size());
  const int d = model->model->network.input_dim;
  for (int i = 0; i < resp.results_size(); ++i) {
    const spinnet::v1::Classification& c = resp.results(i);
    FUZZ_CHECK(c.steps() * d == req.sequences(i).values_size());
    FUZZ_CHECK(c.probabilities_size() == model->model->network.num_classes);
    double sum = 0;
    for (double p : c.probabilities()) sum += p;
    FUZZ_CHECK(std::abs(sum - 1) < 1e-9);
    FUZZ_CHECK(c.class_index() >= 0 &&
               c.class_index() < c.probabilities_size());
  }
  return 0;
}
