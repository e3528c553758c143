// The whole service assembled: the store (chosen by URL), the catalog, the
// job queue and runner, the gRPC services, health and the metrics exposer.
// main.cc parses flags into ServerOptions; integration tests start it on
// port 0. Any number of servers may share one PostgreSQL store; a SQLite
// store belongs to one server.
#ifndef SPINNET_SERVER_APP_SERVER_H_
#define SPINNET_SERVER_APP_SERVER_H_

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/server.h"
#include "server/api/auth.h"
#include "server/api/inference_service.h"
#include "server/api/metrics.h"
#include "server/api/services.h"
#include "server/app/listener.h"
#include "server/catalog/registry.h"
#include "server/jobs/job_events.h"
#include "server/jobs/job_queue.h"
#include "server/jobs/job_runner.h"
#include "server/storage/store.h"

namespace spinnet::server {

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";
  std::string metrics_listen = "127.0.0.1:9464";  // empty: no exposer
  // The store: "sqlite://DIR" or "postgresql://USER@HOST:PORT/DB". Empty:
  // sqlite://<data_dir>.
  std::string store;
  std::string store_password_file;  // PostgreSQL password, if any
  std::string data_dir = "spinnet-data";
  int training_workers = 1;
  int max_streams = 1024;
  int max_queued_jobs = 64;
  int max_queued_sweep_jobs = 20000;  // QUEUED jobs of sweeps, store-wide
  int max_message_bytes = 16 << 20;
  int64_t max_dataset_bytes = 256 << 20;
  int64_t max_model_bytes = 256 << 20;  // ImportModel
  absl::Duration stream_idle_timeout = absl::Seconds(60);
  // Auth is on when either file is given (access.h TokenFiles).
  std::string auth_tokens_file;  // "CLIENT ROLE sha256:HEX" lines
  std::string auth_token_file;   // one raw token: an admin client
  TlsOptions tls;
  bool reflection = false;
  // Without auth the server listens on loopback only unless this is set.
  bool allow_insecure_remote = false;
  // Job leases (job_runner.h). Empty worker name: "<hostname>:<pid>".
  std::string worker_name;
  absl::Duration lease_ttl = absl::Seconds(15);
  absl::Duration heartbeat_interval = absl::Seconds(1);
  int max_attempts = 3;
  // Clients are sent a GOAWAY after this long on one connection, so that
  // they reconnect and spread over the replicas DNS now lists. In-flight
  // calls then get `max_connection_age_grace` (infinite: never cut).
  absl::Duration max_connection_age = absl::Minutes(5);
  absl::Duration max_connection_age_grace = absl::InfiniteDuration();
  // Bounds against hostile and broken clients (README "Hostile and broken
  // clients"). gRPC's ResourceQuota: the memory its transports and
  // messages in flight may take (under pressure it drops new connections
  // and cancels streams with RESOURCE_EXHAUSTED), and the threads of the
  // sync handlers (past it: RESOURCE_EXHAUSTED "Server Threadpool
  // Exhausted").
  int64_t grpc_memory_bytes = int64_t{1} << 30;
  int max_rpc_threads = 256;
  // WatchTrainingJob and WatchSweep calls open at once: each holds an RPC
  // thread, so at most half of them.
  int max_watchers = 64;
  // Per connection: HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS (streams past it
  // wait in the client for a free one), and the request headers' size.
  int max_streams_per_connection = 256;
  int max_metadata_bytes = 16 << 10;
  // A connection that has not finished the TLS handshake and sent its
  // HTTP/2 preface and SETTINGS within this is closed.
  absl::Duration handshake_timeout = absl::Seconds(10);
  // Client keepalive pings closer together than this (and any ping without
  // a call open) count as strikes; the third gets GOAWAY too_many_pings.
  absl::Duration min_ping_interval = absl::Seconds(30);
  // The server pings a connection silent for keepalive_time and closes it
  // if the ack takes longer than keepalive_timeout (a peer that vanished).
  absl::Duration keepalive_time = absl::Minutes(1);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  // A connection with no call open for this long gets GOAWAY (clients
  // reconnect when they next call; an open Watch or stream is a call).
  absl::Duration max_connection_idle = absl::Minutes(5);
  // Health turns NOT_SERVING while the store does not answer a ping.
  absl::Duration store_check_interval = absl::Seconds(1);
};

class SpinnetServer {
 public:
  explicit SpinnetServer(ServerOptions options);
  ~SpinnetServer();

  // Opens everything and starts serving. The store's errors as OpenStore
  // gives them (FAILED_PRECONDITION for a locked data dir or a schema from
  // the future, UNAVAILABLE for an unreachable database), UNAVAILABLE if
  // the port is taken.
  absl::Status Start();
  // The bound gRPC and metrics addresses (after Start).
  std::string address() const { return address_; }
  std::string metrics_address() const { return metrics_address_; }
  const std::string& worker_name() const { return runner_options_.worker; }

  // Graceful stop: health NOT_SERVING, no new jobs claimed, running jobs
  // stop at their next batch and go back to the queue, in-flight calls get
  // until `deadline` and are then cancelled (clients see UNAVAILABLE).
  // False when a job was still in a batch at the deadline (its lease then
  // lapses if the process exits, and another replica resumes it).
  bool Shutdown(absl::Time deadline);
  // Reads the auth token files again (SIGHUP). On an error the old clients
  // stay and it is returned; open calls are never touched. The number of
  // clients now known.
  absl::StatusOr<size_t> ReloadAuth();
  void Wait();

 private:
  void SetServing(bool serving);
  void CheckStore();

  ServerOptions options_;
  RunnerOptions runner_options_;
  std::unique_ptr<ServerMetrics> metrics_;
  JobEvents events_;  // before the store, whose callback feeds it
  std::unique_ptr<Store> store_;
  std::unique_ptr<ModelRegistry> models_;
  std::unique_ptr<DatasetRegistry> datasets_;
  std::unique_ptr<JobQueue> jobs_;
  std::unique_ptr<SweepQueue> sweeps_;
  std::unique_ptr<JobRunner> runner_;
  std::unique_ptr<TokenAuthorizer> auth_;
  std::unique_ptr<AdmissionLimit> watchers_;
  std::unique_ptr<TrainingServiceImpl> training_;
  std::unique_ptr<SweepServiceImpl> sweep_;
  std::unique_ptr<DatasetServiceImpl> dataset_;
  std::unique_ptr<ModelServiceImpl> model_;
  std::unique_ptr<MetricsServiceImpl> metrics_service_;
  std::unique_ptr<InferenceServiceImpl> inference_;
  std::unique_ptr<Listener> listener_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_, metrics_address_;

  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool shut_down_ = false;
  bool serving_ = false;
  std::thread store_checker_;
};

// The names the health service reports, one per spinnet service.
const std::vector<std::string>& ServiceNames();

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_APP_SERVER_H_
