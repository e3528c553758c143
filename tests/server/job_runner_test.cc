// The job queue and runner without gRPC, on the in-memory store: runs,
// several runners sharing one store (as replicas do), cancellation through
// the store, a worker whose lease is taken over (a zombie), graceful
// release, the reaper, and watchers woken by changes.
#include "server/jobs/job_runner.h"

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/jobs/job_queue.h"
#include "server/storage/job_records.h"
#include "server/storage/memory_store.h"
#include "server/storage/open_store.h"

namespace spinnet::server {
namespace {

using ::testing::ElementsAre;

// A clock the test moves: leases expire without sleeping.
class FakeClock {
 public:
  absl::Time Now() {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += d;
  }

 private:
  std::mutex mu_;
  absl::Time now_ = absl::FromUnixSeconds(1'000'000);
};

// One replica: its own queue, events and runner on the shared store.
struct Replica {
  Replica(Store* store, DatasetRegistry* datasets, const std::string& name,
          int workers = 1, int max_attempts = 3,
          absl::Duration heartbeat = absl::Milliseconds(20)) {
    RunnerOptions o;
    o.worker = name;
    o.workers = workers;
    o.lease_ttl = absl::Seconds(10);
    o.heartbeat_interval = heartbeat;
    o.poll_interval = absl::Milliseconds(20);
    o.max_attempts = max_attempts;
    JobQueueOptions q;
    q.max_queued = 1000;
    q.poll_interval = absl::Milliseconds(20);
    queue = std::make_unique<JobQueue>(store, datasets, &events, q);
    runner = std::make_unique<JobRunner>(store, datasets, &events, nullptr, o);
  }
  JobEvents events;
  std::unique_ptr<JobQueue> queue;
  std::unique_ptr<JobRunner> runner;
};

v1::SubmitTrainingJobRequest TinyJob(const std::string& model, int epochs,
                                     int neurons = 4) {
  v1::SubmitTrainingJobRequest r;
  r.set_model_name(model);
  r.set_dataset("digits");
  r.mutable_spec()->set_layers(1);
  r.mutable_spec()->set_neurons(neurons);
  r.mutable_spec()->set_epochs(epochs);
  r.mutable_spec()->set_seed(1);
  return r;
}

class JobRunnerTest : public ::testing::Test {
 protected:
  JobRunnerTest()
      : store_([this] { return clock_.Now(); }), datasets_(&store_, 1 << 20) {
    // Every store change wakes every replica, as LISTEN/NOTIFY does.
    store_.SetChangeCallback([this](const std::string& id) {
      std::lock_guard<std::mutex> lock(mu_);
      for (Replica* r : replicas_) r->events.Changed(id);
    });
  }

  Replica* AddReplica(const std::string& name, int workers = 1,
                      int max_attempts = 3) {
    auto r = std::make_unique<Replica>(&store_, &datasets_, name, workers,
                                       max_attempts);
    std::lock_guard<std::mutex> lock(mu_);
    replicas_.push_back(r.get());
    owned_.push_back(std::move(r));
    return replicas_.back();
  }

  // Waits until `done` holds for the job (polling), up to `timeout`.
  v1::TrainingJob WaitFor(const std::string& id,
                          const std::function<bool(const v1::TrainingJob&)>& done,
                          absl::Duration timeout = absl::Seconds(60)) {
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      absl::StatusOr<v1::TrainingJob> job = store_.GetJob(id);
      EXPECT_TRUE(job.ok()) << job.status();
      if (!job.ok() || done(*job) || absl::Now() > deadline) {
        return job.ok() ? *job : v1::TrainingJob();
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  v1::TrainingJob WaitForEnd(const std::string& id) {
    return WaitFor(id, [](const v1::TrainingJob& j) { return IsTerminal(j.state()); });
  }

  FakeClock clock_;
  MemoryStore store_;
  DatasetRegistry datasets_;
  std::mutex mu_;
  std::vector<Replica*> replicas_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Replica>> owned_;
};

TEST_F(JobRunnerTest, RunsAJobAndPublishesItsModel) {
  Replica* r = AddReplica("a");
  r->runner->Start();
  absl::StatusOr<v1::TrainingJob> job = r->queue->Submit(TinyJob("m", 3));
  ASSERT_TRUE(job.ok()) << job.status();
  const v1::TrainingJob done = WaitForEnd(job->id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.failure_reason();
  EXPECT_EQ(done.attempt(), 1);
  EXPECT_EQ(done.epochs_done(), 3);
  EXPECT_EQ(done.model_version(), 1);
  EXPECT_TRUE(done.worker().empty());
  absl::StatusOr<std::vector<v1::EpochMetrics>> epochs =
      store_.ListEpochs(job->id());
  ASSERT_TRUE(epochs.ok());
  ASSERT_EQ(epochs->size(), 3u);
  ModelRegistry models(&store_, 1 << 20);
  absl::StatusOr<LoadedModel> model = models.Get("m", 0);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->info.source_job_id(), job->id());
  // Checkpoints are gone with the job's end.
  absl::StatusOr<Store::Checkpoints> ckpts = store_.LoadCheckpoints(job->id());
  ASSERT_TRUE(ckpts.ok());
  EXPECT_TRUE(ckpts->newest_first.empty());
}

TEST_F(JobRunnerTest, ReplicasSharingAStoreRunEveryJobOnce) {
  std::vector<Replica*> replicas = {AddReplica("a", 2), AddReplica("b", 2),
                                    AddReplica("c", 1)};
  std::vector<std::string> ids;
  for (int i = 0; i < 30; ++i) {
    absl::StatusOr<v1::TrainingJob> job =
        replicas[i % 3]->queue->Submit(TinyJob(absl::StrCat("m", i % 2), 1, 2));
    ASSERT_TRUE(job.ok()) << job.status();
    ids.push_back(job->id());
  }
  for (Replica* r : replicas) r->runner->Start();
  std::set<std::string> workers;
  for (const std::string& id : ids) {
    const v1::TrainingJob done = WaitForEnd(id);
    EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.failure_reason();
    EXPECT_EQ(done.attempt(), 1);
    EXPECT_EQ(done.restarts(), 0);
  }
  absl::StatusOr<std::vector<v1::Model>> models = store_.ListModels("");
  ASSERT_TRUE(models.ok());
  EXPECT_EQ(models->size(), 30u);  // one version per job, none twice
}

TEST_F(JobRunnerTest, CancelStopsARunningJobThroughTheStore) {
  Replica* a = AddReplica("a");
  Replica* b = AddReplica("b");  // takes no jobs: only cancels
  a->runner->Start();
  absl::StatusOr<v1::TrainingJob> job = a->queue->Submit(TinyJob("m", 500));
  ASSERT_TRUE(job.ok()) << job.status();
  WaitFor(job->id(), [](const v1::TrainingJob& j) { return j.epochs_done() >= 1; });
  absl::StatusOr<v1::TrainingJob> cancelled = b->queue->Cancel(job->id());
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state(), v1::JOB_STATE_CANCELLED);
  EXPECT_LT(cancelled->epochs_done(), 500);
  EXPECT_FALSE(cancelled->cancel_requested());
  EXPECT_EQ(b->queue->Cancel(job->id()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(JobRunnerTest, AQueuedJobIsCancelledAtOnce) {
  Replica* a = AddReplica("a");  // not started
  absl::StatusOr<v1::TrainingJob> job = a->queue->Submit(TinyJob("m", 1));
  ASSERT_TRUE(job.ok()) << job.status();
  absl::StatusOr<v1::TrainingJob> cancelled = a->queue->Cancel(job->id());
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state(), v1::JOB_STATE_CANCELLED);
  a->runner->Start();
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(store_.GetJob(job->id())->state(), v1::JOB_STATE_CANCELLED);
}

// A worker whose lease expired (it stalled) and was reaped and re-claimed
// by another replica writes nothing more and stops; the job ends once, with
// one model version.
TEST_F(JobRunnerTest, AWorkerThatLostItsLeaseStopsWithoutWriting) {
  Replica* a = AddReplica("a");
  a->runner->Start();
  absl::StatusOr<v1::TrainingJob> job = a->queue->Submit(TinyJob("m", 400, 8));
  ASSERT_TRUE(job.ok()) << job.status();
  WaitFor(job->id(), [](const v1::TrainingJob& j) { return j.epochs_done() >= 1; });
  // The store now thinks "a" is dead: its lease expires and is reaped; a
  // claim by "z" takes the job with a new token.
  clock_.Advance(absl::Minutes(1));
  absl::StatusOr<ReapResult> reaped = store_.ReapExpiredLeases(3);
  ASSERT_TRUE(reaped.ok());
  absl::StatusOr<std::optional<ClaimedJob>> z =
      store_.ClaimJob("z", absl::Hours(1));
  ASSERT_TRUE(z.ok() && z->has_value()) << z.status();
  EXPECT_EQ((*z)->job.attempt(), 2);
  const int64_t revision_after_claim = store_.GetJob(job->id())->revision();
  // "a" notices at its next heartbeat or epoch write, and stops.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (a->runner->active_jobs() > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(a->runner->active_jobs(), 0);
  absl::SleepFor(absl::Milliseconds(100));
  const v1::TrainingJob now = *store_.GetJob(job->id());
  EXPECT_EQ(now.revision(), revision_after_claim);  // nothing written by "a"
  EXPECT_EQ(now.worker(), "z");
  EXPECT_TRUE(store_.ListModels("m")->empty());
}

TEST_F(JobRunnerTest, StopReleasesTheJobAndAnotherReplicaResumesIt) {
  Replica* a = AddReplica("a");
  a->runner->Start();
  absl::StatusOr<v1::TrainingJob> job = a->queue->Submit(TinyJob("m", 6, 8));
  ASSERT_TRUE(job.ok()) << job.status();
  WaitFor(job->id(), [](const v1::TrainingJob& j) { return j.epochs_done() >= 2; });
  ASSERT_TRUE(a->runner->Stop(absl::Now() + absl::Seconds(30)));
  const v1::TrainingJob released = *store_.GetJob(job->id());
  EXPECT_EQ(released.state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(released.attempt(), 0);  // given back
  EXPECT_EQ(released.restarts(), 1);
  EXPECT_GE(released.epochs_done(), 2);

  Replica* b = AddReplica("b");
  b->runner->Start();
  const v1::TrainingJob done = WaitForEnd(job->id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.failure_reason();
  EXPECT_EQ(done.attempt(), 1);
  // Held in a variable: a range-for over *ListEpochs(...) would iterate a
  // vector the temporary StatusOr had already destroyed.
  const absl::StatusOr<std::vector<v1::EpochMetrics>> listed =
      store_.ListEpochs(job->id());
  ASSERT_TRUE(listed.ok()) << listed.status();
  std::vector<int> epochs;
  for (const v1::EpochMetrics& e : *listed) {
    epochs.push_back(e.epoch());
  }
  EXPECT_THAT(epochs, ElementsAre(1, 2, 3, 4, 5, 6));
}

// A job whose worker dies every time (its lease expires on every attempt)
// ends FAILED after max_attempts claims, and says why.
TEST_F(JobRunnerTest, AJobThatKeepsKillingItsWorkerFailsAfterMaxAttempts) {
  Replica* reaper = AddReplica("reaper", 1, /*max_attempts=*/2);
  absl::StatusOr<v1::TrainingJob> job = reaper->queue->Submit(TinyJob("m", 1));
  ASSERT_TRUE(job.ok()) << job.status();
  for (int attempt = 1; attempt <= 2; ++attempt) {
    absl::StatusOr<std::optional<ClaimedJob>> c =
        store_.ClaimJob(absl::StrCat("doomed-", attempt), absl::Seconds(10));
    ASSERT_TRUE(c.ok() && c->has_value());
    EXPECT_EQ((*c)->job.attempt(), attempt);
    clock_.Advance(absl::Seconds(11));  // ... and the worker is never heard of
    ASSERT_TRUE(store_.ReapExpiredLeases(2).ok());
  }
  const v1::TrainingJob failed = *store_.GetJob(job->id());
  EXPECT_EQ(failed.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(failed.failure_reason(), ::testing::HasSubstr("attempt 2 of 2"));
}

TEST_F(JobRunnerTest, WaitForChangeWakesOnAChangeAndTimesOut) {
  Replica* a = AddReplica("a");
  absl::StatusOr<v1::TrainingJob> job = a->queue->Submit(TinyJob("m", 1));
  ASSERT_TRUE(job.ok()) << job.status();
  // Nothing changes: nullopt at the deadline.
  absl::StatusOr<std::optional<v1::TrainingJob>> none = a->queue->WaitForChange(
      job->id(), job->revision(), absl::Now() + absl::Milliseconds(50));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  std::thread canceller([&] {
    absl::SleepFor(absl::Milliseconds(50));
    EXPECT_TRUE(store_.CancelJob(job->id()).ok());
  });
  absl::StatusOr<std::optional<v1::TrainingJob>> changed =
      a->queue->WaitForChange(job->id(), job->revision(),
                              absl::Now() + absl::Seconds(10));
  canceller.join();
  ASSERT_TRUE(changed.ok() && changed->has_value());
  EXPECT_EQ((*changed)->state(), v1::JOB_STATE_CANCELLED);
}

TEST_F(JobRunnerTest, SubmitIsIdempotentWithARequestId) {
  Replica* a = AddReplica("a");
  v1::SubmitTrainingJobRequest r = TinyJob("m", 1);
  r.set_request_id("req-1");
  absl::StatusOr<v1::TrainingJob> first = a->queue->Submit(r);
  absl::StatusOr<v1::TrainingJob> again = a->queue->Submit(r);
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_EQ(first->id(), again->id());
  r.mutable_spec()->set_epochs(2);
  EXPECT_EQ(a->queue->Submit(r).status().code(),
            absl::StatusCode::kAlreadyExists);
}


// The real store with a hook around the calls a worker makes for a job, so
// that a test can act (cancel) at each point of the job's start and end.
class HookedStore : public Store {
 public:
  // Called with "before X" and "after X" for X in ClaimJob (after: only
  // when it claimed a job), LoadCheckpoints, RecordEpoch, FinishJob.
  using Hook = std::function<void(const std::string& point)>;
  HookedStore(Store* inner, Hook hook) : inner_(inner), hook_(std::move(hook)) {}

  template <typename Call>
  auto Around(const std::string& name, Call call) -> decltype(call()) {
    hook_("before " + name);
    auto result = call();
    hook_("after " + name);
    return result;
  }

  std::string Describe() const override { return inner_->Describe(); }
  absl::Status Ping() override { return inner_->Ping(); }
  void SetChangeCallback(
      std::function<void(const std::string&)> callback) override {
    inner_->SetChangeCallback(std::move(callback));
  }
  BlobStore& blobs() override { return inner_->blobs(); }
  absl::StatusOr<Inserted> InsertJob(const v1::TrainingJob& job,
                                     int max_queued) override {
    return inner_->InsertJob(job, max_queued);
  }
  absl::StatusOr<v1::TrainingJob> GetJob(const std::string& id) override {
    return inner_->GetJob(id);
  }
  absl::StatusOr<std::vector<v1::TrainingJob>> ListJobs(
      v1::JobState state, int limit, const std::string& after_id) override {
    return inner_->ListJobs(state, limit, after_id);
  }
  absl::StatusOr<StoreCounts> Count() override { return inner_->Count(); }
  absl::StatusOr<std::optional<ClaimedJob>> ClaimJob(
      const std::string& worker, absl::Duration ttl) override {
    hook_("before ClaimJob");
    absl::StatusOr<std::optional<ClaimedJob>> claimed =
        inner_->ClaimJob(worker, ttl);
    if (claimed.ok() && claimed->has_value()) hook_("after ClaimJob");
    return claimed;
  }
  absl::StatusOr<bool> Heartbeat(const Lease& lease, const v1::TrainingJob& job,
                                 absl::Duration ttl) override {
    return inner_->Heartbeat(lease, job, ttl);
  }
  absl::Status RecordEpoch(const Lease& lease, const v1::TrainingJob& job,
                           const v1::EpochMetrics& epoch,
                           absl::string_view checkpoint) override {
    return Around("RecordEpoch", [&] {
      return inner_->RecordEpoch(lease, job, epoch, checkpoint);
    });
  }
  absl::StatusOr<Checkpoints> LoadCheckpoints(
      const std::string& job_id) override {
    return Around("LoadCheckpoints",
                  [&] { return inner_->LoadCheckpoints(job_id); });
  }
  absl::StatusOr<v1::TrainingJob> FinishJob(
      const Lease& lease, v1::TrainingJob job,
      std::optional<ModelToPublish> model) override {
    return Around("FinishJob", [&] {
      return inner_->FinishJob(lease, std::move(job), std::move(model));
    });
  }
  absl::Status ReleaseJob(const Lease& lease,
                          const v1::TrainingJob& job) override {
    return inner_->ReleaseJob(lease, job);
  }
  absl::StatusOr<v1::TrainingJob> CancelJob(const std::string& id) override {
    return inner_->CancelJob(id);
  }
  absl::StatusOr<ReapResult> ReapExpiredLeases(int max_attempts) override {
    return inner_->ReapExpiredLeases(max_attempts);
  }
  absl::StatusOr<std::vector<v1::EpochMetrics>> ListEpochs(
      const std::string& job_id) override {
    return inner_->ListEpochs(job_id);
  }
  absl::StatusOr<InsertedSweep> InsertSweep(
      const v1::Sweep& sweep, const std::vector<v1::TrainingJob>& jobs,
      int max_queued) override {
    return inner_->InsertSweep(sweep, jobs, max_queued);
  }
  absl::StatusOr<v1::Sweep> GetSweep(const std::string& id) override {
    return inner_->GetSweep(id);
  }
  absl::StatusOr<std::vector<v1::Sweep>> ListSweeps(
      int limit, const std::string& after_id) override {
    return inner_->ListSweeps(limit, after_id);
  }
  absl::StatusOr<std::vector<v1::TrainingJob>> ListSweepJobs(
      const std::string& sweep_id) override {
    return inner_->ListSweepJobs(sweep_id);
  }
  absl::StatusOr<v1::Sweep> CancelSweep(const std::string& id) override {
    return inner_->CancelSweep(id);
  }
  absl::Status InsertDataset(const v1::Dataset& dataset,
                             absl::string_view bytes) override {
    return inner_->InsertDataset(dataset, bytes);
  }
  absl::StatusOr<v1::Dataset> GetDataset(const std::string& name) override {
    return inner_->GetDataset(name);
  }
  absl::StatusOr<std::vector<v1::Dataset>> ListDatasets() override {
    return inner_->ListDatasets();
  }
  absl::Status DeleteDataset(const std::string& name) override {
    return inner_->DeleteDataset(name);
  }
  absl::StatusOr<v1::Model> GetModel(const std::string& name,
                                     int version) override {
    return inner_->GetModel(name, version);
  }
  absl::StatusOr<std::vector<v1::Model>> ListModels(
      const std::string& name) override {
    return inner_->ListModels(name);
  }
  absl::Status DeleteModel(const std::string& name, int version) override {
    return inner_->DeleteModel(name, version);
  }
  absl::StatusOr<v1::Model> InsertModel(ModelToPublish model) override {
    return inner_->InsertModel(std::move(model));
  }

 private:
  Store* inner_;
  Hook hook_;
};

// A 2-epoch job run by one worker on a fresh store of `backend` ("memory"
// or "sqlite"), with a cancel at the `cancel_at`-th hook point (-1: none).
// Heartbeats are off, so the worker learns of the cancel only from the
// store's answers: the store alone must keep an accepted cancel.
struct CancelRun {
  std::vector<std::string> points;  // every hook point, in order
  absl::Status cancel = absl::UnknownError("not cancelled");
  v1::TrainingJob end;
  size_t models = 0;
};

CancelRun RunWithCancelAt(const std::string& backend, int cancel_at) {
  CancelRun run;
  std::unique_ptr<Store> inner;
  std::string dir;
  if (backend == "memory") {
    inner = std::make_unique<MemoryStore>();
  } else {
    dir = ::testing::TempDir() + "cancel_points.XXXXXX";
    EXPECT_NE(mkdtemp(dir.data()), nullptr);
    absl::StatusOr<std::unique_ptr<Store>> opened =
        OpenStore({.url = "sqlite://" + dir});
    EXPECT_TRUE(opened.ok()) << opened.status();
    if (!opened.ok()) return run;
    inner = *std::move(opened);
  }
  std::string job_id;
  std::mutex mu;  // guards run.points and run.cancel (the worker's thread)
  HookedStore store(inner.get(), [&](const std::string& point) {
    std::lock_guard<std::mutex> lock(mu);
    // Only the first claim matters: the job is queued before the worker
    // starts, and later claims by the idle worker find nothing.
    if (point == "before ClaimJob" && !run.points.empty()) return;
    if (cancel_at == static_cast<int>(run.points.size())) {
      run.cancel = inner->CancelJob(job_id).status();
    }
    run.points.push_back(point);
  });
  DatasetRegistry datasets(&store, 1 << 20);
  Replica replica(&store, &datasets, "w", 1, 3, absl::Hours(1));
  store.SetChangeCallback(
      [&](const std::string& id) { replica.events.Changed(id); });
  absl::StatusOr<v1::TrainingJob> job = replica.queue->Submit(TinyJob("m", 2));
  EXPECT_TRUE(job.ok()) << job.status();
  if (!job.ok()) return run;
  job_id = job->id();
  replica.runner->Start();
  for (const absl::Time deadline = absl::Now() + absl::Seconds(60);
       absl::Now() < deadline;) {
    absl::StatusOr<v1::TrainingJob> now = inner->GetJob(job_id);
    if (now.ok() && IsTerminal(now->state())) break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  replica.runner->Stop(absl::InfiniteFuture());
  run.end = *inner->GetJob(job_id);
  run.models = inner->ListModels("m")->size();
  if (!dir.empty()) {
    inner.reset();
    std::filesystem::remove_all(dir);
  }
  return run;
}

class CancelPointsTest : public ::testing::TestWithParam<std::string> {};

// A cancel at every point of a job's life with a worker: before and after
// the claim, around loading its checkpoints, around each epoch's record,
// around its end. Wherever it lands, the cancel is either accepted and the
// job ends CANCELLED with no model published (every point up to FinishJob's
// commit), or refused as FAILED_PRECONDITION because the job has already
// ended SUCCEEDED with its model: never accepted and then ignored.
TEST_P(CancelPointsTest, AnAcceptedCancelAlwaysEndsTheJob) {
  const CancelRun plain = RunWithCancelAt(GetParam(), -1);
  ASSERT_EQ(plain.end.state(), v1::JOB_STATE_SUCCEEDED)
      << plain.end.failure_reason();
  ASSERT_EQ(plain.models, 1u);
  EXPECT_THAT(plain.points,
              ElementsAre("before ClaimJob", "after ClaimJob",
                          "before LoadCheckpoints", "after LoadCheckpoints",
                          "before RecordEpoch", "after RecordEpoch",
                          "before RecordEpoch", "after RecordEpoch",
                          "before FinishJob", "after FinishJob"));
  for (int at = 0; at < static_cast<int>(plain.points.size()); ++at) {
    SCOPED_TRACE(absl::StrCat("cancel ", plain.points[at], " (point ", at, ")"));
    const CancelRun run = RunWithCancelAt(GetParam(), at);
    if (plain.points[at] == "after FinishJob") {
      EXPECT_EQ(run.cancel.code(), absl::StatusCode::kFailedPrecondition)
          << run.cancel;
      EXPECT_EQ(run.end.state(), v1::JOB_STATE_SUCCEEDED);
      EXPECT_EQ(run.models, 1u);
      continue;
    }
    EXPECT_TRUE(run.cancel.ok()) << run.cancel;
    EXPECT_EQ(run.end.state(), v1::JOB_STATE_CANCELLED)
        << v1::JobState_Name(run.end.state()) << " "
        << run.end.failure_reason();
    EXPECT_EQ(run.end.model_version(), 0);
    EXPECT_EQ(run.models, 0u);
    EXPECT_FALSE(run.end.cancel_requested());
    EXPECT_EQ(run.end.worker(), "");
    // A cancel before the claim leaves nothing to run.
    EXPECT_EQ(run.end.attempt(), at == 0 ? 0 : 1);
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, CancelPointsTest,
                         ::testing::Values("memory", "sqlite"));

}  // namespace
}  // namespace spinnet::server
