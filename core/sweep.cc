#include "core/sweep.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <thread>

#include <set>
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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

void SplitSweepSettings(const std::vector<Setting>& settings,
                        std::vector<Setting>* fixed,
                        std::vector<SweepAxis>* axes) {
  for (const auto& [flag, value] : settings) {
    if (value.find(',') == std::string::npos) {
      fixed->emplace_back(flag, value);
    } else {
      axes->push_back({flag, absl::StrSplit(value, ',')});
    }
  }
}

absl::StatusOr<std::vector<uint64_t>> ParseSeeds(const std::string& text) {
  std::vector<uint64_t> seeds;
  std::set<uint64_t> seen;
  const auto add = [&](uint64_t seed) -> absl::Status {
    if (!seen.insert(seed).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("seeds: ", seed, " appears twice"));
    }
    if (seeds.size() == kMaxSweepSeeds) {
      return absl::InvalidArgumentError(
          absl::StrCat("seeds: more than ", kMaxSweepSeeds));
    }
    seeds.push_back(seed);
    return absl::OkStatus();
  };
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    std::vector<std::string> range = absl::StrSplit(part, '-');
    uint64_t lo, hi;
    if (range.size() == 1 && absl::SimpleAtoi(range[0], &lo)) {
      RETURN_IF_ERROR(add(lo));
    } else if (range.size() == 2 && absl::SimpleAtoi(range[0], &lo) &&
               absl::SimpleAtoi(range[1], &hi) && lo <= hi) {
      for (uint64_t s = lo; s <= hi && s >= lo; ++s) RETURN_IF_ERROR(add(s));
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "seeds: '", part, "' is not a seed or a range a-b with a <= b"));
    }
  }
  return seeds;
}

absl::StatusOr<std::vector<SweepPoint>> ExpandSweep(
    const std::vector<Setting>& fixed, const std::vector<SweepAxis>& axes,
    const Dataset& train) {
  int64_t size = 1;
  std::set<std::string> flags;
  for (const SweepAxis& axis : axes) {
    if (FindTrainingFlag(axis.flag) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("axes: unknown flag --", axis.flag));
    }
    if (!flags.insert(axis.flag).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("axes: --", axis.flag, " is an axis twice"));
    }
    if (axis.values.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("axes: --", axis.flag, " has no values"));
    }
    size *= static_cast<int64_t>(axis.values.size());
    if (size > kMaxSweepPoints) {
      return absl::InvalidArgumentError(absl::StrCat(
          "axes: the grid has more than ", kMaxSweepPoints, " points"));
    }
  }
  for (const auto& [flag, value] : fixed) {
    if (flags.count(flag)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "fixed: --", flag, " is also an axis; give it one place"));
    }
  }
  std::vector<SweepPoint> points(1);
  for (const SweepAxis& axis : axes) {
    std::vector<SweepPoint> next;
    for (const SweepPoint& point : points) {
      for (const std::string& value : axis.values) {
        next.push_back(point);
        next.back().settings.emplace_back(axis.flag, value);
      }
    }
    points = std::move(next);
  }
  for (SweepPoint& point : points) {
    std::vector<Setting> settings = fixed;
    settings.insert(settings.end(), point.settings.begin(),
                    point.settings.end());
    ASSIGN_OR_RETURN(point.spec, MakeTrainingSpec(settings));
    point.spec.network.input_dim = train.input_dim;
    point.spec.network.num_classes =
        static_cast<int>(train.class_labels.size());
    point.spec.train.threads = 1;
    RETURN_IF_ERROR(StartTraining(point.spec.network, point.spec.device,
                                  point.spec.train, train)
                        .status());
  }
  return points;
}

absl::StatusOr<std::vector<SweepPointResult>> RunSweep(
    const std::vector<Setting>& fixed, const std::vector<SweepAxis>& axes,
    const std::vector<uint64_t>& seeds, const Dataset& train_data,
    const Dataset& test_data, int threads,
    const std::function<void(int, int)>& on_run_done) {
  if (seeds.empty()) return absl::InvalidArgumentError("no seeds to sweep");
  ASSIGN_OR_RETURN(const std::vector<SweepPoint> grid,
                   ExpandSweep(fixed, axes, train_data));
  std::vector<SweepPointResult> points(grid.size());
  std::vector<TrainingSpec> specs;
  for (size_t p = 0; p < grid.size(); ++p) {
    points[p].settings = grid[p].settings;
    specs.push_back(grid[p].spec);
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
