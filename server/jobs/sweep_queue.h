// Sweeps (studies) on the store: a grid of training settings x seeds,
// submitted as one training job per point and seed into the same queue as
// single jobs, so that every replica's workers run them. A sweep's record
// holds its request; its state and statistics are computed from its jobs
// whenever it is read (SummarizeSweep). gRPC-free.
#ifndef SPINNET_SERVER_JOBS_SWEEP_QUEUE_H_
#define SPINNET_SERVER_JOBS_SWEEP_QUEUE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/sweep.h"
#include "server/catalog/registry.h"
#include "server/jobs/job_events.h"
#include "server/storage/store.h"
#include "spinnet/v1/sweep.pb.h"

namespace spinnet::server {

struct SweepQueueOptions {
  // Jobs of one sweep (points x seeds).
  int max_jobs_per_sweep = 10000;
  // QUEUED sweep jobs in the whole store (single jobs have their own
  // limit, JobQueueOptions::max_queued).
  int max_queued_jobs = 20000;
  // Waiters re-read the store at least this often (hints may be lost), and
  // at most this often while jobs keep changing.
  absl::Duration poll_interval = absl::Seconds(1);
};

// The sweep as the API shows it: `record` (as stored) with every point's
// job ids, counts and statistics over the seeds that succeeded, the sweep's
// counts, progress, revision and state, from `jobs` (in any order).
v1::Sweep SummarizeSweep(v1::Sweep record,
                         const std::vector<v1::TrainingJob>& jobs);

// What Submit checks before it stores anything: the request's fields and
// the grid expanded and checked against the dataset's training part, with
// at most `max_jobs_per_sweep` points x seeds. Errors as Submit's.
absl::StatusOr<std::vector<SweepPoint>> CheckSweep(
    const v1::SubmitSweepRequest& r, DatasetRegistry* datasets,
    int max_jobs_per_sweep);

class SweepQueue {
 public:
  SweepQueue(Store* store, DatasetRegistry* datasets, JobEvents* events,
             SweepQueueOptions options)
      : store_(store), datasets_(datasets), events_(events),
        options_(options) {}

  // Expands the grid (core's ExpandSweep: the same as `spinnet-train
  // --sweep`), checks every point against the dataset and queues its jobs,
  // all or none. INVALID_ARGUMENT names the bad field (dataset, fixed,
  // axes, seeds, model_name, request_id); NOT_FOUND for an unknown
  // dataset; RESOURCE_EXHAUSTED when the queue cannot take the jobs;
  // ALREADY_EXISTS when the request id was used for another request.
  absl::StatusOr<v1::Sweep> Submit(const v1::SubmitSweepRequest& request);
  absl::StatusOr<v1::Sweep> Get(const std::string& id);
  // Page `page_size` (0: 20, at most 100) after `page_token`.
  absl::StatusOr<v1::ListSweepsResponse> List(
      const v1::ListSweepsRequest& request);
  // Cancels every job that has not ended. FAILED_PRECONDITION when the
  // sweep had ended already.
  absl::StatusOr<v1::Sweep> Cancel(const std::string& id);
  // The sweep once its revision exceeds `after_revision` or its state
  // differs from `after_state` (0 / UNSPECIFIED: at once), or nullopt at
  // `deadline`.
  absl::StatusOr<std::optional<v1::Sweep>> WaitForChange(
      const std::string& id, int64_t after_revision,
      v1::SweepState after_state, absl::Time deadline);

 private:
  absl::StatusOr<v1::Sweep> Load(const std::string& id);

  Store* store_;
  DatasetRegistry* datasets_;
  JobEvents* events_;
  SweepQueueOptions options_;
};

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_JOBS_SWEEP_QUEUE_H_
