// The published models and uploaded datasets, ready to use: loaded from the
// store's records and blobs, and cached in memory. The store stays the
// truth: every lookup reads the record (one indexed query), so a version
// published or deleted by another replica is seen at once, and the cache
// only saves parsing the blob again.
#ifndef SPINNET_SERVER_CATALOG_REGISTRY_H_
#define SPINNET_SERVER_CATALOG_REGISTRY_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dataset.h"
#include "core/model_io.h"
#include "server/storage/store.h"

namespace spinnet::server {

// A name for models and datasets: [A-Za-z0-9._-], 1..64, not starting
// with '.'. INVALID_ARGUMENT naming `what` otherwise.
absl::Status ValidateName(const std::string& what, const std::string& name);

// The record of `model` published as `name`: what the file holds (spec,
// dataset, classes, sizes) and the time now. A job adds its accuracies and
// energy; an import has none.
v1::Model DescribeModel(const std::string& name, const Model& model);

// A published model version, ready to run.
struct LoadedModel {
  std::shared_ptr<const Model> model;
  v1::Model info;
};

// A published model version's file, as stored.
struct ModelFile {
  v1::Model info;
  std::string bytes;  // core/model_io.h format
};

class ModelRegistry {
 public:
  // Imports of more than `max_import_bytes` are refused.
  ModelRegistry(Store* store, int64_t max_import_bytes)
      : store_(store), max_import_bytes_(max_import_bytes) {}
  // version 0: latest. NOT_FOUND for unknown models/versions (also when
  // another replica deleted it a moment ago).
  absl::StatusOr<LoadedModel> Get(const std::string& name, int version);
  // Sessions holding the loaded model keep running on it.
  absl::Status Delete(const std::string& name, int version);
  // The version's file exactly as stored, after checking that it still
  // parses (DATA_LOSS naming the version if it does not). Errors as Get.
  absl::StatusOr<ModelFile> Export(const std::string& name, int version);
  // Publishes `bytes` (a model file) as the next version of `name`, once it
  // has parsed and passed its checks: INVALID_ARGUMENT for a bad name, an
  // empty file, one over max_import_bytes() or not a model file; DATA_LOSS
  // for a corrupt or truncated one. Nothing is stored on error. The new
  // version is served at once (Get reads the store's records).
  absl::StatusOr<v1::Model> Import(const std::string& name, std::string bytes);
  int64_t max_import_bytes() const { return max_import_bytes_; }

 private:
  // `bytes` parsed as the file of `info`; errors name the version.
  static absl::StatusOr<Model> ParseFile(const v1::Model& info,
                                         absl::string_view bytes);
  // Adds a parsed version to the cache; returns the shared model.
  std::shared_ptr<const Model> Cache(const v1::Model& info, Model model);

  Store* store_;
  const int64_t max_import_bytes_;
  std::mutex mu_;
  // By (name, version, source job): a version number is never reused.
  std::map<std::tuple<std::string, int, std::string>,
           std::shared_ptr<const Model>>
      cache_;
};

// A dataset ready to train on: its fixed 80/20 split, or the split its name
// asks for ("digits:validation", "digits:partition-3": core/dataset.h
// SplitChoice).
struct LoadedDataset {
  std::shared_ptr<const DatasetSplit> split;
  v1::Dataset info;
};

class DatasetRegistry {
 public:
  DatasetRegistry(Store* store, int64_t max_upload_bytes)
      : store_(store), max_bytes_(max_upload_bytes) {}
  // "digits" is built in; a ":validation" or ":partition-N" suffix picks
  // another split of the same data. DATA_LOSS when the stored bytes do not
  // match the record's SHA-256.
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
  absl::StatusOr<LoadedDataset> Digits();
  Store* store_;
  int64_t max_bytes_;
  std::mutex mu_;
  // By (name as asked, sha256).
  std::map<std::pair<std::string, std::string>, LoadedDataset> cache_;
};

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_CATALOG_REGISTRY_H_
