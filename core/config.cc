#include "core/config.h"

#include <cmath>

#include "absl/strings/str_cat.h"

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
  return s;
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
  return s;
}

}  // namespace spinnet
