// The training hyperparameters as named command-line flags, shared by every
// tool that takes them (spinnet-train, and the `spinnet train` client) so
// that names, units and validation are defined once.
#ifndef SPINNET_CORE_TRAINING_FLAGS_H_
#define SPINNET_CORE_TRAINING_FLAGS_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "core/config.h"

namespace spinnet {

struct TrainingSpec {
  NetworkConfig network;
  DeviceParams device;
  TrainConfig train;
};

struct TrainingFlag {
  std::string name;  // without "--", e.g. "dt-in"
  std::string help;  // with units and default
  bool is_bool;      // a switch: "--name" alone means true
  std::function<absl::Status(const std::string& value, TrainingSpec* spec)>
      set;
  // The value in `spec`, as text that `set` reads back exactly.
  std::function<std::string(const TrainingSpec& spec)> get;
};

// One flag setting, e.g. {"dt-in", "0.5"}.
using Setting = std::pair<std::string, std::string>;

// The defaults for `cell`: core/config.h's (model.md's) with the learning
// rate, epochs, W_int scale and (CTRNN) tau chosen on a validation split
// carved from the training data, with the same search for both cells
// (README, "Accuracy"; MODEL.md "Defaults").
TrainingSpec DefaultTrainingSpec(CellType cell);

// The defaults of the cell named by a "cell" setting (STNO if none), then
// every setting applied in order. INVALID_ARGUMENT names the bad flag.
absl::StatusOr<TrainingSpec> MakeTrainingSpec(
    const std::vector<Setting>& settings);

// The shortest of %.15g / %.17g that reads back as the same double: how
// setting values are written as text.
std::string FormatDouble(double v);

// The flag's default as help text: "1", or "1; ctrnn 5" where the cells'
// defaults differ.
std::string DefaultsText(const TrainingFlag& flag);

// Every training flag, in help order.
const std::vector<TrainingFlag>& TrainingFlags();
// The flag called `name`, or nullptr.
const TrainingFlag* FindTrainingFlag(const std::string& name);

}  // namespace spinnet

#endif  // SPINNET_CORE_TRAINING_FLAGS_H_
