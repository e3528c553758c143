// Trained models and training checkpoints as self-checking binary files.
#ifndef SPINNET_CORE_MODEL_IO_H_
#define SPINNET_CORE_MODEL_IO_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/config.h"
#include "core/eigen_types.h"
#include "core/metrics.h"

namespace spinnet {

// Everything needed to run a trained network again and to say where it came
// from. Immutable once published (share as std::shared_ptr<const Model>).
struct Model {
  NetworkConfig network;
  DeviceParams device;
  TrainConfig train;
  std::string dataset_name;
  std::vector<std::string> class_labels;  // size network.num_classes
  int sequence_steps = 0;                 // K of the training data
  Vector params;  // ParamLayout(network)
  Vector mask;    // trainable mask (sparsity), same size

  // Consistency of sizes and values (a loaded file passed its checksum but
  // may still come from a buggy writer).
  absl::Status Validate() const;
};

// A resumable training state, written after every epoch.
struct Checkpoint {
  Model model;  // params = weights after `epochs_done` epochs
  Vector adam_m, adam_v;
  int64_t adam_step = 0;
  int epochs_done = 0;
  std::vector<EpochMetrics> history;  // one entry per completed epoch

  // model.Validate() plus the optimizer state and history matching it.
  absl::Status Validate() const;
};

// Version of the payload layout of both file kinds; bump it whenever the
// layout changes, so an old reader refuses a new file instead of misreading it.
// Version 2 added the device variability settings; version 1 files are
// still read (with no variability).
inline constexpr uint32_t kModelFormatVersion = 2;
inline constexpr uint32_t kOldestModelFormatVersion = 1;

// Binary format: magic, format version, payload, SHA-256 of everything
// before it. Loading checks all of it: a truncated, corrupted or foreign
// file is DATA_LOSS / INVALID_ARGUMENT with a message, never a crash.
// Serialize* write whatever they are given; Parse* accept only what passes
// Validate. Save* therefore refuse (INVALID_ARGUMENT) what Validate rejects,
// so a bad model is caught when it is written, not when it is next loaded.
std::string SerializeModel(const Model& model);
absl::StatusOr<Model> ParseModel(absl::string_view bytes);
absl::Status SaveModel(const Model& model, const std::string& path);
absl::StatusOr<Model> LoadModel(const std::string& path);

std::string SerializeCheckpoint(const Checkpoint& checkpoint);
absl::StatusOr<Checkpoint> ParseCheckpoint(absl::string_view bytes);
absl::Status SaveCheckpoint(const Checkpoint& checkpoint,
                            const std::string& path);
absl::StatusOr<Checkpoint> LoadCheckpoint(const std::string& path);

}  // namespace spinnet

#endif  // SPINNET_CORE_MODEL_IO_H_
