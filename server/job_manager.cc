#include "server/job_manager.h"

#include <cstdio>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/logging.h"
#include "core/status_macros.h"
#include "core/trainer.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/util/time_util.h"
#include "proto/api_convert.h"

namespace spinnet::server {
namespace {

using google::protobuf::util::TimeUtil;

std::string NewJobId() {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  std::lock_guard<std::mutex> lock(mu);
  return absl::StrFormat("j-%016x", rng());
}

bool IsTerminal(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED ||
         s == v1::JOB_STATE_CANCELLED;
}

// The training setup a submit request asks for, checked against its data.
absl::StatusOr<TrainingSpec> ResolveSpec(const v1::SubmitTrainingJobRequest& r,
                                         const Dataset& train) {
  ASSIGN_OR_RETURN(TrainingSpec spec, api::SpecFromProto(r.spec()));
  spec.network.input_dim = train.input_dim;
  spec.network.num_classes = static_cast<int>(train.class_labels.size());
  RETURN_IF_ERROR(
      StartTraining(spec.network, spec.device, spec.train, train).status());
  return spec;
}

}  // namespace

struct JobManager::Running {
  std::atomic<bool> cancel{false};
};

// Reports a running job's progress to the manager and the store.
class JobManager::Observer : public TrainingObserver {
 public:
  Observer(JobManager* manager, v1::TrainingJob* job, Running* running)
      : manager_(manager), job_(job), running_(running),
        start_(absl::Now()), start_epochs_(job->epochs_done()) {}

  void OnBatch(int epoch, int done, int total) override {
    const double total_epochs = job_->epochs_total();
    job_->set_progress(((epoch - 1) + static_cast<double>(done) / total) /
                       total_epochs);
    const double run_progress =
        job_->progress() - start_epochs_ / total_epochs;
    if (run_progress > 0) {
      const double elapsed = absl::ToDoubleSeconds(absl::Now() - start_);
      const double left = elapsed * (1 - job_->progress()) / run_progress;
      *job_->mutable_eta() = TimeUtil::MillisecondsToDuration(
          static_cast<int64_t>(left * 1000));
    }
    // Watchers see about four progress updates per second at most.
    const absl::Time now = absl::Now();
    if (now - last_notify_ > absl::Milliseconds(250)) {
      last_notify_ = now;
      manager_->Notify(*job_);
    }
  }

  void OnEpoch(const EpochMetrics& m, const Checkpoint& c) override {
    // Keep the previous checkpoint until the new one is safely written.
    const std::string path = manager_->dir_.checkpoint(job_->id());
    rename(path.c_str(), (path + ".prev").c_str());
    status_.Update(SaveCheckpoint(c, path));
    const v1::EpochMetrics epoch = api::EpochMetricsToProto(m);
    job_->set_epochs_done(m.epoch);
    *job_->mutable_latest_epoch() = epoch;
    status_.Update(manager_->Record(*job_, epoch));
    manager_->metrics_->ObserveEpoch(m.epoch_seconds, m.samples_per_second);
  }

  bool StopRequested() override {
    if (running_->cancel || !status_.ok()) return true;
    std::lock_guard<std::mutex> lock(manager_->mu_);
    return manager_->shutdown_;
  }

  const absl::Status& status() const { return status_; }

 private:
  JobManager* manager_;
  v1::TrainingJob* job_;
  Running* running_;
  absl::Time start_;
  int start_epochs_;
  absl::Time last_notify_ = absl::InfinitePast();
  absl::Status status_;  // of checkpoint and store writes
};

JobManager::JobManager(Store* store, DataDir dir, DatasetRegistry* datasets,
                       ServerMetrics* metrics, JobManagerOptions options)
    : store_(store), dir_(std::move(dir)), datasets_(datasets),
      metrics_(metrics), options_(options) {}

JobManager::~JobManager() { Shutdown(); }

absl::Status JobManager::Start() {
  ASSIGN_OR_RETURN(std::vector<v1::TrainingJob> pending,
                   store_->JobsInStates({v1::JOB_STATE_RUNNING,
                                         v1::JOB_STATE_QUEUED}));
  // Interrupted jobs first (they were started first), then the queue.
  std::stable_partition(pending.begin(), pending.end(), [](const auto& j) {
    return j.state() == v1::JOB_STATE_RUNNING;
  });
  for (v1::TrainingJob& job : pending) {
    if (job.state() == v1::JOB_STATE_RUNNING) {
      job.set_restarts(job.restarts() + 1);
      RETURN_IF_ERROR(store_->UpdateJob(job));
      SPINNET_LOG(Info, "resuming job ", job.id(), " after a restart (epoch ",
                  job.epochs_done(), "/", job.epochs_total(), ")");
    }
    queue_.push_back(job.id());
  }
  for (int i = 0; i < options_.workers; ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
  RefreshGauges();
  return absl::OkStatus();
}

void JobManager::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_ && workers_.empty()) return;
    shutdown_ = true;
  }
  work_cv_.notify_all();
  update_cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

int JobManager::queue_depth() {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(queue_.size());
}

absl::StatusOr<v1::TrainingJob> JobManager::Submit(
    const v1::SubmitTrainingJobRequest& r) {
  RETURN_IF_ERROR(ValidateName("model", r.model_name()));
  if (r.dataset().empty()) {
    return absl::InvalidArgumentError("dataset is empty; e.g. \"digits\"");
  }
  if (r.request_id().size() > 128) {
    return absl::InvalidArgumentError("request_id longer than 128 bytes");
  }
  if (!r.request_id().empty()) {
    ASSIGN_OR_RETURN(auto existing, store_->FindJobByRequestId(r.request_id()));
    if (existing.has_value()) {
      using google::protobuf::util::MessageDifferencer;
      if (existing->model_name() != r.model_name() ||
          existing->dataset() != r.dataset() ||
          !MessageDifferencer::Equals(existing->spec(), r.spec())) {
        return absl::AlreadyExistsError(absl::StrCat(
            "request_id \"", r.request_id(), "\" was used for job ",
            existing->id(), " with a different request"));
      }
      return *existing;
    }
  }
  ASSIGN_OR_RETURN(LoadedDataset data, datasets_->Get(r.dataset()));
  ASSIGN_OR_RETURN(TrainingSpec spec, ResolveSpec(r, data.split->train));
  v1::TrainingJob job;
  job.set_id(NewJobId());
  job.set_request_id(r.request_id());
  job.set_model_name(r.model_name());
  job.set_dataset(r.dataset());
  *job.mutable_spec() = r.spec();
  job.set_state(v1::JOB_STATE_QUEUED);
  job.set_epochs_total(spec.train.epochs);
  *job.mutable_create_time() = TimestampNow();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_) return absl::UnavailableError("server is shutting down");
    if (static_cast<int>(queue_.size()) >= options_.max_queued) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "training queue is full (", options_.max_queued,
          " jobs waiting); retry later"));
    }
    absl::Status inserted = store_->InsertJob(job);
    if (absl::IsAlreadyExists(inserted) && !r.request_id().empty()) {
      // A concurrent submit with the same request_id won the race.
      ASSIGN_OR_RETURN(auto existing,
                       store_->FindJobByRequestId(r.request_id()));
      if (existing.has_value()) return *existing;
    }
    RETURN_IF_ERROR(inserted);
    queue_.push_back(job.id());
  }
  work_cv_.notify_one();
  RefreshGauges();
  return job;
}

absl::StatusOr<v1::TrainingJob> JobManager::Get(const std::string& id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = latest_.find(id);
    if (it != latest_.end()) return it->second.job;
  }
  return store_->GetJob(id);
}

absl::StatusOr<v1::TrainingJob> JobManager::Cancel(const std::string& id) {
  ASSIGN_OR_RETURN(v1::TrainingJob job, store_->GetJob(id));
  if (IsTerminal(job.state())) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", id, " already ended: ",
                     v1::JobState_Name(job.state())));
  }
  {
    std::unique_lock<std::mutex> lock(mu_);
    auto queued = std::find(queue_.begin(), queue_.end(), id);
    if (queued != queue_.end()) {
      queue_.erase(queued);
      lock.unlock();
      job.set_state(v1::JOB_STATE_CANCELLED);
      *job.mutable_end_time() = TimestampNow();
      RETURN_IF_ERROR(Record(job));
      RefreshGauges();
      return job;
    }
    auto running = running_.find(id);
    if (running != running_.end()) running->second->cancel = true;
  }
  // The worker stops at the next batch; wait briefly to report the result.
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  uint64_t seen = 0;
  for (;;) {
    ASSIGN_OR_RETURN(auto update, WaitForUpdate(id, seen, deadline));
    if (!update.has_value()) return Get(id);
    if (IsTerminal(update->job.state())) return update->job;
    seen = update->sequence;
  }
}

absl::StatusOr<std::optional<JobUpdate>> JobManager::WaitForUpdate(
    const std::string& id, uint64_t after_sequence, absl::Time deadline) {
  if (after_sequence == 0) {
    ASSIGN_OR_RETURN(v1::TrainingJob job, Get(id));
    std::lock_guard<std::mutex> lock(mu_);
    JobUpdate now{job, sequence_};
    return std::optional<JobUpdate>(now);
  }
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    auto it = latest_.find(id);
    if (it != latest_.end() && it->second.sequence > after_sequence) {
      return std::optional<JobUpdate>(it->second);
    }
    if (shutdown_) return absl::UnavailableError("server is shutting down");
    if (update_cv_.wait_until(lock, absl::ToChronoTime(deadline)) ==
        std::cv_status::timeout) {
      return std::optional<JobUpdate>();
    }
  }
}

void JobManager::Notify(const v1::TrainingJob& job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    JobUpdate& u = latest_[job.id()];
    u.job = job;
    u.sequence = ++sequence_;
    if (latest_.size() > 1024) {
      // Forget ended jobs first; watchers fall back to the store.
      for (auto it = latest_.begin(); it != latest_.end();) {
        it = IsTerminal(it->second.job.state()) ? latest_.erase(it)
                                                : std::next(it);
      }
    }
  }
  update_cv_.notify_all();
}

absl::Status JobManager::Record(const v1::TrainingJob& job,
                                std::optional<v1::EpochMetrics> epoch) {
  if (epoch.has_value()) RETURN_IF_ERROR(store_->PutEpoch(job.id(), *epoch));
  RETURN_IF_ERROR(store_->UpdateJob(job));
  Notify(job);
  return absl::OkStatus();
}

void JobManager::RefreshGauges() {
  for (v1::JobState s :
       {v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING, v1::JOB_STATE_SUCCEEDED,
        v1::JOB_STATE_FAILED, v1::JOB_STATE_CANCELLED}) {
    auto jobs = store_->JobsInStates({s});
    if (!jobs.ok()) continue;
    std::string name = v1::JobState_Name(s).substr(strlen("JOB_STATE_"));
    for (char& c : name) c = static_cast<char>(std::tolower(c));
    metrics_->SetJobsByState(name, static_cast<double>(jobs->size()));
  }
  metrics_->SetQueueDepth(queue_depth());
}

void JobManager::WorkerLoop() {
  for (;;) {
    std::string id;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return shutdown_ || !queue_.empty(); });
      if (shutdown_) return;
      id = queue_.front();
      queue_.pop_front();
    }
    RunJob(id);
    RefreshGauges();
  }
}

void JobManager::RunJob(const std::string& id) {
  absl::StatusOr<v1::TrainingJob> loaded = store_->GetJob(id);
  if (!loaded.ok()) {
    SPINNET_LOG(Error, "job ", id, " vanished: ", loaded.status().ToString());
    return;
  }
  v1::TrainingJob job = *std::move(loaded);
  if (IsTerminal(job.state())) return;  // cancelled while queued
  Running running;
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_[id] = &running;
  }
  job.set_state(v1::JOB_STATE_RUNNING);
  if (!job.has_start_time()) *job.mutable_start_time() = TimestampNow();
  absl::Status status = Record(job);
  if (status.ok()) status = Train(&job, &running);
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_.erase(id);
    if (absl::IsCancelled(status) && shutdown_ && !running.cancel) {
      // Server shutdown: the job stays RUNNING and resumes on restart.
      return;
    }
  }
  if (status.ok()) {
    job.set_state(v1::JOB_STATE_SUCCEEDED);
    job.set_progress(1.0);
    job.clear_eta();
  } else if (absl::IsCancelled(status)) {
    job.set_state(v1::JOB_STATE_CANCELLED);
    job.clear_eta();
  } else {
    job.set_state(v1::JOB_STATE_FAILED);
    job.set_failure_reason(std::string(status.message()));
    job.clear_eta();
    SPINNET_LOG(Warning, "job ", id, " failed: ", status.ToString());
  }
  *job.mutable_end_time() = TimestampNow();
  absl::Status recorded = Record(job);
  if (!recorded.ok()) {
    SPINNET_LOG(Error, "cannot record the end of job ", id, ": ",
                recorded.ToString());
  }
}

absl::Status JobManager::Train(v1::TrainingJob* job, Running* running) {
  ASSIGN_OR_RETURN(LoadedDataset data, datasets_->Get(job->dataset()));
  const DatasetSplit& split = *data.split;
  // Resume from the newest readable checkpoint, else start afresh.
  std::optional<Checkpoint> start;
  const std::string path = dir_.checkpoint(job->id());
  for (const std::string& candidate : {path, path + ".prev"}) {
    absl::StatusOr<Checkpoint> c = LoadCheckpoint(candidate);
    if (c.ok()) {
      start = *std::move(c);
      break;
    }
    if (!absl::IsNotFound(c.status())) {
      SPINNET_LOG(Warning, "job ", job->id(), ": skipping checkpoint: ",
                  c.status().ToString());
    }
  }
  if (!start.has_value()) {
    v1::SubmitTrainingJobRequest r;
    *r.mutable_spec() = job->spec();
    ASSIGN_OR_RETURN(TrainingSpec spec, ResolveSpec(r, split.train));
    ASSIGN_OR_RETURN(start, StartTraining(spec.network, spec.device,
                                          spec.train, split.train));
  }
  job->set_epochs_done(start->epochs_done);
  Observer observer(this, job, running);
  absl::StatusOr<Checkpoint> done =
      spinnet::Train(*std::move(start), split.train, split.test, &observer);
  RETURN_IF_ERROR(observer.status());
  RETURN_IF_ERROR(done.status());
  ASSIGN_OR_RETURN(int version,
                   Publish(*job, done->model, done->history.back()));
  job->set_model_version(version);
  unlink(path.c_str());
  unlink((path + ".prev").c_str());
  return absl::OkStatus();
}

absl::StatusOr<int> JobManager::Publish(const v1::TrainingJob& job,
                                        const Model& model,
                                        const EpochMetrics& last) {
  // A restart between publishing and recording SUCCEEDED must not publish
  // the same job twice.
  ASSIGN_OR_RETURN(std::vector<v1::Model> versions,
                   store_->ListModels(job.model_name()));
  for (const v1::Model& m : versions) {
    if (m.source_job_id() == job.id()) return m.version();
  }
  RETURN_IF_ERROR(SaveModel(model, dir_.model_file(job.id())));
  v1::Model info;
  info.set_name(job.model_name());
  *info.mutable_spec() =
      api::SpecToProto({model.network, model.device, model.train});
  info.set_dataset(job.dataset());
  for (const auto& label : model.class_labels) info.add_class_labels(label);
  info.set_input_dim(model.network.input_dim);
  info.set_sequence_steps(model.sequence_steps);
  info.set_final_train_accuracy(last.train_accuracy);
  info.set_final_test_accuracy(last.test_accuracy);
  info.set_energy_per_classification_joules(last.energy_per_sample_joules);
  *info.mutable_create_time() = TimestampNow();
  info.set_source_job_id(job.id());
  return store_->InsertModel(info);
}

}  // namespace spinnet::server
