#include "server/api/metrics.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/status_macros.h"
#include "server/api/auth.h"

namespace spinnet::server {
namespace {

using prometheus::Histogram;

// 1, 2 and 5 times the powers of ten from 10^lo_exponent up to below `hi`,
// then `hi`: three buckets a decade, evenly spread on a log scale. Powers of
// ten are built exactly, so the bounds print as written ("5e-13").
Histogram::BucketBoundaries Buckets125(int lo_exponent, double hi) {
  Histogram::BucketBoundaries bounds;
  for (int e = lo_exponent;; ++e) {
    double power = 1;
    for (int i = 0; i < (e < 0 ? -e : e); ++i) power *= 10;
    for (double m : {1.0, 2.0, 5.0}) {
      const double bound = e < 0 ? m / power : m * power;
      if (bound >= hi) {
        bounds.push_back(hi);
        return bounds;
      }
      bounds.push_back(bound);
    }
  }
}

// "INVALID_ARGUMENT" etc.: gRPC's codes are Abseil's.
std::string CodeName(int code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

// Times one RPC and names its client for ServerMetrics::RecordRpc.
class RpcMetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(ServerMetrics* metrics, const TokenAuthorizer* auth,
                        grpc::experimental::ServerRpcInfo* info)
      : metrics_(metrics),
        auth_(auth),
        info_(info),
        method_(info->method() == nullptr ? "" : info->method()),
        start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* batch) override {
    using Hook = grpc::experimental::InterceptionHookPoints;
    if (batch->QueryInterceptionHookPoint(Hook::POST_RECV_INITIAL_METADATA)) {
      start_ = std::chrono::steady_clock::now();
      client_ = auth_->ClientOf(*batch->GetRecvInitialMetadata(),
                                info_->server_context());
    }
    if (batch->QueryInterceptionHookPoint(Hook::PRE_SEND_STATUS)) {
      const std::chrono::duration<double> elapsed =
          std::chrono::steady_clock::now() - start_;
      metrics_->RecordRpc(method_, client_, batch->GetSendStatus().error_code(),
                          elapsed.count());
    }
    batch->Proceed();
  }

 private:
  ServerMetrics* const metrics_;
  const TokenAuthorizer* const auth_;
  grpc::experimental::ServerRpcInfo* const info_;  // outlives interceptors
  // Points into the method table or the call's context, both of which
  // outlive the call's interceptors.
  const char* const method_;
  std::chrono::steady_clock::time_point start_;
  std::string client_ = "unauthenticated";  // until the metadata arrives
};

class RpcMetricsInterceptorFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  RpcMetricsInterceptorFactory(ServerMetrics* metrics,
                               const TokenAuthorizer* auth,
                               std::vector<std::string> self_timed)
      : metrics_(metrics), auth_(auth), self_timed_(std::move(self_timed)) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    const char* method = info->method();
    if (method != nullptr &&
        std::find(self_timed_.begin(), self_timed_.end(), method) !=
            self_timed_.end()) {
      return nullptr;  // gRPC then runs the call without interceptors
    }
    return new RpcMetricsInterceptor(metrics_, auth_, info);
  }

 private:
  ServerMetrics* const metrics_;
  const TokenAuthorizer* const auth_;
  const std::vector<std::string> self_timed_;  // a few: a list is enough
};

}  // namespace

ServerMetrics::ServerMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      grpc_requests_(prometheus::BuildCounter()
                         .Name("spinnet_grpc_requests_total")
                         .Help("RPCs finished, by method and status code")
                         .Register(*registry_)),
      grpc_duration_(prometheus::BuildHistogram()
                         .Name("spinnet_grpc_request_duration_seconds")
                         .Help("RPC time from the client's initial metadata "
                               "to the status, by method")
                         .Register(*registry_)),
      client_requests_(
          prometheus::BuildCounter()
              .Name("spinnet_client_requests_total")
              .Help("RPCs finished, by client (a name of the token files; "
                    "anonymous with auth off, unauthenticated without a "
                    "valid token), method and status code")
              .Register(*registry_)),
      jobs_(prometheus::BuildGauge()
                .Name("spinnet_training_jobs")
                .Help("Training jobs by state")
                .Register(*registry_)),
      queue_depth_(prometheus::BuildGauge()
                       .Name("spinnet_training_queue_depth")
                       .Help("Training jobs waiting for a worker")
                       .Register(*registry_)
                       .Add({})),
      active_jobs_(prometheus::BuildGauge()
                       .Name("spinnet_training_jobs_active")
                       .Help("Training jobs this replica is running")
                       .Register(*registry_)
                       .Add({})),
      epoch_duration_(prometheus::BuildHistogram()
                          .Name("spinnet_training_epoch_duration_seconds")
                          .Help("Wall time of one training epoch")
                          .Register(*registry_)
                          .Add({}, Buckets125(-1, 3600))),
      samples_per_second_(prometheus::BuildGauge()
                              .Name("spinnet_training_samples_per_second")
                              .Help("Training throughput of the last epoch")
                              .Register(*registry_)
                              .Add({})),
      streams_active_(prometheus::BuildGauge()
                          .Name("spinnet_stream_sessions_active")
                          .Help("Open streaming classification sessions")
                          .Register(*registry_)
                          .Add({})),
      streamed_samples_(prometheus::BuildCounter()
                            .Name("spinnet_streamed_samples_total")
                            .Help("Time steps received on streaming sessions")
                            .Register(*registry_)
                            .Add({})),
      step_latency_(prometheus::BuildHistogram()
                        .Name("spinnet_stream_step_latency_seconds")
                        .Help("Time to process one streamed time step")
                        .Register(*registry_)
                        .Add({}, Buckets125(-5, 1))),
      classifications_(prometheus::BuildCounter()
                           .Name("spinnet_classifications_total")
                           .Help("Sequences classified, by model")
                           .Register(*registry_)),
      classification_energy_(
          prometheus::BuildHistogram()
              .Name("spinnet_classification_energy_joules")
              .Help("Modelled energy of one classification, by model")
              .Register(*registry_)) {}

absl::StatusOr<std::string> ServerMetrics::StartExposer(
    const std::string& listen) {
  ASSIGN_OR_RETURN(const HostPort address, SplitHostPort(listen));
  std::lock_guard<std::mutex> lock(exposer_mu_);
  if (exposer_ != nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("metrics are already served on ", exposer_address_));
  }
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(listen);
  } catch (const std::exception& e) {
    // civetweb says no more than "problem binding to port".
    return absl::FailedPreconditionError(
        absl::StrCat("cannot serve metrics on ", listen,
                     ": the address is in use or not local (", e.what(), ")"));
  }
  const std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.size() != 1) {
    return absl::InternalError(absl::StrCat("metrics exposer on ", listen,
                                            " listens on ", ports.size(),
                                            " ports; expected 1"));
  }
  exposer->RegisterCollectable(registry_);
  exposer_ = std::move(exposer);
  exposer_address_ = absl::StrCat(absl::StrContains(address.host, ':')
                                      ? absl::StrCat("[", address.host, "]")
                                      : address.host,
                                  ":", ports[0]);
  return exposer_address_;
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
ServerMetrics::MakeInterceptorFactory(const TokenAuthorizer* auth,
                                      std::vector<std::string> self_timed) {
  return std::make_unique<RpcMetricsInterceptorFactory>(this, auth,
                                                        std::move(self_timed));
}

void ServerMetrics::RecordRpc(absl::string_view method,
                              const std::string& client, grpc::StatusCode code,
                              double seconds) {
  int code_index = static_cast<int>(code);
  if (code_index < 0 || code_index >= kNumStatusCodes) {
    code_index = static_cast<int>(grpc::StatusCode::UNKNOWN);
  }
  std::string label(absl::StripPrefix(method, "/"));
  prometheus::Counter* requests;
  prometheus::Counter* client_requests;
  prometheus::Histogram* duration;
  {
    std::lock_guard<std::mutex> lock(rpc_mu_);
    auto it = rpc_series_.find(label);
    if (it == rpc_series_.end()) {
      if (code == grpc::StatusCode::UNIMPLEMENTED) label = "other";
      it = rpc_series_.try_emplace(label).first;
    }
    RpcSeries& series = it->second;
    if (series.duration == nullptr) {
      series.duration =
          &grpc_duration_.Add({{"method", label}}, Buckets125(-4, 30));
    }
    if (series.requests[code_index] == nullptr) {
      series.requests[code_index] = &grpc_requests_.Add(
          {{"method", label}, {"code", CodeName(code_index)}});
    }
    requests = series.requests[code_index];
    duration = series.duration;
    prometheus::Counter*& by_client =
        client_series_[absl::StrCat(client, "\n", label)][code_index];
    if (by_client == nullptr) {
      by_client = &client_requests_.Add({{"client", client},
                                         {"method", label},
                                         {"code", CodeName(code_index)}});
    }
    client_requests = by_client;
  }
  requests->Increment();
  client_requests->Increment();
  duration->Observe(seconds);
}

void ServerMetrics::SetJobsByState(const std::string& state, double n) {
  prometheus::Gauge* gauge = jobs_by_state_.Get(state, [&] {
    return &jobs_.Add({{"state", state}});
  });
  gauge->Set(n);
}

void ServerMetrics::SetQueueDepth(double n) { queue_depth_.Set(n); }

void ServerMetrics::SetJobCounts(const StoreCounts& c) {
  const std::pair<const char*, int64_t> states[] = {
      {"queued", c.queued},       {"running", c.running},
      {"succeeded", c.succeeded}, {"failed", c.failed},
      {"cancelled", c.cancelled}};
  for (const auto& [state, n] : states) {
    SetJobsByState(state, static_cast<double>(n));
  }
  SetQueueDepth(static_cast<double>(c.queued));
}

void ServerMetrics::SetActiveJobs(int n) { active_jobs_.Set(n); }

void ServerMetrics::ObserveEpoch(double seconds, double samples_per_second) {
  epoch_duration_.Observe(seconds);
  samples_per_second_.Set(samples_per_second);
}

void ServerMetrics::StreamOpened() { streams_active_.Increment(); }

void ServerMetrics::StreamClosed() { streams_active_.Decrement(); }

void ServerMetrics::AddStreamedSamples(double n) {
  streamed_samples_.Increment(n);
}

void ServerMetrics::ObserveStepLatency(double seconds) {
  step_latency_.Observe(seconds);
}

void ServerMetrics::RecordClassification(const std::string& model,
                                         double energy_joules) {
  const CounterAndHistogram series = classification_series_.Get(model, [&] {
    const prometheus::Labels labels = {{"model", model}};
    return CounterAndHistogram(
        &classifications_.Add(labels),
        &classification_energy_.Add(labels, Buckets125(-13, 1e-9)));
  });
  series.first->Increment();
  series.second->Observe(energy_joules);
}

}  // namespace spinnet::server
