// Model and checkpoint files: bit-exact round trips, and every damaged,
// truncated, foreign or hostile file refused with a status (never a crash or
// a huge allocation).
#include "core/model_io.h"

#include <stdlib.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/base/casts.h"
#include "core/file_util.h"
#include "core/parameters.h"
#include "core/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace spinnet {
namespace {

using ::testing::HasSubstr;

constexpr size_t kHeaderBytes = 12;  // magic + format version
constexpr size_t kChecksumBytes = 32;

// Every field differs from its default and from the other fields of its
// type, so a dropped or swapped field changes the round trip.
Model MakeModel(CellType cell) {
  Model m;
  NetworkConfig& n = m.network;
  n.cell = cell;
  n.layers = 2;
  n.neurons = 4;
  n.input_dim = 3;
  n.num_classes = 3;
  n.tau = 1.25;
  n.dt_in = 0.75;
  n.substeps = 5;
  n.zeta_bias = 0.65;
  n.q = 0.15;
  n.p_th = 2e-3;
  n.p0 = 0.07;
  n.amplification = 3.5;
  n.train_amplification = true;
  n.tau_hp = 6.5;
  n.density_int = 0.6;
  n.density_ext = 0.8;
  m.device.resistance_ohm = 150.0;
  m.device.threshold_current_amp = 0.3e-3;
  m.device.thermal_noise = 0.01;
  TrainConfig& t = m.train;
  t.train_spread = 0.05;
  t.test_spread = 0.1;
  t.vary = kVaryThreshold | kVaryTau;
  t.lr = 2e-3;
  t.beta1 = 0.85;
  t.beta2 = 0.995;
  t.adam_eps = 1e-9;
  t.clip_norm = 2.5;
  t.schedule = LrSchedule::kConstant;
  t.precision = Precision::kFloat64;
  t.lr_final_fraction = 0.1;
  t.batch = 16;
  t.epochs = 7;
  t.seed = 0xdeadbeefcafef00d;  // all 64 bits matter
  t.threads = 2;
  t.init_int_scale = 0.4;
  m.dataset_name = "unit-test-digits";
  m.class_labels = {"zero", "one", "two"};
  m.sequence_steps = 11;
  m.mask = MakeTrainableMask(n, t.seed);
  m.params = InitParameters(n, m.mask, t.init_int_scale, t.seed);
  // Values that a decimal or float round trip would change.
  const Index bias = ParamLayout(n).bias(0).offset;
  m.params[bias] = -0.0;
  m.params[bias + 1] = std::numeric_limits<double>::denorm_min();
  m.params[bias + 2] = std::nextafter(1.0, 2.0);
  m.params[bias + 3] = 0.1;
  return m;
}

Checkpoint MakeCheckpoint(CellType cell) {
  Checkpoint c;
  c.model = MakeModel(cell);
  const Index size = c.model.params.size();
  c.adam_m.resize(size);
  c.adam_v.resize(size);
  for (Index i = 0; i < size; ++i) {
    c.adam_m[i] = std::sin(1.0 + i) * 1e-3;
    c.adam_v[i] = std::cos(1.0 + i) * std::cos(1.0 + i) * 1e-6;
  }
  c.adam_step = (int64_t{1} << 40) + 3;  // needs more than 32 bits
  c.epochs_done = 2;
  double next = 0.5;
  for (int epoch = 1; epoch <= c.epochs_done; ++epoch) {
    EpochMetrics e;
    e.epoch = epoch;
    for (double* field :
         {&e.learning_rate, &e.train_loss, &e.train_accuracy, &e.test_loss,
          &e.test_accuracy, &e.samples_per_second, &e.epoch_seconds,
          &e.cumulative_drive, &e.energy_per_sample_joules, &e.grad_norm}) {
      *field = next;
      next += 0.375;
    }
    c.history.push_back(e);
  }
  return c;
}

std::vector<uint64_t> Bits(const Vector& v) {
  std::vector<uint64_t> bits;
  for (Index i = 0; i < v.size(); ++i) {
    bits.push_back(absl::bit_cast<uint64_t>(v[i]));
  }
  return bits;
}

void ExpectModelsEqual(const Model& a, const Model& b) {
  EXPECT_EQ(a.network.cell, b.network.cell);
  EXPECT_EQ(a.network.layers, b.network.layers);
  EXPECT_EQ(a.network.neurons, b.network.neurons);
  EXPECT_EQ(a.network.input_dim, b.network.input_dim);
  EXPECT_EQ(a.network.num_classes, b.network.num_classes);
  EXPECT_EQ(a.network.tau, b.network.tau);
  EXPECT_EQ(a.network.dt_in, b.network.dt_in);
  EXPECT_EQ(a.network.substeps, b.network.substeps);
  EXPECT_EQ(a.network.zeta_bias, b.network.zeta_bias);
  EXPECT_EQ(a.network.q, b.network.q);
  EXPECT_EQ(a.network.p_th, b.network.p_th);
  EXPECT_EQ(a.network.p0, b.network.p0);
  EXPECT_EQ(a.network.amplification, b.network.amplification);
  EXPECT_EQ(a.network.train_amplification, b.network.train_amplification);
  EXPECT_EQ(a.network.tau_hp, b.network.tau_hp);
  EXPECT_EQ(a.network.density_int, b.network.density_int);
  EXPECT_EQ(a.network.density_ext, b.network.density_ext);
  EXPECT_EQ(a.device.resistance_ohm, b.device.resistance_ohm);
  EXPECT_EQ(a.device.threshold_current_amp, b.device.threshold_current_amp);
  EXPECT_EQ(a.device.thermal_noise, b.device.thermal_noise);
  EXPECT_EQ(a.train.train_spread, b.train.train_spread);
  EXPECT_EQ(a.train.test_spread, b.train.test_spread);
  EXPECT_EQ(a.train.vary, b.train.vary);
  EXPECT_EQ(a.train.lr, b.train.lr);
  EXPECT_EQ(a.train.beta1, b.train.beta1);
  EXPECT_EQ(a.train.beta2, b.train.beta2);
  EXPECT_EQ(a.train.adam_eps, b.train.adam_eps);
  EXPECT_EQ(a.train.clip_norm, b.train.clip_norm);
  EXPECT_EQ(a.train.schedule, b.train.schedule);
  EXPECT_EQ(a.train.precision, b.train.precision);
  EXPECT_EQ(a.train.lr_final_fraction, b.train.lr_final_fraction);
  EXPECT_EQ(a.train.batch, b.train.batch);
  EXPECT_EQ(a.train.epochs, b.train.epochs);
  EXPECT_EQ(a.train.seed, b.train.seed);
  EXPECT_EQ(a.train.threads, b.train.threads);
  EXPECT_EQ(a.train.init_int_scale, b.train.init_int_scale);
  EXPECT_EQ(a.dataset_name, b.dataset_name);
  EXPECT_EQ(a.class_labels, b.class_labels);
  EXPECT_EQ(a.sequence_steps, b.sequence_steps);
  EXPECT_EQ(Bits(a.params), Bits(b.params));
  EXPECT_EQ(Bits(a.mask), Bits(b.mask));
}

void ExpectCheckpointsEqual(const Checkpoint& a, const Checkpoint& b) {
  ExpectModelsEqual(a.model, b.model);
  EXPECT_EQ(Bits(a.adam_m), Bits(b.adam_m));
  EXPECT_EQ(Bits(a.adam_v), Bits(b.adam_v));
  EXPECT_EQ(a.adam_step, b.adam_step);
  EXPECT_EQ(a.epochs_done, b.epochs_done);
  ASSERT_EQ(a.history.size(), b.history.size());
  for (size_t i = 0; i < a.history.size(); ++i) {
    const EpochMetrics& x = a.history[i];
    const EpochMetrics& y = b.history[i];
    EXPECT_EQ(x.epoch, y.epoch);
    EXPECT_EQ(x.learning_rate, y.learning_rate);
    EXPECT_EQ(x.train_loss, y.train_loss);
    EXPECT_EQ(x.train_accuracy, y.train_accuracy);
    EXPECT_EQ(x.test_loss, y.test_loss);
    EXPECT_EQ(x.test_accuracy, y.test_accuracy);
    EXPECT_EQ(x.samples_per_second, y.samples_per_second);
    EXPECT_EQ(x.epoch_seconds, y.epoch_seconds);
    EXPECT_EQ(x.cumulative_drive, y.cumulative_drive);
    EXPECT_EQ(x.energy_per_sample_joules, y.energy_per_sample_joules);
    EXPECT_EQ(x.grad_norm, y.grad_norm);
  }
}

std::string LittleEndian(uint64_t v, int width) {
  std::string s;
  for (int i = 0; i < width; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
  return s;
}
std::string U64Bytes(uint64_t v) { return LittleEndian(v, 8); }
std::string F64Bytes(double v) { return U64Bytes(absl::bit_cast<uint64_t>(v)); }

std::string WithChecksum(std::string body) {
  const std::array<uint8_t, 32> sum = Sha256(body);
  body.append(reinterpret_cast<const char*>(sum.data()), sum.size());
  return body;
}

// A file edited after it was written, with a valid checksum again: only the
// parser's own checks stand between it and the caller.
std::string Reseal(const std::string& bytes) {
  return WithChecksum(bytes.substr(0, bytes.size() - kChecksumBytes));
}

// Offset of the only occurrence of `needle`, npos if it occurs 0 or 2+ times,
// so a test edits exactly the field it means to.
size_t FindOnly(const std::string& bytes, const std::string& needle) {
  const size_t at = bytes.find(needle);
  if (at == std::string::npos ||
      bytes.find(needle, at + 1) != std::string::npos) {
    return std::string::npos;
  }
  return at;
}

// Serialized file and its parser, so every damage test runs on both kinds.
struct FileCase {
  std::string name;
  std::string bytes;
  std::function<absl::Status(absl::string_view)> parse;
};

std::vector<FileCase> FileCases(CellType cell) {
  return {{"model", SerializeModel(MakeModel(cell)),
           [](absl::string_view b) { return ParseModel(b).status(); }},
          {"checkpoint", SerializeCheckpoint(MakeCheckpoint(cell)),
           [](absl::string_view b) { return ParseCheckpoint(b).status(); }}};
}

// A fresh directory per test, removed afterwards.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = ::testing::TempDir() + "/model_io_test.XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    path_ = pattern;
  }
  ~ScratchDir() { std::filesystem::remove_all(path_); }
  std::string File(const std::string& name) const {
    return (path_ / name).string();
  }

 private:
  std::filesystem::path path_;
};

class ModelIoCellTest : public ::testing::TestWithParam<CellType> {};

INSTANTIATE_TEST_SUITE_P(BothCells, ModelIoCellTest,
                         ::testing::Values(CellType::kStno, CellType::kCtrnn),
                         [](const auto& info) {
                           return CellTypeName(info.param);
                         });

TEST_P(ModelIoCellTest, ModelRoundTripIsBitExact) {
  const Model model = MakeModel(GetParam());
  ASSERT_TRUE(model.Validate().ok()) << model.Validate();
  const absl::StatusOr<Model> parsed = ParseModel(SerializeModel(model));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectModelsEqual(*parsed, model);
}

TEST_P(ModelIoCellTest, CheckpointRoundTripIsBitExact) {
  const Checkpoint checkpoint = MakeCheckpoint(GetParam());
  ASSERT_TRUE(checkpoint.Validate().ok()) << checkpoint.Validate();
  const absl::StatusOr<Checkpoint> parsed =
      ParseCheckpoint(SerializeCheckpoint(checkpoint));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectCheckpointsEqual(*parsed, checkpoint);
}

TEST_P(ModelIoCellTest, SaveAndLoadThroughFiles) {
  const ScratchDir dir;
  const Model model = MakeModel(GetParam());
  const Checkpoint checkpoint = MakeCheckpoint(GetParam());
  ASSERT_TRUE(SaveModel(model, dir.File("m.spn")).ok());
  ASSERT_TRUE(SaveCheckpoint(checkpoint, dir.File("c.spn")).ok());
  const absl::StatusOr<Model> model2 = LoadModel(dir.File("m.spn"));
  ASSERT_TRUE(model2.ok()) << model2.status();
  ExpectModelsEqual(*model2, model);
  const absl::StatusOr<Checkpoint> checkpoint2 =
      LoadCheckpoint(dir.File("c.spn"));
  ASSERT_TRUE(checkpoint2.ok()) << checkpoint2.status();
  ExpectCheckpointsEqual(*checkpoint2, checkpoint);
}

TEST_P(ModelIoCellTest, EveryTruncationIsDataLoss) {
  for (const FileCase& c : FileCases(GetParam())) {
    const absl::string_view bytes = c.bytes;
    for (size_t n = 0; n < bytes.size(); ++n) {
      EXPECT_EQ(c.parse(bytes.substr(0, n)).code(), absl::StatusCode::kDataLoss)
          << c.name << " cut to " << n << " of " << bytes.size() << " bytes";
    }
  }
}

TEST_P(ModelIoCellTest, EveryTruncatedPayloadWithValidChecksumIsDataLoss) {
  for (const FileCase& c : FileCases(GetParam())) {
    const size_t payload = c.bytes.size() - kHeaderBytes - kChecksumBytes;
    for (size_t n = 0; n < payload; ++n) {
      const absl::Status s =
          c.parse(WithChecksum(c.bytes.substr(0, kHeaderBytes + n)));
      EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss)
          << c.name << " payload cut to " << n << " of " << payload << ": "
          << s;
    }
  }
}

TEST_P(ModelIoCellTest, EveryFlippedByteIsRejected) {
  for (const FileCase& c : FileCases(GetParam())) {
    for (size_t i = 0; i < c.bytes.size(); ++i) {
      std::string bad = c.bytes;
      bad[i] ^= 0x5a;
      // The magic is checked before the checksum, which catches the rest
      // (the version included).
      EXPECT_EQ(c.parse(bad).code(), i < 8 ? absl::StatusCode::kInvalidArgument
                                           : absl::StatusCode::kDataLoss)
          << c.name << " byte " << i << " of " << c.bytes.size();
    }
  }
}

TEST(ModelIoTest, FileLayout) {
  for (const FileCase& c : FileCases(CellType::kStno)) {
    const std::string magic = c.name == "model" ? "SPNMODEL" : "SPNCHKPT";
    EXPECT_EQ(c.bytes.substr(0, 8), magic);
    EXPECT_EQ(c.bytes.substr(8, 4), std::string("\x02\x00\x00\x00", 4));
    EXPECT_EQ(c.bytes.substr(kHeaderBytes, 12),
              U64Bytes(4) + "stno");      // the payload starts with the cell
    EXPECT_EQ(Reseal(c.bytes), c.bytes);  // SHA-256 of all before it
  }
}

TEST(ModelIoTest, TrailingBytesWithValidChecksumAreDataLoss) {
  for (const FileCase& c : FileCases(CellType::kStno)) {
    const std::string body = c.bytes.substr(0, c.bytes.size() - kChecksumBytes);
    const absl::Status s = c.parse(WithChecksum(body + '\0'));
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << c.name;
    EXPECT_THAT(s.message(), HasSubstr("1 unexpected trailing bytes"));
  }
}

TEST(ModelIoTest, WrongMagicIsNotASpinnetFile) {
  const std::string model = SerializeModel(MakeModel(CellType::kStno));
  const std::string checkpoint =
      SerializeCheckpoint(MakeCheckpoint(CellType::kStno));
  const absl::Status as_model = ParseModel(checkpoint).status();
  EXPECT_EQ(as_model.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(as_model.message(), HasSubstr("not a spinnet model file"));
  const absl::Status as_checkpoint = ParseCheckpoint(model).status();
  EXPECT_EQ(as_checkpoint.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(as_checkpoint.message(),
              HasSubstr("not a spinnet checkpoint file"));
  const absl::Status text = ParseModel(std::string(100, 'x')).status();
  EXPECT_EQ(text.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(text.message(), HasSubstr("not a spinnet model file"));
}

TEST(ModelIoTest, UnsupportedVersionNamesBothVersions) {
  for (const FileCase& c : FileCases(CellType::kStno)) {
    std::string bad = c.bytes;
    bad.replace(8, 4, LittleEndian(kModelFormatVersion + 1, 4));
    const absl::Status s = c.parse(Reseal(bad));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(s.message(), HasSubstr("version 3 is not supported"));
    EXPECT_THAT(s.message(), HasSubstr("reads versions 1 to 2"));
  }
}

// Version 1 files (before device variability) still load, with none.
TEST(ModelIoTest, ReadsVersion1WithoutVariability) {
  for (const FileCase& c : FileCases(CellType::kStno)) {
    if (c.name != "model") continue;
    const std::string body = c.bytes.substr(0, c.bytes.size() - kChecksumBytes);
    // Version 2 appended thermal_noise, train_spread, test_spread (F64) and
    // vary (U32) to the model.
    std::string v1 = body.substr(0, body.size() - 28);
    v1.replace(8, 4, LittleEndian(1, 4));
    absl::StatusOr<Model> m = ParseModel(WithChecksum(v1));
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->device.thermal_noise, 0);
    EXPECT_EQ(m->train.train_spread, 0);
    EXPECT_EQ(m->train.test_spread, 0);
    EXPECT_EQ(m->train.vary, kVaryAll);
    // The same bytes claiming version 2 lack the new fields.
    v1.replace(8, 4, LittleEndian(2, 4));
    EXPECT_FALSE(ParseModel(WithChecksum(v1)).ok());
  }
}

// A length field set to a huge value behind a valid checksum must be caught
// before anything is allocated by it. 2^61 elements of 8 bytes overflow a
// naive `n * 8 > bytes_left` check to 0.
TEST(ModelIoTest, HugeLengthWithValidChecksumIsDataLoss) {
  const Checkpoint checkpoint = MakeCheckpoint(CellType::kStno);
  const Model& m = checkpoint.model;
  const std::string bytes = SerializeCheckpoint(checkpoint);
  const struct {
    const char* field;
    std::string bytes_at_length;  // the length field and what follows it
  } cases[] = {
      {"dataset_name", U64Bytes(m.dataset_name.size()) + m.dataset_name},
      {"class_labels", U64Bytes(3) + U64Bytes(4) + "zero"},
      {"params", U64Bytes(m.params.size()) + F64Bytes(m.params[0])},
      {"mask", U64Bytes(m.mask.size()) + F64Bytes(m.mask[0])},
      {"adam_m", U64Bytes(m.params.size()) + F64Bytes(checkpoint.adam_m[0])},
      {"history", U64Bytes(2) + LittleEndian(1, 4)},
  };
  for (const auto& c : cases) {
    const size_t at = FindOnly(bytes, c.bytes_at_length);
    ASSERT_NE(at, std::string::npos) << c.field;
    for (uint64_t huge : {~uint64_t{0}, uint64_t{1} << 61}) {
      std::string bad = bytes;
      bad.replace(at, 8, U64Bytes(huge));
      const absl::Status s = ParseCheckpoint(Reseal(bad)).status();
      EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << c.field;
      EXPECT_THAT(s.message(), HasSubstr(c.field));
      EXPECT_THAT(s.message(), HasSubstr("does not fit"));
    }
  }
}

TEST(ModelIoTest, OverlongStringIsRefused) {
  Model model = MakeModel(CellType::kStno);
  model.dataset_name = std::string(70000, 'd');
  EXPECT_THAT(model.Validate().message(), HasSubstr("dataset_name is 70000"));
  const absl::Status s = ParseModel(SerializeModel(model)).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("exceeds the limit"));
}

TEST(ModelIoTest, BadBoolByteWithValidChecksumIsDataLoss) {
  const Model model = MakeModel(CellType::kStno);
  std::string bytes = SerializeModel(model);
  const size_t at =
      FindOnly(bytes, F64Bytes(model.network.amplification) + '\x01');
  ASSERT_NE(at, std::string::npos);
  bytes[at + 8] = 2;  // network.train_amplification
  const absl::Status s = ParseModel(Reseal(bytes)).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("train_amplification: bool byte is 2"));
}

TEST(ModelIoTest, UnknownEnumNamesAreRejected) {
  const std::string bytes = SerializeModel(MakeModel(CellType::kStno));
  const struct {
    std::string name, replacement, error;
  } cases[] = {{"stno", "stnx", "unknown cell 'stnx'"},
               {"constant", "constanx", "unknown lr schedule 'constanx'"},
               {"float64", "float65", "unknown precision 'float65'"}};
  for (const auto& c : cases) {
    const size_t at = FindOnly(bytes, U64Bytes(c.name.size()) + c.name);
    ASSERT_NE(at, std::string::npos) << c.name;
    std::string bad = bytes;
    bad.replace(at + 8, c.name.size(), c.replacement);
    const absl::Status s = ParseModel(Reseal(bad)).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), HasSubstr(c.error));
  }
}

TEST(ModelIoTest, NanParamIsRejectedOnParseAndSave) {
  Model model = MakeModel(CellType::kStno);
  model.params[5] = std::numeric_limits<double>::quiet_NaN();
  // Serialize writes what it is given, with a valid checksum.
  const absl::Status s = ParseModel(SerializeModel(model)).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("params[5] = nan; need a finite value"));

  const ScratchDir dir;
  const absl::Status saved = SaveModel(model, dir.File("nan.spn"));
  EXPECT_EQ(saved.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(saved.message(), HasSubstr("params[5]"));
  EXPECT_FALSE(std::filesystem::exists(dir.File("nan.spn")));
}

TEST(ModelIoTest, ModelValidateRejectsInconsistentModels) {
  const struct {
    const char* name;
    std::function<void(Model*)> damage;
    const char* error;
  } cases[] = {
      {"network", [](Model* m) { m->network.layers = 0; },
       "network: layers = 0"},
      {"device", [](Model* m) { m->device.resistance_ohm = -1; },
       "device: resistance_ohm = -1"},
      {"train", [](Model* m) { m->train.batch = 0; }, "train: batch = 0"},
      {"params size",
       [](Model* m) { m->params.conservativeResize(m->params.size() - 1); },
       "params has"},
      {"mask size",
       [](Model* m) { m->mask.conservativeResize(m->mask.size() + 1); },
       "entries; the network has"},
      {"labels", [](Model* m) { m->class_labels.pop_back(); },
       "class_labels has 2 entries; num_classes = 3"},
      {"steps", [](Model* m) { m->sequence_steps = 0; },
       "sequence_steps = 0; need >= 1"},
      {"infinite param",
       [](Model* m) { m->params[0] = std::numeric_limits<double>::infinity(); },
       "params[0] = inf"},
      {"mask value", [](Model* m) { m->mask[3] = 0.5; },
       "mask[3] = 0.5; need 0 or 1"},
  };
  for (const auto& c : cases) {
    Model model = MakeModel(CellType::kCtrnn);
    c.damage(&model);
    const absl::Status s = model.Validate();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(s.message(), HasSubstr(c.error)) << c.name;
    // The checksum is valid, so only Validate refuses the file.
    const absl::Status parsed = ParseModel(SerializeModel(model)).status();
    EXPECT_EQ(parsed.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(parsed.message(), HasSubstr(c.error)) << c.name;
  }
}

TEST(ModelIoTest, CheckpointValidateRejectsInconsistentCheckpoints) {
  const struct {
    const char* name;
    std::function<void(Checkpoint*)> damage;
    const char* error;
  } cases[] = {
      {"model", [](Checkpoint* c) { c->model.sequence_steps = -1; },
       "sequence_steps = -1"},
      {"adam_m size", [](Checkpoint* c) { c->adam_m.resize(0); },
       "adam_m has 0 entries"},
      {"adam_v value",
       [](Checkpoint* c) {
         c->adam_v[2] = std::numeric_limits<double>::quiet_NaN();
       },
       "adam_v[2] = nan"},
      {"adam_step", [](Checkpoint* c) { c->adam_step = -1; }, "adam_step = -1"},
      {"epochs_done high",
       [](Checkpoint* c) {
         c->epochs_done = 8;
         c->history.resize(8);
       },
       "epochs_done = 8; need 0..7"},
      {"epochs_done low", [](Checkpoint* c) { c->epochs_done = -1; },
       "epochs_done = -1"},
      {"history", [](Checkpoint* c) { c->history.pop_back(); },
       "history has 1 entries; epochs_done = 2"},
  };
  for (const auto& c : cases) {
    Checkpoint checkpoint = MakeCheckpoint(CellType::kStno);
    c.damage(&checkpoint);
    const absl::Status s = checkpoint.Validate();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(s.message(), HasSubstr(c.error)) << c.name;
    EXPECT_EQ(ParseCheckpoint(SerializeCheckpoint(checkpoint)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << c.name;
  }
}

TEST(ModelIoTest, MissingFileIsNotFound) {
  const ScratchDir dir;
  EXPECT_EQ(LoadModel(dir.File("absent.spn")).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(LoadCheckpoint(dir.File("absent.spn")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(ModelIoTest, LoadErrorsNameThePath) {
  const ScratchDir dir;
  const std::string path = dir.File("corrupt.spn");
  std::string bytes = SerializeModel(MakeModel(CellType::kStno));
  bytes[bytes.size() / 2] ^= 1;
  ASSERT_TRUE(WriteFileAtomically(path, bytes).ok());
  const absl::Status s = LoadModel(path).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(s.message(),
            path + ": checksum mismatch: file is corrupt or truncated");
}

}  // namespace
}  // namespace spinnet
