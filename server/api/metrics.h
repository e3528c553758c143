// Prometheus metrics of the service: RPCs, also per client (through a server
// interceptor),
// training jobs, streaming sessions and classifications. One registry; every
// family is created once in the constructor, so /metrics lists all of them
// from the start.
#ifndef SPINNET_SERVER_API_METRICS_H_
#define SPINNET_SERVER_API_METRICS_H_

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/server_interceptor.h"
#include "grpcpp/support/status_code_enum.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/api/auth.h"
#include "server/jobs/job_runner.h"
#include "server/streaming/stream_protocol.h"

namespace spinnet::server {

// Every method is thread-safe. Recording methods are cheap: labelled series
// are cached per label value, so a call costs one small map lookup under a
// mutex plus an atomic update.
class ServerMetrics : public JobMetrics, public StreamMetrics {
 public:
  ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // Serves the registry at http://<listen>/metrics until destruction.
  // `listen` is "host:port" (port 0 picks a free port); returns the bound
  // "host:port". INVALID_ARGUMENT for a malformed address, FAILED_PRECONDITION
  // if it cannot be bound (in use, not a local address) or an exposer already
  // runs. The Debian civetweb build has no IPv6, so "[::1]:port" fails too.
  // Once it has served a scrape, civetweb takes about 2 s to stop, so the
  // destructor does too.
  absl::StatusOr<std::string> StartExposer(const std::string& listen);

  // For ServerBuilder::experimental().SetInterceptorCreators(). Counts every
  // RPC that sends a status (unary and streaming; sync, callback and generic
  // services) into spinnet_grpc_requests_total{method,code},
  // spinnet_client_requests_total{client,method,code} (the client as
  // auth->ClientOf names it) and
  // spinnet_grpc_request_duration_seconds{method}, timed from the receipt of
  // the client's initial metadata to the sending of the status. `this` and
  // `auth` must outlive the server. Methods in `self_timed` (full names,
  // "/pkg.Service/Method") get no interceptor: their handlers call RecordRpc
  // themselves. That is for busy streams: with any interceptor on a call,
  // gRPC 1.51 sends every completed read and write of it through the core a
  // second time (an empty batch, so that the interceptors run before the
  // callback): on the 2-core VM about a sixth of a streamed time step's CPU.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  MakeInterceptorFactory(const TokenAuthorizer* auth,
                         std::vector<std::string> self_timed = {});

  // What the interceptor records for one RPC of `client`. `method` is the
  // full name as gRPC gives it ("/pkg.Service/Method"); the label drops the
  // leading '/'. Calls of unknown methods reach interceptors too, under
  // whatever name the client sent, and end UNIMPLEMENTED. So a name becomes
  // a label only once one of its calls ends with another code; until then
  // its calls count as method="other". (A generic service answering any
  // name with other codes would defeat this; the service registers none.)
  void RecordRpc(absl::string_view method, const std::string& client,
                 grpc::StatusCode code, double seconds);

  // Training jobs. The counts are the whole store's (every replica reports
  // the same); spinnet_training_jobs_active is this replica's.
  void SetJobsByState(const std::string& state, double n);
  void SetQueueDepth(double n);
  void ObserveEpoch(double seconds, double samples_per_second) override;
  void SetJobCounts(const StoreCounts& counts) override;
  void SetActiveJobs(int n) override;

  // Streaming classification sessions.
  void StreamOpened();
  void StreamClosed();
  void AddStreamedSamples(double n) override;
  void ObserveStepLatency(double seconds) override;

  // One classification by model `model` that cost `energy_joules`.
  void RecordClassification(const std::string& model,
                            double energy_joules) override;

  std::shared_ptr<prometheus::Registry> registry() { return registry_; }

 private:
  // Children of one labelled family keyed by label value(s), created on first
  // use: Family::Add builds and hashes a label map under the family's lock.
  template <typename Series>
  class SeriesCache {
   public:
    template <typename Make>
    Series Get(const std::string& key, Make make) {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = series_.find(key);
      if (it == series_.end()) it = series_.emplace(key, make()).first;
      return it->second;
    }

   private:
    std::mutex mu_;
    std::unordered_map<std::string, Series> series_ ABSL_GUARDED_BY(mu_);
  };
  static constexpr int kNumStatusCodes = 17;  // OK .. UNAUTHENTICATED
  using CounterAndHistogram =
      std::pair<prometheus::Counter*, prometheus::Histogram*>;

  std::shared_ptr<prometheus::Registry> registry_;

  // The series of one method; request counters are added per code on first
  // use (17 mostly-zero series per method would be noise).
  struct RpcSeries {
    prometheus::Histogram* duration = nullptr;
    std::array<prometheus::Counter*, kNumStatusCodes> requests{};
  };

  prometheus::Family<prometheus::Counter>& grpc_requests_;
  prometheus::Family<prometheus::Histogram>& grpc_duration_;
  prometheus::Family<prometheus::Counter>& client_requests_;
  std::mutex rpc_mu_;
  std::unordered_map<std::string, RpcSeries> rpc_series_
      ABSL_GUARDED_BY(rpc_mu_);  // key: method label
  // Per client and method, by code, added on first use like RpcSeries.
  std::unordered_map<std::string,
                     std::array<prometheus::Counter*, kNumStatusCodes>>
      client_series_ ABSL_GUARDED_BY(rpc_mu_);  // key: client '\n' method

  prometheus::Family<prometheus::Gauge>& jobs_;
  SeriesCache<prometheus::Gauge*> jobs_by_state_;
  prometheus::Gauge& queue_depth_;
  prometheus::Gauge& active_jobs_;
  prometheus::Histogram& epoch_duration_;
  prometheus::Gauge& samples_per_second_;

  prometheus::Gauge& streams_active_;
  prometheus::Counter& streamed_samples_;
  prometheus::Histogram& step_latency_;

  prometheus::Family<prometheus::Counter>& classifications_;
  prometheus::Family<prometheus::Histogram>& classification_energy_;
  SeriesCache<CounterAndHistogram> classification_series_;  // key: model

  std::mutex exposer_mu_;
  std::unique_ptr<prometheus::Exposer> exposer_ ABSL_GUARDED_BY(exposer_mu_);
  std::string exposer_address_ ABSL_GUARDED_BY(exposer_mu_);
};

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_API_METRICS_H_
