// What every store backend does to a job record, written once: the record
// changes of a claim, a release, a lease expiry and a cancel, the blob keys,
// and checks shared by the backends. Pure functions on the API messages.
#ifndef SPINNET_SERVER_STORAGE_JOB_RECORDS_H_
#define SPINNET_SERVER_STORAGE_JOB_RECORDS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "google/protobuf/message_lite.h"
#include "google/protobuf/timestamp.pb.h"
#include "server/storage/store.h"
#include "spinnet/v1/training.pb.h"

namespace spinnet::server {

bool IsTerminal(v1::JobState state);

// To the microsecond (protobuf 3.21's TimeUtil::GetCurrentTime has whole
// seconds only, which would tie the order of jobs).
google::protobuf::Timestamp ToTimestamp(absl::Time t);
google::protobuf::Timestamp TimestampNow();
int64_t ToMicros(const google::protobuf::Timestamp& t);

// A claim by `worker`: RUNNING, attempt + 1, start time if it had none.
void ApplyClaim(const std::string& worker, v1::TrainingJob* job);
// A release by a worker that stops (shutdown): QUEUED again, restarts + 1,
// the attempt given back (the job did nothing wrong); CANCELLED instead when
// `cancel_requested` (the job's pending cancel). Returns the new state.
v1::JobState ApplyRelease(bool cancel_requested, v1::TrainingJob* job);
// A lease that expired: the worker died or stalled. `cancel_requested` is
// the job's pending cancel. Returns the new state: QUEUED (restarts + 1),
// FAILED after `max_attempts` claims, or CANCELLED.
v1::JobState ApplyExpiry(int max_attempts, bool cancel_requested,
                         v1::TrainingJob* job);
// A cancel of a QUEUED job: CANCELLED now.
void ApplyCancel(v1::TrainingJob* job);
// The end a worker reports (FinishJob) against the job's pending cancel: a
// cancel accepted while the job ran (CancelJob answered RUNNING with
// cancel_requested) wins, even when the worker finished its last epoch or
// failed before its next heartbeat could tell it, so an accepted cancel
// always ends the job CANCELLED. Returns whether the job still publishes its
// model (false once cancelled).
bool ApplyFinish(bool cancel_requested, v1::TrainingJob* job);

// The job's checkpoints from `blobs` (newest first), for backends that keep
// them as two blobs: missing ones skipped, unreadable ones reported.
Store::Checkpoints ReadCheckpoints(BlobStore& blobs, const std::string& job_id);

// FinishJob's argument: a final state; a model only with a SUCCEEDED job,
// and always with one that names a model (INVALID_ARGUMENT otherwise).
absl::Status CheckFinishable(const v1::TrainingJob& job, bool has_model);

// InsertModel's argument: a name usable in a blob key and a non-empty file
// (INVALID_ARGUMENT otherwise).
absl::Status CheckImportable(const ModelToPublish& model);

// A record as the bytes a backend stores; INVALID_ARGUMENT if it cannot be
// serialized (over 2 GiB).
absl::StatusOr<std::string> Serialize(const google::protobuf::MessageLite& m);

// An epoch record's number: INVALID_ARGUMENT below 1.
absl::Status CheckEpochNumber(const v1::EpochMetrics& epoch);

// The errors every backend words the same way.
absl::Status LeaseLost(const std::string& job_id);
absl::Status JobNotFound(const std::string& job_id);
absl::Status ModelNotFound(const std::string& name, int version);
absl::Status DatasetNotFound(const std::string& name);
absl::Status QueueFull(int max_queued);
absl::Status AlreadyEnded(const v1::TrainingJob& job);
absl::Status SweepNotFound(const std::string& sweep_id);
absl::Status SweepQueueFull(int max_queued, int64_t queued, size_t jobs);

// InsertJob's argument: an id, and no sweep (a sweep's jobs come with
// InsertSweep); INVALID_ARGUMENT otherwise.
absl::Status CheckSingleJob(const v1::TrainingJob& job);

// InsertSweep's arguments: an id, and jobs that are new, QUEUED, of this
// sweep, and without request ids (INVALID_ARGUMENT otherwise).
absl::Status CheckSweepJobs(const v1::Sweep& sweep,
                            const std::vector<v1::TrainingJob>& jobs);

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_STORAGE_JOB_RECORDS_H_
