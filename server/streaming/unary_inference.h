// The unary inference requests (Classify, TraceNeurons) as core calls,
// without gRPC: checks of the request's bounds and shape, the core call,
// the conversion of its answer. The handlers (api/inference_service.cc)
// authorize, look the model up and call these; the fuzz targets
// (tests/fuzz/) call them on requests parsed from arbitrary bytes.
#ifndef SPINNET_SERVER_STREAMING_UNARY_INFERENCE_H_
#define SPINNET_SERVER_STREAMING_UNARY_INFERENCE_H_

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "core/model_io.h"
#include "server/catalog/registry.h"
#include "spinnet/v1/inference.pb.h"

namespace spinnet::server {

// Requests per Classify call; more is INVALID_ARGUMENT.
inline constexpr int kMaxSequencesPerClassify = 4096;
// Bounds of one TraceNeurons call (more is INVALID_ARGUMENT): sequences,
// neurons, and traced values (sequences x neurons x steps, 2 MiB of
// doubles, so that the answer fits a client's default 4 MiB message limit).
inline constexpr int kMaxTraceSequences = 16;
inline constexpr int kMaxTraceNeurons = 64;
inline constexpr int64_t kMaxTraceValues = 262144;

// Classifies every sequence of `req` with `model` into resp->results (in
// request order). INVALID_ARGUMENT for no sequences, more than
// kMaxSequencesPerClassify, or a sequence that is empty, not whole time
// steps or not finite (naming the sequence and step). `cancelled` is asked
// between batches (CANCELLED).
absl::Status ClassifySequences(const Model& model,
                               const v1::ClassifyRequest& req,
                               const std::function<bool()>& cancelled,
                               v1::ClassifyResponse* resp);

// The traces `req` asks of `model` into *resp. INVALID_ARGUMENT (naming the
// field, sequence or neuron) for no sequences or more than
// kMaxTraceSequences, sequences of unequal length or not whole finite time
// steps, more than kMaxTraceNeurons, a neuron not in the network, or more
// than kMaxTraceValues in the answer.
absl::Status TraceSequences(const LoadedModel& model,
                            const v1::TraceNeuronsRequest& req,
                            v1::TraceNeuronsResponse* resp);

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_STREAMING_UNARY_INFERENCE_H_
