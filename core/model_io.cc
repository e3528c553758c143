// File layout: magic (8 bytes) | format version (uint32) | payload |
// SHA-256 of all before it (32 bytes). Integers are little-endian, doubles
// are their IEEE-754 bits, strings and vectors carry a uint64 length.
#include "core/model_io.h"

#include <array>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/base/casts.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "core/parameters.h"
#include "core/sha256.h"
#include "core/status_macros.h"

namespace spinnet {
namespace {

constexpr size_t kMagicBytes = 8;
constexpr size_t kVersionBytes = 4;
constexpr size_t kChecksumBytes = 32;
constexpr size_t kMinFileBytes = kMagicBytes + kVersionBytes + kChecksumBytes;

// Dataset names and class labels are short; a longer string in a file is
// corruption, and the cap keeps a bad length from costing much memory.
constexpr uint64_t kMaxStringBytes = 1 << 16;

// Every length is a uint64 in front of its elements.
constexpr size_t kLengthBytes = 8;

// An EpochMetrics as WriteEpochMetrics stores it: epoch, then 10 doubles.
constexpr size_t kEpochMetricsBytes = 4 + 10 * 8;

struct FileKind {
  absl::string_view magic;  // kMagicBytes long
  absl::string_view name;
};
constexpr FileKind kModelFile{"SPNMODEL", "model"};
constexpr FileKind kCheckpointFile{"SPNCHKPT", "checkpoint"};

absl::Status Prefixed(const absl::Status& status, absl::string_view prefix) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(prefix, status.message()));
}

// Appends fixed-width little-endian values, whatever the host's byte order,
// so files move between machines.
class Writer {
 public:
  void Raw(absl::string_view bytes) { out_.append(bytes.data(), bytes.size()); }
  void U32(uint32_t v) { AppendLittleEndian(v, 4); }
  void I32(int32_t v) { U32(static_cast<uint32_t>(v)); }
  void U64(uint64_t v) { AppendLittleEndian(v, 8); }
  void I64(int64_t v) { U64(static_cast<uint64_t>(v)); }
  // The bit pattern, so -0, subnormals and NaN payloads come back unchanged
  // (resuming from a checkpoint must reproduce training bit for bit).
  void F64(double v) { U64(absl::bit_cast<uint64_t>(v)); }
  void Bool(bool v) { out_.push_back(v ? 1 : 0); }
  void String(absl::string_view s) {
    U64(s.size());
    Raw(s);
  }
  void Doubles(const Vector& v) {
    U64(static_cast<uint64_t>(v.size()));
    for (Index i = 0; i < v.size(); ++i) F64(v[i]);
  }

  std::string& bytes() { return out_; }

 private:
  void AppendLittleEndian(uint64_t v, int width) {
    for (int i = 0; i < width; ++i) {
      out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    }
  }

  std::string out_;
};

// Reads what Writer wrote. Every read is checked against the bytes left and
// every length is checked before anything is allocated, so a corrupt payload
// (even one whose checksum was recomputed) is DATA_LOSS, never a crash or a
// huge allocation. `field` names the value in error messages.
class Reader {
 public:
  explicit Reader(absl::string_view bytes) : rest_(bytes) {}

  // The file's format version (OpenFile sets it).
  uint32_t version() const { return version_; }
  void set_version(uint32_t v) { version_ = v; }

  absl::StatusOr<uint32_t> U32(absl::string_view field) {
    ASSIGN_OR_RETURN(absl::string_view b, Take(field, 4));
    return static_cast<uint32_t>(LittleEndian(b));
  }
  absl::StatusOr<int32_t> I32(absl::string_view field) {
    ASSIGN_OR_RETURN(uint32_t v, U32(field));
    return static_cast<int32_t>(v);
  }
  absl::StatusOr<uint64_t> U64(absl::string_view field) {
    ASSIGN_OR_RETURN(absl::string_view b, Take(field, 8));
    return LittleEndian(b);
  }
  absl::StatusOr<int64_t> I64(absl::string_view field) {
    ASSIGN_OR_RETURN(uint64_t v, U64(field));
    return static_cast<int64_t>(v);
  }
  absl::StatusOr<double> F64(absl::string_view field) {
    ASSIGN_OR_RETURN(uint64_t v, U64(field));
    return absl::bit_cast<double>(v);
  }
  absl::StatusOr<bool> Bool(absl::string_view field) {
    ASSIGN_OR_RETURN(absl::string_view b, Take(field, 1));
    const uint8_t v = static_cast<uint8_t>(b[0]);
    if (v > 1) {
      return Corrupt(field, "bool byte is ", static_cast<int>(v),
                     "; need 0 or 1");
    }
    return v == 1;
  }
  absl::StatusOr<std::string> String(absl::string_view field) {
    ASSIGN_OR_RETURN(uint64_t size, Length(field, 1));
    if (size > kMaxStringBytes) {
      return Corrupt(field, "string length ", size, " exceeds the limit ",
                     kMaxStringBytes);
    }
    ASSIGN_OR_RETURN(absl::string_view b, Take(field, size));
    return std::string(b);
  }
  absl::StatusOr<Vector> Doubles(absl::string_view field) {
    ASSIGN_OR_RETURN(uint64_t size, Length(field, 8));
    Vector v(static_cast<Index>(size));
    for (Index i = 0; i < v.size(); ++i) {
      ASSIGN_OR_RETURN(v[i], F64(field));
    }
    return v;
  }
  // Number of elements that follow, each at least `min_element_bytes` long:
  // a length that cannot fit in the bytes left is rejected before the
  // caller sizes anything by it.
  absl::StatusOr<uint64_t> Length(absl::string_view field,
                                  size_t min_element_bytes) {
    ASSIGN_OR_RETURN(uint64_t n, U64(field));
    if (n > rest_.size() / min_element_bytes) {
      return Corrupt(field, "length ", n, " does not fit in the ", rest_.size(),
                     " bytes left");
    }
    return n;
  }

  absl::Status ExpectEnd() const {
    if (rest_.empty()) return absl::OkStatus();
    return absl::DataLossError(absl::StrCat("corrupt payload: ", rest_.size(),
                                            " unexpected trailing bytes"));
  }

 private:
  template <typename... Args>
  static absl::Status Corrupt(absl::string_view field, const Args&... args) {
    return absl::DataLossError(
        absl::StrCat("corrupt payload at ", field, ": ", args...));
  }

  absl::StatusOr<absl::string_view> Take(absl::string_view field, size_t n) {
    if (n > rest_.size()) {
      return Corrupt(field, "need ", n, " bytes, ", rest_.size(), " left");
    }
    const absl::string_view b = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return b;
  }

  static uint64_t LittleEndian(absl::string_view b) {
    uint64_t v = 0;
    for (size_t i = 0; i < b.size(); ++i) {
      v |= uint64_t{static_cast<uint8_t>(b[i])} << (8 * i);
    }
    return v;
  }

  absl::string_view rest_;
  uint32_t version_ = kModelFormatVersion;
};

// Magic and version; the caller appends the payload, then FinishFile.
Writer StartFile(const FileKind& kind) {
  Writer w;
  w.Raw(kind.magic);
  w.U32(kModelFormatVersion);
  return w;
}

std::string FinishFile(Writer w) {
  std::string& bytes = w.bytes();
  const std::array<uint8_t, 32> sum = Sha256(bytes);
  bytes.append(reinterpret_cast<const char*>(sum.data()), sum.size());
  return std::move(bytes);
}

// Checks size, magic, checksum and version (in that order: the version is
// only trusted once the checksum says the file is intact) and returns a
// reader over the payload.
absl::StatusOr<Reader> OpenFile(const FileKind& kind, absl::string_view bytes) {
  if (bytes.size() < kMinFileBytes) {
    return absl::DataLossError(
        absl::StrCat("file is ", bytes.size(), " bytes; a spinnet ", kind.name,
                     " file has at least ", kMinFileBytes));
  }
  const absl::string_view magic = bytes.substr(0, kMagicBytes);
  if (magic != kind.magic) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not a spinnet ", kind.name, " file (starts with \"",
        absl::CHexEscape(magic), "\"; expected \"", kind.magic, "\")"));
  }
  const absl::string_view body = bytes.substr(0, bytes.size() - kChecksumBytes);
  const std::array<uint8_t, 32> sum = Sha256(body);
  if (std::memcmp(sum.data(), bytes.data() + body.size(), kChecksumBytes) !=
      0) {
    return absl::DataLossError(
        "checksum mismatch: file is corrupt or truncated");
  }
  Reader reader(body.substr(kMagicBytes));
  ASSIGN_OR_RETURN(uint32_t version, reader.U32("format version"));
  if (version < kOldestModelFormatVersion || version > kModelFormatVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat("spinnet ", kind.name, " file format version ", version,
                     " is not supported; this build reads versions ",
                     kOldestModelFormatVersion, " to ", kModelFormatVersion));
  }
  reader.set_version(version);
  return reader;
}

void WriteModel(const Model& m, Writer* w) {
  const NetworkConfig& n = m.network;
  w->String(CellTypeName(n.cell));
  w->I32(n.layers);
  w->I32(n.neurons);
  w->I32(n.input_dim);
  w->I32(n.num_classes);
  w->F64(n.tau);
  w->F64(n.dt_in);
  w->I32(n.substeps);
  w->F64(n.zeta_bias);
  w->F64(n.q);
  w->F64(n.p_th);
  w->F64(n.p0);
  w->F64(n.amplification);
  w->Bool(n.train_amplification);
  w->F64(n.tau_hp);
  w->F64(n.density_int);
  w->F64(n.density_ext);

  w->F64(m.device.resistance_ohm);
  w->F64(m.device.threshold_current_amp);

  const TrainConfig& t = m.train;
  w->F64(t.lr);
  w->F64(t.beta1);
  w->F64(t.beta2);
  w->F64(t.adam_eps);
  w->F64(t.clip_norm);
  w->String(LrScheduleName(t.schedule));
  w->F64(t.lr_final_fraction);
  w->I32(t.batch);
  w->I32(t.epochs);
  w->U64(t.seed);
  w->I32(t.threads);
  w->F64(t.init_int_scale);
  w->String(PrecisionName(t.precision));

  w->String(m.dataset_name);
  w->U64(m.class_labels.size());
  for (const std::string& label : m.class_labels) w->String(label);
  w->I32(m.sequence_steps);
  w->Doubles(m.params);
  w->Doubles(m.mask);
  // Version 2: device variability.
  w->F64(m.device.thermal_noise);
  w->F64(t.train_spread);
  w->F64(t.test_spread);
  w->U32(t.vary);
}

absl::StatusOr<Model> ReadModel(Reader* r) {
  Model m;
  NetworkConfig& n = m.network;
  ASSIGN_OR_RETURN(std::string cell, r->String("network.cell"));
  ASSIGN_OR_RETURN(n.cell, ParseCellType(cell));
  ASSIGN_OR_RETURN(n.layers, r->I32("network.layers"));
  ASSIGN_OR_RETURN(n.neurons, r->I32("network.neurons"));
  ASSIGN_OR_RETURN(n.input_dim, r->I32("network.input_dim"));
  ASSIGN_OR_RETURN(n.num_classes, r->I32("network.num_classes"));
  ASSIGN_OR_RETURN(n.tau, r->F64("network.tau"));
  ASSIGN_OR_RETURN(n.dt_in, r->F64("network.dt_in"));
  ASSIGN_OR_RETURN(n.substeps, r->I32("network.substeps"));
  ASSIGN_OR_RETURN(n.zeta_bias, r->F64("network.zeta_bias"));
  ASSIGN_OR_RETURN(n.q, r->F64("network.q"));
  ASSIGN_OR_RETURN(n.p_th, r->F64("network.p_th"));
  ASSIGN_OR_RETURN(n.p0, r->F64("network.p0"));
  ASSIGN_OR_RETURN(n.amplification, r->F64("network.amplification"));
  ASSIGN_OR_RETURN(n.train_amplification,
                   r->Bool("network.train_amplification"));
  ASSIGN_OR_RETURN(n.tau_hp, r->F64("network.tau_hp"));
  ASSIGN_OR_RETURN(n.density_int, r->F64("network.density_int"));
  ASSIGN_OR_RETURN(n.density_ext, r->F64("network.density_ext"));

  ASSIGN_OR_RETURN(m.device.resistance_ohm, r->F64("device.resistance_ohm"));
  ASSIGN_OR_RETURN(m.device.threshold_current_amp,
                   r->F64("device.threshold_current_amp"));

  TrainConfig& t = m.train;
  ASSIGN_OR_RETURN(t.lr, r->F64("train.lr"));
  ASSIGN_OR_RETURN(t.beta1, r->F64("train.beta1"));
  ASSIGN_OR_RETURN(t.beta2, r->F64("train.beta2"));
  ASSIGN_OR_RETURN(t.adam_eps, r->F64("train.adam_eps"));
  ASSIGN_OR_RETURN(t.clip_norm, r->F64("train.clip_norm"));
  ASSIGN_OR_RETURN(std::string schedule, r->String("train.schedule"));
  ASSIGN_OR_RETURN(t.schedule, ParseLrSchedule(schedule));
  ASSIGN_OR_RETURN(t.lr_final_fraction, r->F64("train.lr_final_fraction"));
  ASSIGN_OR_RETURN(t.batch, r->I32("train.batch"));
  ASSIGN_OR_RETURN(t.epochs, r->I32("train.epochs"));
  ASSIGN_OR_RETURN(t.seed, r->U64("train.seed"));
  ASSIGN_OR_RETURN(t.threads, r->I32("train.threads"));
  ASSIGN_OR_RETURN(t.init_int_scale, r->F64("train.init_int_scale"));
  ASSIGN_OR_RETURN(std::string precision, r->String("train.precision"));
  ASSIGN_OR_RETURN(t.precision, ParsePrecision(precision));

  ASSIGN_OR_RETURN(m.dataset_name, r->String("dataset_name"));
  ASSIGN_OR_RETURN(uint64_t num_labels,
                   r->Length("class_labels", kLengthBytes));
  for (uint64_t i = 0; i < num_labels; ++i) {
    ASSIGN_OR_RETURN(std::string label, r->String("class_labels"));
    m.class_labels.push_back(std::move(label));
  }
  ASSIGN_OR_RETURN(m.sequence_steps, r->I32("sequence_steps"));
  ASSIGN_OR_RETURN(m.params, r->Doubles("params"));
  ASSIGN_OR_RETURN(m.mask, r->Doubles("mask"));
  if (r->version() >= 2) {  // version 1 has no variability: the defaults
    ASSIGN_OR_RETURN(m.device.thermal_noise, r->F64("device.thermal_noise"));
    ASSIGN_OR_RETURN(t.train_spread, r->F64("train.train_spread"));
    ASSIGN_OR_RETURN(t.test_spread, r->F64("train.test_spread"));
    ASSIGN_OR_RETURN(t.vary, r->U32("train.vary"));
  }
  return m;
}

void WriteEpochMetrics(const EpochMetrics& e, Writer* w) {
  w->I32(e.epoch);
  w->F64(e.learning_rate);
  w->F64(e.train_loss);
  w->F64(e.train_accuracy);
  w->F64(e.test_loss);
  w->F64(e.test_accuracy);
  w->F64(e.samples_per_second);
  w->F64(e.epoch_seconds);
  w->F64(e.cumulative_drive);
  w->F64(e.energy_per_sample_joules);
  w->F64(e.grad_norm);
}

absl::StatusOr<EpochMetrics> ReadEpochMetrics(Reader* r) {
  EpochMetrics e;
  ASSIGN_OR_RETURN(e.epoch, r->I32("history.epoch"));
  ASSIGN_OR_RETURN(e.learning_rate, r->F64("history.learning_rate"));
  ASSIGN_OR_RETURN(e.train_loss, r->F64("history.train_loss"));
  ASSIGN_OR_RETURN(e.train_accuracy, r->F64("history.train_accuracy"));
  ASSIGN_OR_RETURN(e.test_loss, r->F64("history.test_loss"));
  ASSIGN_OR_RETURN(e.test_accuracy, r->F64("history.test_accuracy"));
  ASSIGN_OR_RETURN(e.samples_per_second, r->F64("history.samples_per_second"));
  ASSIGN_OR_RETURN(e.epoch_seconds, r->F64("history.epoch_seconds"));
  ASSIGN_OR_RETURN(e.cumulative_drive, r->F64("history.cumulative_drive"));
  ASSIGN_OR_RETURN(e.energy_per_sample_joules,
                   r->F64("history.energy_per_sample_joules"));
  ASSIGN_OR_RETURN(e.grad_norm, r->F64("history.grad_norm"));
  return e;
}

absl::Status CheckFinite(absl::string_view name, const Vector& v) {
  for (Index i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, "[", i, "] = ", v[i], "; need a finite value"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckStringLength(absl::string_view name, absl::string_view s) {
  if (s.size() <= kMaxStringBytes) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      name, " is ", s.size(), " bytes; the limit is ", kMaxStringBytes));
}

// Shared by LoadModel and LoadCheckpoint.
template <typename T>
absl::StatusOr<T> LoadFile(const std::string& path,
                           absl::StatusOr<T> (*parse)(absl::string_view)) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
  absl::StatusOr<T> parsed = parse(bytes);
  if (!parsed.ok()) return Prefixed(parsed.status(), absl::StrCat(path, ": "));
  return parsed;
}

}  // namespace

absl::Status Model::Validate() const {
  RETURN_IF_ERROR(Prefixed(network.Validate(), "network: "));
  RETURN_IF_ERROR(Prefixed(device.Validate(), "device: "));
  RETURN_IF_ERROR(Prefixed(train.Validate(), "train: "));
  RETURN_IF_ERROR(
      Prefixed(ValidateVariability(network, device, train), "variability: "));
  const Index size = ParamLayout(network).size();
  if (params.size() != size || mask.size() != size) {
    return absl::InvalidArgumentError(
        absl::StrCat("params has ", params.size(), " and mask ", mask.size(),
                     " entries; the network has ", size, " parameters"));
  }
  if (class_labels.size() != static_cast<size_t>(network.num_classes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("class_labels has ", class_labels.size(),
                     " entries; num_classes = ", network.num_classes));
  }
  RETURN_IF_ERROR(CheckStringLength("dataset_name", dataset_name));
  for (const std::string& label : class_labels) {
    RETURN_IF_ERROR(CheckStringLength("class label", label));
  }
  if (sequence_steps < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence_steps = ", sequence_steps, "; need >= 1"));
  }
  RETURN_IF_ERROR(CheckFinite("params", params));
  for (Index i = 0; i < mask.size(); ++i) {
    if (mask[i] != 0.0 && mask[i] != 1.0) {
      return absl::InvalidArgumentError(
          absl::StrCat("mask[", i, "] = ", mask[i], "; need 0 or 1"));
    }
  }
  return absl::OkStatus();
}

absl::Status Checkpoint::Validate() const {
  RETURN_IF_ERROR(model.Validate());
  auto check_moment = [this](absl::string_view name,
                             const Vector& moment) -> absl::Status {
    if (moment.size() != model.params.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " has ", moment.size(), " entries; params has ",
                       model.params.size()));
    }
    return CheckFinite(name, moment);
  };
  RETURN_IF_ERROR(check_moment("adam_m", adam_m));
  RETURN_IF_ERROR(check_moment("adam_v", adam_v));
  if (adam_step < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("adam_step = ", adam_step, "; need >= 0"));
  }
  if (epochs_done < 0 || epochs_done > model.train.epochs) {
    return absl::InvalidArgumentError(
        absl::StrCat("epochs_done = ", epochs_done, "; need 0..",
                     model.train.epochs, " (train.epochs)"));
  }
  if (history.size() != static_cast<size_t>(epochs_done)) {
    return absl::InvalidArgumentError(
        absl::StrCat("history has ", history.size(),
                     " entries; epochs_done = ", epochs_done));
  }
  return absl::OkStatus();
}

std::string SerializeModel(const Model& model) {
  Writer w = StartFile(kModelFile);
  WriteModel(model, &w);
  return FinishFile(std::move(w));
}

absl::StatusOr<Model> ParseModel(absl::string_view bytes) {
  ASSIGN_OR_RETURN(Reader r, OpenFile(kModelFile, bytes));
  ASSIGN_OR_RETURN(Model model, ReadModel(&r));
  RETURN_IF_ERROR(r.ExpectEnd());
  RETURN_IF_ERROR(Prefixed(model.Validate(), "invalid model: "));
  return model;
}

absl::Status SaveModel(const Model& model, const std::string& path) {
  RETURN_IF_ERROR(
      Prefixed(model.Validate(), absl::StrCat("not saving ", path, ": ")));
  return WriteFileAtomically(path, SerializeModel(model));
}

absl::StatusOr<Model> LoadModel(const std::string& path) {
  return LoadFile<Model>(path, &ParseModel);
}

std::string SerializeCheckpoint(const Checkpoint& checkpoint) {
  Writer w = StartFile(kCheckpointFile);
  WriteModel(checkpoint.model, &w);
  w.Doubles(checkpoint.adam_m);
  w.Doubles(checkpoint.adam_v);
  w.I64(checkpoint.adam_step);
  w.I32(checkpoint.epochs_done);
  w.U64(checkpoint.history.size());
  for (const EpochMetrics& e : checkpoint.history) WriteEpochMetrics(e, &w);
  return FinishFile(std::move(w));
}

absl::StatusOr<Checkpoint> ParseCheckpoint(absl::string_view bytes) {
  ASSIGN_OR_RETURN(Reader r, OpenFile(kCheckpointFile, bytes));
  Checkpoint c;
  ASSIGN_OR_RETURN(c.model, ReadModel(&r));
  ASSIGN_OR_RETURN(c.adam_m, r.Doubles("adam_m"));
  ASSIGN_OR_RETURN(c.adam_v, r.Doubles("adam_v"));
  ASSIGN_OR_RETURN(c.adam_step, r.I64("adam_step"));
  ASSIGN_OR_RETURN(c.epochs_done, r.I32("epochs_done"));
  ASSIGN_OR_RETURN(uint64_t num_epochs,
                   r.Length("history", kEpochMetricsBytes));
  for (uint64_t i = 0; i < num_epochs; ++i) {
    ASSIGN_OR_RETURN(EpochMetrics e, ReadEpochMetrics(&r));
    c.history.push_back(e);
  }
  RETURN_IF_ERROR(r.ExpectEnd());
  RETURN_IF_ERROR(Prefixed(c.Validate(), "invalid checkpoint: "));
  return c;
}

absl::Status SaveCheckpoint(const Checkpoint& checkpoint,
                            const std::string& path) {
  RETURN_IF_ERROR(
      Prefixed(checkpoint.Validate(), absl::StrCat("not saving ", path, ": ")));
  return WriteFileAtomically(path, SerializeCheckpoint(checkpoint));
}

absl::StatusOr<Checkpoint> LoadCheckpoint(const std::string& path) {
  return LoadFile<Checkpoint>(path, &ParseCheckpoint);
}

}  // namespace spinnet
