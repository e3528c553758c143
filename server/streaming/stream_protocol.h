// The StreamClassify protocol of one stream, without gRPC (the messages are
// in proto/spinnet/v1/inference.proto): `open` on a model, `steps` fed one
// time step at a time into the core's StreamingSession with a provisional
// answer every k steps and a final answer at the end of each sequence,
// `reset`, and every error about one request answered in-band. The gRPC
// reactor (api/inference_service.cc) reads and writes; this decides what to
// answer, and pauses a long `steps` message while the writer is full, so a
// client that stops reading stops being fed.
#ifndef SPINNET_SERVER_STREAMING_STREAM_PROTOCOL_H_
#define SPINNET_SERVER_STREAMING_STREAM_PROTOCOL_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "core/inference.h"
#include "server/catalog/registry.h"
#include "spinnet/v1/inference.pb.h"

namespace spinnet::server {

// Where the answers go (the reactor's write queue).
class ResponseSink {
 public:
  virtual ~ResponseSink() = default;
  // Whether one more response may be queued now.
  virtual bool HasRoom() const = 0;
  virtual void Send(v1::StreamClassifyResponse response) = 0;
};

// What the protocol reports for monitoring (the Prometheus metrics).
class StreamMetrics {
 public:
  virtual ~StreamMetrics() = default;
  virtual void AddStreamedSamples(double n) = 0;
  virtual void ObserveStepLatency(double seconds) = 0;
  virtual void RecordClassification(const std::string& model,
                                    double energy_joules) = 0;
};

// Checks one sequence of whole time steps for a model with `d` values per
// step: non-empty, a multiple of d, every value finite. The core checks
// again, but only the server knows which sequence or message to name, and a
// stream must reject a message before feeding any of it.
absl::Status CheckSteps(absl::Span<const double> values, int d);

// `c` as the API's message, covering `steps` time steps.
void ToProto(const Classification& c, int64_t steps, v1::Classification* out);

class StreamProtocol {
 public:
  // The pointers must outlive the protocol; `metrics` may be null.
  StreamProtocol(ModelRegistry* models, StreamMetrics* metrics,
                 int max_values_per_message);

  // Answers one request into `sink`. True when the request is done; false
  // when a `steps` message is paused because the sink is full: call
  // Continue once it has room, and take no other request before.
  bool Handle(v1::StreamClassifyRequest request, ResponseSink& sink);
  // Feeds more of the paused `steps` message; true once it is done.
  bool Continue(ResponseSink& sink);

 private:
  void Open(const v1::StreamOpen& open, ResponseSink& sink);
  // Validates a whole `steps` message, so that a bad one feeds nothing.
  bool StartSteps(ResponseSink& sink);
  void SendAnswer(bool final, ResponseSink& sink);
  static void SendError(const absl::Status& status, ResponseSink& sink);

  ModelRegistry* const models_;
  StreamMetrics* const metrics_;
  const int max_values_per_message_;

  LoadedModel model_;
  std::unique_ptr<StreamingSession> session_;  // null until open
  int provisional_every_ = 0;
  int64_t sequence_ = 0;  // of the current sequence, from 0
  Classification current_;  // the latest answer's, storage kept for the next
  // The `steps` message being fed, and its next step.
  v1::StreamSteps steps_;
  int64_t next_step_ = 0;
};

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_STREAMING_STREAM_PROTOCOL_H_
