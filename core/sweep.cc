#include "core/sweep.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "core/trainer.h"

namespace spinnet {

double Quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * (v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - lo) * (v[hi] - v[lo]);
}

absl::StatusOr<std::vector<SweepPointResult>> RunSweep(
    const std::vector<Setting>& fixed, const std::vector<SweepAxis>& axes,
    const std::vector<uint64_t>& seeds, const Dataset& train_data,
    const Dataset& test_data, int threads,
    const std::function<void(int, int)>& on_run_done) {
  if (seeds.empty()) return absl::InvalidArgumentError("no seeds to sweep");
  // Expand the grid and check every point before training anything.
  std::vector<SweepPointResult> points(1);
  for (const SweepAxis& axis : axes) {
    std::vector<SweepPointResult> next;
    for (const SweepPointResult& point : points) {
      for (const std::string& value : axis.values) {
        next.push_back(point);
        next.back().settings.emplace_back(axis.flag, value);
      }
    }
    points = std::move(next);
  }
  std::vector<TrainingSpec> specs;
  for (const SweepPointResult& point : points) {
    std::vector<Setting> settings = fixed;
    settings.insert(settings.end(), point.settings.begin(),
                    point.settings.end());
    ASSIGN_OR_RETURN(TrainingSpec spec, MakeTrainingSpec(settings));
    spec.network.input_dim = train_data.input_dim;
    spec.network.num_classes = static_cast<int>(train_data.class_labels.size());
    spec.train.threads = 1;
    RETURN_IF_ERROR(StartTraining(spec.network, spec.device, spec.train,
                                  train_data)
                        .status());
    specs.push_back(spec);
  }
  for (auto& p : points) p.test_accuracies.assign(seeds.size(), 0);
  std::vector<std::vector<double>> drives(points.size(),
                                          std::vector<double>(seeds.size()));

  const int total = static_cast<int>(specs.size() * seeds.size());
  std::atomic<int> next{0};
  std::mutex mu;
  int done = 0;
  absl::Status first_error;
  auto worker = [&] {
    for (int run = next++; run < total; run = next++) {
      const size_t p = run / seeds.size(), s = run % seeds.size();
      TrainingSpec spec = specs[p];
      spec.train.seed = seeds[s];
      const auto start = std::chrono::steady_clock::now();
      auto result = [&]() -> absl::StatusOr<Checkpoint> {
        ASSIGN_OR_RETURN(Checkpoint c, StartTraining(spec.network, spec.device,
                                                     spec.train, train_data));
        return Train(std::move(c), train_data, test_data, nullptr);
      }();
      const double seconds = std::chrono::duration<double>(
                                 std::chrono::steady_clock::now() - start)
                                 .count();
      std::lock_guard<std::mutex> lock(mu);
      if (!result.ok()) {
        if (first_error.ok()) {
          std::string where;
          for (const auto& [flag, value] : points[p].settings) {
            absl::StrAppend(&where, " --", flag, " ", value);
          }
          first_error = absl::Status(
              result.status().code(),
              absl::StrCat("run", where, " --seed ", seeds[s], ": ",
                           result.status().message()));
        }
        continue;
      }
      points[p].test_accuracies[s] = result->history.back().test_accuracy;
      drives[p][s] = result->history.back().cumulative_drive;
      points[p].train_seconds += seconds;
      if (on_run_done) on_run_done(++done, total);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::min(threads, total); ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  RETURN_IF_ERROR(first_error);
  for (size_t p = 0; p < points.size(); ++p) {
    auto& pt = points[p];
    pt.median = Quantile(pt.test_accuracies, 0.5);
    pt.q25 = Quantile(pt.test_accuracies, 0.25);
    pt.q75 = Quantile(pt.test_accuracies, 0.75);
    double sum = 0;
    for (double d : drives[p]) sum += d;
    pt.mean_cumulative_drive = sum / seeds.size();
  }
  return points;
}

}  // namespace spinnet
