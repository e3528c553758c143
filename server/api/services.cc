#include "server/api/services.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "google/protobuf/util/time_util.h"
#include "proto/grpc_status.h"
#include "server/catalog/upload.h"
#include "server/storage/job_records.h"

namespace spinnet::server {
namespace {

// Every handler: authorize the call of `rpc` (its name in RpcRoles()), run
// the body, convert its status once.
template <typename Body>
grpc::Status Handle(const TokenAuthorizer* auth, grpc::ServerContext* ctx,
                    absl::string_view rpc, Body body) {
  absl::Status s = auth->Authorize(*ctx, rpc);
  if (s.ok()) s = body();
  return api::ToGrpcStatus(s);
}

// Files leave in chunks this size: well under any --max-message-bytes a
// server accepts, and big enough that framing costs nothing.
constexpr size_t kChunkBytes = 32 << 10;

// ReadUpload (catalog/upload.h) on a gRPC reader.
template <typename Request, typename Header>
absl::StatusOr<std::string> ReadUploadFrom(grpc::ServerContext* ctx,
                                           grpc::ServerReader<Request>* reader,
                                           int64_t limit,
                                           absl::string_view what,
                                           Header* header) {
  return ReadUpload<Request>(
      [reader](Request* msg) { return reader->Read(msg); },
      [ctx] { return ctx->IsCancelled(); }, limit, what, header);
}

}  // namespace

grpc::Status TrainingServiceImpl::SubmitTrainingJob(
    grpc::ServerContext* ctx, const v1::SubmitTrainingJobRequest* req,
    v1::TrainingJob* resp) {
  return Handle(auth_, ctx, rpc::kSubmitTrainingJob, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, jobs_->Submit(*req));
    return absl::OkStatus();
  });
}

grpc::Status TrainingServiceImpl::GetTrainingJob(
    grpc::ServerContext* ctx, const v1::GetTrainingJobRequest* req,
    v1::TrainingJob* resp) {
  return Handle(auth_, ctx, rpc::kGetTrainingJob, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, jobs_->Get(req->job_id()));
    return absl::OkStatus();
  });
}

grpc::Status TrainingServiceImpl::ListTrainingJobs(
    grpc::ServerContext* ctx, const v1::ListTrainingJobsRequest* req,
    v1::ListTrainingJobsResponse* resp) {
  return Handle(auth_, ctx, rpc::kListTrainingJobs, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, jobs_->List(*req));
    return absl::OkStatus();
  });
}

grpc::Status TrainingServiceImpl::CancelTrainingJob(
    grpc::ServerContext* ctx, const v1::CancelTrainingJobRequest* req,
    v1::TrainingJob* resp) {
  return Handle(auth_, ctx, rpc::kCancelTrainingJob, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, jobs_->Cancel(req->job_id()));
    return absl::OkStatus();
  });
}

grpc::Status TrainingServiceImpl::WatchTrainingJob(
    grpc::ServerContext* ctx, const v1::WatchTrainingJobRequest* req,
    grpc::ServerWriter<v1::WatchTrainingJobResponse>* writer) {
  return Handle(auth_, ctx, rpc::kWatchTrainingJob, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(const AdmissionLimit::Slot slot, watchers_->Acquire());
    int64_t revision = 0;
    int epochs_sent = -1;  // the first message is the snapshot alone
    for (;;) {
      if (ctx->IsCancelled()) {
        return absl::CancelledError("watch cancelled by the client");
      }
      // Wake up regularly to notice a client that went away.
      ASSIGN_OR_RETURN(std::optional<v1::TrainingJob> job,
                       jobs_->WaitForChange(req->job_id(), revision,
                                            absl::Now() + absl::Seconds(1)));
      if (!job.has_value()) continue;
      revision = job->revision();
      // One message per finished epoch, even when several finished since
      // the last look: the ones in between come from the store's curves.
      std::vector<v1::WatchTrainingJobResponse> msgs;
      if (epochs_sent >= 0 && job->epochs_done() > epochs_sent + 1) {
        ASSIGN_OR_RETURN(std::vector<v1::EpochMetrics> epochs,
                         jobs_->Epochs(job->id()));
        for (v1::EpochMetrics& e : epochs) {
          if (e.epoch() <= epochs_sent || e.epoch() >= job->epochs_done()) {
            continue;
          }
          msgs.emplace_back();
          *msgs.back().mutable_job() = *job;
          *msgs.back().mutable_epoch() = std::move(e);
        }
      }
      msgs.emplace_back();
      *msgs.back().mutable_job() = *job;
      if (epochs_sent >= 0 && job->epochs_done() > epochs_sent &&
          job->has_latest_epoch()) {
        *msgs.back().mutable_epoch() = job->latest_epoch();
      }
      epochs_sent = job->epochs_done();
      for (const v1::WatchTrainingJobResponse& msg : msgs) {
        if (!writer->Write(msg)) {
          return absl::CancelledError("watcher went away");
        }
      }
      if (IsTerminal(job->state())) return absl::OkStatus();
    }
  });
}

grpc::Status SweepServiceImpl::SubmitSweep(grpc::ServerContext* ctx,
                                           const v1::SubmitSweepRequest* req,
                                           v1::Sweep* resp) {
  return Handle(auth_, ctx, rpc::kSubmitSweep, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, sweeps_->Submit(*req));
    return absl::OkStatus();
  });
}

grpc::Status SweepServiceImpl::GetSweep(grpc::ServerContext* ctx,
                                        const v1::GetSweepRequest* req,
                                        v1::Sweep* resp) {
  return Handle(auth_, ctx, rpc::kGetSweep, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, sweeps_->Get(req->sweep_id()));
    return absl::OkStatus();
  });
}

grpc::Status SweepServiceImpl::ListSweeps(grpc::ServerContext* ctx,
                                          const v1::ListSweepsRequest* req,
                                          v1::ListSweepsResponse* resp) {
  return Handle(auth_, ctx, rpc::kListSweeps, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, sweeps_->List(*req));
    return absl::OkStatus();
  });
}

grpc::Status SweepServiceImpl::CancelSweep(grpc::ServerContext* ctx,
                                           const v1::CancelSweepRequest* req,
                                           v1::Sweep* resp) {
  return Handle(auth_, ctx, rpc::kCancelSweep, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, sweeps_->Cancel(req->sweep_id()));
    return absl::OkStatus();
  });
}

grpc::Status SweepServiceImpl::WatchSweep(
    grpc::ServerContext* ctx, const v1::WatchSweepRequest* req,
    grpc::ServerWriter<v1::Sweep>* writer) {
  return Handle(auth_, ctx, rpc::kWatchSweep, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(const AdmissionLimit::Slot slot, watchers_->Acquire());
    int64_t revision = 0;
    v1::SweepState state = v1::SWEEP_STATE_UNSPECIFIED;
    for (;;) {
      if (ctx->IsCancelled()) {
        return absl::CancelledError("watch cancelled by the client");
      }
      // Wake up regularly to notice a client that went away.
      ASSIGN_OR_RETURN(std::optional<v1::Sweep> sweep,
                       sweeps_->WaitForChange(req->sweep_id(), revision, state,
                                              absl::Now() + absl::Seconds(1)));
      if (!sweep.has_value()) continue;
      revision = sweep->revision();
      state = sweep->state();
      if (!writer->Write(*sweep)) {
        return absl::CancelledError("watcher went away");
      }
      if (state == v1::SWEEP_STATE_DONE || state == v1::SWEEP_STATE_CANCELLED) {
        return absl::OkStatus();
      }
    }
  });
}

grpc::Status DatasetServiceImpl::UploadDataset(
    grpc::ServerContext* ctx,
    grpc::ServerReader<v1::UploadDatasetRequest>* reader, v1::Dataset* resp) {
  return Handle(auth_, ctx, rpc::kUploadDataset, [&]() -> absl::Status {
    v1::UploadDatasetHeader header;
    ASSIGN_OR_RETURN(std::string bytes,
                     ReadUploadFrom(ctx, reader, datasets_->max_upload_bytes(),
                                    "upload", &header));
    ASSIGN_OR_RETURN(*resp, datasets_->Add(header, std::move(bytes)));
    return absl::OkStatus();
  });
}

grpc::Status DatasetServiceImpl::ListDatasets(
    grpc::ServerContext* ctx, const v1::ListDatasetsRequest*,
    v1::ListDatasetsResponse* resp) {
  return Handle(auth_, ctx, rpc::kListDatasets, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::vector<v1::Dataset> all, datasets_->List());
    for (auto& d : all) *resp->add_datasets() = std::move(d);
    return absl::OkStatus();
  });
}

grpc::Status DatasetServiceImpl::GetDataset(grpc::ServerContext* ctx,
                                            const v1::GetDatasetRequest* req,
                                            v1::Dataset* resp) {
  return Handle(auth_, ctx, rpc::kGetDataset, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(LoadedDataset d, datasets_->Get(req->name()));
    *resp = d.info;
    return absl::OkStatus();
  });
}

grpc::Status DatasetServiceImpl::DeleteDataset(
    grpc::ServerContext* ctx, const v1::DeleteDatasetRequest* req,
    v1::DeleteDatasetResponse*) {
  return Handle(auth_, ctx, rpc::kDeleteDataset,
                [&] { return datasets_->Delete(req->name()); });
}

grpc::Status ModelServiceImpl::ListModels(grpc::ServerContext* ctx,
                                          const v1::ListModelsRequest* req,
                                          v1::ListModelsResponse* resp) {
  return Handle(auth_, ctx, rpc::kListModels, [&]() -> absl::Status {
    if (!req->name().empty()) RETURN_IF_ERROR(ValidateName("model", req->name()));
    ASSIGN_OR_RETURN(std::vector<v1::Model> all, store_->ListModels(req->name()));
    for (auto& m : all) *resp->add_models() = std::move(m);
    return absl::OkStatus();
  });
}

grpc::Status ModelServiceImpl::GetModel(grpc::ServerContext* ctx,
                                        const v1::GetModelRequest* req,
                                        v1::Model* resp) {
  return Handle(auth_, ctx, rpc::kGetModel, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(LoadedModel m, models_->Get(req->name(), req->version()));
    *resp = m.info;
    return absl::OkStatus();
  });
}

grpc::Status ModelServiceImpl::DeleteModel(grpc::ServerContext* ctx,
                                           const v1::DeleteModelRequest* req,
                                           v1::DeleteModelResponse*) {
  return Handle(auth_, ctx, rpc::kDeleteModel,
                [&] { return models_->Delete(req->name(), req->version()); });
}

grpc::Status ModelServiceImpl::ExportModel(
    grpc::ServerContext* ctx, const v1::ExportModelRequest* req,
    grpc::ServerWriter<v1::ExportModelResponse>* writer) {
  return Handle(auth_, ctx, rpc::kExportModel, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(ModelFile file,
                     models_->Export(req->name(), req->version()));
    v1::ExportModelResponse msg;
    *msg.mutable_header()->mutable_model() = std::move(file.info);
    msg.mutable_header()->set_size_bytes(
        static_cast<int64_t>(file.bytes.size()));
    bool open = writer->Write(msg);
    const absl::string_view bytes = file.bytes;
    for (size_t at = 0; open && at < bytes.size(); at += kChunkBytes) {
      msg.set_chunk(std::string(bytes.substr(at, kChunkBytes)));
      open = writer->Write(msg);
    }
    if (!open) return absl::CancelledError("export cancelled by the client");
    return absl::OkStatus();
  });
}

grpc::Status ModelServiceImpl::ImportModel(
    grpc::ServerContext* ctx,
    grpc::ServerReader<v1::ImportModelRequest>* reader, v1::Model* resp) {
  return Handle(auth_, ctx, rpc::kImportModel, [&]() -> absl::Status {
    v1::ImportModelHeader header;
    ASSIGN_OR_RETURN(std::string bytes,
                     ReadUploadFrom(ctx, reader, models_->max_import_bytes(),
                                    "model import", &header));
    ASSIGN_OR_RETURN(*resp, models_->Import(header.name(), std::move(bytes)));
    return absl::OkStatus();
  });
}

grpc::Status MetricsServiceImpl::GetTrainingMetrics(
    grpc::ServerContext* ctx, const v1::GetTrainingMetricsRequest* req,
    v1::GetTrainingMetricsResponse* resp) {
  return Handle(auth_, ctx, rpc::kGetTrainingMetrics, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::vector<v1::EpochMetrics> epochs,
                     jobs_->Epochs(req->job_id()));
    resp->set_job_id(req->job_id());
    for (auto& e : epochs) *resp->add_epochs() = std::move(e);
    return absl::OkStatus();
  });
}

grpc::Status MetricsServiceImpl::GetServerStats(grpc::ServerContext* ctx,
                                                const v1::GetServerStatsRequest*,
                                                v1::ServerStats* resp) {
  return Handle(auth_, ctx, rpc::kGetServerStats, [&]() -> absl::Status {
    resp->set_version(SPINNET_VERSION);
    *resp->mutable_uptime() =
        google::protobuf::util::TimeUtil::MillisecondsToDuration(
            absl::ToInt64Milliseconds(absl::Now() - stats_.start_time));
    ASSIGN_OR_RETURN(const StoreCounts counts, store_->Count());
    resp->set_jobs_queued(static_cast<int32_t>(counts.queued));
    resp->set_jobs_running(static_cast<int32_t>(counts.running));
    resp->set_jobs_succeeded(static_cast<int32_t>(counts.succeeded));
    resp->set_jobs_failed(static_cast<int32_t>(counts.failed));
    resp->set_jobs_cancelled(static_cast<int32_t>(counts.cancelled));
    resp->set_active_streams(stats_.active_streams());
    resp->set_models(static_cast<int32_t>(counts.models));
    resp->set_datasets(static_cast<int32_t>(counts.datasets) + 1);  // digits
    resp->set_training_workers(stats_.training_workers);
    return absl::OkStatus();
  });
}

}  // namespace spinnet::server
