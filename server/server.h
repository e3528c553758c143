// The whole service in one object: data dir lock, store, registries, job
// manager, gRPC services, health, metrics exposer. main.cc parses flags into
// ServerOptions; integration tests start it on port 0.
#ifndef SPINNET_SERVER_SERVER_H_
#define SPINNET_SERVER_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/server.h"
#include "server/auth.h"
#include "server/inference_service.h"
#include "server/job_manager.h"
#include "server/metrics.h"
#include "server/registry.h"
#include "server/services.h"
#include "server/sqlite_store.h"

namespace spinnet::server {

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";
  std::string metrics_listen = "127.0.0.1:9464";  // empty: no exposer
  std::string data_dir = "spinnet-data";
  int training_workers = 1;
  int max_streams = 1024;
  int max_queued_jobs = 64;
  int max_message_bytes = 16 << 20;
  int64_t max_dataset_bytes = 256 << 20;
  absl::Duration stream_idle_timeout = absl::Seconds(60);
  std::string auth_token_file;  // empty: no auth
  TlsOptions tls;
  bool reflection = false;
  // Without auth the server listens on loopback only unless this is set.
  bool allow_insecure_remote = false;
};

class SpinnetServer {
 public:
  explicit SpinnetServer(ServerOptions options);
  ~SpinnetServer();

  // Opens everything and starts serving. FAILED_PRECONDITION if the data
  // dir is locked by another server, UNAVAILABLE if the port is taken.
  absl::Status Start();
  // The bound gRPC and metrics addresses (after Start).
  std::string address() const { return address_; }
  std::string metrics_address() const { return metrics_address_; }

  // Graceful stop: health NOT_SERVING, no new work, running training jobs
  // stop at their next batch (resumed on the next start), in-flight calls
  // get until `deadline` and are then cancelled (clients see UNAVAILABLE).
  void Shutdown(absl::Time deadline);
  void Wait();

 private:
  ServerOptions options_;
  // Declared first so that it is released last, after the store closes.
  std::unique_ptr<DataDirLock> lock_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<ModelRegistry> models_;
  std::unique_ptr<DatasetRegistry> datasets_;
  std::unique_ptr<JobManager> jobs_;
  std::unique_ptr<TokenAuthorizer> auth_;
  std::unique_ptr<TrainingServiceImpl> training_;
  std::unique_ptr<DatasetServiceImpl> dataset_;
  std::unique_ptr<ModelServiceImpl> model_;
  std::unique_ptr<MetricsServiceImpl> metrics_service_;
  std::unique_ptr<InferenceServiceImpl> inference_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_, metrics_address_;
  bool shut_down_ = false;
};

// The names the health service reports, one per spinnet service.
const std::vector<std::string>& ServiceNames();

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_SERVER_H_
