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
  absl::Status Validate() const;
};

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

  // Learning rate used during epoch `epoch` (0-based).
  double LearningRate(int epoch) const;
  absl::Status Validate() const;
};

}  // namespace spinnet

#endif  // SPINNET_CORE_CONFIG_H_
