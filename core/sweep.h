// The paper's studies (model.md section 7): a grid of training settings,
// each point trained for several seeds, summarised by the median and
// quartiles of final test accuracy. The grid is expanded and checked here
// once for every runner: `spinnet-train --sweep` trains it in process
// (RunSweep), the server's SubmitSweep queues one training job per point
// and seed.
#ifndef SPINNET_CORE_SWEEP_H_
#define SPINNET_CORE_SWEEP_H_

#include <cstdint>
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

// The largest grid (points, before seeds) and seed list a sweep takes.
inline constexpr int kMaxSweepPoints = 10000;
inline constexpr int kMaxSweepSeeds = 1000;

// Splits training-flag settings into the grid: a value with commas
// ("0.5,1,2") is an axis, any other value holds at every point.
void SplitSweepSettings(const std::vector<Setting>& settings,
                        std::vector<Setting>* fixed,
                        std::vector<SweepAxis>* axes);

// "0-9", "1,5,7" or mixtures: distinct seeds in the order given.
// INVALID_ARGUMENT names the bad part, a repeated seed, or more than
// kMaxSweepSeeds seeds.
absl::StatusOr<std::vector<uint64_t>> ParseSeeds(const std::string& text);

struct SweepPoint {
  std::vector<Setting> settings;  // this point's axis values, axis order
  TrainingSpec spec;              // fixed + settings; seed and threads unset
};

// Every combination of axis values (cartesian product, first axis slowest),
// each made into a spec by MakeTrainingSpec(fixed + combination) and sized
// for `train` (input_dim, num_classes) and checked against it, before
// anything trains. INVALID_ARGUMENT names the flag (an unknown flag, an
// empty or repeated axis, a bad value, or more than kMaxSweepPoints).
absl::StatusOr<std::vector<SweepPoint>> ExpandSweep(
    const std::vector<Setting>& fixed, const std::vector<SweepAxis>& axes,
    const Dataset& train);

// Linear-interpolation quantile (numpy's default) of non-empty `v`.
double Quantile(std::vector<double> v, double q);

struct SweepPointResult {
  std::vector<Setting> settings;        // as SweepPoint::settings
  std::vector<double> test_accuracies;  // one per seed, in seed order
  double median = 0, q25 = 0, q75 = 0;  // of test_accuracies
  double mean_cumulative_drive = 0;     // final epoch, over seeds
  double train_seconds = 0;             // summed over seeds
};

// Trains every point of ExpandSweep(fixed, axes, train_data) for each seed,
// `threads` runs at a time (each run single-threaded). `on_run_done(done,
// total)` is called from worker threads under a lock.
absl::StatusOr<std::vector<SweepPointResult>> RunSweep(
    const std::vector<Setting>& fixed, const std::vector<SweepAxis>& axes,
    const std::vector<uint64_t>& seeds, const Dataset& train_data,
    const Dataset& test_data, int threads,
    const std::function<void(int done, int total)>& on_run_done);

}  // namespace spinnet

#endif  // SPINNET_CORE_SWEEP_H_
