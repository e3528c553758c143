// The service's durable state behind one interface: training jobs and their
// leases, epoch curves, datasets, model versions, and the blobs (model files,
// checkpoints, uploaded datasets) that go with them. The store is the truth:
// process memory holds caches only, so any number of replicas can share one
// store (PostgreSQL), while the embedded SQLite store serves one machine.
//
// Records are the API messages themselves. Backends: SqliteStore (one
// process, files under a data dir), PostgresStore (many replicas, blobs in
// the database) and MemoryStore (tests). tests/server/store_conformance_test
// runs every backend through the same contract.
#ifndef SPINNET_SERVER_STORAGE_STORE_H_
#define SPINNET_SERVER_STORAGE_STORE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "spinnet/v1/dataset.pb.h"
#include "spinnet/v1/model.pb.h"
#include "spinnet/v1/sweep.pb.h"
#include "spinnet/v1/training.pb.h"

namespace spinnet::server {

// Bytes by key: model files ("models/<job id>.spnm", imported ones
// "imported-models/<name>@<version>.spnm"), checkpoints
// ("checkpoints/<job id>.ckpt" and ".ckpt.prev") and uploaded datasets
// ("datasets/<name>.csv"). Every method is thread-safe.
class BlobStore {
 public:
  virtual ~BlobStore() = default;
  // Creates or replaces `key` atomically: a crash leaves the old or the new
  // bytes, never a mix. Durable when it returns OK.
  virtual absl::Status Put(const std::string& key, absl::string_view bytes) = 0;
  // NOT_FOUND for a missing key; DATA_LOSS when the stored bytes fail their
  // checksum.
  virtual absl::StatusOr<std::string> Get(const std::string& key) = 0;
  // OK when the key is already gone.
  virtual absl::Status Delete(const std::string& key) = 0;
};

// Where a job's blobs live.
std::string ModelBlobKey(const std::string& job_id);
// Where an imported model version's file lives: a folder of its own, and
// '@' appears in no model name, so no job's key and no other version's can
// be the same (versions are never reused).
std::string ImportedModelBlobKey(const std::string& name, int version);
// The file of a published version, whichever kind: the job's key when the
// record has a source job, the imported key otherwise.
std::string ModelBlobKeyOf(const v1::Model& model);
std::string CheckpointBlobKey(const std::string& job_id);  // newest
std::string PreviousCheckpointBlobKey(const std::string& job_id);
std::string DatasetBlobKey(const std::string& name);

// A claim on a RUNNING job. The token is new on every claim (a fencing
// token): every write of the job names it, and a write whose token no longer
// holds the job changes nothing and fails with ABORTED "lease lost". A
// worker that stalled past its lease (a "zombie") therefore cannot publish
// or record anything once another worker has claimed the job.
struct Lease {
  std::string job_id;
  int64_t token = 0;
};

struct ClaimedJob {
  v1::TrainingJob job;  // RUNNING, attempt counted, worker set
  Lease lease;
};

// A model that a succeeding job publishes in the same transaction as its
// final state, or that InsertModel publishes (an import).
struct ModelToPublish {
  v1::Model info;     // name and metadata; the store assigns the version
  std::string bytes;  // the model file (core/model_io.h)
};

struct ReapResult {
  int requeued = 0;   // back to QUEUED, to resume from their checkpoint
  int failed = 0;     // out of attempts
  int cancelled = 0;  // a cancel was pending when the worker died
};

struct StoreCounts {
  int64_t queued = 0, running = 0, succeeded = 0, failed = 0, cancelled = 0;
  int64_t models = 0;    // model versions
  int64_t datasets = 0;  // uploaded (the built-in digits not counted)
};

// Every method is thread-safe, and durable when it returns OK (committed).
// Errors: NOT_FOUND for unknown keys, ALREADY_EXISTS for duplicates,
// INVALID_ARGUMENT for malformed arguments (empty ids, bad page tokens),
// FAILED_PRECONDITION for a state that forbids the change, ABORTED for a
// lost lease, UNAVAILABLE when the database cannot be reached (retry
// later), DATA_LOSS for corrupt records, INTERNAL otherwise.
class Store {
 public:
  virtual ~Store() = default;

  // "sqlite:///var/lib/spinnet", "postgresql://spinnet@db:5432/spinnet":
  // for logs; never contains a password.
  virtual std::string Describe() const = 0;

  // A cheap round trip: OK when the store answers (health checks).
  virtual absl::Status Ping() = 0;

  // Called with a job id after any committed change of that job: this
  // store's own writes and, for a shared store, other replicas' writes
  // (PostgreSQL LISTEN/NOTIFY). Hints only: one may be lost, so waiters
  // poll as well. Set once, before the store is used; the callback must be
  // quick and thread-safe.
  virtual void SetChangeCallback(
      std::function<void(const std::string& job_id)> callback) = 0;

  virtual BlobStore& blobs() = 0;

  // --- Jobs -----------------------------------------------------------

  // Inserts `job` (QUEUED, id set) unless its non-empty request_id was used
  // before: then returns the existing job instead (the caller compares the
  // requests). RESOURCE_EXHAUSTED when `max_queued` jobs are QUEUED already.
  struct Inserted {
    v1::TrainingJob job;
    bool created = false;
  };
  virtual absl::StatusOr<Inserted> InsertJob(const v1::TrainingJob& job,
                                             int max_queued) = 0;
  virtual absl::StatusOr<v1::TrainingJob> GetJob(const std::string& id) = 0;
  // Newest first (create_time, then id, descending). `state` UNSPECIFIED
  // means any. At most `limit` jobs strictly after the job `after_id` in that
  // order (empty: from the start; unknown: INVALID_ARGUMENT "bad page
  // token").
  virtual absl::StatusOr<std::vector<v1::TrainingJob>> ListJobs(
      v1::JobState state, int limit, const std::string& after_id) = 0;
  // Counted by the database, not by loading records.
  virtual absl::StatusOr<StoreCounts> Count() = 0;

  // Takes the oldest QUEUED job for `worker`: RUNNING, attempt + 1, a new
  // lease token, the lease expiring `ttl` from now by the store's clock.
  // Concurrent claims never take the same job. nullopt when none is queued.
  virtual absl::StatusOr<std::optional<ClaimedJob>> ClaimJob(
      const std::string& worker, absl::Duration ttl) = 0;
  // Extends the lease to `ttl` from now and stores `job` (its progress).
  // Returns whether a cancel was requested. ABORTED if the lease is lost.
  virtual absl::StatusOr<bool> Heartbeat(const Lease& lease,
                                         const v1::TrainingJob& job,
                                         absl::Duration ttl) = 0;
  // A finished epoch, in one transaction: the epoch's metrics (replacing a
  // row of the same epoch from an earlier attempt), `job`, and the
  // checkpoint, which becomes the newest while the one before is kept as
  // the previous. An empty checkpoint leaves the stored ones as they are
  // (the last epoch's: FinishJob follows at once, and a crash in between
  // only re-runs that epoch). ABORTED if the lease is lost.
  virtual absl::Status RecordEpoch(const Lease& lease,
                                   const v1::TrainingJob& job,
                                   const v1::EpochMetrics& epoch,
                                   absl::string_view checkpoint) = 0;
  // The job's checkpoints, newest first (zero, one or two): a reader falls
  // back to the previous one when the newest is corrupt. An unreadable blob
  // is skipped and reported by its DATA_LOSS in `skipped`.
  struct Checkpoints {
    std::vector<std::string> newest_first;
    std::vector<absl::Status> skipped;
  };
  virtual absl::StatusOr<Checkpoints> LoadCheckpoints(
      const std::string& job_id) = 0;
  // Ends a leased job, in one transaction: `job` (in a final state) is
  // stored, the lease cleared, the checkpoints deleted, and for a
  // SUCCEEDED job with `model`, the next version of model.info.name() is
  // published (version and source_job_id set) and job.model_version set.
  // A pending cancel wins (ApplyFinish): the job ends CANCELLED and
  // publishes nothing, whatever end the worker reports.
  // Returns the stored job. ABORTED if the lease is lost: nothing changes.
  virtual absl::StatusOr<v1::TrainingJob> FinishJob(
      const Lease& lease, v1::TrainingJob job,
      std::optional<ModelToPublish> model) = 0;
  // Gives a leased job back (graceful shutdown): QUEUED with its progress,
  // restarts + 1, and the attempt not counted, so another worker resumes it
  // from its checkpoint at once; CANCELLED instead when a cancel is
  // pending. ABORTED if the lease is lost.
  virtual absl::Status ReleaseJob(const Lease& lease,
                                  const v1::TrainingJob& job) = 0;
  // A QUEUED job becomes CANCELLED at once; a RUNNING one gets
  // cancel_requested, which its worker sees at its next heartbeat (or the
  // reaper, if the worker died). Returns the job after the change. Race
  // free: once accepted, the job ends CANCELLED however its worker ends it
  // (FinishJob, ReleaseJob, lease expiry). FAILED_PRECONDITION for a job
  // that already ended.
  virtual absl::StatusOr<v1::TrainingJob> CancelJob(const std::string& id) = 0;
  // Any replica may call this at any time (idempotent): every RUNNING job
  // whose lease expired goes back to QUEUED (restarts + 1), or to FAILED
  // once `max_attempts` claims have been used, or to CANCELLED when a cancel
  // was pending.
  virtual absl::StatusOr<ReapResult> ReapExpiredLeases(int max_attempts) = 0;

  // Per-epoch metrics of a job, by epoch. NOT_FOUND for an unknown job.
  virtual absl::StatusOr<std::vector<v1::EpochMetrics>> ListEpochs(
      const std::string& job_id) = 0;

  // --- Sweeps: a record and its jobs (job.sweep_id) ---------------------

  // Inserts `sweep` (its request: id, request_id, dataset, grid, seeds,
  // model name, create_time) and its `jobs` (QUEUED, sweep_id set) in one
  // transaction, unless the sweep's non-empty request_id was used before:
  // then returns the existing sweep and inserts nothing (the caller
  // compares the requests). RESOURCE_EXHAUSTED, with nothing inserted, when
  // the QUEUED jobs of sweeps would exceed `max_queued`. Sweep jobs do not
  // count towards InsertJob's limit, nor single jobs towards this one.
  struct InsertedSweep {
    v1::Sweep sweep;
    bool created = false;
  };
  virtual absl::StatusOr<InsertedSweep> InsertSweep(
      const v1::Sweep& sweep, const std::vector<v1::TrainingJob>& jobs,
      int max_queued) = 0;
  // The record as inserted, with cancel_requested.
  virtual absl::StatusOr<v1::Sweep> GetSweep(const std::string& id) = 0;
  // Newest first, paged as ListJobs.
  virtual absl::StatusOr<std::vector<v1::Sweep>> ListSweeps(
      int limit, const std::string& after_id) = 0;
  // The sweep's jobs, in any order. NOT_FOUND for an unknown sweep.
  virtual absl::StatusOr<std::vector<v1::TrainingJob>> ListSweepJobs(
      const std::string& sweep_id) = 0;
  // In one transaction: the sweep gets cancel_requested and each of its
  // jobs that has not ended is cancelled as CancelJob does. Idempotent.
  virtual absl::StatusOr<v1::Sweep> CancelSweep(const std::string& id) = 0;

  // --- Datasets, keyed by name ------------------------------------------

  // The record and its bytes (blob DatasetBlobKey(name)) together.
  virtual absl::Status InsertDataset(const v1::Dataset& dataset,
                                     absl::string_view bytes) = 0;
  virtual absl::StatusOr<v1::Dataset> GetDataset(const std::string& name) = 0;
  virtual absl::StatusOr<std::vector<v1::Dataset>> ListDatasets() = 0;  // by name
  // The record and its blob.
  virtual absl::Status DeleteDataset(const std::string& name) = 0;

  // --- Model versions -------------------------------------------------

  // version 0: the latest existing version.
  virtual absl::StatusOr<v1::Model> GetModel(const std::string& name,
                                             int version) = 0;
  // Every version of `name`, or of every model if name is empty; ordered by
  // name then version.
  virtual absl::StatusOr<std::vector<v1::Model>> ListModels(
      const std::string& name) = 0;
  // The record and its blob. Versions are never reused after a delete.
  virtual absl::Status DeleteModel(const std::string& name, int version) = 0;
  // Publishes a model that no job produced (an import), in one transaction:
  // the next version of model.info.name() (after every version a job or an
  // import took, deleted ones included), its record (version set,
  // source_job_id empty) and its file under ImportedModelBlobKey. Returns
  // the record. INVALID_ARGUMENT for an empty file or a name that cannot be
  // a key (empty, or with '/' or '@'); the bytes are not parsed here.
  virtual absl::StatusOr<v1::Model> InsertModel(ModelToPublish model) = 0;
};

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_STORAGE_STORE_H_
