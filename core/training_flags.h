// The training hyperparameters as named command-line flags, shared by every
// tool that takes them (spinnet-train, and the `spinnet train` client) so
// that names, units and validation are defined once.
#ifndef SPINNET_CORE_TRAINING_FLAGS_H_
#define SPINNET_CORE_TRAINING_FLAGS_H_

#include <functional>
#include <string>
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
  std::function<std::string(const TrainingSpec& spec)> get;
};

// Every training flag, in help order.
const std::vector<TrainingFlag>& TrainingFlags();
// The flag called `name`, or nullptr.
const TrainingFlag* FindTrainingFlag(const std::string& name);

}  // namespace spinnet

#endif  // SPINNET_CORE_TRAINING_FLAGS_H_
