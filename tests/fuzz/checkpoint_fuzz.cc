// core/model_io ParseCheckpoint on arbitrary bytes (what a training job
// resumes from after a restart). A checkpoint that parses must serialize
// to a file that parses to the same bytes again.
#include <cstddef>
#include <cstdint>

#include "core/model_io.h"
#include "tests/fuzz/fuzz_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<spinnet::Checkpoint> checkpoint =
      spinnet::ParseCheckpoint(bytes);
  if (!checkpoint.ok()) {
    const absl::StatusCode code = checkpoint.status().code();
    FUZZ_CHECK(code == absl::StatusCode::kInvalidArgument ||
               code == absl::StatusCode::kDataLoss);
    return 0;
  }
  FUZZ_CHECK(checkpoint->Validate().ok());
  const std::string again = spinnet::SerializeCheckpoint(*checkpoint);
  absl::StatusOr<spinnet::Checkpoint> reparsed =
      spinnet::ParseCheckpoint(again);
  FUZZ_CHECK(reparsed.ok());
  FUZZ_CHECK(spinnet::SerializeCheckpoint(*reparsed) == again);
  return 0;
}
