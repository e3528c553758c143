// An in-memory Store for unit tests of the layers above storage (job queue,
// runner, registries): the Store contract without a database. Lease times
// use an injectable clock so tests can expire leases without sleeping.
#ifndef SPINNET_SERVER_STORAGE_MEMORY_STORE_H_
#define SPINNET_SERVER_STORAGE_MEMORY_STORE_H_

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "server/storage/store.h"

namespace spinnet::server {

class MemoryBlobStore : public BlobStore {
 public:
  absl::Status Put(const std::string& key, absl::string_view bytes) override;
  absl::StatusOr<std::string> Get(const std::string& key) override;
  absl::Status Delete(const std::string& key) override;

 private:
  std::mutex mu_;
  std::map<std::string, std::string> blobs_ ABSL_GUARDED_BY(mu_);
};

class MemoryStore : public Store {
 public:
  // `now` is the store's clock for leases (default: absl::Now).
  explicit MemoryStore(std::function<absl::Time()> now = absl::Now)
      : now_(std::move(now)) {}

  std::string Describe() const override { return "memory"; }
  absl::Status Ping() override { return absl::OkStatus(); }
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
  struct JobRow {
    v1::TrainingJob job;  // revision and cancel_requested kept in it
    int64_t token = 0;    // 0: no lease
    absl::Time lease_expires;
  };

  // The row a lease still holds, or null.
  JobRow* Leased(const Lease& lease) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stores `job` in `row` with the next revision, and drops the checkpoints
  // of a job that has ended; the change callback runs after the lock is
  // released (see Notify).
  void Write(JobRow* row, const v1::TrainingJob& job)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Notify(const std::string& job_id);
  // Cancels a job that has not ended (CancelJob's change).
  void Cancel(JobRow* row) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Publishes `model` as the next version of its name; `job_id` is the
  // source job, empty for an import. Returns the record.
  absl::StatusOr<v1::Model> Publish(ModelToPublish model,
                                    const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::function<absl::Time()> now_;
  std::function<void(const std::string&)> changed_;
  MemoryBlobStore blobs_;
  std::mutex mu_;
  std::map<std::string, JobRow> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> request_ids_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, int>, v1::EpochMetrics> epochs_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::Sweep> sweeps_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::Dataset> datasets_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, int>, v1::Model> models_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> last_version_ ABSL_GUARDED_BY(mu_);
  int64_t next_token_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_STORAGE_MEMORY_STORE_H_
