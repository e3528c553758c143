// Commands about the server and jobs' metrics: metrics, health.
#include "client/cli.h"
#include "client/output.h"
#include <string>
#include <vector>
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace spinnet::client {
namespace {

int RunMetrics(const Invocation& inv, Client& client) {
  v1::GetTrainingMetricsRequest request;
  request.set_job_id(inv.args[0]);
  return Show(client.GetTrainingMetrics(request), inv, PrintMetrics);
}

int RunHealth(const Invocation& inv, Client& client) {
  const absl::StatusOr<bool> serving =
      client.Health(inv.args.empty() ? "" : inv.args[0]);
  if (!serving.ok()) return Fail(serving.status());
  if (!*serving) return Fail("the server is not serving");
  absl::PrintF("%s\n", inv.json() ? "{\"status\":\"SERVING\"}" : "SERVING");
  return 0;
}


}  // namespace

const std::vector<Command>& StatusCommands() {
  static const std::vector<Command>* commands = new std::vector<Command>{
      {"metrics",
       "JOB",
       "Prints a job's metrics, a row per epoch.",
       {},
       false,
       1,
       1,
       RunMetrics},
      {"health",
       "[SERVICE]",
       "Asks grpc.health.v1 whether the server (or SERVICE) is serving; exits\n"
       "0 if it is.",
       {},
       false,
       0,
       1,
       RunHealth},
  };
  return *commands;
}

}  // namespace spinnet::client
