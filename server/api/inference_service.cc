#include "server/api/inference_service.h"

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/inference.h"
#include "core/logging.h"
#include "core/status_macros.h"
#include "proto/grpc_status.h"
#include "server/streaming/stream_protocol.h"

namespace spinnet::server {
namespace {

using Request = v1::StreamClassifyRequest;
using Response = v1::StreamClassifyResponse;

int64_t ToNanos(absl::Time t) { return absl::ToUnixNanos(t); }

}  // namespace

// One StreamClassify call: reads, writes and closing; what to answer is the
// StreamProtocol's. Every reaction and the reaper take mu_, so the state
// below is only touched under it. At rest a stream has a read or a write
// outstanding, or has called Finish, so it always makes progress or ends.
class InferenceServiceImpl::Stream final
    : public grpc::ServerBidiReactor<Request, Response>,
      private ResponseSink {
 public:
  Stream(InferenceServiceImpl* service, grpc::CallbackServerContext* ctx)
      : service_(service),
        ctx_(ctx),
        limits_(service->limits_),
        reap_after_ns_(ToNanos(absl::Now() + limits_.idle_timeout)),
        protocol_(service->models_, service->metrics_,
                  limits_.max_values_per_message),
        client_(service->auth_->ClientOf(ctx->client_metadata(), ctx)) {
    absl::Status auth = service_->auth_->Authorize(*ctx, rpc::kStreamClassify);
    if (!auth.ok()) {
      FinishNow(api::ToGrpcStatus(auth));
      return;
    }
    absl::Status admitted = service_->Admit(this);
    if (!admitted.ok()) {
      FinishNow(api::ToGrpcStatus(admitted));
      return;
    }
    admitted_ = true;
    service_->metrics_->StreamOpened();
    std::lock_guard<std::mutex> lock(mu_);
    AdvanceLocked();
  }

  void OnReadDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    reading_ = false;
    if (!ok) {  // half-close by the client, or the call is cancelled
      BeginCloseLocked();
      AdvanceLocked();
      return;
    }
    // A request that crossed the server's `closed` (or Finish) is dropped:
    // nothing may follow `closed`.
    if (closing_) {
      AdvanceLocked();
      return;
    }
    TouchLocked();
    feeding_ = !protocol_.Handle(std::move(request_), *this);
    AdvanceLocked();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    queue_.pop_front();
    if (ok) {
      TouchLocked();
    } else {  // the call is cancelled or broken: nothing more gets through
      queue_.clear();
      BeginCloseLocked();
    }
    StartWriteLocked();
    AdvanceLocked();
  }

  void OnDone() override {
    if (admitted_) {
      service_->Unregister(this);
      service_->metrics_->StreamClosed();
    }
    delete this;
  }

  // Called by the reaper with the service's live_mu_ held. Closes the
  // stream when it has been idle for idle_timeout (no request read and no
  // response written: a client still taking a backlog of answers is not
  // idle), and cancels it when, closing, it stays idle for another
  // idle_timeout (the client stopped reading and the last responses cannot
  // be written).
  void ReapIfIdle(absl::Time now) {
    if (ToNanos(now) < reap_after_ns_.load(std::memory_order_relaxed)) return;
    bool cancel = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finished_) return;
      if (!closing_) {
        if (now - last_active_ < limits_.idle_timeout) return;
        Response closed;
        closed.mutable_closed()->set_reason(
            absl::StrCat("idle for ", absl::ToDoubleSeconds(limits_.idle_timeout),
                         "s; closed by server"));
        BeginCloseLocked();
        QueueLocked(std::move(closed));
        AdvanceLocked();
      } else {
        cancel = now - last_active_ >= limits_.idle_timeout;
      }
    }
    if (cancel) ctx_->TryCancel();
  }

 private:
  // ResponseSink, called by protocol_ with mu_ held.
  bool HasRoom() const override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return static_cast<int>(queue_.size()) < limits_.max_pending_writes;
  }
  void Send(Response r) override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    QueueLocked(std::move(r));
  }

  void TouchLocked() {
    last_active_ = absl::Now();
    reap_after_ns_ = ToNanos(last_active_ + limits_.idle_timeout);
  }

  void FinishNow(grpc::Status status) {
    finished_ = true;
    const std::chrono::duration<double> elapsed =
        std::chrono::steady_clock::now() - start_;
    service_->metrics_->RecordRpc(kStreamClassifyMethod, client_,
                                  status.error_code(), elapsed.count());
    Finish(std::move(status));
  }

  void QueueLocked(Response r) {
    queue_.push_back(std::move(r));  // deque: the front stays where it is
    StartWriteLocked();
  }

  void StartWriteLocked() {
    if (writing_ || finished_ || queue_.empty()) return;
    writing_ = true;
    StartWrite(&queue_.front());
  }

  // No more requests are taken; Finish(OK) follows once the queue drains.
  void BeginCloseLocked() {
    if (closing_) return;
    closing_ = true;
    feeding_ = false;
    TouchLocked();
  }

  // The next thing to do after any event: go on feeding a paused message,
  // finish a closing stream whose writes are done, or read the next request
  // when the queue has room (backpressure: otherwise a write is in flight,
  // and its OnWriteDone comes back here).
  void AdvanceLocked() {
    if (finished_) return;
    if (feeding_) {
      if (!protocol_.Continue(*this)) return;
      feeding_ = false;
    }
    if (closing_) {
      if (!writing_) FinishNow(grpc::Status::OK);
      return;
    }
    if (!reading_ && HasRoom()) {
      reading_ = true;
      StartRead(&request_);
    }
  }

  InferenceServiceImpl* const service_;
  grpc::CallbackServerContext* const ctx_;
  const StreamLimits& limits_;
  // For the RPC metric (kStreamClassifyMethod has no interceptor).
  const std::chrono::steady_clock::time_point start_ =
      std::chrono::steady_clock::now();
  bool admitted_ = false;  // set in the constructor only
  // When the reaper should next look (unix ns): lets it skip busy streams
  // without taking their mutex.
  std::atomic<int64_t> reap_after_ns_;

  std::mutex mu_;
  StreamProtocol protocol_ ABSL_GUARDED_BY(mu_);
  const std::string client_;  // for the RPC metric, as the interceptor names it
  Request request_ ABSL_GUARDED_BY(mu_);
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool feeding_ ABSL_GUARDED_BY(mu_) = false;  // a steps message is paused
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_active_ ABSL_GUARDED_BY(mu_) = absl::Now();
  // The responses not yet written; the front is in flight while writing_.
  std::deque<Response> queue_ ABSL_GUARDED_BY(mu_);
};

InferenceServiceImpl::InferenceServiceImpl(ModelRegistry* models,
                                           ServerMetrics* metrics,
                                           const TokenAuthorizer* auth,
                                           StreamLimits limits)
    : models_(models),
      metrics_(metrics),
      auth_(auth),
      limits_(limits),
      admission_("stream sessions", limits.max_streams) {
  SPINNET_CHECK(limits_.max_streams > 0);
  SPINNET_CHECK(limits_.idle_timeout > absl::ZeroDuration());
  SPINNET_CHECK(limits_.max_values_per_message > 0);
  SPINNET_CHECK(limits_.max_pending_writes > 0);
  reaper_ = std::thread([this] { ReapIdle(); });
}

InferenceServiceImpl::~InferenceServiceImpl() {
  {
    std::lock_guard<std::mutex> lock(live_mu_);
    // Streams point at the service: the server must be shut down first.
    SPINNET_CHECK(live_.empty());
    stopping_ = true;
  }
  stop_cv_.notify_all();
  reaper_.join();
}

grpc::Status InferenceServiceImpl::Classify(grpc::ServerContext* ctx,
                                            const v1::ClassifyRequest* req,
                                            v1::ClassifyResponse* resp) {
  return api::ToGrpcStatus([&]() -> absl::Status {
    RETURN_IF_ERROR(auth_->Authorize(*ctx, rpc::kClassify));
    ASSIGN_OR_RETURN(LoadedModel model,
                     models_->Get(req->model(), req->version()));
    RETURN_IF_ERROR(ClassifySequences(
        *model.model, *req, [ctx] { return ctx->IsCancelled(); }, resp));
    resp->set_model_version(model.info.version());
    for (const v1::Classification& c : resp->results()) {
      metrics_->RecordClassification(model.info.name(), c.energy_joules());
    }
    return absl::OkStatus();
  }());
}

grpc::Status InferenceServiceImpl::TraceNeurons(
    grpc::ServerContext* ctx, const v1::TraceNeuronsRequest* req,
    v1::TraceNeuronsResponse* resp) {
  return api::ToGrpcStatus([&]() -> absl::Status {
    RETURN_IF_ERROR(auth_->Authorize(*ctx, rpc::kTraceNeurons));
    ASSIGN_OR_RETURN(LoadedModel model,
                     models_->Get(req->model(), req->version()));
    return TraceSequences(model, *req, resp);
  }());
}

grpc::ServerBidiReactor<v1::StreamClassifyRequest, v1::StreamClassifyResponse>*
InferenceServiceImpl::StreamClassify(grpc::CallbackServerContext* ctx) {
  return new Stream(this, ctx);
}

int InferenceServiceImpl::active_streams() const {
  std::lock_guard<std::mutex> lock(live_mu_);
  return static_cast<int>(live_.size());
}

absl::Status InferenceServiceImpl::Admit(Stream* stream) {
  RETURN_IF_ERROR(admission_.TryAcquire());
  std::lock_guard<std::mutex> lock(live_mu_);
  live_.insert(stream);
  return absl::OkStatus();
}

void InferenceServiceImpl::Unregister(Stream* stream) {
  {
    std::lock_guard<std::mutex> lock(live_mu_);
    live_.erase(stream);
  }
  admission_.Release();
}

void InferenceServiceImpl::ReapIdle() {
  std::unique_lock<std::mutex> lock(live_mu_);
  while (!stop_cv_.wait_for(lock, std::chrono::milliseconds(200),
                            [this] { return stopping_; })) {
    const absl::Time now = absl::Now();
    for (Stream* stream : live_) stream->ReapIfIdle(now);
  }
}

}  // namespace spinnet::server
