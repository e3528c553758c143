#include "server/catalog/registry.h"

#include <cctype>

#include "absl/strings/str_cat.h"
#include "core/sha256.h"
#include "core/status_macros.h"
#include "proto/api_convert.h"
#include "server/storage/job_records.h"

namespace spinnet::server {
namespace {

// Loaded versions kept per process; past this the cache starts again (a
// reload costs one blob read and a parse).
constexpr size_t kMaxCached = 256;

v1::Dataset DescribeDataset(const Dataset& d) {
  v1::Dataset info;
  info.set_name(d.name);
  info.set_input_dim(d.input_dim);
  info.set_steps(d.steps);
  info.set_sequences(static_cast<int32_t>(d.size()));
  for (const auto& label : d.class_labels) info.add_class_labels(label);
  return info;
}

}  // namespace

absl::Status ValidateName(const std::string& what, const std::string& name) {
  bool ok = !name.empty() && name.size() <= 64 && name[0] != '.';
  for (char c : name) {
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' ||
                c == '_' || c == '-');
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " name '", name,
                     "' is invalid; use 1-64 of [A-Za-z0-9._-], not "
                     "starting with '.'"));
  }
  return absl::OkStatus();
}

v1::Model DescribeModel(const std::string& name, const Model& model) {
  v1::Model info;
  info.set_name(name);
  *info.mutable_spec() =
      api::SpecToProto({model.network, model.device, model.train});
  info.set_dataset(model.dataset_name);
  for (const auto& label : model.class_labels) info.add_class_labels(label);
  info.set_input_dim(model.network.input_dim);
  info.set_sequence_steps(model.sequence_steps);
  *info.mutable_create_time() = TimestampNow();
  return info;
}

namespace {

// Versions are never reused, and a job's and an import's never share a
// number, so (name, version, source job) names one file forever.
std::tuple<std::string, int, std::string> CacheKey(const v1::Model& info) {
  return std::make_tuple(info.name(), info.version(), info.source_job_id());
}

absl::Status CheckVersion(int version) {
  if (version >= 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("model version ", version, "; need >= 1, or 0 for latest"));
}

}  // namespace

absl::StatusOr<Model> ModelRegistry::ParseFile(const v1::Model& info,
                                               absl::string_view bytes) {
  absl::StatusOr<Model> model = ParseModel(bytes);
  if (!model.ok()) {
    return absl::Status(
        model.status().code(),
        absl::StrCat("model ", info.name(), " version ", info.version(), ": ",
                     model.status().message()));
  }
  return model;
}

std::shared_ptr<const Model> ModelRegistry::Cache(const v1::Model& info,
                                                  Model model) {
  auto shared = std::make_shared<const Model>(std::move(model));
  std::lock_guard<std::mutex> lock(mu_);
  if (cache_.size() >= kMaxCached) cache_.clear();
  cache_.emplace(CacheKey(info), shared);
  return shared;
}

absl::StatusOr<LoadedModel> ModelRegistry::Get(const std::string& name,
                                               int version) {
  RETURN_IF_ERROR(ValidateName("model", name));
  RETURN_IF_ERROR(CheckVersion(version));
  ASSIGN_OR_RETURN(v1::Model info, store_->GetModel(name, version));
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(CacheKey(info));
    if (it != cache_.end()) return LoadedModel{it->second, info};
  }
  ASSIGN_OR_RETURN(const std::string bytes,
                   store_->blobs().Get(ModelBlobKeyOf(info)));
  ASSIGN_OR_RETURN(Model model, ParseFile(info, bytes));
  return LoadedModel{Cache(info, std::move(model)), info};
}

absl::StatusOr<ModelFile> ModelRegistry::Export(const std::string& name,
                                                int version) {
  RETURN_IF_ERROR(ValidateName("model", name));
  RETURN_IF_ERROR(CheckVersion(version));
  ModelFile file;
  ASSIGN_OR_RETURN(file.info, store_->GetModel(name, version));
  ASSIGN_OR_RETURN(file.bytes, store_->blobs().Get(ModelBlobKeyOf(file.info)));
  // A file that no longer parses would only fail later, on the caller's
  // machine or chip.
  RETURN_IF_ERROR(ParseFile(file.info, file.bytes).status());
  return file;
}

absl::StatusOr<v1::Model> ModelRegistry::Import(const std::string& name,
                                                std::string bytes) {
  RETURN_IF_ERROR(ValidateName("model", name));
  if (bytes.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("model file for ", name, " is empty"));
  }
  if (static_cast<int64_t>(bytes.size()) > max_import_bytes_) {
    return absl::InvalidArgumentError(
        absl::StrCat("model file of ", bytes.size(), " bytes; the limit is ",
                     max_import_bytes_));
  }
  absl::StatusOr<Model> model = ParseModel(bytes);
  if (!model.ok()) {
    return absl::Status(
        model.status().code(),
        absl::StrCat("model file for ", name, ": ", model.status().message()));
  }
  ASSIGN_OR_RETURN(v1::Model info,
                   store_->InsertModel(ModelToPublish{
                       DescribeModel(name, *model), std::move(bytes)}));
  Cache(info, *std::move(model));
  return info;
}

absl::Status ModelRegistry::Delete(const std::string& name, int version) {
  RETURN_IF_ERROR(ValidateName("model", name));
  if (version <= 0) {
    return absl::InvalidArgumentError(
        "DeleteModel needs an explicit version >= 1");
  }
  return store_->DeleteModel(name, version);
}

absl::StatusOr<LoadedDataset> DatasetRegistry::Digits() {
  return Get("digits");
}

absl::StatusOr<LoadedDataset> DatasetRegistry::Get(const std::string& dataset) {
  ASSIGN_OR_RETURN(const auto parsed, ParseSplitChoice(dataset));
  const auto& [name, choice] = parsed;
  RETURN_IF_ERROR(ValidateName("dataset", name));
  v1::Dataset info;
  if (name != "digits") {
    ASSIGN_OR_RETURN(info, store_->GetDataset(name));
  }
  // By the name as asked (with its split) and the bytes' SHA-256: a name
  // deleted and uploaded again is a new entry.
  const auto key = std::make_pair(dataset, info.sha256());
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
  }
  Dataset data;
  if (name == "digits") {
    ASSIGN_OR_RETURN(data, LoadDigits(DefaultDigitsPath()));
    info = DescribeDataset(data);
    info.set_read_only(true);
    info.set_sha256(kDigitsSha256);
  } else {
    ASSIGN_OR_RETURN(const std::string bytes,
                     store_->blobs().Get(DatasetBlobKey(name)));
    if (Sha256Hex(bytes) != info.sha256()) {
      return absl::DataLossError(absl::StrCat(
          "dataset ", name, ": stored bytes do not match its SHA-256"));
    }
    CsvOptions options;
    options.input_dim = info.input_dim();
    ASSIGN_OR_RETURN(data, ParseCsv(bytes, options, name));
  }
  LoadedDataset loaded{
      std::make_shared<const DatasetSplit>(MakeSplit(data, choice)), info};
  std::lock_guard<std::mutex> lock(mu_);
  if (cache_.size() >= kMaxCached) cache_.clear();
  return cache_.emplace(key, loaded).first->second;
}

absl::StatusOr<std::vector<v1::Dataset>> DatasetRegistry::List() {
  ASSIGN_OR_RETURN(std::vector<v1::Dataset> out, store_->ListDatasets());
  ASSIGN_OR_RETURN(LoadedDataset digits, Digits());
  out.insert(out.begin(), digits.info);
  return out;
}

absl::StatusOr<v1::Dataset> DatasetRegistry::Add(
    const v1::UploadDatasetHeader& header, std::string bytes) {
  RETURN_IF_ERROR(ValidateName("dataset", header.name()));
  if (header.name() == "digits") {
    return absl::AlreadyExistsError("dataset digits is built in");
  }
  if (header.input_dim() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("input_dim ", header.input_dim(), "; need >= 1"));
  }
  if (static_cast<int64_t>(bytes.size()) != header.size_bytes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("upload has ", bytes.size(), " bytes; the header said ",
                     header.size_bytes()));
  }
  const std::string sha = Sha256Hex(bytes);
  if (sha != header.sha256()) {
    return absl::DataLossError(absl::StrCat(
        "upload checksum mismatch: got sha256 ", sha, ", header says '",
        header.sha256(), "'"));
  }
  CsvOptions options;
  options.input_dim = header.input_dim() == 0 ? 1 : header.input_dim();
  ASSIGN_OR_RETURN(Dataset data, ParseCsv(bytes, options, header.name()));
  if (data.class_labels.size() < 2) {
    return absl::InvalidArgumentError(
        "a training dataset needs at least two classes");
  }
  v1::Dataset info = DescribeDataset(data);
  info.set_size_bytes(static_cast<int64_t>(bytes.size()));
  info.set_sha256(sha);
  *info.mutable_create_time() = TimestampNow();
  RETURN_IF_ERROR(store_->InsertDataset(info, bytes));
  return info;
}

absl::Status DatasetRegistry::Delete(const std::string& name) {
  RETURN_IF_ERROR(ValidateName("dataset", name));
  if (name == "digits") {
    return absl::FailedPreconditionError(
        "dataset digits is built in and read-only");
  }
  return store_->DeleteDataset(name);
}

}  // namespace spinnet::server
