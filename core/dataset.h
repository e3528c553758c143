// Labelled time-series datasets (model.md section 5): the built-in
// sequential digits and a CSV loader for user data.
#ifndef SPINNET_CORE_DATASET_H_
#define SPINNET_CORE_DATASET_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/eigen_types.h"

namespace spinnet {

struct Dataset {
  std::string name;
  int steps = 0;      // K: time steps per sequence
  int input_dim = 0;  // d: values per time step
  std::vector<std::string> class_labels;  // class index -> label text
  // (K*d) x n: column i is sequence i; step k occupies rows k*d..k*d+d-1.
  Matrix values;
  std::vector<int> labels;  // n class indices into class_labels

  Index size() const { return values.cols(); }
  // The sequences at `indices`, in that order (same classes).
  Dataset Subset(const std::vector<int>& indices) const;
};

struct DatasetSplit {
  Dataset train;
  Dataset test;
};

// SHA-256 of the shipped core/data/digits.csv.gz.
inline constexpr char kDigitsSha256[] =
    "46abec6b12486ad9e51943373abcf22bbea1b5a51a1619b361570d8893f1464a";

// Path of the digits file: $SPINNET_DIGITS_PATH if set, else the file
// installed with spinnet, else the source tree's core/data/digits.csv.gz.
std::string DefaultDigitsPath();

// Loads the 1,797 8x8 digits as K = 64, d = 1 sequences with u = pixel/16,
// after checking the file's SHA-256 (DATA_LOSS on mismatch).
absl::StatusOr<Dataset> LoadDigits(const std::string& path);

// The fixed split (model.md 5): indices shuffled with a fixed seed that does
// not depend on the training seed; first 80 % train, the rest test.
DatasetSplit SplitFixed(const Dataset& data, double train_fraction = 0.8);

// Which split of a dataset a name asks for with a suffix after ':'.
struct SplitChoice {
  enum Kind {
    kFixed,       // "digits": SplitFixed
    // "digits:validation": the fixed split's training part split again
    // 80/20 by a second fixed shuffle; training uses the first part and
    // evaluates ("test" metrics) on the second, the validation set. Settings
    // are chosen on it without ever seeing the test split.
    kValidation,
    // "digits:partition-N" (N >= 1): the whole dataset split 80/20 by
    // shuffle seed N instead of the fixed one, a different random partition.
    kPartition,
  };
  Kind kind = kFixed;
  uint64_t seed = 0;  // kPartition
};

// "NAME" or "NAME:validation" or "NAME:partition-N": the name and the
// choice. INVALID_ARGUMENT for another suffix.
absl::StatusOr<std::pair<std::string, SplitChoice>> ParseSplitChoice(
    const std::string& dataset);

// The split `choice` of `data` (the whole dataset).
DatasetSplit MakeSplit(const Dataset& data, const SplitChoice& choice);

struct CsvOptions {
  int input_dim = 1;  // d: each row holds label then K*d values
  // If non-empty, the classes are exactly these (e.g. a trained model's)
  // and a row with another label is an error. Otherwise the classes are the
  // distinct labels found, in numeric order when all are numbers, else
  // lexicographic.
  std::vector<std::string> known_labels;
  // Rows hold only the K*d values, no label; every label is -1 (data to
  // classify rather than to train on).
  bool unlabelled = false;
};

// Parses the CSV format: one sequence per line, "label,v1,...,vK*d" (step
// k's d values at positions k*d+1..k*d+d). Blank lines and lines starting
// with '#' are skipped. INVALID_ARGUMENT naming line and column for: empty
// input, ragged rows, non-numeric or non-finite values, a value count not
// divisible by d, unknown labels.
absl::StatusOr<Dataset> ParseCsv(absl::string_view text,
                                 const CsvOptions& options,
                                 const std::string& name);
absl::StatusOr<Dataset> LoadCsv(const std::string& path,
                                const CsvOptions& options);

}  // namespace spinnet

#endif  // SPINNET_CORE_DATASET_H_
