// Conversions between the spinnet.v1 messages and the core, shared by the
// server and the CLI so that each exists once: TrainingSpec messages <-> the
// core's training settings (named like spinnet-train's flags: a proto field
// is the flag name with '_' for '-'). The client library does not link this
// (it links no core); status codes are in grpc_status.h.
#ifndef SPINNET_PROTO_API_CONVERT_H_
#define SPINNET_PROTO_API_CONVERT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/metrics.h"
#include "core/training_flags.h"
#include "spinnet/v1/common.pb.h"

namespace spinnet::api {

// The settings of the fields set in `spec` (enums other than UNSPECIFIED,
// optional fields present), as (flag, value) pairs for MakeTrainingSpec.
// INVALID_ARGUMENT for an unknown optimizer.
absl::StatusOr<std::vector<Setting>> SettingsFromSpec(
    const v1::TrainingSpec& spec);

// The core spec a message asks for: cell defaults plus its set fields.
absl::StatusOr<TrainingSpec> SpecFromProto(const v1::TrainingSpec& spec);

// A message with every field set from a core spec.
v1::TrainingSpec SpecToProto(const TrainingSpec& spec);

// Sets the field of training flag `flag` (e.g. "dt-in") from its text.
// INVALID_ARGUMENT for an unknown flag or a value of the wrong type.
absl::Status SetSpecField(const std::string& flag, const std::string& value,
                          v1::TrainingSpec* spec);

v1::EpochMetrics EpochMetricsToProto(const EpochMetrics& m);

}  // namespace spinnet::api

#endif  // SPINNET_PROTO_API_CONVERT_H_
