#include "client/output.h"
#include <string>
#include <vector>
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/json_util.h"

namespace spinnet::client {

// ---- Errors: every one is printed here, as "spinnet: <what>".

int Fail(absl::string_view what, int exit_status) {
  absl::FPrintF(stderr, "spinnet: %s\n", what);
  std::fflush(stderr);
  return exit_status;
}

int Fail(const absl::Status& status) {
  return Fail(absl::StrCat(absl::StatusCodeToString(status.code()), ": ",
                           status.message()));
}

int UsageFail(absl::string_view what) {
  return Fail(absl::StrCat(what, " (see spinnet --help)"), kExitUsage);
}

void PrintJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  // Fails only on Any fields it cannot resolve; the API has none.
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  absl::PrintF("%s\n", json);
  std::fflush(stdout);
}

// JOB_STATE_RUNNING -> "running".
std::string ShortName(const std::string& enum_name, absl::string_view prefix) {
  return absl::AsciiStrToLower(absl::StripPrefix(enum_name, prefix));
}
std::string StateName(v1::JobState state) {
  return ShortName(v1::JobState_Name(state), "JOB_STATE_");
}

std::string FormatTime(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S",
                          absl::FromUnixSeconds(t.seconds()),
                          absl::LocalTimeZone());
}

std::string FormatDuration(int64_t seconds) {
  if (seconds >= 3600) {
    return absl::StrFormat("%dh%02dm", seconds / 3600, seconds % 3600 / 60);
  }
  if (seconds >= 60) {
    return absl::StrFormat("%dm%02ds", seconds / 60, seconds % 60);
  }
  return absl::StrFormat("%ds", seconds);
}

std::string FormatBytes(int64_t bytes) {
  if (bytes >= (1 << 20)) return absl::StrFormat("%.1f MiB", bytes / 1048576.0);
  if (bytes >= (1 << 10)) return absl::StrFormat("%.1f KiB", bytes / 1024.0);
  return absl::StrFormat("%d B", bytes);
}

// "7 (p=0.93, 15.2 pJ)"
std::string Describe(const v1::Classification& c) {
  const int i = c.class_index();
  const double p =
      i >= 0 && i < c.probabilities_size() ? c.probabilities(i) : 0.0;
  return absl::StrFormat("%s (p=%.2f, %.1f pJ)", c.label(), p,
                         c.energy_joules() * 1e12);
}

// Appended to an answer whose true label differs.
std::string Mismatch(const std::string& predicted, const std::string* truth) {
  if (truth == nullptr || predicted == *truth) return "";
  return absl::StrCat("  [label ", *truth, "]");
}


std::string EpochHeader() {
  return absl::StrFormat("%5s  %8s  %10s  %9s  %9s  %8s  %9s  %7s  %9s",
                         "epoch", "lr", "train loss", "train acc", "test loss",
                         "test acc", "samples/s", "seconds", "pJ/sample");
}

std::string EpochRow(const v1::EpochMetrics& m) {
  return absl::StrFormat(
      "%5d  %8.2e  %10.4f  %8.1f%%  %9.4f  %7.1f%%  %9.0f  %7.1f  %9.3g",
      m.epoch(), m.learning_rate(), m.train_loss(), 100 * m.train_accuracy(),
      m.test_loss(), 100 * m.test_accuracy(), m.samples_per_second(),
      m.epoch_seconds(), m.energy_per_sample_joules() * 1e12);
}

void PrintMetrics(const v1::GetTrainingMetricsResponse& r) {
  absl::PrintF("%s\n", EpochHeader());
  for (const v1::EpochMetrics& m : r.epochs()) {
    absl::PrintF("%s\n", EpochRow(m));
  }
}


}  // namespace spinnet::client
