#include "tests/fuzz/fuzz_fixture.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/sha256.h"
#include "core/trainer.h"
#include "core/training_flags.h"
#include "google/protobuf/stubs/logging.h"

namespace spinnet::fuzz {
namespace {

constexpr int kTinySteps = 6;
constexpr int kTinySequences = 12;
constexpr const char* kTinyLabels[] = {"a", "b", "c"};

template <typename T>
T OrDie(absl::StatusOr<T> v) {
  if (!v.ok()) {
    std::fprintf(stderr, "fuzz fixture: %s\n", v.status().ToString().c_str());
    std::abort();
  }
  return *std::move(v);
}

void OrDie(const absl::Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "fuzz fixture: %s\n", s.ToString().c_str());
    std::abort();
  }
}

}  // namespace

std::string TinyCsv(int input_dim) {
  std::string csv = "# label, then 6 steps of input_dim values\n";
  for (int i = 0; i < kTinySequences; ++i) {
    const int label = i % 3;
    absl::StrAppend(&csv, kTinyLabels[label]);
    for (int v = 0; v < kTinySteps * input_dim; ++v) {
      // Each class its own frequency; values short in decimal.
      const double x =
          std::round(100 * std::sin((label + 1) * 0.7 * v + i)) / 100;
      absl::StrAppend(&csv, ",", x);
    }
    absl::StrAppend(&csv, "\n");
  }
  return csv;
}

Checkpoint TinyCheckpoint(CellType cell, int input_dim) {
  CsvOptions options;
  options.input_dim = input_dim;
  const Dataset data = OrDie(ParseCsv(TinyCsv(input_dim), options, "tiny"));
  const DatasetSplit split = SplitFixed(data);
  TrainingSpec spec = DefaultTrainingSpec(cell);
  spec.network.layers = 2;
  spec.network.neurons = 4;
  spec.network.input_dim = input_dim;
  spec.network.num_classes = static_cast<int>(data.class_labels.size());
  spec.train.epochs = 1;
  spec.train.batch = 4;
  spec.train.threads = 1;
  spec.train.seed = 7;
  Checkpoint start =
      OrDie(StartTraining(spec.network, spec.device, spec.train, split.train));
  return OrDie(Train(std::move(start), split.train, split.test, nullptr));
}

bool ParseInput(const uint8_t* data, size_t size,
                google::protobuf::Message* message) {
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
  return message->ParseFromArray(data, static_cast<int>(size));
}

Service::Service()
    : models(&store, int64_t{1} << 20), datasets(&store, int64_t{1} << 20) {
  OrDie(models
            .Import("stno",
                    SerializeModel(TinyCheckpoint(CellType::kStno, 1).model))
            .status());
  Model second = TinyCheckpoint(CellType::kStno, 1).model;
  second.params *= 0.5;
  OrDie(models.Import("stno", SerializeModel(second)).status());
  OrDie(models
            .Import("ctrnn",
                    SerializeModel(TinyCheckpoint(CellType::kCtrnn, 2).model))
            .status());
  for (int d : {1, 2}) {
    const std::string csv = TinyCsv(d);
    v1::UploadDatasetHeader header;
    header.set_name(d == 1 ? "tiny" : "tiny2");
    header.set_input_dim(d);
    header.set_size_bytes(static_cast<int64_t>(csv.size()));
    header.set_sha256(Sha256Hex(csv));
    OrDie(datasets.Add(header, csv).status());
  }
}

Service& SharedService() {
  static Service* service = new Service();
  return *service;
}

std::optional<server::LoadedModel> FindModel(const std::string& name,
                                             int version) {
  absl::StatusOr<server::LoadedModel> model =
      SharedService().models.Get(name, version);
  if (model.ok()) return *std::move(model);
  const absl::StatusCode code = model.status().code();
  FUZZ_CHECK(code == absl::StatusCode::kInvalidArgument ||
             code == absl::StatusCode::kNotFound);
  return std::nullopt;
}

}  // namespace spinnet::fuzz
