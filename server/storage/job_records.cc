#include "server/storage/job_records.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "server/storage/store.h"

namespace spinnet::server {

using google::protobuf::util::TimeUtil;

std::string ModelBlobKey(const std::string& job_id) {
  return absl::StrCat("models/", job_id, ".spnm");
}
std::string ImportedModelBlobKey(const std::string& name, int version) {
  return absl::StrCat("imported-models/", name, "@", version, ".spnm");
}
std::string ModelBlobKeyOf(const v1::Model& model) {
  return model.source_job_id().empty()
             ? ImportedModelBlobKey(model.name(), model.version())
             : ModelBlobKey(model.source_job_id());
}
std::string CheckpointBlobKey(const std::string& job_id) {
  return absl::StrCat("checkpoints/", job_id, ".ckpt");
}
std::string PreviousCheckpointBlobKey(const std::string& job_id) {
  return absl::StrCat("checkpoints/", job_id, ".ckpt.prev");
}
std::string DatasetBlobKey(const std::string& name) {
  return absl::StrCat("datasets/", name, ".csv");
}

bool IsTerminal(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED ||
         s == v1::JOB_STATE_CANCELLED;
}

google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  return TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}

google::protobuf::Timestamp TimestampNow() { return ToTimestamp(absl::Now()); }

int64_t ToMicros(const google::protobuf::Timestamp& t) {
  return TimeUtil::TimestampToMicroseconds(t);
}

void ApplyClaim(const std::string& worker, v1::TrainingJob* job) {
  job->set_state(v1::JOB_STATE_RUNNING);
  job->set_attempt(job->attempt() + 1);
  job->set_worker(worker);
  if (!job->has_start_time()) *job->mutable_start_time() = TimestampNow();
}

v1::JobState ApplyRelease(bool cancel_requested, v1::TrainingJob* job) {
  job->clear_worker();
  if (cancel_requested) {
    ApplyCancel(job);
    return job->state();
  }
  job->set_state(v1::JOB_STATE_QUEUED);
  job->set_attempt(job->attempt() > 0 ? job->attempt() - 1 : 0);
  job->set_restarts(job->restarts() + 1);
  job->clear_eta();
  return job->state();
}

v1::JobState ApplyExpiry(int max_attempts, bool cancel_requested,
                         v1::TrainingJob* job) {
  const std::string worker = job->worker();
  job->clear_worker();
  job->clear_eta();
  if (cancel_requested) {
    job->set_state(v1::JOB_STATE_CANCELLED);
    *job->mutable_end_time() = TimestampNow();
  } else if (job->attempt() >= max_attempts) {
    job->set_state(v1::JOB_STATE_FAILED);
    job->set_failure_reason(absl::StrCat(
        "its worker (", worker, ") stopped without finishing on attempt ",
        job->attempt(), " of ", max_attempts,
        " (lease expired); giving up: the job may be killing its workers"));
    *job->mutable_end_time() = TimestampNow();
  } else {
    job->set_state(v1::JOB_STATE_QUEUED);
    job->set_restarts(job->restarts() + 1);
  }
  return job->state();
}

void ApplyCancel(v1::TrainingJob* job) {
  job->set_state(v1::JOB_STATE_CANCELLED);
  job->clear_eta();
  *job->mutable_end_time() = TimestampNow();
}

bool ApplyFinish(bool cancel_requested, v1::TrainingJob* job) {
  job->clear_worker();
  if (cancel_requested && job->state() != v1::JOB_STATE_CANCELLED) {
    ApplyCancel(job);
    job->clear_failure_reason();
  }
  return job->state() == v1::JOB_STATE_SUCCEEDED;
}

Store::Checkpoints ReadCheckpoints(BlobStore& blobs,
                                  const std::string& job_id) {
  Store::Checkpoints out;
  for (const std::string& key :
       {CheckpointBlobKey(job_id), PreviousCheckpointBlobKey(job_id)}) {
    absl::StatusOr<std::string> bytes = blobs.Get(key);
    if (bytes.ok()) {
      out.newest_first.push_back(*std::move(bytes));
    } else if (!absl::IsNotFound(bytes.status())) {
      out.skipped.push_back(bytes.status());
    }
  }
  return out;
}

absl::Status CheckFinishable(const v1::TrainingJob& job, bool has_model) {
  if (!IsTerminal(job.state())) {
    return absl::InvalidArgumentError(
        absl::StrCat("FinishJob with job state ",
                     v1::JobState_Name(job.state()), "; need a final state"));
  }
  const bool succeeded = job.state() == v1::JOB_STATE_SUCCEEDED;
  if (has_model && !succeeded) {
    return absl::InvalidArgumentError(
        "a model is published with a SUCCEEDED job only");
  }
  if (!has_model && succeeded && !job.model_name().empty()) {
    return absl::InvalidArgumentError(
        "a SUCCEEDED job that names a model publishes it");
  }
  return absl::OkStatus();
}

absl::Status CheckImportable(const ModelToPublish& model) {
  const std::string& name = model.info.name();
  if (name.empty() || name.find_first_of("/@") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("model name \"", name,
                     "\" cannot be stored; need a non-empty name "
                     "without '/' or '@'"));
  }
  if (model.bytes.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("model \"", name, "\": the file is empty"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Serialize(const google::protobuf::MessageLite& m) {
  std::string out;
  if (!m.SerializeToString(&out)) {
    return absl::InvalidArgumentError(absl::StrCat(
        m.GetTypeName(), " does not serialize (", m.ByteSizeLong(), " bytes)"));
  }
  return out;
}

absl::Status CheckEpochNumber(const v1::EpochMetrics& epoch) {
  if (epoch.epoch() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("epoch ", epoch.epoch(), "; need >= 1"));
  }
  return absl::OkStatus();
}

absl::Status LeaseLost(const std::string& job_id) {
  return absl::AbortedError(absl::StrCat(
      "lease lost: job ", job_id,
      " was taken over by another worker (or ended); nothing written"));
}

absl::Status JobNotFound(const std::string& job_id) {
  return absl::NotFoundError(absl::StrCat("job \"", job_id, "\" not found"));
}

absl::Status ModelNotFound(const std::string& name, int version) {
  if (version == 0) {
    return absl::NotFoundError(absl::StrCat("model \"", name, "\" not found"));
  }
  return absl::NotFoundError(
      absl::StrCat("model \"", name, "\" version ", version, " not found"));
}

absl::Status DatasetNotFound(const std::string& name) {
  return absl::NotFoundError(absl::StrCat("dataset \"", name, "\" not found"));
}

absl::Status QueueFull(int max_queued) {
  return absl::ResourceExhaustedError(
      absl::StrCat("training queue is full (", max_queued,
                   " jobs waiting); retry later"));
}

absl::Status SweepNotFound(const std::string& sweep_id) {
  return absl::NotFoundError(absl::StrCat("sweep \"", sweep_id, "\" not found"));
}

absl::Status SweepQueueFull(int max_queued, int64_t queued, size_t jobs) {
  return absl::ResourceExhaustedError(absl::StrCat(
      "sweep queue is full: ", queued, " sweep jobs waiting, ", jobs,
      " more would pass the limit of ", max_queued, "; retry later"));
}

absl::Status CheckSingleJob(const v1::TrainingJob& job) {
  if (job.id().empty()) return absl::InvalidArgumentError("job id is empty");
  if (!job.sweep_id().empty()) {
    return absl::InvalidArgumentError("a sweep's jobs come with InsertSweep");
  }
  return absl::OkStatus();
}

absl::Status CheckSweepJobs(const v1::Sweep& sweep,
                            const std::vector<v1::TrainingJob>& jobs) {
  if (sweep.id().empty()) return absl::InvalidArgumentError("sweep id is empty");
  for (const v1::TrainingJob& job : jobs) {
    if (job.id().empty() || job.sweep_id() != sweep.id() ||
        job.state() != v1::JOB_STATE_QUEUED || !job.request_id().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sweep ", sweep.id(), ": job \"", job.id(),
          "\" is not a new QUEUED job of the sweep without a request id"));
    }
  }
  return absl::OkStatus();
}

absl::Status AlreadyEnded(const v1::TrainingJob& job) {
  return absl::FailedPreconditionError(
      absl::StrCat("job ", job.id(), " already ended: ",
                   v1::JobState_Name(job.state())));
}

}  // namespace spinnet::server
