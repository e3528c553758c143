// SubmitTrainingJob on arbitrary bytes parsed as its request: the
// server's CheckSubmission (jobs/job_queue.h: names, request id, the
// dataset, and the TrainingSpec converted to the core's settings by
// api::SpecFromProto and checked against the data by StartTraining), on
// the shared service's datasets. An accepted spec converts back to a
// message that converts to the same spec.
#include <cstddef>
#include <cstdint>

#include "google/protobuf/util/message_differencer.h"
#include "proto/api_convert.h"
#include "server/jobs/job_queue.h"
#include "tests/fuzz/fuzz_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  spinnet::v1::SubmitTrainingJobRequest req;
  if (!spinnet::fuzz::ParseInput(data, size, &req)) return 0;
  spinnet::fuzz::Service& service = spinnet::fuzz::SharedService();
  absl::StatusOr<spinnet::TrainingSpec> spec =
      spinnet::server::CheckSubmission(req, &service.datasets);
  if (!spec.ok()) {
    const absl::StatusCode code = spec.status().code();
    FUZZ_CHECK(code == absl::StatusCode::kInvalidArgument ||
               code == absl::StatusCode::kNotFound);
    FUZZ_CHECK(!spec.status().message().empty());
    return 0;
  }
  const spinnet::v1::TrainingSpec message = spinnet::api::SpecToProto(*spec);
  absl::StatusOr<spinnet::TrainingSpec> back =
      spinnet::api::SpecFromProto(message);
  FUZZ_CHECK(back.ok());
  FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(
      spinnet::api::SpecToProto(*back), message));
  return 0;
}
