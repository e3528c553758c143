// The data directory's files and the in-memory views the handlers share:
// published models (immutable, loaded once) and datasets (parsed once).
#ifndef SPINNET_SERVER_REGISTRY_H_
#define SPINNET_SERVER_REGISTRY_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "core/dataset.h"
#include "core/model_io.h"
#include "google/protobuf/timestamp.pb.h"
#include "server/store.h"

namespace spinnet::server {

// Layout of --data-dir: spinnet.db (the Store), models/<job id>.spnm,
// checkpoints/<job id>.ckpt (+ .prev), datasets/<name>.csv, LOCK.
struct DataDir {
  std::string root;
  std::string db() const { return root + "/spinnet.db"; }
  std::string model_file(const std::string& job_id) const {
    return root + "/models/" + job_id + ".spnm";
  }
  std::string checkpoint(const std::string& job_id) const {
    return root + "/checkpoints/" + job_id + ".ckpt";
  }
  std::string dataset_file(const std::string& name) const {
    return root + "/datasets/" + name + ".csv";
  }
};

// An exclusive flock on <data dir>/LOCK, held while the object lives.
class DataDirLock {
 public:
  // Creates the directories and takes the lock; FAILED_PRECONDITION if
  // another server holds it.
  static absl::StatusOr<std::unique_ptr<DataDirLock>> Acquire(
      const DataDir& dir);
  ~DataDirLock();
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;

 private:
  explicit DataDirLock(int fd) : fd_(fd) {}
  int fd_;
};

// Now, to the microsecond (protobuf 3.21's TimeUtil::GetCurrentTime has
// whole seconds only, which would tie the order of jobs).
google::protobuf::Timestamp TimestampNow();

// A name for models and datasets: [A-Za-z0-9._-], 1..64, not starting
// with '.'. INVALID_ARGUMENT naming `what` otherwise.
absl::Status ValidateName(const std::string& what, const std::string& name);

// A published model version, ready to run.
struct LoadedModel {
  std::shared_ptr<const Model> model;
  v1::Model info;
};

class ModelRegistry {
 public:
  ModelRegistry(Store* store, DataDir dir) : store_(store), dir_(std::move(dir)) {}
  // version 0: latest. NOT_FOUND for unknown models/versions.
  absl::StatusOr<LoadedModel> Get(const std::string& name, int version);
  absl::Status Delete(const std::string& name, int version);

 private:
  Store* store_;
  DataDir dir_;
  std::mutex mu_;
  std::map<std::pair<std::string, int>, LoadedModel> cache_;
};

// A dataset ready to train on: the fixed 80/20 split.
struct LoadedDataset {
  std::shared_ptr<const DatasetSplit> split;
  v1::Dataset info;
};

class DatasetRegistry {
 public:
  DatasetRegistry(Store* store, DataDir dir, int64_t max_upload_bytes)
      : store_(store), dir_(std::move(dir)), max_bytes_(max_upload_bytes) {}
  // "digits" is built in.
  absl::StatusOr<LoadedDataset> Get(const std::string& name);
  absl::StatusOr<std::vector<v1::Dataset>> List();
  // Validates and stores an upload: the header's name, size (<= the cap)
  // and SHA-256 must match the bytes, and the bytes must parse as the
  // core's CSV format with the header's input_dim. Nothing is stored on
  // error.
  absl::StatusOr<v1::Dataset> Add(const v1::UploadDatasetHeader& header,
                                  std::string bytes);
  absl::Status Delete(const std::string& name);
  int64_t max_upload_bytes() const { return max_bytes_; }

 private:
  absl::StatusOr<v1::Dataset> DigitsInfo();
  Store* store_;
  DataDir dir_;
  int64_t max_bytes_;
  std::mutex mu_;
  std::map<std::string, LoadedDataset> cache_;
};

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_REGISTRY_H_
