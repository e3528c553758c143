#include "core/dataset.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <numeric>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/file_util.h"
#include "core/logging.h"
#include "core/random.h"
#include "core/sha256.h"
#include "core/status_macros.h"

namespace spinnet {
namespace {

// Seed of the fixed split (model.md 5). A constant rather than the training
// seed, so every run of every study sees the same test set.
constexpr uint64_t kFixedSplitSeed = 20240802;

// The shipped digits file: 1,797 images of 8x8 pixels with 16 grey levels.
constexpr Index kDigitsCount = 1797;
constexpr int kDigitsPixels = 64;
constexpr double kDigitsGreyLevels = 16.0;

// Where `make install` puts the digits file, most specific prefix first.
constexpr const char* kInstalledDigitsPaths[] = {
    "/usr/local/share/spinnet/digits.csv.gz",
    "/usr/share/spinnet/digits.csv.gz",
};

// Which cell of a row holds the label: CSV files put it first, the digits
// file last, and unlabelled data has none.
enum class LabelColumn { kFirst, kLast, kNone };

struct DataLine {
  absl::string_view text;  // trimmed
  int number;              // 1-based, counting skipped lines
};

absl::Status LineError(int line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("line ", line, ": ", what));
}

absl::Status CellError(int line, int column, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("line ", line, ", column ", column, ": ", what));
}

// The lines that hold data, trimmed (which also drops a CRLF's CR);
// blank lines and '#' comments are skipped.
std::vector<DataLine> DataLines(absl::string_view text) {
  std::vector<DataLine> lines;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    lines.push_back({line, number});
  }
  return lines;
}

int CountCells(absl::string_view line) {
  return 1 + static_cast<int>(std::count(line.begin(), line.end(), ','));
}

absl::Status ParseValue(absl::string_view cell, int line, int column,
                        double* value) {
  if (cell.empty()) return CellError(line, column, "empty value");
  if (!absl::SimpleAtod(cell, value)) {
    return CellError(line, column,
                     absl::StrCat("'", cell, "' is not a number"));
  }
  if (!std::isfinite(*value)) {
    return CellError(line, column,
                     absl::StrCat("value ", cell, " is not finite"));
  }
  return absl::OkStatus();
}

// Orders the labels found in the data (keys of `first_seen`, valued by
// the provisional class index each row was given): numerically when every
// label is a finite number, so that "2" comes before "10", else
// lexicographically. Rewrites `labels` to the final class indices.
std::vector<std::string> OrderLabels(
    const std::map<absl::string_view, int>& first_seen,
    std::vector<int>* labels) {
  // std::map iterates lexicographically, which the stable sort keeps as the
  // tie-break between numerically equal labels such as "1" and "1.0".
  std::vector<std::pair<double, absl::string_view>> order;
  bool numeric = true;
  for (const auto& [label, index] : first_seen) {
    double number = 0;
    numeric =
        numeric && absl::SimpleAtod(label, &number) && std::isfinite(number);
    order.emplace_back(number, label);
  }
  if (numeric) {
    std::stable_sort(
        order.begin(), order.end(),
        [](const auto& a, const auto& b) { return a.first < b.first; });
  }
  std::vector<std::string> class_labels;
  std::vector<int> final_index(first_seen.size());
  for (const auto& [number, label] : order) {
    final_index[first_seen.at(label)] = static_cast<int>(class_labels.size());
    class_labels.emplace_back(label);
  }
  for (int& label : *labels) label = final_index[label];
  return class_labels;
}

// Parses one sequence per data line: K*d values plus, unless
// `label_column` is kNone, one label. Shared by the CSV format and the
// digits file, which differ only in where the label sits.
absl::StatusOr<Dataset> ParseRows(absl::string_view text, int input_dim,
                                  LabelColumn label_column,
                                  const std::vector<std::string>& known_labels,
                                  const std::string& name) {
  if (input_dim < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("input_dim ", input_dim, "; need >= 1"));
  }
  // Label text -> class index. Known labels fix it up front; otherwise
  // labels get provisional indices in order of appearance.
  std::map<absl::string_view, int> label_index;
  for (size_t i = 0; i < known_labels.size(); ++i) {
    if (!label_index.emplace(known_labels[i], static_cast<int>(i)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("known label '", known_labels[i], "' is listed twice"));
    }
  }

  const std::vector<DataLine> lines = DataLines(text);
  if (lines.empty()) {
    return absl::InvalidArgumentError("empty file: no data rows");
  }
  const DataLine& first = lines.front();
  const int width = CountCells(first.text);
  const int label_cell = label_column == LabelColumn::kFirst  ? 0
                         : label_column == LabelColumn::kLast ? width - 1
                                                              : -1;
  const int value_count =
      label_column == LabelColumn::kNone ? width : width - 1;
  if (value_count == 0) {
    return LineError(first.number, "no values, only a label");
  }
  if (value_count % input_dim != 0) {
    return LineError(first.number,
                     absl::StrCat(value_count, " values is not a multiple of ",
                                  "input_dim ", input_dim));
  }

  Dataset data;
  data.name = name;
  data.steps = value_count / input_dim;
  data.input_dim = input_dim;
  // Sized once from the line count so that a large file is parsed straight
  // into its final storage.
  data.values.resize(value_count, static_cast<Index>(lines.size()));
  data.labels.assign(lines.size(), -1);
  for (size_t row = 0; row < lines.size(); ++row) {
    const DataLine& line = lines[row];
    const int cells = CountCells(line.text);
    if (cells != width) {
      return LineError(line.number,
                       absl::StrCat("expected ", width, " cells like line ",
                                    first.number, ", got ", cells));
    }
    double* value = data.values.col(static_cast<Index>(row)).data();
    int column = 0;
    for (absl::string_view cell : absl::StrSplit(line.text, ',')) {
      ++column;
      cell = absl::StripAsciiWhitespace(cell);
      if (column - 1 != label_cell) {
        RETURN_IF_ERROR(ParseValue(cell, line.number, column, value++));
        continue;
      }
      if (cell.empty()) return CellError(line.number, column, "empty label");
      if (known_labels.empty()) {
        data.labels[row] =
            label_index.emplace(cell, static_cast<int>(label_index.size()))
                .first->second;
        continue;
      }
      const auto it = label_index.find(cell);
      if (it == label_index.end()) {
        return LineError(
            line.number,
            absl::StrCat("unknown label '", cell, "'; known labels: ",
                         absl::StrJoin(known_labels, ", ")));
      }
      data.labels[row] = it->second;
    }
  }
  // Unlabelled rows keep label -1 and take the known labels as they are.
  const bool found_labels =
      known_labels.empty() && label_column != LabelColumn::kNone;
  data.class_labels =
      found_labels ? OrderLabels(label_index, &data.labels) : known_labels;
  return data;
}

// "dir/ecg.csv.gz" -> "ecg": the file name without its directory, a
// ".gz" suffix and one more extension.
std::string DatasetName(absl::string_view path) {
  path.remove_prefix(path.find_last_of('/') + 1);  // npos + 1 == 0
  absl::ConsumeSuffix(&path, ".gz");
  const size_t dot = path.find_last_of('.');
  if (dot != absl::string_view::npos && dot > 0) path = path.substr(0, dot);
  return std::string(path);
}

}  // namespace

Dataset Dataset::Subset(const std::vector<int>& indices) const {
  Dataset subset;
  subset.name = name;
  subset.steps = steps;
  subset.input_dim = input_dim;
  subset.class_labels = class_labels;
  subset.values.resize(values.rows(), static_cast<Index>(indices.size()));
  subset.labels.reserve(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) {
    const int index = indices[i];
    SPINNET_CHECK(index >= 0 && index < size());
    subset.values.col(static_cast<Index>(i)) = values.col(index);
    subset.labels.push_back(labels[index]);
  }
  return subset;
}

std::string DefaultDigitsPath() {
  const char* env = std::getenv("SPINNET_DIGITS_PATH");
  if (env != nullptr && env[0] != '\0') return env;
  for (const char* installed : kInstalledDigitsPaths) {
    if (access(installed, F_OK) == 0) return installed;
  }
  return SPINNET_DIGITS_PATH;
}

absl::StatusOr<Dataset> LoadDigits(const std::string& path) {
  ASSIGN_OR_RETURN(std::string raw, ReadFile(path));
  // The checksum covers the compressed bytes, exactly as shipped.
  const std::string actual = Sha256Hex(raw);
  if (actual != kDigitsSha256) {
    return absl::DataLossError(absl::StrCat(
        path, ": SHA-256 is ", actual, ", expected ", kDigitsSha256,
        "; the file is damaged or not the digits file shipped with spinnet"));
  }
  ASSIGN_OR_RETURN(const std::string text, MaybeGunzip(std::move(raw), path));
  const std::vector<std::string> digit_labels = {"0", "1", "2", "3", "4",
                                                 "5", "6", "7", "8", "9"};
  absl::StatusOr<Dataset> data =
      ParseRows(text, 1, LabelColumn::kLast, digit_labels, "digits");
  // The checksum matched, so content that is not 1,797 rows of 64 grey
  // levels means kDigitsSha256 names a bad file: a bug, not bad input.
  if (!data.ok()) {
    return absl::InternalError(
        absl::StrCat(path, ": ", data.status().message()));
  }
  const Matrix& pixels = data->values;
  if (data->steps != kDigitsPixels || data->size() != kDigitsCount) {
    return absl::InternalError(
        absl::StrCat(path, ": ", data->size(), " images of ", data->steps,
                     " pixels; need ", kDigitsCount, " of ", kDigitsPixels));
  }
  if (pixels.minCoeff() < 0 || pixels.maxCoeff() > kDigitsGreyLevels ||
      (pixels.array() != pixels.array().round()).any()) {
    return absl::InternalError(
        absl::StrCat(path, ": pixels must be integers 0..", kDigitsGreyLevels));
  }
  data->values /= kDigitsGreyLevels;
  return data;
}

namespace {

DatasetSplit SplitBySeed(const Dataset& data, double train_fraction,
                         uint64_t seed) {
  SPINNET_CHECK(train_fraction >= 0 && train_fraction <= 1);
  const int n = static_cast<int>(data.size());
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  Rng rng(seed, kSplitStream);
  rng.Shuffle(&order);
  // Rounded down, as model.md's 80 % of 1,797 = 1,437 is (rounding to
  // nearest would give 1,438); the epsilon keeps products such as
  // 0.29 * 100 = 28.999... from losing a sequence.
  const int train_size =
      static_cast<int>(std::floor(train_fraction * n + 1e-9));
  DatasetSplit split;
  split.train =
      data.Subset(std::vector<int>(order.begin(), order.begin() + train_size));
  split.test =
      data.Subset(std::vector<int>(order.begin() + train_size, order.end()));
  return split;
}

}  // namespace

DatasetSplit SplitFixed(const Dataset& data, double train_fraction) {
  return SplitBySeed(data, train_fraction, kFixedSplitSeed);
}

absl::StatusOr<std::pair<std::string, SplitChoice>> ParseSplitChoice(
    const std::string& dataset) {
  const size_t colon = dataset.rfind(':');
  if (colon == std::string::npos) return std::make_pair(dataset, SplitChoice());
  const std::string name = dataset.substr(0, colon);
  absl::string_view view = absl::string_view(dataset).substr(colon + 1);
  SplitChoice choice;
  if (view == "validation") {
    choice.kind = SplitChoice::kValidation;
  } else if (absl::ConsumePrefix(&view, "partition-") &&
             absl::SimpleAtoi(view, &choice.seed) && choice.seed >= 1) {
    choice.kind = SplitChoice::kPartition;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "dataset \"", dataset, "\": after ':' comes validation or "
        "partition-N (N >= 1)"));
  }
  return std::make_pair(name, choice);
}

DatasetSplit MakeSplit(const Dataset& data, const SplitChoice& choice) {
  switch (choice.kind) {
    case SplitChoice::kValidation:
      return SplitBySeed(SplitFixed(data).train, 0.8, kFixedSplitSeed + 1);
    case SplitChoice::kPartition:
      return SplitBySeed(data, 0.8, choice.seed);
    case SplitChoice::kFixed:
      break;
  }
  return SplitFixed(data);
}

absl::StatusOr<Dataset> ParseCsv(absl::string_view text,
                                 const CsvOptions& options,
                                 const std::string& name) {
  return ParseRows(
      text, options.input_dim,
      options.unlabelled ? LabelColumn::kNone : LabelColumn::kFirst,
      options.known_labels, name);
}

absl::StatusOr<Dataset> LoadCsv(const std::string& path,
                                const CsvOptions& options) {
  ASSIGN_OR_RETURN(const std::string text, ReadMaybeGzipFile(path));
  absl::StatusOr<Dataset> data = ParseCsv(text, options, DatasetName(path));
  if (!data.ok()) {
    // Line numbers alone do not say which file a caller passed.
    return absl::Status(data.status().code(),
                        absl::StrCat(path, ": ", data.status().message()));
  }
  return data;
}

}  // namespace spinnet
