#include "server/app/server.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "core/logging.h"
#include "core/status_macros.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/server_builder.h"
#include "server/storage/open_store.h"

namespace spinnet::server {
namespace {

std::string DefaultWorkerName() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return absl::StrCat(host[0] != '\0' ? host : "spinnet", ":", getpid());
}

int ToMillis(absl::Duration d) {
  if (d == absl::InfiniteDuration()) return INT_MAX;
  return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(d),
                                            INT_MAX));
}

// The bounds against hostile clients, each with the flag that sets it.
absl::Status CheckClientLimits(const ServerOptions& o) {
  const auto positive = [](absl::Duration d) {
    return d > absl::ZeroDuration();
  };
  // A message in flight is counted about twice (received bytes, and what
  // they are parsed into): room for 8 of the largest before gRPC's
  // reclaimers start cancelling streams.
  if (o.grpc_memory_bytes < int64_t{16} * o.max_message_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--grpc-memory-bytes ", o.grpc_memory_bytes,
        " must be at least 16 x --max-message-bytes (", o.max_message_bytes,
        ")"));
  }
  if (o.max_rpc_threads < 8 || o.max_watchers < 1 ||
      o.max_watchers > o.max_rpc_threads / 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "need --max-rpc-threads >= 8 and 1 <= --max-watchers <= half of it "
        "(watchers hold a thread each); got ",
        o.max_rpc_threads, " and ", o.max_watchers));
  }
  if (o.max_streams_per_connection < 1 || o.max_metadata_bytes < 1024) {
    return absl::InvalidArgumentError(
        "need --max-streams-per-connection >= 1 and --max-metadata-bytes >= "
        "1024");
  }
  if (!positive(o.handshake_timeout) || !positive(o.min_ping_interval) ||
      !positive(o.keepalive_time) || !positive(o.keepalive_timeout) ||
      !positive(o.max_connection_idle)) {
    return absl::InvalidArgumentError(
        "--handshake-timeout, --min-ping-interval, --keepalive-time, "
        "--keepalive-timeout and --max-connection-idle must be > 0");
  }
  return absl::OkStatus();
}

}  // namespace

const std::vector<std::string>& ServiceNames() {
  static const auto* names = new std::vector<std::string>{
      "spinnet.v1.TrainingService", "spinnet.v1.SweepService",
      "spinnet.v1.DatasetService",
      "spinnet.v1.ModelService", "spinnet.v1.InferenceService",
      "spinnet.v1.MetricsService"};
  return *names;
}

SpinnetServer::SpinnetServer(ServerOptions options)
    : options_(std::move(options)) {}

SpinnetServer::~SpinnetServer() {
  Shutdown(absl::Now());
  Wait();
}

absl::Status SpinnetServer::Start() {
  const ServerOptions& o = options_;
  if (o.training_workers < 1 || o.max_streams < 1 || o.max_queued_jobs < 0 ||
      o.max_queued_sweep_jobs < 0 ||
      o.max_message_bytes < 1024 || o.max_attempts < 1 ||
      o.lease_ttl < 3 * o.heartbeat_interval ||
      o.heartbeat_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "need --training-workers >= 1, --max-streams >= 1, "
        "--max-queued-jobs >= 0, --max-queued-sweep-jobs >= 0, "
        "--max-message-bytes >= 1024, "
        "--max-attempts >= 1, --heartbeat-interval > 0 and --lease-ttl >= 3 "
        "heartbeat intervals");
  }
  RETURN_IF_ERROR(CheckClientLimits(o));
  TokenFiles token_files;
  token_files.tokens_file = o.auth_tokens_file;
  token_files.token_file = o.auth_token_file;
  ASSIGN_OR_RETURN(auth_, TokenAuthorizer::Open(std::move(token_files)));
  if (!auth_->enabled() && !IsLoopbackAddress(o.listen) &&
      !o.allow_insecure_remote) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to listen on ", o.listen,
        " without --auth-tokens-file or --auth-token-file; add "
        "--allow-insecure-remote to do it anyway"));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> creds,
                   MakeServerCredentials(o.tls));
  StoreOptions store_options;
  store_options.url =
      o.store.empty() ? absl::StrCat("sqlite://", o.data_dir) : o.store;
  store_options.password_file = o.store_password_file;
  ASSIGN_OR_RETURN(store_, OpenStore(store_options));
  store_->SetChangeCallback(
      [this](const std::string& job_id) { events_.Changed(job_id); });

  metrics_ = std::make_unique<ServerMetrics>();
  if (!o.metrics_listen.empty()) {
    ASSIGN_OR_RETURN(metrics_address_, metrics_->StartExposer(o.metrics_listen));
  }
  models_ = std::make_unique<ModelRegistry>(store_.get(), o.max_model_bytes);
  datasets_ = std::make_unique<DatasetRegistry>(store_.get(),
                                                o.max_dataset_bytes);
  JobQueueOptions queue_options;
  queue_options.max_queued = o.max_queued_jobs;
  jobs_ = std::make_unique<JobQueue>(store_.get(), datasets_.get(), &events_,
                                     queue_options);
  SweepQueueOptions sweep_options;
  sweep_options.max_queued_jobs = o.max_queued_sweep_jobs;
  sweeps_ = std::make_unique<SweepQueue>(store_.get(), datasets_.get(),
                                         &events_, sweep_options);
  runner_options_.worker =
      o.worker_name.empty() ? DefaultWorkerName() : o.worker_name;
  runner_options_.workers = o.training_workers;
  runner_options_.lease_ttl = o.lease_ttl;
  runner_options_.heartbeat_interval = o.heartbeat_interval;
  runner_options_.max_attempts = o.max_attempts;
  runner_ = std::make_unique<JobRunner>(store_.get(), datasets_.get(), &events_,
                                        metrics_.get(), runner_options_);
  StreamLimits limits;
  limits.max_streams = o.max_streams;
  limits.idle_timeout = o.stream_idle_timeout;
  inference_ = std::make_unique<InferenceServiceImpl>(
      models_.get(), metrics_.get(), auth_.get(), limits);
  watchers_ = std::make_unique<AdmissionLimit>("watchers", o.max_watchers);
  training_ = std::make_unique<TrainingServiceImpl>(jobs_.get(), auth_.get(),
                                                    watchers_.get());
  sweep_ = std::make_unique<SweepServiceImpl>(sweeps_.get(), auth_.get(),
                                              watchers_.get());
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
  // Our own accept loop (listener.h) rather than gRPC's, which goes deaf
  // for good when descriptors run out once.
  ASSIGN_OR_RETURN(listener_, Listener::Bind(o.listen));
  grpc::ServerBuilder builder;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor =
      builder.experimental().AddExternalConnectionAcceptor(
          grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD,
          creds);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                             ToMillis(o.max_connection_age));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                             ToMillis(o.max_connection_age_grace));
  grpc::ResourceQuota quota("spinnet-server");
  quota.Resize(static_cast<size_t>(o.grpc_memory_bytes));
  quota.SetMaxThreads(o.max_rpc_threads);
  builder.SetResourceQuota(quota);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             o.max_streams_per_connection);
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, o.max_metadata_bytes);
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                             ToMillis(o.handshake_timeout));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             ToMillis(o.min_ping_interval));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                             ToMillis(o.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             ToMillis(o.keepalive_timeout));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                             ToMillis(o.max_connection_idle));
  builder.SetMaxReceiveMessageSize(o.max_message_bytes);
  builder.SetMaxSendMessageSize(o.max_message_bytes);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(
      metrics_->MakeInterceptorFactory(auth_.get(), {kStreamClassifyMethod}));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.RegisterService(training_.get());
  builder.RegisterService(sweep_.get());
  builder.RegisterService(dataset_.get());
  builder.RegisterService(model_.get());
  builder.RegisterService(metrics_service_.get());
  builder.RegisterService(inference_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot start the gRPC server on ", o.listen));
  }
  listener_->Start(std::move(acceptor));
  const size_t colon = o.listen.rfind(':');
  address_ = absl::StrCat(o.listen.substr(0, colon), ":", listener_->port());
  SetServing(true);
  serving_ = true;
  store_checker_ = std::thread([this] { CheckStore(); });
  // Jobs start after the server is up, so a restart serves at once.
  runner_->Start();
  return absl::OkStatus();
}

void SpinnetServer::SetServing(bool serving) {
  auto* health = server_->GetHealthCheckService();
  health->SetServingStatus("", serving);
  for (const std::string& name : ServiceNames()) {
    health->SetServingStatus(name, serving);
  }
}

void SpinnetServer::CheckStore() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!shut_down_) {
    lock.unlock();
    const absl::Status ping = store_->Ping();
    lock.lock();
    if (shut_down_) break;
    if (ping.ok() != serving_) {
      serving_ = ping.ok();
      if (serving_) {
        SPINNET_LOG(Info, "store ", store_->Describe(), " answers again: SERVING");
      } else {
        SPINNET_LOG(Warning, "store ", store_->Describe(),
                    " does not answer (", ping.ToString(), "): NOT_SERVING");
      }
      SetServing(serving_);
    }
    stop_cv_.wait_for(lock,
                      absl::ToChronoNanoseconds(options_.store_check_interval));
  }
}

bool SpinnetServer::Shutdown(absl::Time deadline) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shut_down_ || server_ == nullptr) return true;
    shut_down_ = true;
    // NOT_SERVING for every service, "" included, for good.
    server_->GetHealthCheckService()->SetServingStatus(false);
  }
  stop_cv_.notify_all();
  if (store_checker_.joinable()) store_checker_.join();
  const bool released = runner_->Stop(deadline);
  events_.Shutdown();  // watchers end now
  listener_->Stop();
  server_->Shutdown(absl::ToChronoTime(deadline));
  return released;
}

absl::StatusOr<size_t> SpinnetServer::ReloadAuth() {
  if (auth_ == nullptr) return absl::FailedPreconditionError("not started");
  return auth_->Reload();
}

void SpinnetServer::Wait() {
  if (server_ != nullptr) server_->Wait();
}

}  // namespace spinnet::server
