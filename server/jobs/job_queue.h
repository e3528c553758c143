// The training-job operations the API offers, on the store: submission
// (validated against its dataset, idempotent with a request id), lookups,
// cancellation and waiting for changes. Any replica answers for any job;
// JobRunner (job_runner.h) is what runs them. gRPC-free.
#ifndef SPINNET_SERVER_JOBS_JOB_QUEUE_H_
#define SPINNET_SERVER_JOBS_JOB_QUEUE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/training_flags.h"
#include "server/catalog/registry.h"
#include "server/jobs/job_events.h"
#include "server/storage/store.h"

namespace spinnet::server {

struct JobQueueOptions {
  int max_queued = 64;  // QUEUED jobs in the whole store
  // How long Cancel waits for a running job's worker to stop.
  absl::Duration cancel_wait = absl::Seconds(5);
  // Waiters re-read the store at least this often (hints may be lost).
  absl::Duration poll_interval = absl::Seconds(1);
};

// 64 random bits after `prefix` ("j-" jobs, "s-" sweeps): unique across
// replicas without coordination.
std::string NewId(const std::string& prefix);

// The training setup a job asks for, checked against its training data.
absl::StatusOr<TrainingSpec> ResolveSpec(const v1::TrainingSpec& spec,
                                         const Dataset& train);

// What Submit checks before it stores anything: the model name, dataset
// and request id, and the spec resolved against the dataset's training
// part. Errors as Submit's.
absl::StatusOr<TrainingSpec> CheckSubmission(
    const v1::SubmitTrainingJobRequest& r, DatasetRegistry* datasets);

class JobQueue {
 public:
  JobQueue(Store* store, DatasetRegistry* datasets, JobEvents* events,
           JobQueueOptions options)
      : store_(store), datasets_(datasets), events_(events),
        options_(options) {}

  // INVALID_ARGUMENT for a bad model or dataset name, request id or spec;
  // NOT_FOUND for an unknown dataset; RESOURCE_EXHAUSTED when the queue is
  // full; ALREADY_EXISTS when the request id was used for another request.
  absl::StatusOr<v1::TrainingJob> Submit(const v1::SubmitTrainingJobRequest& r);
  absl::StatusOr<v1::TrainingJob> Get(const std::string& id);
  // Page `page_size` (0: 50, at most 500) after `page_token`.
  absl::StatusOr<v1::ListTrainingJobsResponse> List(
      const v1::ListTrainingJobsRequest& request);
  // A queued job ends at once; a running one when its worker (on any
  // replica) sees the cancel at its next heartbeat: waits up to cancel_wait
  // for that and returns the job as it then is.
  absl::StatusOr<v1::TrainingJob> Cancel(const std::string& id);
  // The job once its revision exceeds `after_revision` (0: at once), or
  // nullopt at `deadline`.
  absl::StatusOr<std::optional<v1::TrainingJob>> WaitForChange(
      const std::string& id, int64_t after_revision, absl::Time deadline);
  // Epoch curves: NOT_FOUND for an unknown job.
  absl::StatusOr<std::vector<v1::EpochMetrics>> Epochs(const std::string& id);

 private:
  Store* store_;
  DatasetRegistry* datasets_;
  JobEvents* events_;
  JobQueueOptions options_;
};

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_JOBS_JOB_QUEUE_H_
