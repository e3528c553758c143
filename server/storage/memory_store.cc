#include "server/storage/memory_store.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "server/storage/job_records.h"

namespace spinnet::server {
namespace {

// Newest first: create time, then id, descending (jobs and sweeps).
template <typename Record>
bool NewerFirst(const Record& a, const Record& b) {
  return std::make_tuple(ToMicros(a.create_time()), a.id()) >
         std::make_tuple(ToMicros(b.create_time()), b.id());
}

// A page of `all` newest first: at most `limit` records after `after`
// (null: from the start).
template <typename Record>
std::vector<Record> NewestPage(std::vector<Record> all, const Record* after,
                               int limit) {
  std::sort(all.begin(), all.end(), NewerFirst<Record>);
  auto it = after == nullptr ? all.begin()
                             : std::upper_bound(all.begin(), all.end(), *after,
                                                NewerFirst<Record>);
  std::vector<Record> page;
  for (; it != all.end() && static_cast<int>(page.size()) < limit; ++it) {
    page.push_back(*it);
  }
  return page;
}

}  // namespace

absl::Status MemoryBlobStore::Put(const std::string& key,
                                  absl::string_view bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  blobs_[key] = std::string(bytes);
  return absl::OkStatus();
}

absl::StatusOr<std::string> MemoryBlobStore::Get(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_.find(key);
  if (it == blobs_.end()) {
    return absl::NotFoundError(absl::StrCat("blob \"", key, "\" not found"));
  }
  return it->second;
}

absl::Status MemoryBlobStore::Delete(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  blobs_.erase(key);
  return absl::OkStatus();
}

MemoryStore::JobRow* MemoryStore::Leased(const Lease& lease) {
  auto it = jobs_.find(lease.job_id);
  if (it == jobs_.end() || it->second.token != lease.token ||
      it->second.token == 0 ||
      it->second.job.state() != v1::JOB_STATE_RUNNING) {
    return nullptr;
  }
  return &it->second;
}

void MemoryStore::Write(JobRow* row, const v1::TrainingJob& job) {
  const bool cancel = row->job.cancel_requested();
  row->job = job;
  row->job.set_cancel_requested(cancel && !IsTerminal(job.state()));
  row->job.set_revision(++revision_);
  if (IsTerminal(job.state())) {  // however it ended: nothing resumes it
    blobs_.Delete(CheckpointBlobKey(job.id())).IgnoreError();
    blobs_.Delete(PreviousCheckpointBlobKey(job.id())).IgnoreError();
  }
}

void MemoryStore::Notify(const std::string& job_id) {
  if (changed_) changed_(job_id);
}

absl::StatusOr<Store::Inserted> MemoryStore::InsertJob(
    const v1::TrainingJob& job, int max_queued) {
  RETURN_IF_ERROR(CheckSingleJob(job));
  v1::TrainingJob stored;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!job.request_id().empty()) {
      auto it = request_ids_.find(job.request_id());
      if (it != request_ids_.end()) return Inserted{jobs_[it->second].job, false};
    }
    if (jobs_.count(job.id()) > 0) {
      return absl::AlreadyExistsError(
          absl::StrCat("job \"", job.id(), "\" already exists"));
    }
    int queued = 0;
    for (const auto& [id, row] : jobs_) {
      queued += row.job.state() == v1::JOB_STATE_QUEUED &&
                row.job.sweep_id().empty();
    }
    if (queued >= max_queued) return QueueFull(max_queued);
    JobRow& row = jobs_[job.id()];
    Write(&row, job);
    if (!job.request_id().empty()) request_ids_[job.request_id()] = job.id();
    stored = row.job;
  }
  Notify(job.id());
  return Inserted{stored, true};
}

absl::StatusOr<v1::TrainingJob> MemoryStore::GetJob(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return JobNotFound(id);
  return it->second.job;
}

absl::StatusOr<std::vector<v1::TrainingJob>> MemoryStore::ListJobs(
    v1::JobState state, int limit, const std::string& after_id) {
  if (limit < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("page size ", limit, "; need >= 1"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<v1::TrainingJob> all;
  for (const auto& [id, row] : jobs_) {
    if (state == v1::JOB_STATE_UNSPECIFIED || row.job.state() == state) {
      all.push_back(row.job);
    }
  }
  const v1::TrainingJob* after = nullptr;
  if (!after_id.empty()) {
    auto it = jobs_.find(after_id);
    if (it == jobs_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad page token: no job \"", after_id, "\""));
    }
    after = &it->second.job;
  }
  return NewestPage(std::move(all), after, limit);
}

absl::StatusOr<StoreCounts> MemoryStore::Count() {
  std::lock_guard<std::mutex> lock(mu_);
  StoreCounts c;
  for (const auto& [id, row] : jobs_) {
    switch (row.job.state()) {
      case v1::JOB_STATE_QUEUED: ++c.queued; break;
      case v1::JOB_STATE_RUNNING: ++c.running; break;
      case v1::JOB_STATE_SUCCEEDED: ++c.succeeded; break;
      case v1::JOB_STATE_FAILED: ++c.failed; break;
      case v1::JOB_STATE_CANCELLED: ++c.cancelled; break;
      default: break;
    }
  }
  c.models = static_cast<int64_t>(models_.size());
  c.datasets = static_cast<int64_t>(datasets_.size());
  return c;
}

absl::StatusOr<std::optional<ClaimedJob>> MemoryStore::ClaimJob(
    const std::string& worker, absl::Duration ttl) {
  ClaimedJob claimed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    JobRow* oldest = nullptr;
    for (auto& [id, row] : jobs_) {
      if (row.job.state() != v1::JOB_STATE_QUEUED) continue;
      if (oldest == nullptr || NewerFirst(oldest->job, row.job)) oldest = &row;
    }
    if (oldest == nullptr) return std::optional<ClaimedJob>();
    v1::TrainingJob job = oldest->job;
    ApplyClaim(worker, &job);
    Write(oldest, job);
    oldest->token = next_token_++;
    oldest->lease_expires = now_() + ttl;
    claimed.job = oldest->job;
    claimed.lease = Lease{job.id(), oldest->token};
  }
  Notify(claimed.lease.job_id);
  return std::optional<ClaimedJob>(std::move(claimed));
}

absl::StatusOr<bool> MemoryStore::Heartbeat(const Lease& lease,
                                            const v1::TrainingJob& job,
                                            absl::Duration ttl) {
  bool cancel;
  {
    std::lock_guard<std::mutex> lock(mu_);
    JobRow* row = Leased(lease);
    if (row == nullptr) return LeaseLost(lease.job_id);
    Write(row, job);
    row->lease_expires = now_() + ttl;
    cancel = row->job.cancel_requested();
  }
  Notify(lease.job_id);
  return cancel;
}

absl::Status MemoryStore::RecordEpoch(const Lease& lease,
                                      const v1::TrainingJob& job,
                                      const v1::EpochMetrics& epoch,
                                      absl::string_view checkpoint) {
  RETURN_IF_ERROR(CheckEpochNumber(epoch));
  {
    std::lock_guard<std::mutex> lock(mu_);
    JobRow* row = Leased(lease);
    if (row == nullptr) return LeaseLost(lease.job_id);
    if (!checkpoint.empty()) {
      absl::StatusOr<std::string> newest =
          blobs_.Get(CheckpointBlobKey(lease.job_id));
      if (newest.ok()) {
        RETURN_IF_ERROR(
            blobs_.Put(PreviousCheckpointBlobKey(lease.job_id), *newest));
      }
      RETURN_IF_ERROR(blobs_.Put(CheckpointBlobKey(lease.job_id), checkpoint));
    }
    epochs_[{lease.job_id, epoch.epoch()}] = epoch;
    Write(row, job);
  }
  Notify(lease.job_id);
  return absl::OkStatus();
}

absl::StatusOr<Store::Checkpoints> MemoryStore::LoadCheckpoints(
    const std::string& job_id) {
  return ReadCheckpoints(blobs_, job_id);
}

absl::StatusOr<v1::TrainingJob> MemoryStore::FinishJob(
    const Lease& lease, v1::TrainingJob job,
    std::optional<ModelToPublish> model) {
  RETURN_IF_ERROR(CheckFinishable(job, model.has_value()));
  {
    std::lock_guard<std::mutex> lock(mu_);
    JobRow* row = Leased(lease);
    if (row == nullptr) return LeaseLost(lease.job_id);
    if (!ApplyFinish(row->job.cancel_requested(), &job)) model.reset();
    if (model.has_value()) {
      ASSIGN_OR_RETURN(const v1::Model info,
                       Publish(*std::move(model), job.id()));
      job.set_model_version(info.version());
    }
    Write(row, job);
    row->token = 0;
    job = row->job;
  }
  Notify(lease.job_id);
  return job;
}

absl::Status MemoryStore::ReleaseJob(const Lease& lease,
                                     const v1::TrainingJob& job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    JobRow* row = Leased(lease);
    if (row == nullptr) return LeaseLost(lease.job_id);
    v1::TrainingJob released = job;
    ApplyRelease(row->job.cancel_requested(), &released);
    Write(row, released);
    row->token = 0;
  }
  Notify(lease.job_id);
  return absl::OkStatus();
}

void MemoryStore::Cancel(JobRow* row) {
  v1::TrainingJob job = row->job;
  if (job.state() == v1::JOB_STATE_QUEUED) {
    ApplyCancel(&job);
    Write(row, job);
  } else {
    Write(row, job);
    row->job.set_cancel_requested(true);
  }
}

absl::StatusOr<v1::TrainingJob> MemoryStore::CancelJob(const std::string& id) {
  v1::TrainingJob out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return JobNotFound(id);
    JobRow& row = it->second;
    if (IsTerminal(row.job.state())) return AlreadyEnded(row.job);
    Cancel(&row);
    out = row.job;
  }
  Notify(id);
  return out;
}

absl::StatusOr<Store::InsertedSweep> MemoryStore::InsertSweep(
    const v1::Sweep& sweep, const std::vector<v1::TrainingJob>& jobs,
    int max_queued) {
  RETURN_IF_ERROR(CheckSweepJobs(sweep, jobs));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!sweep.request_id().empty()) {
      for (const auto& [id, stored] : sweeps_) {
        if (stored.request_id() == sweep.request_id()) {
          return InsertedSweep{stored, false};
        }
      }
    }
    if (sweeps_.count(sweep.id()) > 0) {
      return absl::AlreadyExistsError(
          absl::StrCat("sweep \"", sweep.id(), "\" already exists"));
    }
    int64_t queued = 0;
    for (const auto& [id, row] : jobs_) {
      queued += row.job.state() == v1::JOB_STATE_QUEUED &&
                !row.job.sweep_id().empty();
    }
    if (queued + static_cast<int64_t>(jobs.size()) > max_queued) {
      return SweepQueueFull(max_queued, queued, jobs.size());
    }
    for (const v1::TrainingJob& job : jobs) {
      if (jobs_.count(job.id()) > 0) {
        return absl::AlreadyExistsError(
            absl::StrCat("job \"", job.id(), "\" already exists"));
      }
    }
    for (const v1::TrainingJob& job : jobs) Write(&jobs_[job.id()], job);
    sweeps_[sweep.id()] = sweep;
  }
  for (const v1::TrainingJob& job : jobs) Notify(job.id());
  return InsertedSweep{sweep, true};
}

absl::StatusOr<v1::Sweep> MemoryStore::GetSweep(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sweeps_.find(id);
  if (it == sweeps_.end()) return SweepNotFound(id);
  return it->second;
}

absl::StatusOr<std::vector<v1::Sweep>> MemoryStore::ListSweeps(
    int limit, const std::string& after_id) {
  if (limit < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("page size ", limit, "; need >= 1"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<v1::Sweep> all;
  for (const auto& [id, sweep] : sweeps_) all.push_back(sweep);
  const v1::Sweep* after = nullptr;
  if (!after_id.empty()) {
    auto it = sweeps_.find(after_id);
    if (it == sweeps_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad page token: no sweep \"", after_id, "\""));
    }
    after = &it->second;
  }
  return NewestPage(std::move(all), after, limit);
}

absl::StatusOr<std::vector<v1::TrainingJob>> MemoryStore::ListSweepJobs(
    const std::string& sweep_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (sweeps_.count(sweep_id) == 0) return SweepNotFound(sweep_id);
  std::vector<v1::TrainingJob> out;
  for (const auto& [id, row] : jobs_) {
    if (row.job.sweep_id() == sweep_id) out.push_back(row.job);
  }
  return out;
}

absl::StatusOr<v1::Sweep> MemoryStore::CancelSweep(const std::string& id) {
  v1::Sweep out;
  std::vector<std::string> changed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sweeps_.find(id);
    if (it == sweeps_.end()) return SweepNotFound(id);
    it->second.set_cancel_requested(true);
    for (auto& [job_id, row] : jobs_) {
      if (row.job.sweep_id() != id || IsTerminal(row.job.state())) continue;
      Cancel(&row);
      changed.push_back(job_id);
    }
    out = it->second;
  }
  for (const std::string& job_id : changed) Notify(job_id);
  return out;
}

absl::StatusOr<ReapResult> MemoryStore::ReapExpiredLeases(int max_attempts) {
  ReapResult result;
  std::vector<std::string> changed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const absl::Time now = now_();
    for (auto& [id, row] : jobs_) {
      if (row.job.state() != v1::JOB_STATE_RUNNING || row.token == 0 ||
          row.lease_expires >= now) {
        continue;
      }
      v1::TrainingJob job = row.job;
      switch (ApplyExpiry(max_attempts, job.cancel_requested(), &job)) {
        case v1::JOB_STATE_QUEUED: ++result.requeued; break;
        case v1::JOB_STATE_FAILED: ++result.failed; break;
        default: ++result.cancelled; break;
      }
      Write(&row, job);
      row.token = 0;
      changed.push_back(id);
    }
  }
  for (const std::string& id : changed) Notify(id);
  return result;
}

absl::StatusOr<std::vector<v1::EpochMetrics>> MemoryStore::ListEpochs(
    const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (jobs_.count(job_id) == 0) return JobNotFound(job_id);
  std::vector<v1::EpochMetrics> out;
  for (auto it = epochs_.lower_bound({job_id, 0});
       it != epochs_.end() && it->first.first == job_id; ++it) {
    out.push_back(it->second);
  }
  return out;
}

absl::Status MemoryStore::InsertDataset(const v1::Dataset& dataset,
                                        absl::string_view bytes) {
  if (dataset.name().empty()) {
    return absl::InvalidArgumentError("dataset name is empty");
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (datasets_.count(dataset.name()) > 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("dataset \"", dataset.name(), "\" already exists"));
  }
  RETURN_IF_ERROR(blobs_.Put(DatasetBlobKey(dataset.name()), bytes));
  datasets_[dataset.name()] = dataset;
  return absl::OkStatus();
}

absl::StatusOr<v1::Dataset> MemoryStore::GetDataset(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = datasets_.find(name);
  if (it == datasets_.end()) return DatasetNotFound(name);
  return it->second;
}

absl::StatusOr<std::vector<v1::Dataset>> MemoryStore::ListDatasets() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<v1::Dataset> out;
  for (const auto& [name, d] : datasets_) out.push_back(d);
  return out;
}

absl::Status MemoryStore::DeleteDataset(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  if (datasets_.erase(name) == 0) return DatasetNotFound(name);
  return blobs_.Delete(DatasetBlobKey(name));
}

absl::StatusOr<v1::Model> MemoryStore::GetModel(const std::string& name,
                                                int version) {
  if (version < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model version ", version, "; need >= 0"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (version == 0) {
    auto it = models_.lower_bound({name, INT32_MAX});
    if (it == models_.begin() || std::prev(it)->first.first != name) {
      return ModelNotFound(name, 0);
    }
    return std::prev(it)->second;
  }
  auto it = models_.find({name, version});
  if (it == models_.end()) return ModelNotFound(name, version);
  return it->second;
}

absl::StatusOr<std::vector<v1::Model>> MemoryStore::ListModels(
    const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<v1::Model> out;
  for (const auto& [key, m] : models_) {
    if (name.empty() || key.first == name) out.push_back(m);
  }
  return out;
}

absl::Status MemoryStore::DeleteModel(const std::string& name, int version) {
  if (version < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("model version ", version, "; need >= 1"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = models_.find({name, version});
  if (it == models_.end()) return ModelNotFound(name, version);
  const std::string key = ModelBlobKeyOf(it->second);
  models_.erase(it);
  return blobs_.Delete(key);
}

absl::StatusOr<v1::Model> MemoryStore::InsertModel(ModelToPublish model) {
  RETURN_IF_ERROR(CheckImportable(model));
  std::lock_guard<std::mutex> lock(mu_);
  return Publish(std::move(model), "");
}

absl::StatusOr<v1::Model> MemoryStore::Publish(ModelToPublish model,
                                               const std::string& job_id) {
  v1::Model& info = model.info;
  info.set_version(++last_version_[info.name()]);
  info.set_source_job_id(job_id);
  RETURN_IF_ERROR(blobs_.Put(ModelBlobKeyOf(info), model.bytes));
  models_[{info.name(), info.version()}] = info;
  return std::move(info);
}

}  // namespace spinnet::server
