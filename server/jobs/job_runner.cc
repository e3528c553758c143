#include "server/jobs/job_runner.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/logging.h"
#include "core/model_io.h"
#include "core/status_macros.h"
#include "core/trainer.h"
#include "google/protobuf/util/time_util.h"
#include "proto/api_convert.h"
#include "server/jobs/job_queue.h"
#include "server/storage/job_records.h"

namespace spinnet::server {
namespace {

using google::protobuf::util::TimeUtil;

v1::Model DescribeJobModel(const v1::TrainingJob& job, const Model& model,
                           const EpochMetrics& last) {
  v1::Model info = DescribeModel(job.model_name(), model);
  info.set_dataset(job.dataset());
  info.set_final_train_accuracy(last.train_accuracy);
  info.set_final_test_accuracy(last.test_accuracy);
  info.set_energy_per_classification_joules(last.energy_per_sample_joules);
  return info;
}

}  // namespace

// A job this replica runs. `mu` guards `job` and orders the job's store
// writes, so a heartbeat never stores an older snapshot over a newer epoch.
struct JobRunner::Active {
  Lease lease;
  std::mutex mu;
  v1::TrainingJob job;
  std::atomic<bool> cancel{false};  // asked for, seen at a heartbeat
  std::atomic<bool> lost{false};    // the lease went to another worker
  std::optional<ModelToPublish> model;  // after a successful training
};

// Reports a running job's progress into its Active and each epoch to the
// store.
class JobRunner::Observer : public TrainingObserver {
 public:
  Observer(JobRunner* runner, Active* active)
      : runner_(runner), active_(active), start_(absl::Now()),
        start_epochs_(active->job.epochs_done()) {}

  void OnBatch(int epoch, int done, int total) override {
    std::lock_guard<std::mutex> lock(active_->mu);
    v1::TrainingJob& job = active_->job;
    const double total_epochs = job.epochs_total();
    job.set_progress(((epoch - 1) + static_cast<double>(done) / total) /
                     total_epochs);
    const double run_progress = job.progress() - start_epochs_ / total_epochs;
    if (run_progress > 0) {
      const double elapsed = absl::ToDoubleSeconds(absl::Now() - start_);
      const double left = elapsed * (1 - job.progress()) / run_progress;
      *job.mutable_eta() =
          TimeUtil::MillisecondsToDuration(static_cast<int64_t>(left * 1000));
    }
  }

  void OnEpoch(const EpochMetrics& m, const Checkpoint& c) override {
    // The last epoch's checkpoint would be deleted by FinishJob right away.
    const std::string checkpoint =
        m.epoch < c.model.train.epochs ? SerializeCheckpoint(c) : "";
    const v1::EpochMetrics epoch = api::EpochMetricsToProto(m);
    std::lock_guard<std::mutex> lock(active_->mu);
    active_->job.set_epochs_done(m.epoch);
    *active_->job.mutable_latest_epoch() = epoch;
    const absl::Status s = runner_->WithRetry([&] {
      return runner_->store_->RecordEpoch(active_->lease, active_->job, epoch,
                                          checkpoint);
    });
    if (absl::IsAborted(s)) {
      active_->lost = true;
    } else {
      status_.Update(s);
    }
    if (runner_->metrics_ != nullptr) {
      runner_->metrics_->ObserveEpoch(m.epoch_seconds, m.samples_per_second);
    }
  }

  bool StopRequested() override {
    return active_->cancel || active_->lost || runner_->stopping_ ||
           !status_.ok();
  }

  const absl::Status& status() const { return status_; }

 private:
  JobRunner* runner_;
  Active* active_;
  absl::Time start_;
  int start_epochs_;
  absl::Status status_;  // of the epoch writes
};

JobRunner::JobRunner(Store* store, DatasetRegistry* datasets,
                     JobEvents* events, JobMetrics* metrics,
                     RunnerOptions options)
    : store_(store), datasets_(datasets), events_(events), metrics_(metrics),
      options_(std::move(options)) {}

JobRunner::~JobRunner() { Stop(absl::InfiniteFuture()); }

void JobRunner::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  live_workers_ = options_.workers;
  for (int i = 0; i < options_.workers; ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
  maintenance_ = std::thread([this] { Maintain(); });
}

bool JobRunner::Stop(absl::Time deadline) {
  stopping_ = true;
  events_->Poke();  // idle workers look at stopping_ now
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_until(lock, absl::ToChronoTime(deadline),
                        [this] { return live_workers_ == 0; })) {
      return false;
    }
    stop_maintenance_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
  if (maintenance_.joinable()) maintenance_.join();
  return true;
}

int JobRunner::active_jobs() {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(active_.size());
}

absl::Status JobRunner::WithRetry(const std::function<absl::Status()>& write) {
  const absl::Time give_up = absl::Now() + options_.lease_ttl;
  absl::Duration backoff = absl::Milliseconds(100);
  for (;;) {
    absl::Status s = write();
    if (!absl::IsUnavailable(s) || absl::Now() + backoff > give_up) return s;
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

void JobRunner::WorkerLoop() {
  bool store_down = false;
  while (!stopping_) {
    const uint64_t hint = events_->Snapshot("");
    absl::StatusOr<std::optional<ClaimedJob>> claimed =
        store_->ClaimJob(options_.worker, options_.lease_ttl);
    if (!claimed.ok()) {
      if (!store_down) {
        SPINNET_LOG(Warning, "cannot claim jobs: ", claimed.status().ToString(),
                    "; retrying");
      }
      store_down = true;
      events_->Wait("", hint, absl::Now() + options_.poll_interval);
      continue;
    }
    if (store_down) SPINNET_LOG(Info, "claiming jobs again");
    store_down = false;
    if (!claimed->has_value()) {
      events_->Wait("", hint, absl::Now() + options_.poll_interval);
      continue;
    }
    Run(**claimed);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    --live_workers_;
  }
  cv_.notify_all();
}

void JobRunner::Run(const ClaimedJob& claimed) {
  auto shared = std::make_shared<Active>();
  Active& active = *shared;
  active.lease = claimed.lease;
  active.job = claimed.job;
  const std::string& id = claimed.job.id();
  SPINNET_LOG(Info, "job ", id, ": claimed (attempt ", claimed.job.attempt(),
              ", epoch ", claimed.job.epochs_done(), "/",
              claimed.job.epochs_total(), ")");
  {
    std::lock_guard<std::mutex> lock(mu_);
    active_[id] = shared;
  }
  const absl::Status trained = Train(&active);
  {
    std::lock_guard<std::mutex> lock(mu_);
    active_.erase(id);
  }
  if (active.lost) {
    SPINNET_LOG(Warning, "job ", id,
                ": lease lost to another worker; stopped without writing");
    return;
  }
  std::lock_guard<std::mutex> lock(active.mu);
  v1::TrainingJob job = active.job;
  job.clear_eta();
  // Stopped by a shutdown, or by a store that stayed unreachable past the
  // retries: not the job's fault, so it goes back to the queue (or, if the
  // store is still away, its lease lapses) to resume from its checkpoint.
  if ((absl::IsCancelled(trained) && stopping_ && !active.cancel) ||
      absl::IsUnavailable(trained)) {
    const absl::Status released =
        WithRetry([&] { return store_->ReleaseJob(active.lease, job); });
    SPINNET_LOG(Info, "job ", id, ": released at epoch ", job.epochs_done(),
                " for another worker (", trained.ToString(), "): ",
                released.ToString());
    return;
  }
  std::optional<ModelToPublish> model;
  if (trained.ok()) {
    job.set_state(v1::JOB_STATE_SUCCEEDED);
    job.set_progress(1.0);
    model = std::move(active.model);
  } else if (absl::IsCancelled(trained)) {
    job.set_state(v1::JOB_STATE_CANCELLED);
  } else {
    job.set_state(v1::JOB_STATE_FAILED);
    job.set_failure_reason(std::string(trained.message()));
    SPINNET_LOG(Warning, "job ", id, " failed: ", trained.ToString());
  }
  *job.mutable_end_time() = TimestampNow();
  absl::StatusOr<v1::TrainingJob> stored;
  absl::Status finished = WithRetry([&]() -> absl::Status {
    stored = store_->FinishJob(active.lease, job, model);
    return stored.status();
  });
  if (model.has_value() && !finished.ok() && !absl::IsAborted(finished) &&
      !absl::IsUnavailable(finished)) {
    // The model could not be stored (a full disk, an I/O error): the job
    // fails with that reason, rather than leaving its lease to lapse and
    // training again into the same fault.
    job.set_state(v1::JOB_STATE_FAILED);
    job.set_failure_reason(absl::StrCat(
        "cannot publish model ", job.model_name(), ": ", finished.message()));
    SPINNET_LOG(Warning, "job ", id, " failed: ", job.failure_reason());
    finished = WithRetry([&]() -> absl::Status {
      stored = store_->FinishJob(active.lease, job, std::nullopt);
      return stored.status();
    });
  }
  if (finished.ok() && stored->state() != job.state()) {
    SPINNET_LOG(Info, "job ", id, ": a cancel came before its end (",
                v1::JobState_Name(job.state()), ") was recorded: ",
                v1::JobState_Name(stored->state()));
  } else if (!finished.ok()) {
    // ABORTED: another worker has the job. Otherwise the lease lapses and
    // the job is retried from its last checkpoint.
    SPINNET_LOG(Error, "job ", id, ": cannot record its end: ",
                finished.ToString());
  }
}

absl::Status JobRunner::Train(Active* active) {
  v1::TrainingJob job;
  {
    std::lock_guard<std::mutex> lock(active->mu);
    job = active->job;
  }
  ASSIGN_OR_RETURN(LoadedDataset data, datasets_->Get(job.dataset()));
  const DatasetSplit& split = *data.split;
  // Resume from the newest readable checkpoint, else start afresh.
  Store::Checkpoints stored;
  RETURN_IF_ERROR(WithRetry([&]() -> absl::Status {
    ASSIGN_OR_RETURN(stored, store_->LoadCheckpoints(job.id()));
    return absl::OkStatus();
  }));
  for (const absl::Status& s : stored.skipped) {
    SPINNET_LOG(Warning, "job ", job.id(), ": skipping checkpoint: ",
                s.ToString());
  }
  std::optional<Checkpoint> start;
  for (const std::string& bytes : stored.newest_first) {
    absl::StatusOr<Checkpoint> c = ParseCheckpoint(bytes);
    if (c.ok()) {
      start = *std::move(c);
      break;
    }
    SPINNET_LOG(Warning, "job ", job.id(), ": skipping checkpoint: ",
                c.status().ToString());
  }
  if (!start.has_value()) {
    ASSIGN_OR_RETURN(TrainingSpec spec, ResolveSpec(job.spec(), split.train));
    ASSIGN_OR_RETURN(start, StartTraining(spec.network, spec.device,
                                          spec.train, split.train));
  }
  {
    std::lock_guard<std::mutex> lock(active->mu);
    active->job.set_epochs_done(start->epochs_done);
  }
  Observer observer(this, active);
  absl::StatusOr<Checkpoint> done =
      spinnet::Train(*std::move(start), split.train, split.test, &observer);
  RETURN_IF_ERROR(observer.status());
  RETURN_IF_ERROR(done.status());
  if (!job.model_name().empty()) {  // a sweep's job may publish none
    active->model =
        ModelToPublish{DescribeJobModel(job, done->model, done->history.back()),
                       SerializeModel(done->model)};
  }
  return absl::OkStatus();
}

void JobRunner::Heartbeat(Active& active) {
  std::lock_guard<std::mutex> lock(active.mu);
  absl::StatusOr<bool> cancel =
      store_->Heartbeat(active.lease, active.job, options_.lease_ttl);
  if (cancel.ok()) {
    if (*cancel) active.cancel = true;
  } else if (absl::IsAborted(cancel.status())) {
    active.lost = true;  // or the job just ended: then nobody looks
  } else {
    SPINNET_LOG(Warning, "job ", active.lease.job_id,
                ": heartbeat failed: ", cancel.status().ToString());
  }
}

void JobRunner::Maintain() {
  bool store_down = false;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_maintenance_) {
    std::vector<std::shared_ptr<Active>> running;
    for (const auto& [id, active] : active_) running.push_back(active);
    lock.unlock();
    for (const std::shared_ptr<Active>& active : running) Heartbeat(*active);
    const int running_here = static_cast<int>(running.size());
    absl::Status status = store_->ReapExpiredLeases(options_.max_attempts)
                              .status();
    absl::StatusOr<StoreCounts> counts;
    if (status.ok()) {
      counts = store_->Count();
      status = counts.status();
    }
    if (!status.ok() && !store_down) {
      SPINNET_LOG(Warning, "store maintenance failed: ", status.ToString());
    }
    store_down = !status.ok();
    if (metrics_ != nullptr) {
      if (counts.ok()) metrics_->SetJobCounts(*counts);
      metrics_->SetActiveJobs(running_here);
    }
    lock.lock();
    cv_.wait_for(lock, absl::ToChronoNanoseconds(options_.heartbeat_interval),
                 [this] { return stop_maintenance_; });
  }
}

}  // namespace spinnet::server
