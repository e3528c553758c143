#include "core/inference.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/bptt.h"
#include "core/logging.h"
#include "core/parallel.h"
#include "core/status_macros.h"

namespace spinnet {
namespace {

// Assigns every field of *c, reusing its string and vector storage.
void FillClassification(const Model& model,
                        const Eigen::Ref<const Vector>& probs,
                        double energy_joules, Classification* c) {
  Index best;
  probs.maxCoeff(&best);
  c->class_index = static_cast<int>(best);
  c->label = model.class_labels[best];
  c->probabilities = probs;
  c->energy_joules = energy_joules;
}

Classification MakeClassification(const Model& model,
                                  const Eigen::Ref<const Vector>& probs,
                                  double energy_joules) {
  Classification c;
  FillClassification(model, probs, energy_joules, &c);
  return c;
}

// Finite inputs large enough (|u| ~ 1e150 and up) overflow the network's
// state, and its answer is no longer a number: an error rather than NaN
// probabilities that name an arbitrary class.
absl::Status CheckFinite(const Classification& c) {
  if (c.probabilities.allFinite() && std::isfinite(c.energy_joules)) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      "the network's state overflowed to a non-finite value on these "
      "inputs; scale the input values down");
}

Devices Draw(const NetworkConfig& network, const DeviceVariability& v) {
  Devices d;
  if (!v.None()) DrawDevices(network, v, &d);
  return d;
}

}  // namespace

absl::Status ValidateSequences(const Model& model, const Matrix& sequences) {
  const int d = model.network.input_dim;
  if (sequences.cols() == 0) {
    return absl::InvalidArgumentError("no sequences to classify");
  }
  if (sequences.rows() == 0) {
    return absl::InvalidArgumentError("sequence length 0; need >= 1 step");
  }
  if (sequences.rows() % d != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(sequences.rows(), " values per sequence is not a ",
                     "multiple of the model's input dimension ", d));
  }
  for (Index j = 0; j < sequences.cols(); ++j) {
    for (Index i = 0; i < sequences.rows(); ++i) {
      if (!std::isfinite(sequences(i, j))) {
        return absl::InvalidArgumentError(absl::StrCat(
            "sequence ", j, ", step ", i / d, ": value ", sequences(i, j),
            " is not finite"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Classification>> Classify(
    const Model& model, const Matrix& sequences, int threads,
    const DeviceVariability& variability) {
  RETURN_IF_ERROR(ValidateSequences(model, sequences));
  RETURN_IF_ERROR(variability.Validate(model.network));
  const Devices devices = Draw(model.network, variability);
  const int n = static_cast<int>(sequences.cols());
  std::vector<Classification> out(n);
  ParallelFor(threads, n, [&](int, int begin, int end) {
    Bptt<double> runner(model.network, model.device);
    if (!variability.None()) runner.SetDevices(&devices, begin);
    runner.Run(model.params, sequences.middleCols(begin, end - begin), {}, 0,
               nullptr);
    for (int i = begin; i < end; ++i) {
      out[i] = MakeClassification(model, runner.probabilities().col(i - begin),
                                  runner.stats().energy_joules[i - begin]);
    }
  });
  for (int i = 0; i < n; ++i) {
    absl::Status s = CheckFinite(out[i]);
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", i, ": ", s.message()));
    }
  }
  return out;
}

StreamingSession::StreamingSession(std::shared_ptr<const Model> model,
                                   const DeviceVariability& variability)
    : model_(std::move(model)),
      devices_(Draw(model_->network, variability)),
      net_(model_->network, model_->device, model_->params,
           variability.None() ? nullptr : &devices_) {
  SPINNET_CHECK(variability.Validate(model_->network).ok());
  tr_.Resize(model_->network, 1, 2, 1);
  u_.resize(model_->network.input_dim, 1);
  Reset();
}

void StreamingSession::Reset() {
  slot_ = 0;
  net_.Init(&tr_, slot_, sequences_++);
  stats_.Reset(1);
  steps_ = 0;
}

absl::Status StreamingSession::Feed(absl::Span<const double> sample) {
  const int d = model_->network.input_dim;
  if (static_cast<int>(sample.size()) != d) {
    return absl::InvalidArgumentError(absl::StrCat(
        "time step has ", sample.size(), " values; the model takes ", d));
  }
  for (int i = 0; i < d; ++i) {
    if (!std::isfinite(sample[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("value ", i, " of the time step is not finite"));
    }
    u_(i, 0) = sample[i];
  }
  net_.InputDrive(u_, &drive0_);
  for (int j = 0; j < model_->network.substeps; ++j) {
    net_.Step(drive0_, &tr_, slot_, 1 - slot_, 0, &stats_);
    slot_ = 1 - slot_;
  }
  ++steps_;
  return absl::OkStatus();
}

double StreamingSession::Output(int layer, int index) const {
  SPINNET_CHECK(layer >= 0 && layer < model_->network.layers);
  SPINNET_CHECK(index >= 0 && index < model_->network.neurons);
  return tr_.Y(layer, slot_)(index, 0);
}

absl::StatusOr<Classification> StreamingSession::Current() const {
  Classification c;
  RETURN_IF_ERROR(CurrentInto(&c));
  return c;
}

absl::Status StreamingSession::CurrentInto(Classification* out) const {
  if (steps_ == 0) {
    return absl::FailedPreconditionError(
        "no time step fed yet; send at least one before asking for a class");
  }
  net_.Logits(tr_, slot_, &logits_);
  Network<double>::Softmax(logits_, &probs_);
  FillClassification(*model_, probs_.col(0), stats_.energy_joules[0], out);
  return CheckFinite(*out);
}

}  // namespace spinnet
