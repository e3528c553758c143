#include "core/dataset.h"

#include <array>
#include <set>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "core/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/status_matchers.h"

namespace spinnet {
namespace {

using ::testing::ElementsAre;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using spinnet::status_testing::StatusIs;

// ---- SHA-256 ----

TEST(Sha256Test, NistKnownAnswers) {
  EXPECT_EQ(Sha256Hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(
      Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Sha256Hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Lengths around the padding boundaries: 55 bytes is the longest tail that
// fits its length in one block, 56 needs a second block, 64 is a whole
// block. Expected values are from coreutils sha256sum.
TEST(Sha256Test, PaddingBoundaries) {
  EXPECT_EQ(Sha256Hex(std::string(55, 'x')),
            "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072");
  EXPECT_EQ(Sha256Hex(std::string(56, 'x')),
            "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e");
  EXPECT_EQ(Sha256Hex(std::string(63, 'x')),
            "75220b47218278e656f2013bb8f0c455a25eaf01e86c64924e9d48d89776d6f2");
  EXPECT_EQ(Sha256Hex(std::string(64, 'x')),
            "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c");
  EXPECT_EQ(Sha256Hex(std::string(65, 'x')),
            "9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9");
}

TEST(Sha256Test, RawDigestMatchesHex) {
  const std::array<uint8_t, 32> digest = Sha256("abc");
  EXPECT_EQ(digest[0], 0xba);
  EXPECT_EQ(digest[1], 0x78);
  EXPECT_EQ(digest[31], 0xad);
}

// ---- Digits ----

TEST(DigitsTest, DefaultPathHonoursEnvironment) {
  const char* saved = std::getenv("SPINNET_DIGITS_PATH");
  const std::string saved_value = saved == nullptr ? "" : saved;
  setenv("SPINNET_DIGITS_PATH", "/somewhere/else.csv.gz", 1);
  EXPECT_EQ(DefaultDigitsPath(), "/somewhere/else.csv.gz");
  // An empty variable counts as unset.
  setenv("SPINNET_DIGITS_PATH", "", 1);
  EXPECT_THAT(DefaultDigitsPath(), EndsWith("/digits.csv.gz"));
  if (saved == nullptr) {
    unsetenv("SPINNET_DIGITS_PATH");
  } else {
    setenv("SPINNET_DIGITS_PATH", saved_value.c_str(), 1);
  }
}

TEST(DigitsTest, LoadsShippedFile) {
  const absl::StatusOr<Dataset> digits = LoadDigits(DefaultDigitsPath());
  ASSERT_TRUE(digits.ok()) << digits.status();
  EXPECT_EQ(digits->name, "digits");
  EXPECT_EQ(digits->size(), 1797);
  EXPECT_EQ(digits->steps, 64);
  EXPECT_EQ(digits->input_dim, 1);
  EXPECT_EQ(digits->values.rows(), 64);
  ASSERT_EQ(digits->labels.size(), 1797u);
  EXPECT_THAT(digits->class_labels,
              ElementsAre("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"));
  EXPECT_EQ(digits->values.minCoeff(), 0.0);
  EXPECT_EQ(digits->values.maxCoeff(), 1.0);

  // First row of the file: 0,0,5,13,9,1,... with label 0 in the last column.
  EXPECT_EQ(digits->labels[0], 0);
  EXPECT_EQ(digits->values(2, 0), 5.0 / 16);
  EXPECT_EQ(digits->values(3, 0), 13.0 / 16);

  std::vector<int> counts(10, 0);
  for (const int label : digits->labels) {
    ASSERT_GE(label, 0);
    ASSERT_LT(label, 10);
    ++counts[label];
  }
  for (int c = 0; c < 10; ++c) {
    EXPECT_GE(counts[c], 170) << "class " << c;
    EXPECT_LE(counts[c], 190) << "class " << c;
  }
}

TEST(DigitsTest, MissingFileIsNotFound) {
  const absl::StatusOr<Dataset> digits =
      LoadDigits(::testing::TempDir() + "/no_such_digits.csv.gz");
  EXPECT_EQ(digits.status().code(), absl::StatusCode::kNotFound);
}

TEST(DigitsTest, ModifiedFileFailsChecksum) {
  absl::StatusOr<std::string> raw = ReadFile(DefaultDigitsPath());
  ASSERT_TRUE(raw.ok()) << raw.status();
  (*raw)[raw->size() / 2] ^= 0x01;
  const std::string path = ::testing::TempDir() + "/flipped_digits.csv.gz";
  ASSERT_TRUE(WriteFileAtomically(path, *raw).ok());

  const absl::StatusOr<Dataset> digits = LoadDigits(path);
  EXPECT_EQ(digits.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(digits.status().message(), HasSubstr(kDigitsSha256));
  EXPECT_THAT(digits.status().message(), HasSubstr(Sha256Hex(*raw)));
  std::remove(path.c_str());
}

// ---- Subset and SplitFixed ----

// n sequences of one step whose single value is the sequence's index, so
// a subset reveals which sequences it took.
Dataset Numbered(int n) {
  Dataset data;
  data.name = "numbered";
  data.steps = 1;
  data.input_dim = 1;
  data.class_labels = {"even", "odd"};
  data.values.resize(1, n);
  for (int i = 0; i < n; ++i) {
    data.values(0, i) = i;
    data.labels.push_back(i % 2);
  }
  return data;
}

std::vector<int> Indices(const Dataset& data) {
  std::vector<int> indices;
  for (Index i = 0; i < data.size(); ++i) {
    indices.push_back(static_cast<int>(data.values(0, i)));
  }
  return indices;
}

TEST(SubsetTest, TakesSequencesInOrder) {
  const Dataset subset = Numbered(10).Subset({7, 2, 7});
  EXPECT_EQ(subset.name, "numbered");
  EXPECT_EQ(subset.steps, 1);
  EXPECT_EQ(subset.input_dim, 1);
  EXPECT_THAT(subset.class_labels, ElementsAre("even", "odd"));
  EXPECT_THAT(Indices(subset), ElementsAre(7, 2, 7));
  EXPECT_THAT(subset.labels, ElementsAre(1, 0, 1));
}

TEST(SplitFixedTest, DigitsSizesDisjointCoveringAndDeterministic) {
  const Dataset data = Numbered(1797);
  const DatasetSplit split = SplitFixed(data);
  ASSERT_EQ(split.train.size(), 1437);
  ASSERT_EQ(split.test.size(), 360);

  std::vector<int> seen(1797, 0);
  for (const int i : Indices(split.train)) ++seen[i];
  for (const int i : Indices(split.test)) ++seen[i];
  for (int i = 0; i < 1797; ++i) EXPECT_EQ(seen[i], 1) << "sequence " << i;

  // Labels travel with their sequences.
  for (Index j = 0; j < split.test.size(); ++j) {
    EXPECT_EQ(split.test.labels[j],
              static_cast<int>(split.test.values(0, j)) % 2);
  }

  // Shuffled, not the first 80 % of the file.
  std::vector<int> head(1437);
  for (int i = 0; i < 1437; ++i) head[i] = i;
  EXPECT_NE(Indices(split.train), head);

  const DatasetSplit again = SplitFixed(data);
  EXPECT_EQ(Indices(again.train), Indices(split.train));
  EXPECT_EQ(Indices(again.test), Indices(split.test));
}

TEST(SplitFixedTest, OtherFractions) {
  EXPECT_EQ(SplitFixed(Numbered(100), 0.29).train.size(), 29);
  EXPECT_EQ(SplitFixed(Numbered(10), 1.0).test.size(), 0);
  EXPECT_EQ(SplitFixed(Numbered(10), 0.0).train.size(), 0);
}

TEST(SplitChoiceTest, ValidationIsCarvedFromTheTrainingPartOnly) {
  const Dataset data = Numbered(1797);
  ASSERT_OK_AND_ASSIGN(const auto parsed,
                       ParseSplitChoice("digits:validation"));
  EXPECT_EQ(parsed.first, "digits");
  const DatasetSplit fixed = SplitFixed(data);
  const DatasetSplit v = MakeSplit(data, parsed.second);
  ASSERT_EQ(v.train.size(), 1149);  // 80 % of 1,437
  ASSERT_EQ(v.test.size(), 288);
  const std::vector<int> fixed_train = Indices(fixed.train);
  const std::set<int> train(fixed_train.begin(), fixed_train.end());
  std::set<int> seen;
  for (const int i : Indices(v.train)) seen.insert(i);
  for (const int i : Indices(v.test)) seen.insert(i);
  // The validation split covers exactly the fixed training part: no test
  // sequence is ever trained or evaluated on.
  EXPECT_EQ(seen, train);
  EXPECT_EQ(seen.size(), 1437u);
}

TEST(SplitChoiceTest, PartitionsAreOtherRandomSplitsOfTheWhole) {
  const Dataset data = Numbered(1797);
  ASSERT_OK_AND_ASSIGN(const auto p1, ParseSplitChoice("my.csv:partition-1"));
  ASSERT_OK_AND_ASSIGN(const auto p2, ParseSplitChoice("my.csv:partition-2"));
  EXPECT_EQ(p1.first, "my.csv");
  const DatasetSplit a = MakeSplit(data, p1.second);
  const DatasetSplit b = MakeSplit(data, p2.second);
  EXPECT_EQ(a.train.size(), 1437);
  EXPECT_EQ(a.test.size(), 360);
  EXPECT_NE(Indices(a.test), Indices(b.test));
  EXPECT_NE(Indices(a.test), Indices(SplitFixed(data).test));
  EXPECT_EQ(Indices(MakeSplit(data, p1.second).test), Indices(a.test));
  ASSERT_OK_AND_ASSIGN(const auto plain, ParseSplitChoice("digits"));
  EXPECT_EQ(plain.first, "digits");
  EXPECT_EQ(Indices(MakeSplit(data, plain.second).test),
            Indices(SplitFixed(data).test));
  for (const char* bad : {"digits:", "digits:test", "digits:partition-0",
                          "digits:partition-x", "digits:partition-"}) {
    EXPECT_THAT(ParseSplitChoice(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, "after ':'"))
        << bad;
  }
}

// ---- CSV ----

CsvOptions Dim(int input_dim) {
  CsvOptions options;
  options.input_dim = input_dim;
  return options;
}

TEST(CsvTest, PlacesStepValuesByInputDim) {
  // Comments, blank lines, CRLF and padding around cells are all accepted.
  const absl::StatusOr<Dataset> data = ParseCsv(
      "# label, then 3 steps of 2 values\r\n"
      "a, 1, 2, 3, 4, 5, 6\r\n"
      "\r\n"
      "b,-1.5,2e1,30,40,50,60\r\n",
      Dim(2), "pairs");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->name, "pairs");
  EXPECT_EQ(data->steps, 3);
  EXPECT_EQ(data->input_dim, 2);
  ASSERT_EQ(data->size(), 2);
  ASSERT_EQ(data->values.rows(), 6);
  // Step k's d values sit in rows k*d..k*d+d-1.
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(data->values(2 * k, 0), 2 * k + 1) << "step " << k;
    EXPECT_EQ(data->values(2 * k + 1, 0), 2 * k + 2) << "step " << k;
  }
  EXPECT_EQ(data->values(0, 1), -1.5);
  EXPECT_EQ(data->values(1, 1), 20.0);
  EXPECT_EQ(data->values(5, 1), 60.0);
  EXPECT_THAT(data->class_labels, ElementsAre("a", "b"));
  EXPECT_THAT(data->labels, ElementsAre(0, 1));
}

TEST(CsvTest, NumericLabelsInNumericOrder) {
  const absl::StatusOr<Dataset> data =
      ParseCsv("10,0\n2,0\n-1,0\n2,0\n1.5,0\n", Dim(1), "n");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_THAT(data->class_labels, ElementsAre("-1", "1.5", "2", "10"));
  EXPECT_THAT(data->labels, ElementsAre(3, 2, 0, 2, 1));
}

TEST(CsvTest, NonNumericLabelsInLexicographicOrder) {
  const absl::StatusOr<Dataset> data =
      ParseCsv("b,0\n10,0\na,0\n2,0\n", Dim(1), "s");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_THAT(data->class_labels, ElementsAre("10", "2", "a", "b"));
  EXPECT_THAT(data->labels, ElementsAre(3, 0, 2, 1));
}

TEST(CsvTest, KnownLabelsFixTheClasses) {
  CsvOptions options;
  options.known_labels = {"walk", "run", "sit"};
  const absl::StatusOr<Dataset> data =
      ParseCsv("sit,1\nwalk,2\nsit,3\n", options, "k");
  ASSERT_TRUE(data.ok()) << data.status();
  // The given order, including a class with no rows.
  EXPECT_THAT(data->class_labels, ElementsAre("walk", "run", "sit"));
  EXPECT_THAT(data->labels, ElementsAre(2, 0, 2));
}

TEST(CsvTest, UnlabelledRowsHoldOnlyValues) {
  CsvOptions options;
  options.unlabelled = true;
  options.known_labels = {"0", "1"};
  const absl::StatusOr<Dataset> data = ParseCsv("1,2,3\n4,5,6\n", options, "u");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->steps, 3);
  EXPECT_EQ(data->values(0, 0), 1.0);
  EXPECT_EQ(data->values(2, 1), 6.0);
  EXPECT_THAT(data->labels, ElementsAre(-1, -1));
  EXPECT_THAT(data->class_labels, ElementsAre("0", "1"));

  options.known_labels.clear();
  const absl::StatusOr<Dataset> bare = ParseCsv("7,8\n", options, "u");
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_THAT(bare->labels, ElementsAre(-1));
  EXPECT_TRUE(bare->class_labels.empty());
}

TEST(CsvTest, LoadCsvReadsGzipAndNamesByFile) {
  // The digits file read as unlabelled CSV: gzip is undone and the name is
  // the file name without ".csv.gz".
  CsvOptions options;
  options.unlabelled = true;
  const absl::StatusOr<Dataset> data = LoadCsv(DefaultDigitsPath(), options);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->name, "digits");
  EXPECT_EQ(data->size(), 1797);
  EXPECT_EQ(data->steps, 65);
}

TEST(CsvTest, LoadCsvPrefixesErrorsWithPath) {
  const std::string path = ::testing::TempDir() + "/ragged.series.csv";
  ASSERT_TRUE(WriteFileAtomically(path, "a,1,2\nb,1\n").ok());
  const absl::StatusOr<Dataset> bad = LoadCsv(path, CsvOptions());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(),
              HasSubstr(absl::StrCat(path, ": line 2: expected 3 cells")));

  ASSERT_TRUE(WriteFileAtomically(path, "a,1,2\nb,1,3\n").ok());
  const absl::StatusOr<Dataset> good = LoadCsv(path, CsvOptions());
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->name, "ragged.series");
  std::remove(path.c_str());
}

TEST(CsvTest, LoadCsvMissingFileIsNotFound) {
  EXPECT_EQ(LoadCsv(::testing::TempDir() + "/absent.csv", CsvOptions())
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

void ExpectInvalid(absl::string_view text, const CsvOptions& options,
                   absl::string_view message) {
  const absl::StatusOr<Dataset> data = ParseCsv(text, options, "bad");
  EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument)
      << data.status();
  EXPECT_THAT(data.status().message(), HasSubstr(message));
}

TEST(CsvErrorTest, RaggedRowNamesBothLines) {
  // Line numbers count the skipped comment and blank lines.
  ExpectInvalid("# header\n\n1,2,3\n1,2,3\n1,2\n", Dim(1),
                "line 5: expected 3 cells like line 3, got 2");
  ExpectInvalid("1,2,3\n1,2,3,4\n", Dim(1),
                "line 2: expected 3 cells like line 1, got 4");
}

TEST(CsvErrorTest, NonNumericValue) {
  ExpectInvalid("0,1,2,3,4\n0,1,2,3,4\n1,1,2,3,abc\n", Dim(1),
                "line 3, column 5: 'abc' is not a number");
  ExpectInvalid("0,1,1.2.3\n", Dim(1), "line 1, column 3: '1.2.3'");
}

TEST(CsvErrorTest, NonFiniteValue) {
  ExpectInvalid("0,1,2,3,4\n0,1,2,3,4\n1,1,2,3,nan\n", Dim(1),
                "line 3, column 5: value nan is not finite");
  ExpectInvalid("0,-inf\n", Dim(1), "line 1, column 2: value -inf");
  ExpectInvalid("0,1e999\n", Dim(1), "line 1, column 2: value 1e999");
}

TEST(CsvErrorTest, UnknownLabel) {
  CsvOptions options;
  options.known_labels = {"0", "1", "2"};
  ExpectInvalid("0,1\n1,1\n2,1\n0,1\n1,1\n2,1\n0,1\n1,1\nx,1\n", options,
                "line 9: unknown label 'x'; known labels: 0, 1, 2");
}

TEST(CsvErrorTest, RepeatedKnownLabel) {
  CsvOptions options;
  options.known_labels = {"a", "b", "a"};
  ExpectInvalid("a,1\n", options, "known label 'a' is listed twice");
}

TEST(CsvErrorTest, EmptyInput) {
  ExpectInvalid("", Dim(1), "empty file: no data rows");
  ExpectInvalid("# only a comment\r\n\n   \n", Dim(1),
                "empty file: no data rows");
}

TEST(CsvErrorTest, ValueCountNotMultipleOfInputDim) {
  ExpectInvalid("a,1,2,3,4,5,6\n", Dim(4),
                "line 1: 6 values is not a multiple of input_dim 4");
}

TEST(CsvErrorTest, BadInputDim) {
  ExpectInvalid("a,1\n", Dim(0), "input_dim 0; need >= 1");
}

TEST(CsvErrorTest, EmptyLabel) {
  ExpectInvalid("a,1,2\n ,1,2\n", Dim(1), "line 2, column 1: empty label");
}

TEST(CsvErrorTest, EmptyValue) {
  ExpectInvalid("a,1,,3\n", Dim(1), "line 1, column 3: empty value");
}

TEST(CsvErrorTest, RowWithoutValues) {
  ExpectInvalid("\na\nb\n", Dim(1), "line 2: no values, only a label");
}

}  // namespace
}  // namespace spinnet
