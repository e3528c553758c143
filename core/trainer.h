// Training by BPTT with Adam (model.md section 4): mini-batches, seeded
// shuffling, gradient clipping, a learning-rate schedule, per-epoch metrics,
// cancellation between batches and bit-exact resumption from checkpoints.
#ifndef SPINNET_CORE_TRAINER_H_
#define SPINNET_CORE_TRAINER_H_

#include "absl/status/statusor.h"
#include "core/config.h"
#include "core/dataset.h"
#include "core/metrics.h"
#include "core/model_io.h"

namespace spinnet {

// Receives progress on the training thread. Keep callbacks short.
class TrainingObserver {
 public:
  virtual ~TrainingObserver() = default;
  // After each batch: `done` of `total` batches of the 1-based `epoch`.
  virtual void OnBatch(int epoch, int done, int total) {}
  // After each epoch, with a checkpoint to resume from.
  virtual void OnEpoch(const EpochMetrics& metrics,
                       const Checkpoint& checkpoint) {}
  // Polled between batches; true stops training with CANCELLED.
  virtual bool StopRequested() { return false; }
};

// The most memory one training run may take (2 GiB; the default digits
// network takes 25 MiB): StartTraining refuses a
// configuration whose TrainingBytes exceed it (INVALID_ARGUMENT), so that no
// request can make a worker allocate without bound.
inline constexpr double kMaxTrainingBytes = 2.0 * (1 << 30);

// An upper estimate of the memory a run of `network` and `train` takes on
// `sequences` sequences of `steps` time steps: the parameter-sized vectors
// (parameters, mask, Adam's two moments, one gradient per thread) and the
// BPTT trajectories of one batch (every Euler step of every layer kept for
// the backward pass).
double TrainingBytes(const NetworkConfig& network, const TrainConfig& train,
                     int64_t steps, int64_t sequences);

// The training state before the first epoch: parameters initialised and
// masks drawn from train.seed. Validates the configuration against the data
// and refuses more than kMaxTrainingBytes.
absl::StatusOr<Checkpoint> StartTraining(const NetworkConfig& network,
                                         const DeviceParams& device,
                                         const TrainConfig& train,
                                         const Dataset& train_data);

// Runs the remaining epochs of `checkpoint` on `train_data`, evaluating on
// `test_data` after each. Returns the final checkpoint (its model is the
// trained model); CANCELLED if the observer asked to stop. With one thread
// the result is a pure function of the checkpoint and data, so resuming from
// an epoch-k checkpoint reproduces an uninterrupted run bit for bit.
absl::StatusOr<Checkpoint> Train(Checkpoint checkpoint,
                                 const Dataset& train_data,
                                 const Dataset& test_data,
                                 TrainingObserver* observer);

// Mean loss, accuracy, cumulative drive and energy of a model on a dataset,
// on the chip `variability` draws (sequence j of `data` with the thermal
// noise of sequence j; default: the nominal network).
struct Evaluation {
  double loss = 0;
  double accuracy = 0;
  double cumulative_drive = 0;
  double energy_per_sample_joules = 0;
};
Evaluation Evaluate(const Model& model, const Dataset& data, int threads,
                    const DeviceVariability& variability = DeviceVariability());

}  // namespace spinnet

#endif  // SPINNET_CORE_TRAINER_H_
