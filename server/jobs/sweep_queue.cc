#include "server/jobs/sweep_queue.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "core/sweep.h"
#include "google/protobuf/util/message_differencer.h"
#include "proto/api_convert.h"
#include "server/jobs/job_queue.h"
#include "server/storage/job_records.h"

namespace spinnet::server {
namespace {

absl::Status CheckId(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("sweep_id is empty");
  if (id.size() > 128) return absl::InvalidArgumentError("sweep_id is too long");
  return absl::OkStatus();
}

// The request part of a record: what a repeated request id must match.
v1::SubmitSweepRequest RequestOf(const v1::Sweep& s) {
  v1::SubmitSweepRequest r;
  r.set_request_id(s.request_id());
  r.set_dataset(s.dataset());
  *r.mutable_fixed() = s.fixed();
  *r.mutable_axes() = s.axes();
  *r.mutable_seeds() = s.seeds();
  r.set_model_name(s.model_name());
  return r;
}

}  // namespace

v1::Sweep SummarizeSweep(v1::Sweep sweep,
                         const std::vector<v1::TrainingJob>& jobs) {
  std::map<uint64_t, int> seed_index;
  for (int i = 0; i < sweep.seeds_size(); ++i) seed_index[sweep.seeds(i)] = i;
  const int num_seeds = sweep.seeds_size();
  // Each point's jobs by seed index.
  std::vector<std::vector<const v1::TrainingJob*>> by_point(
      sweep.points_size(),
      std::vector<const v1::TrainingJob*>(num_seeds, nullptr));
  for (const v1::TrainingJob& job : jobs) {
    const auto seed = seed_index.find(job.spec().seed());
    if (job.sweep_point() < 0 || job.sweep_point() >= sweep.points_size() ||
        seed == seed_index.end()) {
      continue;  // not of this grid: cannot happen with InsertSweep's jobs
    }
    by_point[job.sweep_point()][seed->second] = &job;
  }
  int64_t revision = 0;
  double progress = 0;
  bool open = false;
  sweep.set_jobs_total(static_cast<int>(jobs.size()));
  for (int p = 0; p < sweep.points_size(); ++p) {
    v1::SweepPoint& point = *sweep.mutable_points(p);
    point.clear_job_ids();
    point.set_seeds_total(num_seeds);
    std::vector<double> accuracies;
    double drive = 0;
    for (int s = 0; s < num_seeds; ++s) {
      const v1::TrainingJob* job = by_point[p][s];
      point.add_job_ids(job == nullptr ? "" : job->id());
      if (job == nullptr) continue;
      revision = std::max(revision, job->revision());
      progress += IsTerminal(job->state()) ? 1.0 : job->progress();
      open = open || !IsTerminal(job->state());
      switch (job->state()) {
        case v1::JOB_STATE_QUEUED:
          point.set_seeds_queued(point.seeds_queued() + 1);
          sweep.set_jobs_queued(sweep.jobs_queued() + 1);
          break;
        case v1::JOB_STATE_RUNNING:
          point.set_seeds_running(point.seeds_running() + 1);
          sweep.set_jobs_running(sweep.jobs_running() + 1);
          break;
        case v1::JOB_STATE_SUCCEEDED:
          point.set_seeds_succeeded(point.seeds_succeeded() + 1);
          sweep.set_jobs_succeeded(sweep.jobs_succeeded() + 1);
          point.add_succeeded_seeds(sweep.seeds(s));
          point.add_test_accuracies(job->latest_epoch().test_accuracy());
          accuracies.push_back(job->latest_epoch().test_accuracy());
          drive += job->latest_epoch().cumulative_drive();
          break;
        case v1::JOB_STATE_FAILED:
          point.set_seeds_failed(point.seeds_failed() + 1);
          sweep.set_jobs_failed(sweep.jobs_failed() + 1);
          break;
        case v1::JOB_STATE_CANCELLED:
          point.set_seeds_cancelled(point.seeds_cancelled() + 1);
          sweep.set_jobs_cancelled(sweep.jobs_cancelled() + 1);
          break;
        default:
          break;
      }
    }
    if (!accuracies.empty()) {
      point.set_median_test_accuracy(Quantile(accuracies, 0.5));
      point.set_q25_test_accuracy(Quantile(accuracies, 0.25));
      point.set_q75_test_accuracy(Quantile(accuracies, 0.75));
      point.set_mean_cumulative_drive(drive / accuracies.size());
    }
  }
  sweep.set_revision(revision);
  sweep.set_progress(jobs.empty() ? 1.0 : progress / jobs.size());
  if (sweep.cancel_requested()) {
    sweep.set_state(open ? v1::SWEEP_STATE_CANCELLING
                         : v1::SWEEP_STATE_CANCELLED);
  } else {
    sweep.set_state(open ? v1::SWEEP_STATE_RUNNING : v1::SWEEP_STATE_DONE);
  }
  return sweep;
}

absl::StatusOr<std::vector<SweepPoint>> CheckSweep(
    const v1::SubmitSweepRequest& r, DatasetRegistry* datasets,
    int max_jobs_per_sweep) {
  if (r.dataset().empty()) {
    return absl::InvalidArgumentError("dataset is empty; e.g. \"digits\"");
  }
  if (r.request_id().size() > 128) {
    return absl::InvalidArgumentError("request_id longer than 128 bytes");
  }
  if (!r.model_name().empty()) {
    RETURN_IF_ERROR(ValidateName("model_name", r.model_name()));
  }
  if (r.seeds().empty()) {
    return absl::InvalidArgumentError("seeds is empty; give at least one");
  }
  if (r.seeds_size() > kMaxSweepSeeds) {
    return absl::InvalidArgumentError(absl::StrCat(
        "seeds: ", r.seeds_size(), " seeds; at most ", kMaxSweepSeeds));
  }
  std::vector<uint64_t> seeds(r.seeds().begin(), r.seeds().end());
  std::sort(seeds.begin(), seeds.end());
  if (std::adjacent_find(seeds.begin(), seeds.end()) != seeds.end()) {
    return absl::InvalidArgumentError("seeds: a seed appears twice");
  }
  std::vector<Setting> fixed;
  for (const v1::Setting& s : r.fixed()) {
    fixed.emplace_back(s.flag(), s.value());
  }
  std::vector<SweepAxis> axes;
  for (const v1::SweepAxis& a : r.axes()) {
    axes.push_back({a.flag(), {a.values().begin(), a.values().end()}});
  }
  for (const auto& [flag, value] : fixed) {
    if (flag == "seed") {
      return absl::InvalidArgumentError(
          "fixed: --seed is not a setting of a sweep; use seeds");
    }
  }
  for (const SweepAxis& axis : axes) {
    if (axis.flag == "seed") {
      return absl::InvalidArgumentError(
          "axes: --seed is not an axis; use seeds");
    }
  }
  // Before the dataset: a bad grid is the caller's error whatever the data.
  for (const auto& [flag, value] : fixed) {
    if (FindTrainingFlag(flag) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("fixed: unknown flag --", flag));
    }
  }
  ASSIGN_OR_RETURN(LoadedDataset data, datasets->Get(r.dataset()));
  absl::StatusOr<std::vector<SweepPoint>> grid =
      ExpandSweep(fixed, axes, data.split->train);
  if (!grid.ok()) {
    // Settings errors name the flag; say it is the grid's.
    const std::string message(grid.status().message());
    return absl::Status(grid.status().code(),
                        absl::StartsWith(message, "axes:") ||
                                absl::StartsWith(message, "fixed:")
                            ? message
                            : absl::StrCat("grid: ", message));
  }
  const int64_t total =
      static_cast<int64_t>(grid->size()) * r.seeds_size();
  if (total > max_jobs_per_sweep) {
    return absl::InvalidArgumentError(absl::StrCat(
        "seeds: ", grid->size(), " points x ", r.seeds_size(), " seeds = ",
        total, " jobs; at most ", max_jobs_per_sweep, " per sweep"));
  }
  return grid;
}

absl::StatusOr<v1::Sweep> SweepQueue::Submit(const v1::SubmitSweepRequest& r) {
  ASSIGN_OR_RETURN(const std::vector<SweepPoint> grid,
                   CheckSweep(r, datasets_, options_.max_jobs_per_sweep));
  const int64_t total = static_cast<int64_t>(grid.size()) * r.seeds_size();
  v1::Sweep record;
  record.set_id(NewId("s-"));
  record.set_request_id(r.request_id());
  record.set_dataset(r.dataset());
  *record.mutable_fixed() = r.fixed();
  *record.mutable_axes() = r.axes();
  *record.mutable_seeds() = r.seeds();
  record.set_model_name(r.model_name());
  const absl::Time now = absl::Now();
  *record.mutable_create_time() = ToTimestamp(now);
  for (const SweepPoint& point : grid) {
    v1::SweepPoint& out = *record.add_points();
    for (const auto& [flag, value] : point.settings) {
      v1::Setting& s = *out.add_settings();
      s.set_flag(flag);
      s.set_value(value);
    }
  }
  // Seed-major: every point's first seed is queued before any second seed,
  // so a partial sweep already covers the grid. One microsecond apart, so
  // that the queue (oldest first) takes them in this order.
  std::vector<v1::TrainingJob> jobs;
  jobs.reserve(total);
  for (int s = 0; s < r.seeds_size(); ++s) {
    for (size_t p = 0; p < grid.size(); ++p) {
      TrainingSpec spec = grid[p].spec;
      spec.train.seed = r.seeds(s);
      v1::TrainingJob job;
      job.set_id(NewId("j-"));
      job.set_model_name(r.model_name());
      job.set_dataset(r.dataset());
      *job.mutable_spec() = api::SpecToProto(spec);
      job.set_state(v1::JOB_STATE_QUEUED);
      job.set_epochs_total(spec.train.epochs);
      *job.mutable_create_time() =
          ToTimestamp(now + absl::Microseconds(jobs.size()));
      job.set_sweep_id(record.id());
      job.set_sweep_point(static_cast<int>(p));
      jobs.push_back(std::move(job));
    }
  }
  ASSIGN_OR_RETURN(Store::InsertedSweep inserted,
                   store_->InsertSweep(record, jobs, options_.max_queued_jobs));
  using google::protobuf::util::MessageDifferencer;
  if (!inserted.created &&
      !MessageDifferencer::Equals(RequestOf(inserted.sweep), r)) {
    return absl::AlreadyExistsError(absl::StrCat(
        "request_id \"", r.request_id(), "\" was used for sweep ",
        inserted.sweep.id(), " with a different request"));
  }
  return Load(inserted.sweep.id());
}

absl::StatusOr<v1::Sweep> SweepQueue::Load(const std::string& id) {
  RETURN_IF_ERROR(CheckId(id));
  ASSIGN_OR_RETURN(v1::Sweep record, store_->GetSweep(id));
  ASSIGN_OR_RETURN(std::vector<v1::TrainingJob> jobs,
                   store_->ListSweepJobs(id));
  return SummarizeSweep(std::move(record), jobs);
}

absl::StatusOr<v1::Sweep> SweepQueue::Get(const std::string& id) {
  return Load(id);
}

absl::StatusOr<v1::ListSweepsResponse> SweepQueue::List(
    const v1::ListSweepsRequest& req) {
  if (req.page_size() < 0 || req.page_size() > 100) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_size ", req.page_size(), "; need 0 (default 20) .. 100"));
  }
  const int size = req.page_size() == 0 ? 20 : req.page_size();
  ASSIGN_OR_RETURN(std::vector<v1::Sweep> records,
                   store_->ListSweeps(size + 1, req.page_token()));
  v1::ListSweepsResponse resp;
  for (int i = 0; i < static_cast<int>(records.size()) && i < size; ++i) {
    ASSIGN_OR_RETURN(std::vector<v1::TrainingJob> jobs,
                     store_->ListSweepJobs(records[i].id()));
    *resp.add_sweeps() = SummarizeSweep(std::move(records[i]), jobs);
  }
  if (static_cast<int>(records.size()) > size) {
    resp.set_next_page_token(resp.sweeps(size - 1).id());
  }
  return resp;
}

absl::StatusOr<v1::Sweep> SweepQueue::Cancel(const std::string& id) {
  ASSIGN_OR_RETURN(const v1::Sweep before, Load(id));
  if (before.state() == v1::SWEEP_STATE_DONE ||
      before.state() == v1::SWEEP_STATE_CANCELLED) {
    return absl::FailedPreconditionError(
        absl::StrCat("sweep ", id, " already ended (",
                     v1::SweepState_Name(before.state()), ")"));
  }
  RETURN_IF_ERROR(store_->CancelSweep(id).status());
  return Load(id);
}

absl::StatusOr<std::optional<v1::Sweep>> SweepQueue::WaitForChange(
    const std::string& id, int64_t after_revision, v1::SweepState after_state,
    absl::Time deadline) {
  RETURN_IF_ERROR(CheckId(id));
  // Woken by any job's hint (a sweep's jobs are many), it re-reads the
  // sweep at most every min_reload, however busy the queue.
  constexpr absl::Duration kMinReload = absl::Milliseconds(250);
  for (absl::Time last_load = absl::InfinitePast();;) {
    absl::SleepFor(std::min(last_load + kMinReload, deadline) - absl::Now());
    last_load = absl::Now();
    const uint64_t hint = events_->Snapshot("");
    ASSIGN_OR_RETURN(v1::Sweep sweep, Load(id));
    if (sweep.revision() > after_revision || sweep.state() != after_state) {
      return std::optional<v1::Sweep>(std::move(sweep));
    }
    const absl::Time now = absl::Now();
    if (now >= deadline) return std::optional<v1::Sweep>();
    if (!events_->Wait("", hint,
                       std::min(deadline, now + options_.poll_interval))) {
      return absl::UnavailableError("server is shutting down");
    }
  }
}

}  // namespace spinnet::server
