// core/model_io ParseModel on arbitrary bytes (what ImportModel, the
// registry and `spinnet-train --model` read). A model that parses must
// serialize to a file that parses to the same bytes again, and must run:
// one short sequence through Classify and a StreamingSession.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/inference.h"
#include "core/model_io.h"
#include "tests/fuzz/fuzz_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<spinnet::Model> model = spinnet::ParseModel(bytes);
  if (!model.ok()) {
    const absl::StatusCode code = model.status().code();
    FUZZ_CHECK(code == absl::StatusCode::kInvalidArgument ||
               code == absl::StatusCode::kDataLoss);
    return 0;
  }
  FUZZ_CHECK(model->Validate().ok());
  const std::string again = spinnet::SerializeModel(*model);
  absl::StatusOr<spinnet::Model> reparsed = spinnet::ParseModel(again);
  FUZZ_CHECK(reparsed.ok());
  FUZZ_CHECK(spinnet::SerializeModel(*reparsed) == again);

  // Two time steps of input, through both inference paths.
  const int d = model->network.input_dim;
  spinnet::Matrix sequence = spinnet::Matrix::Constant(2 * d, 1, 0.5);
  absl::StatusOr<std::vector<spinnet::Classification>> classified =
      spinnet::Classify(*model, sequence, 1);
  FUZZ_CHECK(classified.ok());
  FUZZ_CHECK(classified->size() == 1);
  auto shared = std::make_shared<const spinnet::Model>(*std::move(model));
  spinnet::StreamingSession session(shared);
  for (int k = 0; k < 2; ++k) {
    FUZZ_CHECK(
        session.Feed({sequence.data() + k * d, static_cast<size_t>(d)}).ok());
  }
  FUZZ_CHECK(session.Current().ok());
  return 0;
}
