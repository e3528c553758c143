#include "core/config.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/random.h"

namespace spinnet {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Finite and within [lo, hi].
absl::Status CheckRange(const char* name, double v, double lo, double hi) {
  if (!std::isfinite(v) || v < lo || v > hi) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " = ", v, "; need a finite value in [", lo, ", ",
                     hi, "]"));
  }
  return absl::OkStatus();
}

absl::Status CheckPositive(const char* name, double v) {
  if (!std::isfinite(v) || v <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " = ", v, "; need a finite value > 0"));
  }
  return absl::OkStatus();
}

absl::Status CheckIntRange(const char* name, int64_t v, int64_t lo,
                           int64_t hi) {
  if (v < lo || v > hi) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " = ", v, "; need ", lo, "..", hi));
  }
  return absl::OkStatus();
}

}  // namespace

std::string CellTypeName(CellType cell) {
  return cell == CellType::kStno ? "stno" : "ctrnn";
}

absl::StatusOr<CellType> ParseCellType(const std::string& name) {
  if (name == "stno") return CellType::kStno;
  if (name == "ctrnn") return CellType::kCtrnn;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown cell '", name, "'; need stno or ctrnn"));
}

std::string LrScheduleName(LrSchedule s) {
  return s == LrSchedule::kConstant ? "constant" : "cosine";
}

absl::StatusOr<LrSchedule> ParseLrSchedule(const std::string& name) {
  if (name == "constant") return LrSchedule::kConstant;
  if (name == "cosine") return LrSchedule::kCosine;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown lr schedule '", name, "'; need constant or cosine"));
}

std::string PrecisionName(Precision p) {
  return p == Precision::kFloat32 ? "float32" : "float64";
}

absl::StatusOr<Precision> ParsePrecision(const std::string& name) {
  if (name == "float32") return Precision::kFloat32;
  if (name == "float64") return Precision::kFloat64;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown precision '", name, "'; need float32 or float64"));
}

std::string VaryingParamsName(unsigned vary) {
  std::vector<std::string> names;
  if (vary & kVaryThreshold) names.push_back("threshold");
  if (vary & kVaryTau) names.push_back("tau");
  if (vary & kVaryAmplification) names.push_back("amplification");
  return names.empty() ? "none" : absl::StrJoin(names, "+");
}

absl::StatusOr<unsigned> ParseVaryingParams(const std::string& text) {
  if (text == "all") return kVaryAll;
  if (text == "none") return 0u;
  unsigned vary = 0;
  for (absl::string_view name : absl::StrSplit(text, '+')) {
    if (name == "threshold") {
      vary |= kVaryThreshold;
    } else if (name == "tau") {
      vary |= kVaryTau;
    } else if (name == "amplification") {
      vary |= kVaryAmplification;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown device parameter '", name,
          "'; need threshold, tau, amplification joined by '+', all or none"));
    }
  }
  return vary;
}

bool DeviceVariability::NominalDevices() const {
  return threshold_spread == 0 && tau_spread == 0 && amplification_spread == 0;
}

absl::Status DeviceVariability::Validate(const NetworkConfig& network) const {
  absl::Status s;
  s.Update(CheckRange("threshold spread", threshold_spread, 0, kMaxSpread));
  s.Update(CheckRange("tau spread", tau_spread, 0, kMaxSpread));
  s.Update(
      CheckRange("amplification spread", amplification_spread, 0, kMaxSpread));
  s.Update(CheckRange("thermal_noise", thermal_noise, 0, 1));
  // x is clipped to [-3, 3], so no device is faster than tau (1 - 3 s_tau).
  const double shortest_tau = network.tau * (1 - 3 * tau_spread);
  if (s.ok() && network.h() > 2 * shortest_tau) {
    s = absl::InvalidArgumentError(absl::StrCat(
        "with tau spread ", tau_spread, " the shortest device tau is ",
        shortest_tau, " ns; the Euler step dt_in/substeps = ", network.h(),
        " ns exceeds twice that (unstable); raise substeps or lower the "
        "spread"));
  }
  return s;
}

absl::Status NetworkConfig::Validate() const {
  absl::Status s;
  s.Update(CheckIntRange("layers", layers, 1, 64));
  s.Update(CheckIntRange("neurons", neurons, 1, 4096));
  s.Update(CheckIntRange("input_dim", input_dim, 1, 4096));
  s.Update(CheckIntRange("num_classes", num_classes, 2, 100000));
  s.Update(CheckIntRange("substeps", substeps, 1, 10000));
  s.Update(CheckPositive("tau", tau));
  s.Update(CheckPositive("dt_in", dt_in));
  s.Update(CheckPositive("tau_hp", tau_hp));
  s.Update(CheckRange("zeta_bias", zeta_bias, -100, 100));
  s.Update(CheckRange("q", q, 0, 100));
  s.Update(CheckRange("p_th", p_th, 0, 1));
  s.Update(CheckRange("p0", p0, 0, 1));
  s.Update(CheckRange("amplification", amplification, -1e6, 1e6));
  s.Update(CheckRange("density_int", density_int, 0, 1));
  s.Update(CheckRange("density_ext", density_ext, 0, 1));
  if (s.ok() && h() > 2 * tau) {
    // Explicit Euler on dp/dt = -p/tau is unstable for h > 2 tau.
    s = absl::InvalidArgumentError(absl::StrCat(
        "Euler step dt_in/substeps = ", h(), " ns exceeds 2*tau = ", 2 * tau,
        " ns (unstable); raise substeps"));
  }
  return s;
}

absl::Status DeviceParams::Validate() const {
  absl::Status s;
  s.Update(CheckPositive("resistance_ohm", resistance_ohm));
  s.Update(CheckPositive("threshold_current_amp", threshold_current_amp));
  s.Update(CheckRange("thermal_noise", thermal_noise, 0, 1));
  return s;
}

namespace {

DeviceVariability Spread(const DeviceParams& device, double spread,
                         unsigned vary, uint64_t seed) {
  DeviceVariability v;
  v.threshold_spread = vary & kVaryThreshold ? spread : 0;
  v.tau_spread = vary & kVaryTau ? spread : 0;
  v.amplification_spread = vary & kVaryAmplification ? spread : 0;
  v.thermal_noise = device.thermal_noise;
  v.seed = seed;
  return v;
}

}  // namespace

DeviceVariability TrainConfig::TrainVariability(const DeviceParams& device,
                                                int epoch, int batch) const {
  const uint64_t index =
      (static_cast<uint64_t>(epoch) << 32) | static_cast<uint32_t>(batch);
  return Spread(device, train_spread, vary,
                DeriveSeed(seed, kTrainDeviceStream, index));
}

DeviceVariability TrainConfig::TestVariability(
    const DeviceParams& device) const {
  return Spread(device, test_spread, vary,
                DeriveSeed(seed, kTestDeviceStream, 0));
}

absl::Status ValidateVariability(const NetworkConfig& network,
                                 const DeviceParams& device,
                                 const TrainConfig& train) {
  // The largest spread of either kind bounds the shortest tau.
  return Spread(device, std::max(train.train_spread, train.test_spread),
                train.vary, 0)
      .Validate(network);
}

double TrainConfig::LearningRate(int epoch) const {
  if (schedule == LrSchedule::kConstant || epochs <= 1) return lr;
  const double progress = static_cast<double>(epoch) / (epochs - 1);
  const double floor = lr * lr_final_fraction;
  return floor + 0.5 * (lr - floor) * (1 + std::cos(kPi * progress));
}

absl::Status TrainConfig::Validate() const {
  absl::Status s;
  s.Update(CheckRange("lr", lr, 1e-12, 10));
  s.Update(CheckRange("beta1", beta1, 0, 0.999999));
  s.Update(CheckRange("beta2", beta2, 0, 0.999999999));
  s.Update(CheckRange("adam_eps", adam_eps, 1e-300, 1));
  s.Update(CheckRange("clip_norm", clip_norm, 0, 1e12));
  s.Update(CheckRange("lr_final_fraction", lr_final_fraction, 0, 1));
  s.Update(CheckIntRange("batch", batch, 1, 1 << 20));
  s.Update(CheckIntRange("epochs", epochs, 1, 1000000));
  s.Update(CheckIntRange("threads", threads, 1, 256));
  s.Update(CheckRange("init_int_scale", init_int_scale, 0, 100));
  s.Update(CheckRange("train_spread", train_spread, 0, kMaxSpread));
  s.Update(CheckRange("test_spread", test_spread, 0, kMaxSpread));
  if (vary > kVaryAll) {
    s.Update(absl::InvalidArgumentError(
        absl::StrCat("vary = ", vary, "; need a subset of ", kVaryAll)));
  }
  return s;
}

}  // namespace spinnet
