// The embedded Store for one machine: a data directory holding spinnet.db
// (SQLite in WAL mode with synchronous=FULL, so a write is on disk when its
// method returns and a kill -9 at any moment leaves the old or the new
// state) and the blobs as files (models/, imported-models/, checkpoints/,
// datasets/). One server per data directory: Open takes an exclusive lock on
// <dir>/LOCK that is held while the store lives.
#ifndef SPINNET_SERVER_STORAGE_SQLITE_STORE_H_
#define SPINNET_SERVER_STORAGE_SQLITE_STORE_H_

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "server/storage/local_blob_store.h"
#include "server/storage/store.h"

struct sqlite3;

namespace spinnet::server {

class SqliteStore : public Store {
 public:
  // Creates the directory and its subdirectories if missing, takes the lock
  // (FAILED_PRECONDITION "another spinnet-server is already running" if held),
  // and opens or creates the database, migrating an older schema. A database
  // written by a newer schema is refused with FAILED_PRECONDITION, a file
  // that is not a database with DATA_LOSS. Since the lock proves that no
  // other process works on the directory, the leases of jobs left RUNNING by
  // a previous process are expired at once (the reaper then requeues them).
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(
      const std::string& data_dir);
  ~SqliteStore() override;

  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // PRAGMA integrity_check: OK, or DATA_LOSS listing what it found.
  absl::Status IntegrityCheck();

  std::string Describe() const override;
  absl::Status Ping() override;
  void SetChangeCallback(
      std::function<void(const std::string&)> callback) override {
    changed_ = std::move(callback);
  }
  BlobStore& blobs() override { return blobs_; }

  absl::StatusOr<Inserted> InsertJob(const v1::TrainingJob& job,
                                     int max_queued) override;
  absl::StatusOr<v1::TrainingJob> GetJob(const std::string& id) override;
  absl::StatusOr<std::vector<v1::TrainingJob>> ListJobs(
      v1::JobState state, int limit, const std::string& after_id) override;
  absl::StatusOr<StoreCounts> Count() override;
  absl::StatusOr<std::optional<ClaimedJob>> ClaimJob(
      const std::string& worker, absl::Duration ttl) override;
  absl::StatusOr<bool> Heartbeat(const Lease& lease, const v1::TrainingJob& job,
                                 absl::Duration ttl) override;
  absl::Status RecordEpoch(const Lease& lease, const v1::TrainingJob& job,
                           const v1::EpochMetrics& epoch,
                           absl::string_view checkpoint) override;
  absl::StatusOr<Checkpoints> LoadCheckpoints(
      const std::string& job_id) override;
  absl::StatusOr<v1::TrainingJob> FinishJob(
      const Lease& lease, v1::TrainingJob job,
      std::optional<ModelToPublish> model) override;
  absl::Status ReleaseJob(const Lease& lease,
                          const v1::TrainingJob& job) override;
  absl::StatusOr<v1::TrainingJob> CancelJob(const std::string& id) override;
  absl::StatusOr<ReapResult> ReapExpiredLeases(int max_attempts) override;
  absl::StatusOr<std::vector<v1::EpochMetrics>> ListEpochs(
      const std::string& job_id) override;

  absl::StatusOr<InsertedSweep> InsertSweep(
      const v1::Sweep& sweep, const std::vector<v1::TrainingJob>& jobs,
      int max_queued) override;
  absl::StatusOr<v1::Sweep> GetSweep(const std::string& id) override;
  absl::StatusOr<std::vector<v1::Sweep>> ListSweeps(
      int limit, const std::string& after_id) override;
  absl::StatusOr<std::vector<v1::TrainingJob>> ListSweepJobs(
      const std::string& sweep_id) override;
  absl::StatusOr<v1::Sweep> CancelSweep(const std::string& id) override;

  absl::Status InsertDataset(const v1::Dataset& dataset,
                             absl::string_view bytes) override;
  absl::StatusOr<v1::Dataset> GetDataset(const std::string& name) override;
  absl::StatusOr<std::vector<v1::Dataset>> ListDatasets() override;
  absl::Status DeleteDataset(const std::string& name) override;

  absl::StatusOr<v1::Model> GetModel(const std::string& name,
                                     int version) override;
  absl::StatusOr<std::vector<v1::Model>> ListModels(
      const std::string& name) override;
  absl::Status DeleteModel(const std::string& name, int version) override;
  absl::StatusOr<v1::Model> InsertModel(ModelToPublish model) override;

 private:
  struct CloseDb {
    void operator()(sqlite3* db) const;
  };

  SqliteStore(std::unique_ptr<sqlite3, CloseDb> db,
              std::unique_ptr<sqlite3, CloseDb> reader, std::string dir,
              int lock_fd);
  // Runs `change` on the job row that `lease` holds, in one write
  // transaction; ABORTED if the lease is lost. The change callback runs
  // after the commit.
  absl::Status WithLease(const Lease& lease,
                         const std::function<absl::Status()>& change);
  void Notify(const std::string& job_id);
  // Deletes the checkpoint files of a job that has ended, after the commit
  // that ended it (nothing resumes it; a crash in between leaves files that
  // nothing reads). Failures are logged.
  void DropCheckpoints(const std::string& job_id);

  const std::string dir_;
  const int lock_fd_;  // flock on <dir>/LOCK, released on close
  LocalBlobStore blobs_;
  std::function<void(const std::string&)> changed_;
  std::mutex mu_;
  // The connection for writes (and reads inside them), used by one thread
  // at a time: SQLite serializes writers anyway, and metadata traffic is
  // small.
  std::unique_ptr<sqlite3, CloseDb> db_ ABSL_PT_GUARDED_BY(mu_);
  // A second connection for the methods that only read (lookups, listings,
  // counts, Ping): in WAL mode a reader never waits for the writer, so they
  // answer while a write waits for a slow or full disk (files are written
  // under mu_).
  std::mutex read_mu_;
  std::unique_ptr<sqlite3, CloseDb> reader_ ABSL_PT_GUARDED_BY(read_mu_);
};

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_STORAGE_SQLITE_STORE_H_
