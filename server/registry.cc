#include "server/registry.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "core/sha256.h"
#include "core/status_macros.h"
#include "google/protobuf/util/time_util.h"

namespace spinnet::server {
namespace {

absl::Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", path, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

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

absl::StatusOr<std::unique_ptr<DataDirLock>> DataDirLock::Acquire(
    const DataDir& dir) {
  const std::string& root = dir.root;
  RETURN_IF_ERROR(MakeDir(root));
  for (const char* sub : {"/models", "/checkpoints", "/datasets"}) {
    RETURN_IF_ERROR(MakeDir(root + sub));
  }
  const std::string lock = root + "/LOCK";
  const int fd = open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open ", lock, ": ", strerror(errno)));
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    close(fd);
    return absl::FailedPreconditionError(absl::StrCat(
        "another spinnet-server is already running on data dir ", root));
  }
  return std::unique_ptr<DataDirLock>(new DataDirLock(fd));
}

DataDirLock::~DataDirLock() { close(fd_); }  // releases the flock

google::protobuf::Timestamp TimestampNow() {
  return google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(
      absl::ToUnixMicros(absl::Now()));
}

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

absl::StatusOr<LoadedModel> ModelRegistry::Get(const std::string& name,
                                               int version) {
  RETURN_IF_ERROR(ValidateName("model", name));
  if (version < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model version ", version, "; need >= 1, or 0 for latest"));
  }
  ASSIGN_OR_RETURN(v1::Model info, store_->GetModel(name, version));
  const auto key = std::make_pair(name, info.version());
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
  }
  ASSIGN_OR_RETURN(Model model,
                   LoadModel(dir_.model_file(info.source_job_id())));
  LoadedModel loaded{std::make_shared<const Model>(std::move(model)), info};
  std::lock_guard<std::mutex> lock(mu_);
  return cache_.emplace(key, loaded).first->second;
}

absl::Status ModelRegistry::Delete(const std::string& name, int version) {
  RETURN_IF_ERROR(ValidateName("model", name));
  if (version <= 0) {
    return absl::InvalidArgumentError(
        "DeleteModel needs an explicit version >= 1");
  }
  ASSIGN_OR_RETURN(v1::Model info, store_->GetModel(name, version));
  RETURN_IF_ERROR(store_->DeleteModel(name, version));
  {
    std::lock_guard<std::mutex> lock(mu_);
    cache_.erase({name, version});
  }
  // Sessions holding the shared_ptr keep running; the file goes now.
  unlink(dir_.model_file(info.source_job_id()).c_str());
  return absl::OkStatus();
}

absl::StatusOr<v1::Dataset> DatasetRegistry::DigitsInfo() {
  ASSIGN_OR_RETURN(LoadedDataset d, Get("digits"));
  return d.info;
}

absl::StatusOr<LoadedDataset> DatasetRegistry::Get(const std::string& name) {
  RETURN_IF_ERROR(ValidateName("dataset", name));
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(name);
    if (it != cache_.end()) return it->second;
  }
  LoadedDataset loaded;
  if (name == "digits") {
    ASSIGN_OR_RETURN(Dataset digits, LoadDigits(DefaultDigitsPath()));
    loaded.info = DescribeDataset(digits);
    loaded.info.set_read_only(true);
    loaded.info.set_sha256(kDigitsSha256);
    loaded.split = std::make_shared<const DatasetSplit>(SplitFixed(digits));
  } else {
    ASSIGN_OR_RETURN(loaded.info, store_->GetDataset(name));
    CsvOptions options;
    options.input_dim = loaded.info.input_dim();
    ASSIGN_OR_RETURN(Dataset data, LoadCsv(dir_.dataset_file(name), options));
    data.name = name;
    loaded.split = std::make_shared<const DatasetSplit>(SplitFixed(data));
  }
  std::lock_guard<std::mutex> lock(mu_);
  return cache_.emplace(name, loaded).first->second;
}

absl::StatusOr<std::vector<v1::Dataset>> DatasetRegistry::List() {
  ASSIGN_OR_RETURN(std::vector<v1::Dataset> out, store_->ListDatasets());
  ASSIGN_OR_RETURN(v1::Dataset digits, DigitsInfo());
  out.insert(out.begin(), digits);
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
  std::lock_guard<std::mutex> lock(mu_);
  if (store_->GetDataset(header.name()).ok()) {
    return absl::AlreadyExistsError(
        absl::StrCat("dataset \"", header.name(), "\" already exists"));
  }
  // File first, then the row: a crash in between leaves an orphan file that
  // the next upload of that name overwrites, never a row without a file.
  RETURN_IF_ERROR(WriteFileAtomically(dir_.dataset_file(header.name()), bytes));
  RETURN_IF_ERROR(store_->InsertDataset(info));
  return info;
}

absl::Status DatasetRegistry::Delete(const std::string& name) {
  RETURN_IF_ERROR(ValidateName("dataset", name));
  if (name == "digits") {
    return absl::FailedPreconditionError(
        "dataset digits is built in and read-only");
  }
  RETURN_IF_ERROR(store_->DeleteDataset(name));
  std::lock_guard<std::mutex> lock(mu_);
  cache_.erase(name);
  unlink(dir_.dataset_file(name).c_str());
  return absl::OkStatus();
}

}  // namespace spinnet::server
