#include "core/training_flags.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace spinnet {
namespace {

template <typename T>
absl::Status ParseNumber(const std::string& name, const std::string& v,
                         T* out) {
  bool ok;
  if constexpr (std::is_same_v<T, double>) {
    ok = absl::SimpleAtod(v, out);
  } else {
    ok = absl::SimpleAtoi(v, out);
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": '", v, "' is not ",
                     std::is_same_v<T, double> ? "a number" : "an integer"));
  }
  return absl::OkStatus();
}

absl::Status ParseBool(const std::string& name, const std::string& v,
                       bool* out) {
  if (v == "true" || v == "1" || v.empty()) {
    *out = true;
  } else if (v == "false" || v == "0") {
    *out = false;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": '", v, "' is not true or false"));
  }
  return absl::OkStatus();
}

// A flag bound to one numeric or bool field, via a member accessor.
template <typename T>
TrainingFlag Field(std::string name, std::string help,
                   std::function<T*(TrainingSpec*)> field) {
  TrainingFlag f;
  f.name = name;
  f.help = std::move(help);
  f.is_bool = std::is_same_v<T, bool>;
  f.set = [name, field](const std::string& v, TrainingSpec* s) {
    if constexpr (std::is_same_v<T, bool>) {
      return ParseBool(name, v, field(s));
    } else {
      return ParseNumber(name, v, field(s));
    }
  };
  f.get = [field](const TrainingSpec& s) -> std::string {
    const T value = *field(const_cast<TrainingSpec*>(&s));
    if constexpr (std::is_same_v<T, bool>) {
      return value ? "true" : "false";
    } else if constexpr (std::is_same_v<T, double>) {
      return FormatDouble(value);
    } else {
      return absl::StrCat(value);
    }
  };
  return f;
}

// A flag bound to an enum field, with its parse and name functions.
template <typename E>
TrainingFlag Enum(std::string name, std::string help,
                  absl::StatusOr<E> (*parse)(const std::string&),
                  std::string (*to_name)(E),
                  std::function<E*(TrainingSpec*)> field) {
  TrainingFlag f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.is_bool = false;
  f.set = [parse, field](const std::string& v, TrainingSpec* s) {
    absl::StatusOr<E> e = parse(v);
    if (!e.ok()) return e.status();
    *field(s) = *e;
    return absl::OkStatus();
  };
  f.get = [to_name, field](const TrainingSpec& s) {
    return to_name(*field(const_cast<TrainingSpec*>(&s)));
  };
  return f;
}

std::vector<TrainingFlag> MakeFlags() {
  using S = TrainingSpec;
  std::vector<TrainingFlag> f;
  f.push_back(Enum<CellType>(
      "cell", "neuron model: stno (spin-torque oscillator) or ctrnn",
      ParseCellType, CellTypeName, [](S* s) { return &s->network.cell; }));
  f.push_back(Field<int>("layers", "number of layers L",
                         [](S* s) { return &s->network.layers; }));
  f.push_back(Field<int>("neurons", "neurons per layer N",
                         [](S* s) { return &s->network.neurons; }));
  f.push_back(Field<double>("tau", "neuron relaxation time tau [ns]",
                            [](S* s) { return &s->network.tau; }));
  f.push_back(Field<double>("dt-in",
                            "input interval: each time step is held this "
                            "long [ns]",
                            [](S* s) { return &s->network.dt_in; }));
  f.push_back(Field<int>("substeps", "Euler steps per input interval",
                         [](S* s) { return &s->network.substeps; }));
  f.push_back(Field<double>("zeta-bias",
                            "fixed DC bias current, in units of I_th (STNO)",
                            [](S* s) { return &s->network.zeta_bias; }));
  f.push_back(Field<double>("q", "nonlinear damping Q (STNO)",
                            [](S* s) { return &s->network.q; }));
  f.push_back(Field<double>("p-th", "thermal power floor p_th (STNO)",
                            [](S* s) { return &s->network.p_th; }));
  f.push_back(Field<double>("p0", "initial normalized power (STNO)",
                            [](S* s) { return &s->network.p0; }));
  f.push_back(Field<double>("amplification",
                            "amplification factor a_l of every layer (STNO)",
                            [](S* s) { return &s->network.amplification; }));
  f.push_back(Field<bool>("train-amplification",
                          "also train the amplification factors (STNO)",
                          [](S* s) {
                            return &s->network.train_amplification;
                          }));
  f.push_back(Field<double>("tau-hp", "high-pass filter time constant [ns]",
                            [](S* s) { return &s->network.tau_hp; }));
  f.push_back(Field<double>("density-int",
                            "fraction of intralayer weights W_int kept [0-1]",
                            [](S* s) { return &s->network.density_int; }));
  f.push_back(Field<double>("density-ext",
                            "fraction of input/interlayer weights W_ext kept "
                            "[0-1]",
                            [](S* s) { return &s->network.density_ext; }));
  f.push_back(Field<double>("resistance", "device resistance R [ohm]",
                            [](S* s) { return &s->device.resistance_ohm; }));
  f.push_back(Field<double>("threshold-current",
                            "threshold current I_th [A]", [](S* s) {
                              return &s->device.threshold_current_amp;
                            }));
  f.push_back(Field<double>(
      "thermal-noise",
      "thermal noise on the power: its standard deviation over one tau, "
      "N(0, s^2 h/tau_i) per Euler step (STNO; 0: off)",
      [](S* s) { return &s->device.thermal_noise; }));
  f.push_back(Field<double>(
      "train-spread",
      "device spread in training: relative standard deviation of the --vary "
      "parameters, redrawn every batch (0: off)",
      [](S* s) { return &s->train.train_spread; }));
  f.push_back(Field<double>(
      "test-spread",
      "device spread of the test chip, drawn once from --seed (0: off)",
      [](S* s) { return &s->train.test_spread; }));
  f.push_back(Enum<unsigned>(
      "vary",
      "parameters the spreads perturb: threshold, tau, amplification joined "
      "by '+', or all",
      ParseVaryingParams, VaryingParamsName,
      [](S* s) { return &s->train.vary; }));
  f.push_back(Field<int>("epochs", "training epochs",
                         [](S* s) { return &s->train.epochs; }));
  f.push_back(Field<int>("batch", "mini-batch size [sequences]",
                         [](S* s) { return &s->train.batch; }));
  f.push_back(Field<double>("lr", "Adam learning rate (peak)",
                            [](S* s) { return &s->train.lr; }));
  f.push_back(Enum<LrSchedule>(
      "schedule",
      "learning-rate schedule: cosine (decay to lr*lr-final-fraction) or "
      "constant",
      ParseLrSchedule, LrScheduleName,
      [](S* s) { return &s->train.schedule; }));
  f.push_back(Field<double>("lr-final-fraction",
                            "final lr as a fraction of --lr (cosine)",
                            [](S* s) { return &s->train.lr_final_fraction; }));
  f.push_back(Field<double>("clip-norm",
                            "global gradient-norm clipping threshold (0: off)",
                            [](S* s) { return &s->train.clip_norm; }));
  f.push_back(Field<double>("beta1", "Adam beta1",
                            [](S* s) { return &s->train.beta1; }));
  f.push_back(Field<double>("beta2", "Adam beta2",
                            [](S* s) { return &s->train.beta2; }));
  f.push_back(Field<double>("init-int-scale",
                            "W_int initial scale (x N(0, 1/fan_in))",
                            [](S* s) { return &s->train.init_int_scale; }));
  f.push_back(Field<uint64_t>("seed",
                              "seed of initialisation, masks and shuffling",
                              [](S* s) { return &s->train.seed; }));
  f.push_back(Field<int>("threads", "threads each batch is split over",
                         [](S* s) { return &s->train.threads; }));
  f.push_back(Enum<Precision>(
      "precision", "arithmetic of training: float32 or float64",
      ParsePrecision, PrecisionName,
      [](S* s) { return &s->train.precision; }));
  return f;
}

}  // namespace

TrainingSpec DefaultTrainingSpec(CellType cell) {
  TrainingSpec spec;
  spec.network.cell = cell;
  // Chosen on digits:validation, the same grids for both cells (python3 -m
  // spinnet.tune; docs/tuning.json): lr x tau x W_int scale, then epochs.
  spec.train.lr = 0.02;
  spec.train.epochs = 45;
  spec.train.init_int_scale = 0.5;
  if (cell == CellType::kCtrnn) spec.network.tau = 10.0;
  return spec;
}

absl::StatusOr<TrainingSpec> MakeTrainingSpec(
    const std::vector<Setting>& settings) {
  CellType cell = CellType::kStno;
  for (const auto& [name, value] : settings) {
    if (name != "cell") continue;
    absl::StatusOr<CellType> c = ParseCellType(value);
    if (!c.ok()) return c.status();
    cell = *c;
  }
  TrainingSpec spec = DefaultTrainingSpec(cell);
  for (const auto& [name, value] : settings) {
    const TrainingFlag* flag = FindTrainingFlag(name);
    if (flag == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown training setting --", name));
    }
    absl::Status s = flag->set(value, &spec);
    if (!s.ok()) return s;
  }
  return spec;
}

std::string FormatDouble(double v) {
  std::string s = absl::StrFormat("%.15g", v);
  double back;
  if (absl::SimpleAtod(s, &back) && back == v) return s;
  return absl::StrFormat("%.17g", v);
}

std::string DefaultsText(const TrainingFlag& flag) {
  const std::string stno = flag.get(DefaultTrainingSpec(CellType::kStno));
  const std::string ctrnn = flag.get(DefaultTrainingSpec(CellType::kCtrnn));
  if (stno == ctrnn || flag.name == "cell") return stno;
  return absl::StrCat(stno, "; ctrnn ", ctrnn);
}

const std::vector<TrainingFlag>& TrainingFlags() {
  static const std::vector<TrainingFlag>* flags =
      new std::vector<TrainingFlag>(MakeFlags());
  return *flags;
}

const TrainingFlag* FindTrainingFlag(const std::string& name) {
  for (const TrainingFlag& f : TrainingFlags()) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

}  // namespace spinnet
