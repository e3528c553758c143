#include "server/server.h"

#include "absl/strings/str_cat.h"
#include "core/logging.h"
#include "core/status_macros.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server_builder.h"

namespace spinnet::server {

const std::vector<std::string>& ServiceNames() {
  static const auto* names = new std::vector<std::string>{
      "spinnet.v1.TrainingService", "spinnet.v1.DatasetService",
      "spinnet.v1.ModelService", "spinnet.v1.InferenceService",
      "spinnet.v1.MetricsService"};
  return *names;
}

SpinnetServer::SpinnetServer(ServerOptions options)
    : options_(std::move(options)) {}

SpinnetServer::~SpinnetServer() { Shutdown(absl::Now()); }

absl::Status SpinnetServer::Start() {
  const ServerOptions& o = options_;
  if (o.training_workers < 1 || o.max_streams < 1 || o.max_queued_jobs < 0 ||
      o.max_message_bytes < 1024) {
    return absl::InvalidArgumentError(
        "need --training-workers >= 1, --max-streams >= 1, "
        "--max-queued-jobs >= 0, --max-message-bytes >= 1024");
  }
  std::string token;
  if (!o.auth_token_file.empty()) {
    ASSIGN_OR_RETURN(token, LoadToken(o.auth_token_file));
  } else if (!IsLoopbackAddress(o.listen) && !o.allow_insecure_remote) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to listen on ", o.listen,
        " without --auth-token-file; add --allow-insecure-remote to do it "
        "anyway"));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> creds,
                   MakeServerCredentials(o.tls));
  DataDir dir{o.data_dir};
  ASSIGN_OR_RETURN(lock_, DataDirLock::Acquire(dir));
  ASSIGN_OR_RETURN(store_, SqliteStore::Open(dir.db()));

  metrics_ = std::make_unique<ServerMetrics>();
  if (!o.metrics_listen.empty()) {
    ASSIGN_OR_RETURN(metrics_address_, metrics_->StartExposer(o.metrics_listen));
  }
  auth_ = std::make_unique<TokenAuthorizer>(token);
  models_ = std::make_unique<ModelRegistry>(store_.get(), dir);
  datasets_ = std::make_unique<DatasetRegistry>(store_.get(), dir,
                                                o.max_dataset_bytes);
  jobs_ = std::make_unique<JobManager>(
      store_.get(), dir, datasets_.get(), metrics_.get(),
      JobManagerOptions{o.training_workers, o.max_queued_jobs});
  StreamLimits limits;
  limits.max_streams = o.max_streams;
  limits.idle_timeout = o.stream_idle_timeout;
  inference_ = std::make_unique<InferenceServiceImpl>(
      models_.get(), metrics_.get(), auth_.get(), limits);
  training_ = std::make_unique<TrainingServiceImpl>(store_.get(), jobs_.get(),
                                                    auth_.get());
  dataset_ = std::make_unique<DatasetServiceImpl>(datasets_.get(), auth_.get());
  model_ = std::make_unique<ModelServiceImpl>(store_.get(), models_.get(),
                                              auth_.get());
  InferenceServiceImpl* inference = inference_.get();
  metrics_service_ = std::make_unique<MetricsServiceImpl>(
      store_.get(), jobs_.get(), auth_.get(),
      ServerStatsSource{absl::Now(), o.training_workers,
                        [inference] { return inference->active_streams(); }});

  grpc::EnableDefaultHealthCheckService(true);
  if (o.reflection) grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(o.listen, creds, &port);
  // gRPC enables SO_REUSEPORT by default: two servers could share a port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(o.max_message_bytes);
  builder.SetMaxSendMessageSize(o.max_message_bytes);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(metrics_->MakeInterceptorFactory());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.RegisterService(training_.get());
  builder.RegisterService(dataset_.get());
  builder.RegisterService(model_.get());
  builder.RegisterService(metrics_service_.get());
  builder.RegisterService(inference_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) {
    server_.reset();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", o.listen,
                     " (address in use or invalid)"));
  }
  const size_t colon = o.listen.rfind(':');
  address_ = absl::StrCat(o.listen.substr(0, colon), ":", port);
  auto* health = server_->GetHealthCheckService();
  health->SetServingStatus("", true);
  for (const std::string& name : ServiceNames()) {
    health->SetServingStatus(name, true);
  }
  // Jobs start after the server is up, so a restart serves at once.
  RETURN_IF_ERROR(jobs_->Start());
  return absl::OkStatus();
}

void SpinnetServer::Shutdown(absl::Time deadline) {
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  auto* health = server_->GetHealthCheckService();
  health->SetServingStatus(false);  // every service, "" included
  jobs_->Shutdown();
  server_->Shutdown(absl::ToChronoTime(deadline));
}

void SpinnetServer::Wait() {
  if (server_ != nullptr) server_->Wait();
}

}  // namespace spinnet::server
