// The paper's studies (model.md section 7): train every point of a grid of
// settings for several seeds and summarise final test accuracy.
#ifndef SPINNET_CORE_SWEEP_H_
#define SPINNET_CORE_SWEEP_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dataset.h"
#include "core/training_flags.h"

namespace spinnet {

// One axis of the grid: a training flag name and its values.
struct SweepAxis {
  std::string flag;
  std::vector<std::string> values;
};

struct SweepPointResult {
  std::vector<std::pair<std::string, std::string>> settings;  // flag, value
  std::vector<double> test_accuracies;  // one per seed, in seed order
  double median = 0, q25 = 0, q75 = 0;  // of test_accuracies
  double mean_cumulative_drive = 0;     // final epoch, over seeds
  double train_seconds = 0;             // summed over seeds
};

// Linear-interpolation quantile (numpy's default) of non-empty `v`.
double Quantile(std::vector<double> v, double q);

// Trains, for each combination of axis values (cartesian product, first axis
// slowest) and each seed, the network MakeTrainingSpec(fixed + combination)
// sized for the data, `threads` runs at a time (each run single-threaded).
// `on_run_done(done, total)` is called from worker threads under a lock.
// Fails on the first invalid setting before any training starts.
absl::StatusOr<std::vector<SweepPointResult>> RunSweep(
    const std::vector<Setting>& fixed, const std::vector<SweepAxis>& axes,
    const std::vector<uint64_t>& seeds, const Dataset& train_data,
    const Dataset& test_data, int threads,
    const std::function<void(int done, int total)>& on_run_done);

}  // namespace spinnet

#endif  // SPINNET_CORE_SWEEP_H_
