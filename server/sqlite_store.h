// The embedded Store: one SQLite file in WAL mode with synchronous=FULL, so
// a write is on disk when its method returns and a kill -9 at any moment
// leaves either the old or the new state.
#ifndef SPINNET_SERVER_SQLITE_STORE_H_
#define SPINNET_SERVER_SQLITE_STORE_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/store.h"

struct sqlite3;

namespace spinnet::server {

// Besides Store's errors: INVALID_ARGUMENT for an empty id or name on
// insert, an epoch, version or page size out of range, and an unknown page
// token.
class SqliteStore : public Store {
 public:
  // Opens the database at `path`, creating the file and the schema if
  // missing. The directory must exist (NOT_FOUND otherwise). A file written
  // by a newer schema is refused with FAILED_PRECONDITION, one that is not a
  // database with DATA_LOSS.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(
      const std::string& path);

  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // PRAGMA integrity_check: OK, or DATA_LOSS listing what it found.
  absl::Status IntegrityCheck();

  absl::Status InsertJob(const v1::TrainingJob& job) override;
  absl::Status UpdateJob(const v1::TrainingJob& job) override;
  absl::StatusOr<v1::TrainingJob> GetJob(const std::string& id) override;
  absl::StatusOr<std::optional<v1::TrainingJob>> FindJobByRequestId(
      const std::string& request_id) override;
  // An unknown `after_id` is INVALID_ARGUMENT "bad page token: ...".
  absl::StatusOr<std::vector<v1::TrainingJob>> ListJobs(
      v1::JobState state, int limit, const std::string& after_id) override;
  absl::StatusOr<std::vector<v1::TrainingJob>> JobsInStates(
      const std::vector<v1::JobState>& states) override;

  // Both NOT_FOUND if the job does not exist.
  absl::Status PutEpoch(const std::string& job_id,
                        const v1::EpochMetrics& epoch) override;
  absl::StatusOr<std::vector<v1::EpochMetrics>> ListEpochs(
      const std::string& job_id) override;

  absl::Status InsertDataset(const v1::Dataset& dataset) override;
  absl::StatusOr<v1::Dataset> GetDataset(const std::string& name) override;
  absl::StatusOr<std::vector<v1::Dataset>> ListDatasets() override;
  absl::Status DeleteDataset(const std::string& name) override;

  absl::StatusOr<int> InsertModel(v1::Model model) override;
  absl::StatusOr<v1::Model> GetModel(const std::string& name,
                                     int version) override;
  absl::StatusOr<std::vector<v1::Model>> ListModels(
      const std::string& name) override;
  absl::Status DeleteModel(const std::string& name, int version) override;

 private:
  struct CloseDb {
    void operator()(sqlite3* db) const;
  };

  SqliteStore(std::unique_ptr<sqlite3, CloseDb> db, std::string path);

  const std::string path_;  // for error messages
  absl::Mutex mu_;
  // One connection, used by one thread at a time: SQLite serializes writers
  // anyway, and metadata traffic is small.
  const std::unique_ptr<sqlite3, CloseDb> db_ ABSL_PT_GUARDED_BY(mu_);
};

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_SQLITE_STORE_H_
