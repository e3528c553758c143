// The gRPC handlers of the training, sweep, dataset, model and metrics
// services:
// each checks auth, converts the request, calls one gRPC-free function and
// converts the status once (api::ToGrpcStatus). Streaming inference is in
// inference_service.h.
#ifndef SPINNET_SERVER_API_SERVICES_H_
#define SPINNET_SERVER_API_SERVICES_H_

#include <functional>

#include "absl/time/time.h"
#include "server/api/admission.h"
#include "server/api/auth.h"
#include "server/catalog/registry.h"
#include "server/jobs/job_queue.h"
#include "server/jobs/sweep_queue.h"
#include "server/storage/store.h"
#include "spinnet/v1/dataset.grpc.pb.h"
#include "spinnet/v1/metrics.grpc.pb.h"
#include "spinnet/v1/model.grpc.pb.h"
#include "spinnet/v1/sweep.grpc.pb.h"
#include "spinnet/v1/training.grpc.pb.h"

namespace spinnet::server {

class TrainingServiceImpl final : public v1::TrainingService::Service {
 public:
  // `watchers` bounds the WatchTrainingJob and WatchSweep calls open at
  // once (each holds an RPC thread); it is shared with SweepServiceImpl.
  TrainingServiceImpl(JobQueue* jobs, const TokenAuthorizer* auth,
                      AdmissionLimit* watchers)
      : jobs_(jobs), auth_(auth), watchers_(watchers) {}

  grpc::Status SubmitTrainingJob(grpc::ServerContext* ctx,
                                 const v1::SubmitTrainingJobRequest* req,
                                 v1::TrainingJob* resp) override;
  grpc::Status GetTrainingJob(grpc::ServerContext* ctx,
                              const v1::GetTrainingJobRequest* req,
                              v1::TrainingJob* resp) override;
  grpc::Status ListTrainingJobs(grpc::ServerContext* ctx,
                                const v1::ListTrainingJobsRequest* req,
                                v1::ListTrainingJobsResponse* resp) override;
  grpc::Status CancelTrainingJob(grpc::ServerContext* ctx,
                                 const v1::CancelTrainingJobRequest* req,
                                 v1::TrainingJob* resp) override;
  // RESOURCE_EXHAUSTED at once when the watcher limit is reached.
  grpc::Status WatchTrainingJob(
      grpc::ServerContext* ctx, const v1::WatchTrainingJobRequest* req,
      grpc::ServerWriter<v1::WatchTrainingJobResponse>* writer) override;

 private:
  JobQueue* jobs_;
  const TokenAuthorizer* auth_;
  AdmissionLimit* watchers_;
};

class SweepServiceImpl final : public v1::SweepService::Service {
 public:
  SweepServiceImpl(SweepQueue* sweeps, const TokenAuthorizer* auth,
                   AdmissionLimit* watchers)
      : sweeps_(sweeps), auth_(auth), watchers_(watchers) {}

  grpc::Status SubmitSweep(grpc::ServerContext* ctx,
                           const v1::SubmitSweepRequest* req,
                           v1::Sweep* resp) override;
  grpc::Status GetSweep(grpc::ServerContext* ctx,
                        const v1::GetSweepRequest* req,
                        v1::Sweep* resp) override;
  grpc::Status ListSweeps(grpc::ServerContext* ctx,
                          const v1::ListSweepsRequest* req,
                          v1::ListSweepsResponse* resp) override;
  grpc::Status CancelSweep(grpc::ServerContext* ctx,
                           const v1::CancelSweepRequest* req,
                           v1::Sweep* resp) override;
  // RESOURCE_EXHAUSTED at once when the watcher limit is reached.
  grpc::Status WatchSweep(grpc::ServerContext* ctx,
                          const v1::WatchSweepRequest* req,
                          grpc::ServerWriter<v1::Sweep>* writer) override;

 private:
  SweepQueue* sweeps_;
  const TokenAuthorizer* auth_;
  AdmissionLimit* watchers_;
};

class DatasetServiceImpl final : public v1::DatasetService::Service {
 public:
  DatasetServiceImpl(DatasetRegistry* datasets, const TokenAuthorizer* auth)
      : datasets_(datasets), auth_(auth) {}

  grpc::Status UploadDataset(
      grpc::ServerContext* ctx,
      grpc::ServerReader<v1::UploadDatasetRequest>* reader,
      v1::Dataset* resp) override;
  grpc::Status ListDatasets(grpc::ServerContext* ctx,
                            const v1::ListDatasetsRequest* req,
                            v1::ListDatasetsResponse* resp) override;
  grpc::Status GetDataset(grpc::ServerContext* ctx,
                          const v1::GetDatasetRequest* req,
                          v1::Dataset* resp) override;
  grpc::Status DeleteDataset(grpc::ServerContext* ctx,
                             const v1::DeleteDatasetRequest* req,
                             v1::DeleteDatasetResponse* resp) override;

 private:
  DatasetRegistry* datasets_;
  const TokenAuthorizer* auth_;
};

class ModelServiceImpl final : public v1::ModelService::Service {
 public:
  ModelServiceImpl(Store* store, ModelRegistry* models,
                   const TokenAuthorizer* auth)
      : store_(store), models_(models), auth_(auth) {}

  grpc::Status ListModels(grpc::ServerContext* ctx,
                          const v1::ListModelsRequest* req,
                          v1::ListModelsResponse* resp) override;
  grpc::Status GetModel(grpc::ServerContext* ctx,
                        const v1::GetModelRequest* req,
                        v1::Model* resp) override;
  grpc::Status DeleteModel(grpc::ServerContext* ctx,
                           const v1::DeleteModelRequest* req,
                           v1::DeleteModelResponse* resp) override;
  grpc::Status ExportModel(
      grpc::ServerContext* ctx, const v1::ExportModelRequest* req,
      grpc::ServerWriter<v1::ExportModelResponse>* writer) override;
  grpc::Status ImportModel(grpc::ServerContext* ctx,
                           grpc::ServerReader<v1::ImportModelRequest>* reader,
                           v1::Model* resp) override;

 private:
  Store* store_;
  ModelRegistry* models_;
  const TokenAuthorizer* auth_;
};

// Live numbers the metrics service reports that only the server knows.
struct ServerStatsSource {
  absl::Time start_time;
  int training_workers = 0;
  std::function<int()> active_streams;
};

class MetricsServiceImpl final : public v1::MetricsService::Service {
 public:
  MetricsServiceImpl(Store* store, JobQueue* jobs,
                     const TokenAuthorizer* auth, ServerStatsSource stats)
      : store_(store), jobs_(jobs), auth_(auth), stats_(std::move(stats)) {}

  grpc::Status GetTrainingMetrics(grpc::ServerContext* ctx,
                                  const v1::GetTrainingMetricsRequest* req,
                                  v1::GetTrainingMetricsResponse* resp) override;
  grpc::Status GetServerStats(grpc::ServerContext* ctx,
                              const v1::GetServerStatsRequest* req,
                              v1::ServerStats* resp) override;

 private:
  Store* store_;
  JobQueue* jobs_;
  const TokenAuthorizer* auth_;
  ServerStatsSource stats_;
};

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_API_SERVICES_H_
