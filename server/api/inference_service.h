// InferenceService: whole-sequence Classify (sync handler) and
// StreamClassify, one callback reactor per stream so that thousands of
// mostly idle sessions cost memory, not threads. The maths is the core's
// (Classify, StreamingSession); this layer converts protos, enforces the
// stream limits and keeps every stream's buffers bounded.
#ifndef SPINNET_SERVER_INFERENCE_SERVICE_H_
#define SPINNET_SERVER_INFERENCE_SERVICE_H_

#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "server/api/admission.h"
#include "server/api/auth.h"
#include "server/api/metrics.h"
#include "server/catalog/registry.h"
#include "server/streaming/unary_inference.h"
#include "spinnet/v1/inference.grpc.pb.h"

namespace spinnet::server {

struct StreamLimits {
  // Streams open at once; the next one is refused with RESOURCE_EXHAUSTED.
  int max_streams = 1024;
  // A stream with no request read and no response written for this long is
  // closed (a `closed` message, then status OK); one that then takes none
  // of its last responses for this long again is cancelled.
  absl::Duration idle_timeout = absl::Seconds(60);
  // Values in one `steps` message (in-band INVALID_ARGUMENT above it).
  int max_values_per_message = 65536;
  // Responses queued per stream. The next request is read only when the
  // queue is below this, so a client that stops reading stops being read
  // from and no buffer grows.
  int max_pending_writes = 4;
};

// StreamClassify's full method name. Its streams record their own RPC
// metric (ServerMetrics::RecordRpc, timed from the stream's start to its
// status): give it to MakeInterceptorFactory's `self_timed`, which spares
// every read and write of a stream the interceptor's extra trip through gRPC.
inline constexpr char kStreamClassifyMethod[] =
    "/spinnet.v1.InferenceService/StreamClassify";

class InferenceServiceImpl final
    : public v1::InferenceService::WithCallbackMethod_StreamClassify<
          v1::InferenceService::Service> {
 public:
  // The pointers must outlive the service (and the grpc::Server using it).
  // Limits must be positive.
  InferenceServiceImpl(ModelRegistry* models, ServerMetrics* metrics,
                       const TokenAuthorizer* auth, StreamLimits limits);
  // Stops the idle reaper. Shut the grpc::Server down (Shutdown, which ends
  // every call) before destroying the service.
  ~InferenceServiceImpl() override;

  InferenceServiceImpl(const InferenceServiceImpl&) = delete;
  InferenceServiceImpl& operator=(const InferenceServiceImpl&) = delete;

  // Sync handler. UNAUTHENTICATED without a valid token; INVALID_ARGUMENT
  // for a bad model name, no sequences, more than kMaxSequencesPerClassify,
  // or a sequence that is empty, not whole time steps or not finite (the
  // message names the sequence and step); NOT_FOUND for an unknown model.
  // Results come in request order; CANCELLED once the client is gone.
  grpc::Status Classify(grpc::ServerContext* ctx,
                        const v1::ClassifyRequest* req,
                        v1::ClassifyResponse* resp) override;

  // Sync handler. UNAUTHENTICATED without a valid token; NOT_FOUND for an
  // unknown model; INVALID_ARGUMENT (naming the field, sequence or neuron)
  // for no sequences or more than kMaxTraceSequences, sequences of unequal
  // length or not whole finite time steps, more than kMaxTraceNeurons, a
  // neuron not in the network, or more than kMaxTraceValues in the answer.
  grpc::Status TraceNeurons(grpc::ServerContext* ctx,
                            const v1::TraceNeuronsRequest* req,
                            v1::TraceNeuronsResponse* resp) override;

  // A reactor per stream (the protocol is in inference.proto). The call
  // ends with UNAUTHENTICATED, with RESOURCE_EXHAUSTED at once when
  // max_streams are open, with OK after the client half-closes or after an
  // idle close; every error about one request comes back in-band.
  grpc::ServerBidiReactor<v1::StreamClassifyRequest,
                          v1::StreamClassifyResponse>*
  StreamClassify(grpc::CallbackServerContext* ctx) override;

  // Streams admitted and not yet done.
  int active_streams() const;

 private:
  class Stream;

  // Adds `stream` to the live set, or RESOURCE_EXHAUSTED when max_streams
  // are live.
  absl::Status Admit(Stream* stream);
  void Unregister(Stream* stream);
  // The reaper thread: every ~200 ms, closes the idle streams.
  void ReapIdle();

  ModelRegistry* const models_;
  ServerMetrics* const metrics_;
  const TokenAuthorizer* const auth_;
  const StreamLimits limits_;
  AdmissionLimit admission_;

  // Held while the reaper calls into a stream, and by a stream's OnDone
  // while it unregisters: a stream is never touched after OnDone. Order:
  // live_mu_ before a stream's own mutex, never the reverse.
  mutable std::mutex live_mu_;
  std::unordered_set<Stream*> live_ ABSL_GUARDED_BY(live_mu_);
  bool stopping_ ABSL_GUARDED_BY(live_mu_) = false;
  std::condition_variable stop_cv_;
  std::thread reaper_;
};

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_INFERENCE_SERVICE_H_
