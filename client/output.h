// Output shared by every command: JSON (--json) or a human-readable
// form, and the formatting of times, sizes, states and epoch rows.
#ifndef SPINNET_CLIENT_OUTPUT_H_
#define SPINNET_CLIENT_OUTPUT_H_

#include <string>

#include "client/cli.h"

namespace spinnet::client {

// Prints `message` as one line of JSON.
void PrintJson(const google::protobuf::Message& message);

// A unary call's outcome: its response printed as JSON or by `print`, or
// the error. Returns the exit status.
template <typename Response, typename Print>
int Show(const absl::StatusOr<Response>& response, const Invocation& inv,
         Print print) {
  if (!response.ok()) return Fail(response.status());
  if (inv.json()) {
    PrintJson(*response);
  } else {
    print(*response);
  }
  return 0;
}


std::string ShortName(const std::string& enum_name, absl::string_view prefix);
std::string StateName(v1::JobState state);
std::string FormatTime(const google::protobuf::Timestamp& t);
std::string FormatDuration(int64_t seconds);
std::string FormatBytes(int64_t bytes);
// "7 (p=0.93, 15.2 pJ)"
std::string Describe(const v1::Classification& c);
// Appended to an answer whose true label differs.
std::string Mismatch(const std::string& predicted, const std::string* truth);
std::string EpochHeader();
std::string EpochRow(const v1::EpochMetrics& m);
void PrintMetrics(const v1::GetTrainingMetricsResponse& r);

}  // namespace spinnet::client

#endif  // SPINNET_CLIENT_OUTPUT_H_
