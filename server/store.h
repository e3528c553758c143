// Durable metadata of the service: jobs, their epoch curves, datasets and
// model versions. A narrow interface so that a shared store (PostgreSQL, for
// several replicas) can replace the embedded SQLite one. Records are the API
// messages themselves; files (datasets, model files, checkpoints) live in the
// data directory, not here.
#ifndef SPINNET_SERVER_STORE_H_
#define SPINNET_SERVER_STORE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "spinnet/v1/dataset.pb.h"
#include "spinnet/v1/model.pb.h"
#include "spinnet/v1/training.pb.h"

namespace spinnet::server {

// Every method is thread-safe and durable when it returns OK (the write is
// committed). Errors: NOT_FOUND for unknown keys, ALREADY_EXISTS for
// duplicate keys, INTERNAL / DATA_LOSS for storage failures.
class Store {
 public:
  virtual ~Store() = default;

  // Jobs. `job.id()` must be set and unique; a non-empty request_id must be
  // unique too (ALREADY_EXISTS otherwise).
  virtual absl::Status InsertJob(const v1::TrainingJob& job) = 0;
  virtual absl::Status UpdateJob(const v1::TrainingJob& job) = 0;  // by id
  virtual absl::StatusOr<v1::TrainingJob> GetJob(const std::string& id) = 0;
  virtual absl::StatusOr<std::optional<v1::TrainingJob>> FindJobByRequestId(
      const std::string& request_id) = 0;
  // Newest first (create_time, then id, descending). `state` UNSPECIFIED
  // means any. Returns at most `limit` jobs strictly after the job with id
  // `after_id` in that order (empty: from the start).
  virtual absl::StatusOr<std::vector<v1::TrainingJob>> ListJobs(
      v1::JobState state, int limit, const std::string& after_id) = 0;
  // Jobs in the given states, oldest first (for recovery at start-up).
  virtual absl::StatusOr<std::vector<v1::TrainingJob>> JobsInStates(
      const std::vector<v1::JobState>& states) = 0;

  // Per-epoch metrics of a job; appending an epoch that exists replaces it
  // (a job resumed from an older checkpoint re-runs epochs).
  virtual absl::Status PutEpoch(const std::string& job_id,
                                const v1::EpochMetrics& epoch) = 0;
  virtual absl::StatusOr<std::vector<v1::EpochMetrics>> ListEpochs(
      const std::string& job_id) = 0;

  // Datasets, keyed by name.
  virtual absl::Status InsertDataset(const v1::Dataset& dataset) = 0;
  virtual absl::StatusOr<v1::Dataset> GetDataset(const std::string& name) = 0;
  virtual absl::StatusOr<std::vector<v1::Dataset>> ListDatasets() = 0;
  virtual absl::Status DeleteDataset(const std::string& name) = 0;

  // Model versions. InsertModel assigns the next version of `model.name()`
  // (1, 2, ...; never reused after a delete) atomically, and returns it.
  virtual absl::StatusOr<int> InsertModel(v1::Model model) = 0;
  // version 0: the latest existing version.
  virtual absl::StatusOr<v1::Model> GetModel(const std::string& name,
                                             int version) = 0;
  // Every version of `name`, or of every model if name is empty; ordered by
  // name then version.
  virtual absl::StatusOr<std::vector<v1::Model>> ListModels(
      const std::string& name) = 0;
  virtual absl::Status DeleteModel(const std::string& name, int version) = 0;
};

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_STORE_H_
