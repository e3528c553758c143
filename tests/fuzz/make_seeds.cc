// Writes the seed corpora of the fuzz targets into DIR/<target>/: files
// made by our own code (CSV text, model and checkpoint files of the
// fixture's small networks, the first rows of the shipped digits) and
// request messages with valid and edge values. Run it again when a format
// changes: `fuzz_make_seeds tests/fuzz/corpus`.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include "core/file_util.h"
#include "core/model_io.h"
#include "core/sha256.h"
#include "core/training_flags.h"
#include "proto/api_convert.h"
#include "spinnet/v1/inference.pb.h"
#include "spinnet/v1/sweep.pb.h"
#include "spinnet/v1/training.pb.h"
#include "tests/fuzz/fuzz_fixture.h"
#include "tests/fuzz/fuzz_inputs.pb.h"

namespace spinnet::fuzz {
namespace {

namespace fs = std::filesystem;

fs::path root;

void Write(const std::string& target, const std::string& name,
           const std::string& bytes) {
  const fs::path dir = root / target;
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out << bytes;
  FUZZ_CHECK(out.good());
}

void Write(const std::string& target, const std::string& name,
           const google::protobuf::Message& message) {
  Write(target, name, message.SerializeAsString());
}

// The CSV target's first byte: input_dim - 1 in the low bits, 4 for
// unlabelled rows, 8 for known labels.
void CsvSeeds() {
  Write("csv", "tiny_d1", std::string(1, '\0') + TinyCsv(1));
  Write("csv", "tiny_d2", std::string(1, '\1') + TinyCsv(2));
  Write("csv", "known_labels",
        std::string(1, '\x08') +
            "0,1,2\n1,0.5,-2.5e-3\n\n# comment\r\n"
            "a,1e10,3\nb,0,0\n");
  Write("csv", "unlabelled_d2",
        std::string(1, '\x05') + "1,2,3,4\n5,6,7,8\n-0,1e-308,0x10,9\n");
  // The shipped digits file's first rows (label last there, so here the
  // first pixel reads as the label).
  absl::StatusOr<std::string> file = ReadMaybeGzipFile(DefaultDigitsPath());
  FUZZ_CHECK(file.ok());
  const std::string& digits = *file;
  size_t end = 0;
  for (int line = 0; line < 6; ++line) end = digits.find('\n', end) + 1;
  Write("csv", "digits_head", std::string(1, '\0') + digits.substr(0, end));
  Write("csv", "ragged_nan", std::string(1, '\0') + "1,2,3\n2,nan\n1,inf,3\n");
}

void FileSeeds() {
  for (CellType cell : {CellType::kStno, CellType::kCtrnn}) {
    const std::string c = CellTypeName(cell);
    const Checkpoint checkpoint =
        TinyCheckpoint(cell, cell == CellType::kStno ? 1 : 2);
    const std::string model = SerializeModel(checkpoint.model);
    Write("model_file", c, model);
    Write("checkpoint", c, SerializeCheckpoint(checkpoint));
    // The same file as ImportModel's stream: header, then two chunks.
    ImportModelStream import;
    auto* header = import.add_messages()->mutable_header();
    header->set_name(c + "-import");
    header->set_size_bytes(static_cast<int64_t>(model.size()));
    import.add_messages()->set_chunk(model.substr(0, 100));
    import.add_messages()->set_chunk(model.substr(100));
    Write("import_model", c, import);
  }
  ImportModelStream empty;
  empty.add_messages()->mutable_header()->set_name("empty");
  Write("import_model", "empty_file", empty);
}

void UploadSeeds() {
  for (int d : {1, 2}) {
    const std::string csv = TinyCsv(d);
    UploadDatasetStream upload;
    auto* header = upload.add_messages()->mutable_header();
    header->set_name(d == 1 ? "up1" : "up.2_x-y");
    header->set_input_dim(d);
    header->set_size_bytes(static_cast<int64_t>(csv.size()));
    header->set_sha256(Sha256Hex(csv));
    for (size_t at = 0; at < csv.size(); at += 200) {
      upload.add_messages()->set_chunk(csv.substr(at, 200));
    }
    Write("upload_dataset", "tiny_d" + std::to_string(d), upload);
    // fix_sha256 on, the header's wrong: the fuzzer's variations of the
    // bytes still reach the CSV parser.
    header->set_sha256("0");
    upload.set_fix_sha256(true);
    Write("upload_dataset", "tiny_d" + std::to_string(d) + "_fix_sha", upload);
  }
  UploadDatasetStream one_class;
  const std::string csv = "x,1,2\nx,3,4\n";
  auto* header = one_class.add_messages()->mutable_header();
  header->set_name("one-class");
  header->set_size_bytes(static_cast<int64_t>(csv.size()));
  one_class.add_messages()->set_chunk(csv);
  one_class.set_fix_sha256(true);
  Write("upload_dataset", "one_class", one_class);
}

void JobSeeds() {
  v1::SubmitTrainingJobRequest job;
  job.set_model_name("m");
  job.set_dataset("tiny");
  job.mutable_spec()->set_epochs(1);
  Write("submit_job", "tiny_defaults", job);
  // Every field set, from a core spec.
  TrainingSpec spec = DefaultTrainingSpec(CellType::kCtrnn);
  spec.network.layers = 2;
  spec.network.neurons = 8;
  spec.train.train_spread = 0.1;
  spec.train.vary = kVaryAll;
  job.set_dataset("tiny2:validation");
  job.set_request_id("r-1");
  *job.mutable_spec() = api::SpecToProto(spec);
  Write("submit_job", "tiny2_every_field", job);
  job.set_dataset("digits:partition-3");
  *job.mutable_spec() = api::SpecToProto(DefaultTrainingSpec(CellType::kStno));
  Write("submit_job", "digits_partition", job);
  // Edge values.
  v1::TrainingSpec edges;
  edges.set_lr(std::nan(""));
  edges.set_epochs(std::numeric_limits<int32_t>::min());
  edges.set_substeps(0);
  edges.set_optimizer("sgd");
  edges.set_vary("tau+nothing");
  *job.mutable_spec() = edges;
  job.set_dataset("tiny:partition-0");
  Write("submit_job", "edges", job);
}

void SweepSeeds() {
  v1::SubmitSweepRequest sweep;
  sweep.set_dataset("tiny");
  sweep.set_model_name("s");
  auto* fixed = sweep.add_fixed();
  fixed->set_flag("epochs");
  fixed->set_value("1");
  auto* axis = sweep.add_axes();
  axis->set_flag("neurons");
  axis->add_values("2");
  axis->add_values("4");
  axis = sweep.add_axes();
  axis->set_flag("cell");
  axis->add_values("stno");
  axis->add_values("ctrnn");
  sweep.add_seeds(1);
  sweep.add_seeds(2);
  Write("submit_sweep", "grid_2x2", sweep);
  sweep.mutable_axes(0)->add_values("4");  // repeated value
  sweep.add_seeds(2);                      // repeated seed
  Write("submit_sweep", "repeats", sweep);
  v1::SubmitSweepRequest bad;
  bad.set_dataset("tiny2");
  bad.add_seeds(0);
  auto* empty_axis = bad.add_axes();
  empty_axis->set_flag("lr");
  auto* unknown = bad.add_fixed();
  unknown->set_flag("no-such-flag");
  unknown->set_value("1");
  Write("submit_sweep", "bad_fields", bad);
}

void InferenceSeeds() {
  v1::ClassifyRequest classify;
  classify.set_model("stno");
  for (int n : {6, 3}) {
    auto* seq = classify.add_sequences();
    for (int i = 0; i < n; ++i) seq->add_values(0.1 * i);
  }
  Write("classify", "stno_two_lengths", classify);
  classify.set_model("ctrnn");
  classify.set_version(1);
  Write("classify", "ctrnn_v1", classify);  // 3 values: not whole steps at d=2
  classify.mutable_sequences(1)->add_values(1e300);
  Write("classify", "ctrnn_huge_value", classify);
  classify.mutable_sequences(0)->set_values(0, std::nan(""));
  classify.set_version(-1);
  Write("classify", "nan_negative_version", classify);

  v1::TraceNeuronsRequest trace;
  trace.set_model("stno");
  trace.set_version(2);
  for (int s = 0; s < 2; ++s) {
    auto* seq = trace.add_sequences();
    for (int i = 0; i < 5; ++i) seq->add_values(0.2 * i - s);
  }
  Write("trace_neurons", "stno_default_neurons", trace);
  trace.set_model("ctrnn");
  trace.set_version(0);
  auto* neuron = trace.add_neurons();
  neuron->set_layer(1);
  neuron->set_index(3);
  trace.mutable_sequences(0)->add_values(1);  // 6 values: 3 steps of d=2
  trace.mutable_sequences(1)->add_values(2);
  Write("trace_neurons", "ctrnn_one_neuron", trace);
  neuron->set_layer(2);
  neuron->set_index(-1);
  Write("trace_neurons", "neuron_outside", trace);

  StreamClassifySession session;
  session.set_sink_room(1);
  auto* open = session.add_requests()->mutable_open();
  open->set_model("stno");
  open->set_provisional_every(2);
  auto* steps = session.add_requests()->mutable_steps();
  for (int i = 0; i < 7; ++i) steps->add_values(0.1 * i);
  steps->set_end_of_sequence(true);
  session.add_requests()->mutable_steps()->add_values(0.5);
  session.add_requests()->mutable_reset();
  Write("stream_classify", "stno_provisional", session);
  StreamClassifySession errors;
  errors.set_sink_room(3);
  errors.add_requests()->mutable_steps()->add_values(1);  // before open
  errors.add_requests();                                  // empty request
  open = errors.add_requests()->mutable_open();
  open->set_model("ctrnn");
  open->set_version(1);
  open->set_provisional_every(1);
  steps = errors.add_requests()->mutable_steps();
  steps->add_values(1);  // not a whole step at d = 2
  errors.add_requests()->mutable_open()->set_model("stno");  // already open
  steps = errors.add_requests()->mutable_steps();
  for (int i = 0; i < 8; ++i) steps->add_values(i);
  steps->set_end_of_sequence(true);
  Write("stream_classify", "ctrnn_errors", errors);
}

}  // namespace
}  // namespace spinnet::fuzz

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  spinnet::fuzz::root = argv[1];
  spinnet::fuzz::CsvSeeds();
  spinnet::fuzz::FileSeeds();
  spinnet::fuzz::UploadSeeds();
  spinnet::fuzz::JobSeeds();
  spinnet::fuzz::SweepSeeds();
  spinnet::fuzz::InferenceSeeds();
  return 0;
}
