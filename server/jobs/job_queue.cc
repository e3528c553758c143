#include "server/jobs/job_queue.h"

#include <mutex>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status_macros.h"
#include "core/trainer.h"
#include "google/protobuf/util/message_differencer.h"
#include "proto/api_convert.h"
#include "server/storage/job_records.h"

namespace spinnet::server {
namespace {

absl::Status CheckId(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("job_id is empty");
  if (id.size() > 128) return absl::InvalidArgumentError("job_id is too long");
  return absl::OkStatus();
}

}  // namespace

std::string NewId(const std::string& prefix) {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  std::lock_guard<std::mutex> lock(mu);
  return absl::StrFormat("%s%016x", prefix, rng());
}

absl::StatusOr<TrainingSpec> ResolveSpec(const v1::TrainingSpec& proto,
                                         const Dataset& train) {
  ASSIGN_OR_RETURN(TrainingSpec spec, api::SpecFromProto(proto));
  spec.network.input_dim = train.input_dim;
  spec.network.num_classes = static_cast<int>(train.class_labels.size());
  RETURN_IF_ERROR(
      StartTraining(spec.network, spec.device, spec.train, train).status());
  return spec;
}

absl::StatusOr<TrainingSpec> CheckSubmission(
    const v1::SubmitTrainingJobRequest& r, DatasetRegistry* datasets) {
  RETURN_IF_ERROR(ValidateName("model", r.model_name()));
  if (r.dataset().empty()) {
    return absl::InvalidArgumentError("dataset is empty; e.g. \"digits\"");
  }
  if (r.request_id().size() > 128) {
    return absl::InvalidArgumentError("request_id longer than 128 bytes");
  }
  ASSIGN_OR_RETURN(LoadedDataset data, datasets->Get(r.dataset()));
  return ResolveSpec(r.spec(), data.split->train);
}

absl::StatusOr<v1::TrainingJob> JobQueue::Submit(
    const v1::SubmitTrainingJobRequest& r) {
  ASSIGN_OR_RETURN(TrainingSpec spec, CheckSubmission(r, datasets_));
  v1::TrainingJob job;
  job.set_id(NewId("j-"));
  job.set_request_id(r.request_id());
  job.set_model_name(r.model_name());
  job.set_dataset(r.dataset());
  *job.mutable_spec() = r.spec();
  job.set_state(v1::JOB_STATE_QUEUED);
  job.set_epochs_total(spec.train.epochs);
  *job.mutable_create_time() = TimestampNow();
  ASSIGN_OR_RETURN(Store::Inserted inserted,
                   store_->InsertJob(job, options_.max_queued));
  const v1::TrainingJob& existing = inserted.job;
  using google::protobuf::util::MessageDifferencer;
  if (!inserted.created &&
      (existing.model_name() != r.model_name() ||
       existing.dataset() != r.dataset() ||
       !MessageDifferencer::Equals(existing.spec(), r.spec()))) {
    return absl::AlreadyExistsError(absl::StrCat(
        "request_id \"", r.request_id(), "\" was used for job ", existing.id(),
        " with a different request"));
  }
  return existing;
}

absl::StatusOr<v1::TrainingJob> JobQueue::Get(const std::string& id) {
  RETURN_IF_ERROR(CheckId(id));
  return store_->GetJob(id);
}

absl::StatusOr<v1::ListTrainingJobsResponse> JobQueue::List(
    const v1::ListTrainingJobsRequest& req) {
  if (req.page_size() < 0 || req.page_size() > 500) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_size ", req.page_size(), "; need 0 (default 50) .. 500"));
  }
  const int size = req.page_size() == 0 ? 50 : req.page_size();
  // One more than asked tells whether another page follows.
  ASSIGN_OR_RETURN(std::vector<v1::TrainingJob> jobs,
                   store_->ListJobs(req.state(), size + 1, req.page_token()));
  v1::ListTrainingJobsResponse resp;
  for (int i = 0; i < static_cast<int>(jobs.size()) && i < size; ++i) {
    *resp.add_jobs() = std::move(jobs[i]);
  }
  if (static_cast<int>(jobs.size()) > size) {
    resp.set_next_page_token(resp.jobs(size - 1).id());
  }
  return resp;
}

absl::StatusOr<v1::TrainingJob> JobQueue::Cancel(const std::string& id) {
  RETURN_IF_ERROR(CheckId(id));
  ASSIGN_OR_RETURN(v1::TrainingJob job, store_->CancelJob(id));
  const absl::Time deadline = absl::Now() + options_.cancel_wait;
  while (!IsTerminal(job.state())) {
    ASSIGN_OR_RETURN(std::optional<v1::TrainingJob> changed,
                     WaitForChange(id, job.revision(), deadline));
    if (!changed.has_value()) break;  // the worker is slow or gone
    job = *std::move(changed);
  }
  return job;
}

absl::StatusOr<std::optional<v1::TrainingJob>> JobQueue::WaitForChange(
    const std::string& id, int64_t after_revision, absl::Time deadline) {
  RETURN_IF_ERROR(CheckId(id));
  for (;;) {
    const uint64_t hint = events_->Snapshot(id);
    ASSIGN_OR_RETURN(v1::TrainingJob job, store_->GetJob(id));
    if (job.revision() > after_revision) {
      return std::optional<v1::TrainingJob>(std::move(job));
    }
    const absl::Time now = absl::Now();
    if (now >= deadline) return std::optional<v1::TrainingJob>();
    if (!events_->Wait(id, hint,
                       std::min(deadline, now + options_.poll_interval))) {
      return absl::UnavailableError("server is shutting down");
    }
  }
}

absl::StatusOr<std::vector<v1::EpochMetrics>> JobQueue::Epochs(
    const std::string& id) {
  RETURN_IF_ERROR(CheckId(id));
  return store_->ListEpochs(id);
}

}  // namespace spinnet::server
