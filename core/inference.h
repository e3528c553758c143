// Classification with a trained model: whole sequences in a batch, or one
// time step at a time in a StreamingSession (same Euler step, same result).
#ifndef SPINNET_CORE_INFERENCE_H_
#define SPINNET_CORE_INFERENCE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/eigen_types.h"
#include "core/model_io.h"
#include "core/network.h"

namespace spinnet {

struct Classification {
  int class_index = -1;
  std::string label;
  Vector probabilities;        // num_classes, sums to 1
  double energy_joules = 0;    // model.md 8 (0 for the CTRNN: no device)
};

// Checks that `sequences` ((K*d) x n, as Dataset::values) fits the model:
// d divides the rows, K >= 1, every value finite.
absl::Status ValidateSequences(const Model& model, const Matrix& sequences);

// Classifies each column of `sequences`; `threads` splits the batch. With
// a `variability`, on the chip it draws (MODEL.md "Device variability"),
// column j with the thermal noise of sequence j: reproducible for a seed and
// independent of `threads`. The default (none) is the nominal network.
// INVALID_ARGUMENT for bad sequences, a variability that fails Validate, or
// inputs so large that the network's state overflows (naming the sequence).
absl::StatusOr<std::vector<Classification>> Classify(
    const Model& model, const Matrix& sequences, int threads = 1,
    const DeviceVariability& variability = DeviceVariability());

// A stream of samples through one model: Feed() advances the network by one
// input interval (dt_in, `substeps` Euler steps); Current() reads the class
// probabilities of the sequence so far. Not thread-safe; cheap (a few KiB).
// With a `variability`, the session runs on the chip it draws, and the n-th
// sequence (0-based, counting Resets) gets the thermal noise that Classify
// gives column n. `variability` must pass Validate(model->network).
class StreamingSession {
 public:
  explicit StreamingSession(
      std::shared_ptr<const Model> model,
      const DeviceVariability& variability = DeviceVariability());

  // One time step of d values. INVALID_ARGUMENT on a wrong size or a
  // non-finite value; the state is unchanged then.
  absl::Status Feed(absl::Span<const double> sample);
  // Classification of the steps fed since the last Reset (FAILED_PRECONDITION
  // before the first step; INVALID_ARGUMENT once huge inputs have overflowed
  // the state, until the next Reset).
  absl::StatusOr<Classification> Current() const;
  // The same into *out, reusing its storage: no allocation once *out has
  // held a classification by this model (a stream answers every step).
  absl::Status CurrentInto(Classification* out) const;
  // Starts a new sequence.
  void Reset();
  // Output y of neuron `index` of hidden layer `layer` now (model.md 2:
  // a_l (p - s) for the STNO, h for the CTRNN; 0 before the first step).
  // Both must be in range (CHECKed; core/traces.h validates requests).
  double Output(int layer, int index) const;

  int64_t steps() const { return steps_; }
  const Model& model() const { return *model_; }

 private:
  std::shared_ptr<const Model> model_;
  Devices devices_;
  Network<double> net_;
  Trajectory<double> tr_;  // two slots, alternating; one z slot
  Index slot_ = 0;         // slot holding the current state
  Matrix drive0_;
  Matrix u_;
  mutable Matrix logits_, probs_;  // CurrentInto's scratch
  SequenceStats stats_;
  int64_t steps_ = 0;
  uint64_t sequences_ = 0;  // started so far: the noise stream of the next
};

}  // namespace spinnet

#endif  // SPINNET_CORE_INFERENCE_H_
