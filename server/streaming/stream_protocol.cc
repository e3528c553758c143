#include "server/streaming/stream_protocol.h"

#include <chrono>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/logging.h"

namespace spinnet::server {
namespace {

using Response = v1::StreamClassifyResponse;

absl::Status NotOpenError() {
  return absl::FailedPreconditionError(
      "no model is open on this stream; send `open` first");
}

}  // namespace

absl::Status CheckSteps(absl::Span<const double> values, int d) {
  if (values.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "no values; need one or more time steps of ", d, " values"));
  }
  if (values.size() % d != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(values.size(), " values is not a multiple of the ",
                     "model's input dimension ", d));
  }
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "step ", i / d, ", value ", i % d, ": ", values[i],
          " is not finite"));
    }
  }
  return absl::OkStatus();
}

void ToProto(const Classification& c, int64_t steps, v1::Classification* out) {
  out->set_class_index(c.class_index);
  out->set_label(c.label);
  out->mutable_probabilities()->Assign(
      c.probabilities.data(), c.probabilities.data() + c.probabilities.size());
  out->set_energy_joules(c.energy_joules);
  out->set_steps(steps);
}

StreamProtocol::StreamProtocol(ModelRegistry* models, StreamMetrics* metrics,
                               int max_values_per_message)
    : models_(models),
      metrics_(metrics),
      max_values_per_message_(max_values_per_message) {}

bool StreamProtocol::Handle(v1::StreamClassifyRequest request,
                            ResponseSink& sink) {
  switch (request.kind_case()) {
    case v1::StreamClassifyRequest::kOpen:
      Open(request.open(), sink);
      return true;
    case v1::StreamClassifyRequest::kSteps:
      steps_ = std::move(*request.mutable_steps());
      return !StartSteps(sink) || Continue(sink);
    case v1::StreamClassifyRequest::kReset:
      if (session_ == nullptr) {
        SendError(NotOpenError(), sink);
      } else {
        session_->Reset();
        ++sequence_;
      }
      return true;
    case v1::StreamClassifyRequest::KIND_NOT_SET:
      break;
  }
  SendError(absl::InvalidArgumentError(
                "empty request; set one of open, steps or reset"),
            sink);
  return true;
}

void StreamProtocol::Open(const v1::StreamOpen& open, ResponseSink& sink) {
  if (session_ != nullptr) {
    SendError(absl::FailedPreconditionError(absl::StrCat(
                  "the stream is already open on model ", model_.info.name(),
                  " version ", model_.info.version(),
                  "; open another stream for another model")),
              sink);
    return;
  }
  if (open.provisional_every() < 0) {
    SendError(absl::InvalidArgumentError(
                  absl::StrCat("provisional_every ", open.provisional_every(),
                               "; need >= 0 (0: final answers only)")),
              sink);
    return;
  }
  absl::StatusOr<LoadedModel> model = models_->Get(open.model(), open.version());
  if (!model.ok()) {
    SendError(model.status(), sink);
    return;
  }
  model_ = *std::move(model);
  session_ = std::make_unique<StreamingSession>(model_.model);
  provisional_every_ = open.provisional_every();
  Response r;
  v1::StreamOpened* opened = r.mutable_opened();
  opened->set_model(model_.info.name());
  opened->set_version(model_.info.version());
  opened->set_input_dim(model_.model->network.input_dim);
  for (const std::string& label : model_.model->class_labels) {
    opened->add_class_labels(label);
  }
  sink.Send(std::move(r));
}

bool StreamProtocol::StartSteps(ResponseSink& sink) {
  if (session_ == nullptr) {
    SendError(NotOpenError(), sink);
    return false;
  }
  if (steps_.values_size() > max_values_per_message_) {
    SendError(absl::InvalidArgumentError(absl::StrCat(
                  steps_.values_size(), " values in one message; the limit is ",
                  max_values_per_message_)),
              sink);
    return false;
  }
  absl::Status s = CheckSteps(absl::MakeConstSpan(steps_.values()),
                              model_.model->network.input_dim);
  if (!s.ok()) {
    SendError(absl::InvalidArgumentError(
                  absl::StrCat(s.message(), "; nothing of this message was fed")),
              sink);
    return false;
  }
  next_step_ = 0;
  return true;
}

bool StreamProtocol::Continue(ResponseSink& sink) {
  const int d = model_.model->network.input_dim;
  const int64_t total = steps_.values_size() / d;
  const auto start = std::chrono::steady_clock::now();
  int64_t fed = 0;
  while (next_step_ < total && sink.HasRoom()) {
    absl::Status s = session_->Feed({steps_.values().data() + next_step_ * d,
                                     static_cast<size_t>(d)});
    SPINNET_CHECK(s.ok());  // StartSteps accepted the message
    ++next_step_;
    ++fed;
    // At the message's last step of a sequence, the final answer replaces
    // a provisional one.
    const bool final_follows = steps_.end_of_sequence() && next_step_ == total;
    if (provisional_every_ > 0 &&
        session_->steps() % provisional_every_ == 0 && !final_follows) {
      SendAnswer(/*final=*/false, sink);
    }
  }
  if (fed > 0 && metrics_ != nullptr) {
    const std::chrono::duration<double> elapsed =
        std::chrono::steady_clock::now() - start;
    metrics_->AddStreamedSamples(static_cast<double>(fed));
    metrics_->ObserveStepLatency(elapsed.count() / fed);
  }
  if (next_step_ < total) return false;
  if (steps_.end_of_sequence()) {
    if (!sink.HasRoom()) return false;
    SendAnswer(/*final=*/true, sink);
    session_->Reset();
    ++sequence_;
  }
  return true;
}

void StreamProtocol::SendAnswer(bool final, ResponseSink& sink) {
  // Called only after a step was fed; the error is an overflow of the
  // network's state on huge inputs (reset to go on).
  const absl::Status s = session_->CurrentInto(&current_);
  if (!s.ok()) {
    SendError(absl::Status(s.code(),
                           absl::StrCat("sequence ", sequence_, ": ",
                                        s.message(),
                                        "; send reset to start again")),
              sink);
    return;
  }
  Response r;
  v1::StreamAnswer* answer = r.mutable_answer();
  answer->set_sequence(sequence_);
  answer->set_final(final);
  ToProto(current_, session_->steps(), answer->mutable_classification());
  if (final && metrics_ != nullptr) {
    metrics_->RecordClassification(model_.info.name(),
                                   current_.energy_joules);
  }
  sink.Send(std::move(r));
}

void StreamProtocol::SendError(const absl::Status& status, ResponseSink& sink) {
  Response r;
  r.mutable_error()->set_code(static_cast<int>(status.code()));
  r.mutable_error()->set_message(std::string(status.message()));
  sink.Send(std::move(r));
}

}  // namespace spinnet::server
