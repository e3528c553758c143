// Sweeps without gRPC, on the in-memory store: the statistics against
// hand-computed quartiles, every bad request, idempotency, a sweep run to
// the end by a job runner (with and without published models), and
// cancellation.
#include "server/jobs/sweep_queue.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/jobs/job_runner.h"
#include "server/storage/job_records.h"
#include "server/storage/memory_store.h"
#include "tests/status_matchers.h"

namespace spinnet::server {
namespace {

using ::testing::DoubleNear;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Code = absl::StatusCode;
using spinnet::status_testing::StatusIs;

v1::TrainingJob Job(int point, uint64_t seed, v1::JobState state,
                    double accuracy = 0, double drive = 0) {
  v1::TrainingJob job;
  job.set_id(absl::StrCat("j", point, "-", seed));
  job.set_sweep_point(point);
  job.mutable_spec()->set_seed(seed);
  job.set_state(state);
  job.set_revision(10 * point + seed);
  job.mutable_latest_epoch()->set_test_accuracy(accuracy);
  job.mutable_latest_epoch()->set_cumulative_drive(drive);
  return job;
}

TEST(SummarizeSweepTest, QuartilesOverTheSeedsThatSucceeded) {
  v1::Sweep record;
  record.set_id("s");
  for (uint64_t seed : {7, 3, 5, 1}) record.add_seeds(seed);
  record.add_points();
  record.add_points();
  const std::vector<v1::TrainingJob> jobs = {
      // Point 0: accuracies 0.5, 0.9, 0.7, 0.8 for seeds 7, 3, 5, 1.
      Job(0, 7, v1::JOB_STATE_SUCCEEDED, 0.5, 1),
      Job(0, 3, v1::JOB_STATE_SUCCEEDED, 0.9, 2),
      Job(0, 5, v1::JOB_STATE_SUCCEEDED, 0.7, 3),
      Job(0, 1, v1::JOB_STATE_SUCCEEDED, 0.8, 4),
      // Point 1: one success, one failure, one running at half, one queued.
      Job(1, 1, v1::JOB_STATE_QUEUED),
      Job(1, 5, v1::JOB_STATE_RUNNING),
      Job(1, 3, v1::JOB_STATE_FAILED),
      Job(1, 7, v1::JOB_STATE_SUCCEEDED, 0.6, 0.5),
  };
  std::vector<v1::TrainingJob> shuffled = {jobs[5], jobs[0], jobs[7], jobs[2],
                                           jobs[4], jobs[1], jobs[6], jobs[3]};
  shuffled[0].set_progress(0.5);
  const v1::Sweep s = SummarizeSweep(record, shuffled);

  const v1::SweepPoint& p0 = s.points(0);
  // Sorted 0.5 0.7 0.8 0.9: median (0.7 + 0.8) / 2; q25 at position 0.75,
  // 0.5 + 0.75 * 0.2; q75 at position 2.25, 0.8 + 0.25 * 0.1.
  EXPECT_THAT(p0.median_test_accuracy(), DoubleNear(0.75, 1e-12));
  EXPECT_THAT(p0.q25_test_accuracy(), DoubleNear(0.65, 1e-12));
  EXPECT_THAT(p0.q75_test_accuracy(), DoubleNear(0.825, 1e-12));
  EXPECT_THAT(p0.mean_cumulative_drive(), DoubleNear(2.5, 1e-12));
  EXPECT_EQ(p0.seeds_total(), 4);
  EXPECT_EQ(p0.seeds_succeeded(), 4);
  // In the sweep's seed order.
  EXPECT_THAT(p0.succeeded_seeds(), ElementsAre(7, 3, 5, 1));
  EXPECT_THAT(p0.test_accuracies(), ElementsAre(0.5, 0.9, 0.7, 0.8));
  EXPECT_THAT(p0.job_ids(), ElementsAre("j0-7", "j0-3", "j0-5", "j0-1"));

  const v1::SweepPoint& p1 = s.points(1);
  EXPECT_EQ(p1.seeds_succeeded(), 1);
  EXPECT_EQ(p1.seeds_failed(), 1);
  EXPECT_EQ(p1.seeds_running(), 1);
  EXPECT_EQ(p1.seeds_queued(), 1);
  EXPECT_DOUBLE_EQ(p1.median_test_accuracy(), 0.6);
  EXPECT_DOUBLE_EQ(p1.q25_test_accuracy(), 0.6);
  EXPECT_DOUBLE_EQ(p1.mean_cumulative_drive(), 0.5);
  EXPECT_THAT(p1.succeeded_seeds(), ElementsAre(7));

  EXPECT_EQ(s.jobs_total(), 8);
  EXPECT_EQ(s.jobs_succeeded(), 5);
  EXPECT_EQ(s.jobs_failed(), 1);
  EXPECT_EQ(s.jobs_running(), 1);
  EXPECT_EQ(s.jobs_queued(), 1);
  EXPECT_EQ(s.revision(), 17);  // the newest job's
  // Ended jobs count whole, the running one by its progress.
  EXPECT_DOUBLE_EQ(s.progress(), 6.5 / 8);
  EXPECT_EQ(s.state(), v1::SWEEP_STATE_RUNNING);

  record.set_cancel_requested(true);
  EXPECT_EQ(SummarizeSweep(record, jobs).state(), v1::SWEEP_STATE_CANCELLING);
  std::vector<v1::TrainingJob> ended = {jobs[0], jobs[6]};
  EXPECT_EQ(SummarizeSweep(record, ended).state(), v1::SWEEP_STATE_CANCELLED);
  record.set_cancel_requested(false);
  EXPECT_EQ(SummarizeSweep(record, ended).state(), v1::SWEEP_STATE_DONE);
  // No success: statistics stay 0 and say so by the count.
  const v1::Sweep none = SummarizeSweep(record, {jobs[6]});
  EXPECT_EQ(none.points(1).seeds_succeeded(), 0);
  EXPECT_EQ(none.points(1).median_test_accuracy(), 0);
}

v1::SubmitSweepRequest TinySweep() {
  v1::SubmitSweepRequest r;
  r.set_dataset("digits");
  for (const auto& [flag, value] : std::vector<std::pair<std::string, std::string>>{
           {"layers", "1"}, {"neurons", "4"}, {"epochs", "1"}}) {
    v1::Setting* s = r.add_fixed();
    s->set_flag(flag);
    s->set_value(value);
  }
  v1::SweepAxis* axis = r.add_axes();
  axis->set_flag("dt-in");
  axis->add_values("1");
  axis->add_values("2");
  r.add_seeds(0);
  r.add_seeds(1);
  return r;
}

class SweepQueueTest : public ::testing::Test {
 protected:
  SweepQueueTest() : datasets_(&store_, 1 << 20) {
    store_.SetChangeCallback([this](const std::string& id) {
      events_.Changed(id);
    });
    SweepQueueOptions o;
    o.max_jobs_per_sweep = 100;
    o.max_queued_jobs = 150;
    o.poll_interval = absl::Milliseconds(20);
    sweeps_ = std::make_unique<SweepQueue>(&store_, &datasets_, &events_, o);
  }
  ~SweepQueueTest() override {
    if (runner_ != nullptr) runner_->Stop(absl::Now() + absl::Seconds(10));
    events_.Shutdown();
  }

  void StartRunner() {
    RunnerOptions o;
    o.worker = "w";
    o.workers = 2;
    o.heartbeat_interval = absl::Milliseconds(20);
    o.poll_interval = absl::Milliseconds(20);
    runner_ = std::make_unique<JobRunner>(&store_, &datasets_, &events_,
                                          nullptr, o);
    runner_->Start();
  }

  v1::Sweep WaitForEnd(const std::string& id) {
    int64_t revision = 0;
    v1::SweepState state = v1::SWEEP_STATE_UNSPECIFIED;
    const absl::Time deadline = absl::Now() + absl::Seconds(120);
    for (;;) {
      absl::StatusOr<std::optional<v1::Sweep>> s =
          sweeps_->WaitForChange(id, revision, state, deadline);
      EXPECT_TRUE(s.ok() && s->has_value()) << s.status();
      if (!s.ok() || !s->has_value()) return v1::Sweep();
      revision = (*s)->revision();
      state = (*s)->state();
      if (state == v1::SWEEP_STATE_DONE || state == v1::SWEEP_STATE_CANCELLED) {
        return **s;
      }
    }
  }

  MemoryStore store_;
  JobEvents events_;
  DatasetRegistry datasets_;
  std::unique_ptr<SweepQueue> sweeps_;
  std::unique_ptr<JobRunner> runner_;
};

TEST_F(SweepQueueTest, BadRequestsNameTheField) {
  const auto submit = [&](const std::function<void(v1::SubmitSweepRequest*)>&
                              change) {
    v1::SubmitSweepRequest r = TinySweep();
    change(&r);
    return sweeps_->Submit(r);
  };
  EXPECT_THAT(submit([](auto* r) { r->clear_dataset(); }),
              StatusIs(Code::kInvalidArgument, "dataset"));
  EXPECT_THAT(submit([](auto* r) { r->set_dataset("nope"); }),
              StatusIs(Code::kNotFound, "nope"));
  EXPECT_THAT(submit([](auto* r) { r->clear_seeds(); }),
              StatusIs(Code::kInvalidArgument, "seeds is empty"));
  EXPECT_THAT(submit([](auto* r) { r->add_seeds(0); }),
              StatusIs(Code::kInvalidArgument, "seeds: a seed appears twice"));
  EXPECT_THAT(submit([](auto* r) {
                for (int i = 2; i < 1002; ++i) r->add_seeds(i);
              }),
              StatusIs(Code::kInvalidArgument, "seeds: 1002 seeds"));
  EXPECT_THAT(submit([](auto* r) { r->mutable_axes(0)->set_flag("nope"); }),
              StatusIs(Code::kInvalidArgument, "axes: unknown flag --nope"));
  EXPECT_THAT(submit([](auto* r) { r->mutable_fixed(0)->set_flag("nope"); }),
              StatusIs(Code::kInvalidArgument, "fixed: unknown flag --nope"));
  EXPECT_THAT(submit([](auto* r) { r->mutable_axes(0)->clear_values(); }),
              StatusIs(Code::kInvalidArgument, "axes: --dt-in has no values"));
  EXPECT_THAT(submit([](auto* r) { r->mutable_axes(0)->set_values(1, "abc"); }),
              StatusIs(Code::kInvalidArgument, "dt-in"));
  EXPECT_THAT(submit([](auto* r) { r->mutable_axes(0)->set_flag("seed"); }),
              StatusIs(Code::kInvalidArgument, "use seeds"));
  EXPECT_THAT(submit([](auto* r) { *r->add_axes() = r->axes(0); }),
              StatusIs(Code::kInvalidArgument, "axis twice"));
  EXPECT_THAT(submit([](auto* r) { r->mutable_fixed(0)->set_flag("dt-in"); }),
              StatusIs(Code::kInvalidArgument, "also an axis"));
  // 101 x 100 points: over 10,000, before anything is built.
  EXPECT_THAT(submit([](auto* r) {
                r->clear_axes();
                for (const char* flag : {"tau", "lr"}) {
                  v1::SweepAxis* a = r->add_axes();
                  a->set_flag(flag);
                  for (int i = 1; i <= (flag[0] == 't' ? 101 : 100); ++i) {
                    a->add_values(absl::StrCat(i));
                  }
                }
              }),
              StatusIs(Code::kInvalidArgument, "more than 10000 points"));
  // 2 points x 51 seeds > 100 jobs per sweep (this queue's limit).
  EXPECT_THAT(submit([](auto* r) {
                for (int i = 2; i < 53; ++i) r->add_seeds(i);
              }),
              StatusIs(Code::kInvalidArgument, "at most 100 per sweep"));
  EXPECT_THAT(submit([](auto* r) { r->set_model_name("bad name"); }),
              StatusIs(Code::kInvalidArgument, "model_name"));
  // Nothing was written by any of them.
  ASSERT_OK_AND_ASSIGN(v1::ListSweepsResponse list,
                       sweeps_->List(v1::ListSweepsRequest()));
  EXPECT_EQ(list.sweeps_size(), 0);
  ASSERT_OK_AND_ASSIGN(StoreCounts counts, store_.Count());
  EXPECT_EQ(counts.queued, 0);
  EXPECT_THAT(sweeps_->Get("nope"), StatusIs(Code::kNotFound, "nope"));
  EXPECT_THAT(sweeps_->Get(""), StatusIs(Code::kInvalidArgument, "sweep_id"));
}

TEST_F(SweepQueueTest, RequestIdMakesSubmitIdempotentAndTheQueueIsBounded) {
  v1::SubmitSweepRequest r = TinySweep();
  r.set_request_id("study-1");
  ASSERT_OK_AND_ASSIGN(v1::Sweep first, sweeps_->Submit(r));
  EXPECT_EQ(first.jobs_total(), 4);
  ASSERT_OK_AND_ASSIGN(v1::Sweep again, sweeps_->Submit(r));
  EXPECT_EQ(again.id(), first.id());
  r.add_seeds(9);
  EXPECT_THAT(sweeps_->Submit(r),
              StatusIs(Code::kAlreadyExists, "different request"));
  ASSERT_OK_AND_ASSIGN(StoreCounts counts, store_.Count());
  EXPECT_EQ(counts.queued, 4);
  // 4 queued + 2 points x 73 seeds > 150.
  v1::SubmitSweepRequest big = TinySweep();
  for (int i = 2; i < 50; ++i) big.add_seeds(i);
  ASSERT_OK(sweeps_->Submit(big));  // 4 + 100 <= 150
  EXPECT_THAT(sweeps_->Submit(big),
              StatusIs(Code::kResourceExhausted, "sweep queue is full"));
}

TEST_F(SweepQueueTest, RunsToTheEndWithStatisticsFromItsJobs) {
  StartRunner();
  ASSERT_OK_AND_ASSIGN(v1::Sweep submitted, sweeps_->Submit(TinySweep()));
  EXPECT_EQ(submitted.points_size(), 2);
  EXPECT_EQ(submitted.points(1).settings(0).value(), "2");
  const v1::Sweep done = WaitForEnd(submitted.id());
  ASSERT_EQ(done.state(), v1::SWEEP_STATE_DONE);
  EXPECT_EQ(done.jobs_succeeded(), 4);
  EXPECT_DOUBLE_EQ(done.progress(), 1.0);
  for (const v1::SweepPoint& p : done.points()) {
    std::vector<double> acc;
    for (const std::string& id : p.job_ids()) {
      ASSERT_OK_AND_ASSIGN(v1::TrainingJob job, store_.GetJob(id));
      EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED);
      EXPECT_EQ(job.model_version(), 0);  // published nothing
      EXPECT_EQ(job.spec().layers(), 1);
      acc.push_back(job.latest_epoch().test_accuracy());
    }
    ASSERT_EQ(acc.size(), 2u);
    EXPECT_DOUBLE_EQ(p.median_test_accuracy(), (acc[0] + acc[1]) / 2);
    EXPECT_DOUBLE_EQ(p.q25_test_accuracy(),
                     std::min(acc[0], acc[1]) + 0.25 * std::abs(acc[0] - acc[1]));
  }
  // Different dt_in, different jobs: the grid reached the specs.
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob a, store_.GetJob(done.points(0).job_ids(0)));
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob b, store_.GetJob(done.points(1).job_ids(0)));
  EXPECT_EQ(a.spec().dt_in(), 1);
  EXPECT_EQ(b.spec().dt_in(), 2);
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Model> models, store_.ListModels(""));
  EXPECT_TRUE(models.empty());
  EXPECT_THAT(sweeps_->Cancel(done.id()),
              StatusIs(Code::kFailedPrecondition, "already ended"));

  // Asked for: every success publishes a version of the named model.
  v1::SubmitSweepRequest publish = TinySweep();
  publish.set_model_name("study");
  ASSERT_OK_AND_ASSIGN(v1::Sweep second, sweeps_->Submit(publish));
  EXPECT_EQ(WaitForEnd(second.id()).jobs_succeeded(), 4);
  ASSERT_OK_AND_ASSIGN(models, store_.ListModels("study"));
  EXPECT_EQ(models.size(), 4u);
}

TEST_F(SweepQueueTest, CancelEndsEveryJobThatHasNotEnded) {
  v1::SubmitSweepRequest r = TinySweep();
  for (int i = 2; i < 10; ++i) r.add_seeds(i);
  ASSERT_OK_AND_ASSIGN(v1::Sweep sweep, sweeps_->Submit(r));
  EXPECT_EQ(sweep.jobs_queued(), 20);
  ASSERT_OK_AND_ASSIGN(v1::Sweep cancelled, sweeps_->Cancel(sweep.id()));
  EXPECT_EQ(cancelled.state(), v1::SWEEP_STATE_CANCELLED);
  EXPECT_EQ(cancelled.jobs_cancelled(), 20);
  EXPECT_TRUE(cancelled.cancel_requested());
  ASSERT_OK_AND_ASSIGN(StoreCounts counts, store_.Count());
  EXPECT_EQ(counts.queued, 0);
  EXPECT_THAT(sweeps_->Cancel(sweep.id()),
              StatusIs(Code::kFailedPrecondition, "CANCELLED"));
}

}  // namespace
}  // namespace spinnet::server
