// The Store on PostgreSQL, shared by any number of server replicas: every
// record, lease and blob lives in the database, leases expire by the
// database's clock, claims use SELECT ... FOR UPDATE SKIP LOCKED, and a
// trigger NOTIFYs every job change to all replicas (LISTEN).
#ifndef SPINNET_SERVER_STORAGE_POSTGRES_STORE_H_
#define SPINNET_SERVER_STORAGE_POSTGRES_STORE_H_

#include <functional>
#include <memory>
#include <string>

#include "server/storage/pg_connection.h"
#include "server/storage/store.h"

namespace spinnet::server {

struct PostgresOptions {
  int pool_size = 4;  // connections for store calls
  // LISTEN for other replicas' job changes (a connection of its own),
  // once a change callback is set.
  bool listen = true;
  absl::Duration connect_timeout = absl::Seconds(5);
};

// Blobs in the `blobs` table with their SHA-256, checked on every read.
class PostgresBlobStore : public BlobStore {
 public:
  explicit PostgresBlobStore(PgPool* pool) : pool_(pool) {}

  absl::Status Put(const std::string& key, absl::string_view bytes) override;
  absl::StatusOr<std::string> Get(const std::string& key) override;
  absl::Status Delete(const std::string& key) override;

 private:
  PgPool* pool_;
};

class PostgresStore : public Store {
 public:
  // `url` is a libpq URI ("postgresql://spinnet@db:5432/spinnet?sslmode=
  // require") without a password; an empty `password` leaves it to libpq
  // (PGPASSWORD, ~/.pgpass). Brings the schema up to date under a lock, so
  // that replicas may start together. FAILED_PRECONDITION for bad
  // credentials or a schema newer than this build; UNAVAILABLE when the
  // database cannot be reached.
  static absl::StatusOr<std::unique_ptr<PostgresStore>> Open(
      const std::string& url, const std::string& password,
      const PostgresOptions& options);

  std::string Describe() const override { return pool_.params().url; }
  absl::Status Ping() override;
  void SetChangeCallback(
      std::function<void(const std::string&)> callback) override;
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
  PostgresStore(PgConnectParams params, const PostgresOptions& options);

  // Runs `body` on a pooled connection, in a transaction.
  absl::Status Transact(const std::function<absl::Status(PgConnection&)>& body);
  // One statement on a pooled connection, outside a transaction.
  absl::StatusOr<PgResult> Query(const std::string& sql,
                                 absl::Span<const PgParam> params = {});
  // After a committed change of a job: this replica's waiters learn of it
  // even without LISTEN.
  void Notify(const std::string& job_id);

  const PostgresOptions options_;
  PgPool pool_;
  PostgresBlobStore blobs_;
  std::function<void(const std::string&)> changed_;
  std::unique_ptr<PgListener> listener_;  // after changed_, which it calls
};

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_STORAGE_POSTGRES_STORE_H_
