// SubmitSweep on arbitrary bytes parsed as its request: the server's
// CheckSweep (jobs/sweep_queue.h: the request's fields, then the core's
// ExpandSweep of its fixed settings and axes, each point checked against
// the dataset), on the shared service's datasets. An accepted grid has one
// point per combination of axis values, within the sweep limits.
#include <cstddef>
#include <cstdint>

#include "core/sweep.h"
#include "server/jobs/sweep_queue.h"
#include "tests/fuzz/fuzz_fixture.h"

namespace {
// SweepQueueOptions' default.
constexpr int kMaxJobsPerSweep = 10000;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  spinnet::v1::SubmitSweepRequest req;
  if (!spinnet::fuzz::ParseInput(data, size, &req)) return 0;
  spinnet::fuzz::Service& service = spinnet::fuzz::SharedService();
  absl::StatusOr<std::vector<spinnet::SweepPoint>> grid =
      spinnet::server::CheckSweep(req, &service.datasets, kMaxJobsPerSweep);
  if (!grid.ok()) {
    const absl::StatusCode code = grid.status().code();
    FUZZ_CHECK(code == absl::StatusCode::kInvalidArgument ||
               code == absl::StatusCode::kNotFound);
    FUZZ_CHECK(!grid.status().message().empty());
    return 0;
  }
  int64_t points = 1;
  for (const spinnet::v1::SweepAxis& axis : req.axes()) {
    points *= axis.values_size();
  }
  FUZZ_CHECK(static_cast<int64_t>(grid->size()) == points);
  FUZZ_CHECK(points * req.seeds_size() <= kMaxJobsPerSweep);
  for (const spinnet::SweepPoint& point : *grid) {
    FUZZ_CHECK(static_cast<int>(point.settings.size()) == req.axes_size());
  }
  return 0;
}
