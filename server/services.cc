#include "server/services.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "google/protobuf/util/time_util.h"
#include "proto/api_convert.h"

namespace spinnet::server {
namespace {

// Every handler: authorize, run the body, convert its status once.
template <typename Body>
grpc::Status Handle(const TokenAuthorizer* auth, grpc::ServerContext* ctx,
                    Body body) {
  absl::Status s = auth->Authorize(*ctx);
  if (s.ok()) s = body();
  return api::ToGrpcStatus(s);
}

absl::Status CheckId(const std::string& what, const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  if (id.size() > 128) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is too long"));
  }
  return absl::OkStatus();
}

}  // namespace

grpc::Status TrainingServiceImpl::SubmitTrainingJob(
    grpc::ServerContext* ctx, const v1::SubmitTrainingJobRequest* req,
    v1::TrainingJob* resp) {
  return Handle(auth_, ctx, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, jobs_->Submit(*req));
    return absl::OkStatus();
  });
}

grpc::Status TrainingServiceImpl::GetTrainingJob(
    grpc::ServerContext* ctx, const v1::GetTrainingJobRequest* req,
    v1::TrainingJob* resp) {
  return Handle(auth_, ctx, [&]() -> absl::Status {
    RETURN_IF_ERROR(CheckId("job_id", req->job_id()));
    ASSIGN_OR_RETURN(*resp, jobs_->Get(req->job_id()));
    return absl::OkStatus();
  });
}

grpc::Status TrainingServiceImpl::ListTrainingJobs(
    grpc::ServerContext* ctx, const v1::ListTrainingJobsRequest* req,
    v1::ListTrainingJobsResponse* resp) {
  return Handle(auth_, ctx, [&]() -> absl::Status {
    if (req->page_size() < 0 || req->page_size() > 500) {
      return absl::InvalidArgumentError(absl::StrCat(
          "page_size ", req->page_size(), "; need 0 (default 50) .. 500"));
    }
    const int size = req->page_size() == 0 ? 50 : req->page_size();
    // One more than asked tells whether another page follows.
    ASSIGN_OR_RETURN(std::vector<v1::TrainingJob> jobs,
                     store_->ListJobs(req->state(), size + 1,
                                      req->page_token()));
    for (int i = 0; i < static_cast<int>(jobs.size()) && i < size; ++i) {
      *resp->add_jobs() = jobs[i];
    }
    if (static_cast<int>(jobs.size()) > size) {
      resp->set_next_page_token(jobs[size - 1].id());
    }
    return absl::OkStatus();
  });
}

grpc::Status TrainingServiceImpl::CancelTrainingJob(
    grpc::ServerContext* ctx, const v1::CancelTrainingJobRequest* req,
    v1::TrainingJob* resp) {
  return Handle(auth_, ctx, [&]() -> absl::Status {
    RETURN_IF_ERROR(CheckId("job_id", req->job_id()));
    ASSIGN_OR_RETURN(*resp, jobs_->Cancel(req->job_id()));
    return absl::OkStatus();
  });
}

grpc::Status TrainingServiceImpl::WatchTrainingJob(
    grpc::ServerContext* ctx, const v1::WatchTrainingJobRequest* req,
    grpc::ServerWriter<v1::WatchTrainingJobResponse>* writer) {
  return Handle(auth_, ctx, [&]() -> absl::Status {
    RETURN_IF_ERROR(CheckId("job_id", req->job_id()));
    uint64_t seen = 0;
    int epochs_sent = -1;
    for (;;) {
      if (ctx->IsCancelled()) {
        return absl::CancelledError("watch cancelled by the client");
      }
      // Wake up regularly to notice a client that went away.
      ASSIGN_OR_RETURN(std::optional<JobUpdate> update,
                       jobs_->WaitForUpdate(req->job_id(), seen,
                                            absl::Now() + absl::Seconds(1)));
      if (!update.has_value()) continue;
      seen = update->sequence;
      v1::WatchTrainingJobResponse msg;
      *msg.mutable_job() = update->job;
      if (epochs_sent >= 0 && update->job.epochs_done() > epochs_sent &&
          update->job.has_latest_epoch()) {
        *msg.mutable_epoch() = update->job.latest_epoch();
      }
      epochs_sent = update->job.epochs_done();
      if (!writer->Write(msg)) {
        return absl::CancelledError("watcher went away");
      }
      const v1::JobState s = update->job.state();
      if (s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED ||
          s == v1::JOB_STATE_CANCELLED) {
        return absl::OkStatus();
      }
    }
  });
}

grpc::Status DatasetServiceImpl::UploadDataset(
    grpc::ServerContext* ctx,
    grpc::ServerReader<v1::UploadDatasetRequest>* reader, v1::Dataset* resp) {
  return Handle(auth_, ctx, [&]() -> absl::Status {
    v1::UploadDatasetRequest msg;
    if (!reader->Read(&msg) || !msg.has_header()) {
      return absl::InvalidArgumentError(
          "the first upload message must be the header");
    }
    const v1::UploadDatasetHeader header = msg.header();
    if (header.size_bytes() < 0 ||
        header.size_bytes() > datasets_->max_upload_bytes()) {
      return absl::InvalidArgumentError(
          absl::StrCat("upload of ", header.size_bytes(), " bytes; the limit is ",
                       datasets_->max_upload_bytes()));
    }
    std::string bytes;
    bytes.reserve(header.size_bytes());
    while (reader->Read(&msg)) {
      if (!msg.has_chunk() && msg.has_header()) {
        return absl::InvalidArgumentError("a second header in one upload");
      }
      if (static_cast<int64_t>(bytes.size() + msg.chunk().size()) >
          header.size_bytes()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "upload is longer than the ", header.size_bytes(),
            " bytes its header announced"));
      }
      bytes += msg.chunk();
    }
    if (ctx->IsCancelled()) return absl::CancelledError("upload cancelled");
    ASSIGN_OR_RETURN(*resp, datasets_->Add(header, std::move(bytes)));
    return absl::OkStatus();
  });
}

grpc::Status DatasetServiceImpl::ListDatasets(
    grpc::ServerContext* ctx, const v1::ListDatasetsRequest*,
    v1::ListDatasetsResponse* resp) {
  return Handle(auth_, ctx, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::vector<v1::Dataset> all, datasets_->List());
    for (auto& d : all) *resp->add_datasets() = std::move(d);
    return absl::OkStatus();
  });
}

grpc::Status DatasetServiceImpl::GetDataset(grpc::ServerContext* ctx,
                                            const v1::GetDatasetRequest* req,
                                            v1::Dataset* resp) {
  return Handle(auth_, ctx, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(LoadedDataset d, datasets_->Get(req->name()));
    *resp = d.info;
    return absl::OkStatus();
  });
}

grpc::Status DatasetServiceImpl::DeleteDataset(
    grpc::ServerContext* ctx, const v1::DeleteDatasetRequest* req,
    v1::DeleteDatasetResponse*) {
  return Handle(auth_, ctx, [&] { return datasets_->Delete(req->name()); });
}

grpc::Status ModelServiceImpl::ListModels(grpc::ServerContext* ctx,
                                          const v1::ListModelsRequest* req,
                                          v1::ListModelsResponse* resp) {
  return Handle(auth_, ctx, [&]() -> absl::Status {
    if (!req->name().empty()) RETURN_IF_ERROR(ValidateName("model", req->name()));
    ASSIGN_OR_RETURN(std::vector<v1::Model> all, store_->ListModels(req->name()));
    for (auto& m : all) *resp->add_models() = std::move(m);
    return absl::OkStatus();
  });
}

grpc::Status ModelServiceImpl::GetModel(grpc::ServerContext* ctx,
                                        const v1::GetModelRequest* req,
                                        v1::Model* resp) {
  return Handle(auth_, ctx, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(LoadedModel m, models_->Get(req->name(), req->version()));
    *resp = m.info;
    return absl::OkStatus();
  });
}

grpc::Status ModelServiceImpl::DeleteModel(grpc::ServerContext* ctx,
                                           const v1::DeleteModelRequest* req,
                                           v1::DeleteModelResponse*) {
  return Handle(auth_, ctx,
                [&] { return models_->Delete(req->name(), req->version()); });
}

grpc::Status MetricsServiceImpl::GetTrainingMetrics(
    grpc::ServerContext* ctx, const v1::GetTrainingMetricsRequest* req,
    v1::GetTrainingMetricsResponse* resp) {
  return Handle(auth_, ctx, [&]() -> absl::Status {
    RETURN_IF_ERROR(CheckId("job_id", req->job_id()));
    RETURN_IF_ERROR(store_->GetJob(req->job_id()).status());
    ASSIGN_OR_RETURN(std::vector<v1::EpochMetrics> epochs,
                     store_->ListEpochs(req->job_id()));
    resp->set_job_id(req->job_id());
    for (auto& e : epochs) *resp->add_epochs() = std::move(e);
    return absl::OkStatus();
  });
}

grpc::Status MetricsServiceImpl::GetServerStats(grpc::ServerContext* ctx,
                                                const v1::GetServerStatsRequest*,
                                                v1::ServerStats* resp) {
  return Handle(auth_, ctx, [&]() -> absl::Status {
    resp->set_version(SPINNET_VERSION);
    *resp->mutable_uptime() =
        google::protobuf::util::TimeUtil::MillisecondsToDuration(
            absl::ToInt64Milliseconds(absl::Now() - stats_.start_time));
    const std::pair<v1::JobState, void (v1::ServerStats::*)(int32_t)> counts[] =
        {{v1::JOB_STATE_QUEUED, &v1::ServerStats::set_jobs_queued},
         {v1::JOB_STATE_RUNNING, &v1::ServerStats::set_jobs_running},
         {v1::JOB_STATE_SUCCEEDED, &v1::ServerStats::set_jobs_succeeded},
         {v1::JOB_STATE_FAILED, &v1::ServerStats::set_jobs_failed},
         {v1::JOB_STATE_CANCELLED, &v1::ServerStats::set_jobs_cancelled}};
    for (const auto& [state, setter] : counts) {
      ASSIGN_OR_RETURN(std::vector<v1::TrainingJob> jobs,
                       store_->JobsInStates({state}));
      (resp->*setter)(static_cast<int32_t>(jobs.size()));
    }
    resp->set_active_streams(stats_.active_streams());
    ASSIGN_OR_RETURN(std::vector<v1::Model> models, store_->ListModels(""));
    resp->set_models(static_cast<int32_t>(models.size()));
    ASSIGN_OR_RETURN(std::vector<v1::Dataset> datasets, store_->ListDatasets());
    resp->set_datasets(static_cast<int32_t>(datasets.size()) + 1);  // digits
    resp->set_training_workers(stats_.training_workers);
    return absl::OkStatus();
  });
}

}  // namespace spinnet::server
