// Configuration of the network (model.md sections 1-3, 6), the device
// (section 8) and training (section 4). Times are in nanoseconds.
#ifndef SPINNET_CORE_CONFIG_H_
#define SPINNET_CORE_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace spinnet {

enum class CellType { kStno, kCtrnn };

std::string CellTypeName(CellType cell);  // "stno" or "ctrnn"
absl::StatusOr<CellType> ParseCellType(const std::string& name);

struct NetworkConfig {
  CellType cell = CellType::kStno;
  int layers = 3;
  int neurons = 32;
  int input_dim = 1;    // d: values per time step
  int num_classes = 10;
  double tau = 1.0;     // neuron relaxation time [ns]
  double dt_in = 1.0;   // input interval: each sample is held this long [ns]
  int substeps = 4;     // Euler steps per input interval (h = dt_in/substeps)
  double zeta_bias = 0.8;  // fixed DC bias current / I_th (STNO only)
  double q = 0.0;          // nonlinear damping Q (STNO only)
  double p_th = 1e-3;      // thermal floor (STNO only)
  double p0 = 0.05;        // initial power of every neuron (STNO only)
  double amplification = 4.0;  // initial a_l (STNO only)
  bool train_amplification = false;
  double tau_hp = 5.0;      // high-pass filter time constant [ns] (STNO only)
  double density_int = 1.0;  // fraction of W_int entries kept
  double density_ext = 1.0;  // fraction of W_ext entries kept

  double h() const { return dt_in / substeps; }
  absl::Status Validate() const;
};

struct DeviceParams {
  double resistance_ohm = 100.0;
  double threshold_current_amp = 0.2e-3;
  // Thermal noise on the power (STNO; MODEL.md "Device variability"): the
  // standard deviation of p that the noise alone accumulates over one
  // relaxation time tau; each Euler step adds N(0, (thermal_noise)^2 h/tau).
  // 0: off. Applies to training and to the per-epoch test evaluation.
  double thermal_noise = 0.0;
  absl::Status Validate() const;
};

// Which device parameters a spread perturbs (a set of bits).
enum VaryingParam : unsigned {
  kVaryThreshold = 1,      // threshold current I_th (STNO)
  kVaryTau = 2,            // relaxation time tau (STNO and CTRNN)
  kVaryAmplification = 4,  // amplification a_l (STNO)
  kVaryAll = 7,
};
// "threshold+tau+amplification" (the set bits in this order), or "none".
std::string VaryingParamsName(unsigned vary);
// The inverse of VaryingParamsName; "all" is every parameter.
absl::StatusOr<unsigned> ParseVaryingParams(const std::string& text);

// Device-to-device variability of one chip (MODEL.md "Device variability"):
// each device (neuron i of layer l) gets its own threshold current, tau and
// amplification, I_th,i = I_th (1 + s_th x), tau_i = tau (1 + s_tau x),
// a_l,i = a_l (1 + s_a x), with x ~ N(0, 1) clipped to [-3, 3] and drawn
// once per device from `seed`; optional thermal noise on the power. The
// default is no variability: inference identical to the nominal network.
struct DeviceVariability {
  double threshold_spread = 0;      // s_th: relative standard deviation
  double tau_spread = 0;            // s_tau
  double amplification_spread = 0;  // s_a
  double thermal_noise = 0;         // as DeviceParams::thermal_noise
  uint64_t seed = 0;                // the devices' and the noise's draws

  // The spreads are all 0 (thermal noise may still be on).
  bool NominalDevices() const;
  // No spread and no noise: the nominal network.
  bool None() const { return NominalDevices() && thermal_noise == 0; }
  // Spreads in [0, kMaxSpread], noise in [0, 1], and the shortest possible
  // tau_i = tau (1 - 3 s_tau) still gives a stable Euler step (h <= 2 tau_i).
  absl::Status Validate(const NetworkConfig& network) const;
};
// Spreads above 1/3 could clip to a non-positive parameter.
inline constexpr double kMaxSpread = 0.3;

enum class LrSchedule { kConstant, kCosine };
std::string LrScheduleName(LrSchedule s);
absl::StatusOr<LrSchedule> ParseLrSchedule(const std::string& name);

// Arithmetic of the training passes. Evaluation and inference always run in
// double; float32 training is about twice as fast and reaches the same
// accuracy (README), float64 is exact to the gradient check.
enum class Precision { kFloat32, kFloat64 };
std::string PrecisionName(Precision p);
absl::StatusOr<Precision> ParsePrecision(const std::string& name);
struct TrainConfig {
  double lr = 5e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double adam_eps = 1e-8;
  // Global gradient-norm clipping; 0 disables it.
  double clip_norm = 1.0;
  // Cosine decay from lr to lr * lr_final_fraction over the epochs.
  LrSchedule schedule = LrSchedule::kCosine;
  double lr_final_fraction = 0.05;
  int batch = 32;
  int epochs = 30;
  uint64_t seed = 0;  // initialisation, masks and shuffling
  int threads = 1;    // each batch is split over this many threads
  Precision precision = Precision::kFloat32;
  double init_int_scale = 0.5;  // W_int ~ init_int_scale * N(0, 1/fan_in)
  // Device variability (MODEL.md "Device variability"), relative standard
  // deviation of the parameters in `vary`. train_spread: the devices are
  // redrawn for every batch (noise-aware training); test_spread: one chip,
  // drawn once per run from the seed, for the per-epoch test evaluation.
  double train_spread = 0;
  double test_spread = 0;
  unsigned vary = kVaryAll;

  // The variability of training batch `batch` of epoch `epoch` (0-based),
  // seeded by (seed, epoch, batch) so a resumed run redraws the same
  // devices; and that of the test chip, seeded by the seed alone.
  DeviceVariability TrainVariability(const DeviceParams& device, int epoch,
                                     int batch) const;
  DeviceVariability TestVariability(const DeviceParams& device) const;

  // Learning rate used during epoch `epoch` (0-based).
  double LearningRate(int epoch) const;
  absl::Status Validate() const;
};

// Checks the variability settings of `train` and `device` against the
// network (tau spread and Euler stability).
absl::Status ValidateVariability(const NetworkConfig& network,
                                 const DeviceParams& device,
                                 const TrainConfig& train);

}  // namespace spinnet

#endif  // SPINNET_CORE_CONFIG_H_
