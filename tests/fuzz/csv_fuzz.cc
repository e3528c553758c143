// core/dataset ParseCsv on arbitrary text. The first byte picks the
// options (input_dim 1-4, unlabelled rows, a model's known labels); the
// rest is the file. A parsed dataset must be consistent, and so must each
// split a training job can ask of it.
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "core/dataset.h"
#include "tests/fuzz/fuzz_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t options_byte = data[0];
  spinnet::CsvOptions options;
  options.input_dim = 1 + (options_byte & 3);
  options.unlabelled = (options_byte & 4) != 0;
  if (options_byte & 8) options.known_labels = {"0", "1", "2", "a", "b"};
  const absl::string_view text(reinterpret_cast<const char*>(data) + 1,
                               size - 1);
  absl::StatusOr<spinnet::Dataset> parsed =
      spinnet::ParseCsv(text, options, "fuzz");
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  const spinnet::Dataset& d = *parsed;
  FUZZ_CHECK(d.input_dim == options.input_dim);
  FUZZ_CHECK(d.steps >= 1);
  FUZZ_CHECK(d.size() >= 1);
  FUZZ_CHECK(d.values.rows() == spinnet::Index{d.steps} * d.input_dim);
  FUZZ_CHECK(static_cast<spinnet::Index>(d.labels.size()) == d.size());
  const int classes = static_cast<int>(d.class_labels.size());
  if (!options.known_labels.empty()) {
    FUZZ_CHECK(d.class_labels == options.known_labels);
  }
  for (int label : d.labels) {
    FUZZ_CHECK(options.unlabelled ? label == -1
                                  : label >= 0 && label < classes);
  }
  FUZZ_CHECK(d.values.allFinite());
  if (options.unlabelled) return 0;
  for (const char* name : {"fuzz", "fuzz:validation", "fuzz:partition-3"}) {
    auto choice = spinnet::ParseSplitChoice(name);
    FUZZ_CHECK(choice.ok());
    const spinnet::DatasetSplit split = spinnet::MakeSplit(d, choice->second);
    for (const spinnet::Dataset* part : {&split.train, &split.test}) {
      FUZZ_CHECK(part->class_labels == d.class_labels);
      FUZZ_CHECK(part->values.rows() == d.values.rows());
      FUZZ_CHECK(static_cast<spinnet::Index>(part->labels.size()) ==
                 part->size());
    }
    FUZZ_CHECK(split.train.size() + split.test.size() <= d.size());
  }
  return 0;
}
