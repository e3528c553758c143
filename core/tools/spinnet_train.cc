// spinnet-train: trains a network offline (core only) or runs a sweep.
// Run with --help for the flags.
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/cli_flags.h"
#include "core/dataset.h"
#include "core/model_io.h"
#include "core/status_macros.h"
#include "core/sweep.h"
#include "core/trainer.h"
#include "core/training_flags.h"

namespace spinnet {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;
void OnSigint(int) { g_interrupted = 1; }

// The flags of the tool itself; the training settings come from core's
// table (core/training_flags.h) via cli::AddTrainingFlags.
struct ToolFlag {
  const char* name;
  const char* help;
  bool is_bool;
};

constexpr ToolFlag kToolFlags[] = {
    {"dataset", "'digits' (built in) or the path of a CSV file: one sequence "
                "per line, label then K*d values (.csv or .csv.gz) "
                "(default digits)", false},
    {"test-dataset", "CSV file to evaluate on instead of the fixed 80/20 "
                     "split of --dataset", false},
    {"input-dim", "values per time step d in CSV files (default 1)", false},
    {"out", "write the trained model to this file", false},
    {"checkpoint", "write a resumable checkpoint here after every epoch",
     false},
    {"resume", "continue the run saved in this checkpoint (training "
               "settings come from it; only --threads may change)", false},
    {"json", "print one JSON object per epoch (sweep: per grid point)", true},
    {"sweep", "train every combination of comma-separated flag values, "
              "e.g. --dt-in 0.5,1,2 --seeds 0-9; --threads N trainings at "
              "a time (default: one per core)", true},
    {"seeds", "sweep seeds: list and ranges, e.g. 0-9 or 1,5,7 "
              "(default: --seed)", false},
};

// Parsed command line: flag name -> raw value (lists unparsed).
struct CommandLine {
  std::map<std::string, std::string> values;
  std::vector<std::string> order;  // training flags in the order given
};

// Parses argv into `cl`; nullopt to go on, else the exit status.
std::optional<int> ParseCommandLine(int argc, char** argv, CommandLine* cl) {
  CLI::App app(
      "Trains a spin-torque-oscillator (or CTRNN) network by BPTT.\n"
      "Exit status: 0 done, 1 runtime error, 2 bad flags, 130 interrupted.",
      "spinnet-train");
  cli::Setup(&app, /*root=*/true);
  for (const ToolFlag& f : kToolFlags) {
    const std::string name = absl::StrCat("--", f.name);
    if (f.is_bool) {
      app.add_flag(name, f.help)->disable_flag_override();
    } else {
      app.add_option(name, f.help)->type_name("VALUE");
    }
  }
  cli::AddTrainingFlags(&app, "Training settings");
  if (auto exit = cli::Parse(&app, argc, argv, "spinnet-train")) return exit;
  for (const ToolFlag& f : kToolFlags) {
    if (auto v = cli::Value(app, f.name)) cl->values[f.name] = *v;
  }
  for (const auto& [name, value] : cli::TrainingSettings(app)) {
    cl->values[name] = value;
    cl->order.push_back(name);
  }
  return std::nullopt;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string Json(const EpochMetrics& m) {
  return absl::StrFormat(
      "{\"epoch\": %d, \"learning_rate\": %.6g, \"train_loss\": %.6f, "
      "\"train_accuracy\": %.6f, \"test_loss\": %.6f, \"test_accuracy\": "
      "%.6f, \"samples_per_second\": %.2f, \"epoch_seconds\": %.3f, "
      "\"cumulative_drive\": %.6g, \"energy_per_sample_joules\": %.6g, "
      "\"grad_norm\": %.6g}",
      m.epoch, m.learning_rate, m.train_loss, m.train_accuracy, m.test_loss,
      m.test_accuracy, m.samples_per_second, m.epoch_seconds,
      m.cumulative_drive, m.energy_per_sample_joules, m.grad_norm);
}

std::string Human(const EpochMetrics& m, int epochs) {
  return absl::StrFormat(
      "epoch %3d/%d  lr %.2e  train loss %.4f acc %5.1f%%  test loss %.4f acc "
      "%5.1f%%  %6.0f samples/s  D %.3g  %.3g pJ/sample",
      m.epoch, epochs, m.learning_rate, m.train_loss, 100 * m.train_accuracy,
      m.test_loss, 100 * m.test_accuracy, m.samples_per_second,
      m.cumulative_drive, m.energy_per_sample_joules * 1e12);
}

class CliObserver : public TrainingObserver {
 public:
  CliObserver(bool json, int epochs, std::string checkpoint_path)
      : json_(json),
        epochs_(epochs),
        tty_(isatty(STDERR_FILENO)),
        checkpoint_path_(std::move(checkpoint_path)) {}

  void OnBatch(int epoch, int done, int total) override {
    if (json_ || !tty_) return;
    const int width = 30, filled = width * done / total;
    absl::FPrintF(stderr, "\repoch %d/%d [%s%s] %3d%%", epoch, epochs_,
                 std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(),
                 100 * done / total);
    std::fflush(stderr);
  }

  void OnEpoch(const EpochMetrics& m, const Checkpoint& c) override {
    if (!json_ && tty_) absl::FPrintF(stderr, "\r\033[K");
    absl::PrintF("%s\n", (json_ ? Json(m) : Human(m, epochs_)).c_str());
    std::fflush(stdout);
    if (!checkpoint_path_.empty()) {
      checkpoint_status_.Update(SaveCheckpoint(c, checkpoint_path_));
    }
  }

  bool StopRequested() override {
    return g_interrupted || !checkpoint_status_.ok();
  }
  const absl::Status& checkpoint_status() const { return checkpoint_status_; }

 private:
  bool json_;
  int epochs_;
  bool tty_;
  std::string checkpoint_path_;
  absl::Status checkpoint_status_;
};

absl::StatusOr<DatasetSplit> LoadData(const CommandLine& cl,
                                      int input_dim) {
  const auto get = [&](const std::string& k, const std::string& dflt) {
    auto it = cl.values.find(k);
    return it == cl.values.end() ? dflt : it->second;
  };
  ASSIGN_OR_RETURN(const auto parsed,
                   ParseSplitChoice(get("dataset", "digits")));
  const auto& [name, choice] = parsed;
  Dataset full;
  if (name == "digits") {
    ASSIGN_OR_RETURN(full, LoadDigits(DefaultDigitsPath()));
  } else {
    CsvOptions opts;
    opts.input_dim = input_dim;
    ASSIGN_OR_RETURN(full, LoadCsv(name, opts));
  }
  const std::string test_path = get("test-dataset", "");
  if (test_path.empty()) return MakeSplit(full, choice);
  if (choice.kind != SplitChoice::kFixed) {
    return absl::InvalidArgumentError(
        "--test-dataset takes a dataset without a ':' split");
  }
  CsvOptions opts;
  opts.input_dim = full.input_dim;
  opts.known_labels = full.class_labels;
  DatasetSplit split;
  ASSIGN_OR_RETURN(split.test, LoadCsv(test_path, opts));
  if (split.test.steps != full.steps) {
    return absl::InvalidArgumentError(
        absl::StrCat(test_path, " has ", split.test.steps,
                     " steps per sequence; the training set has ", full.steps));
  }
  split.train = std::move(full);
  return split;
}

int Fail(int code, const absl::Status& s) {
  absl::FPrintF(stderr, "spinnet-train: %s\n", std::string(s.message()).c_str());
  return code;
}

int RunSweepCommand(const CommandLine& cl, const TrainingSpec& spec,
                    const DatasetSplit& data, bool json) {
  // Flags with a list of values are the grid's axes; the others hold.
  std::vector<Setting> settings;
  for (const std::string& name : cl.order) {
    if (name != "seed" && name != "threads") {
      settings.emplace_back(name, cl.values.at(name));
    }
  }
  std::vector<Setting> fixed;
  std::vector<SweepAxis> axes;
  SplitSweepSettings(settings, &fixed, &axes);
  std::vector<uint64_t> seeds = {spec.train.seed};
  if (cl.values.count("seeds")) {
    auto parsed = ParseSeeds(cl.values.at("seeds"));
    if (!parsed.ok()) return Fail(2, parsed.status());
    seeds = *parsed;
  }
  const bool tty = isatty(STDERR_FILENO);
  // Independent single-threaded trainings, one per core, finish a study
  // sooner than trainings that split each batch over the cores (README,
  // "Studies per core-hour"), so that is the default.
  const int runs_at_once =
      cl.values.count("threads")
          ? spec.train.threads
          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  auto result = RunSweep(fixed, axes, seeds, data.train, data.test,
                         runs_at_once, [&](int done, int total) {
                           if (tty && !json) {
                             absl::FPrintF(stderr, "\rrun %d/%d", done, total);
                           }
                         });
  if (tty && !json) absl::FPrintF(stderr, "\r\033[K");
  if (!result.ok()) {
    return Fail(result.status().code() == absl::StatusCode::kInvalidArgument &&
                        g_interrupted == 0
                    ? 2
                    : 1,
                result.status());
  }
  // Human-readable rows are "flag=value ..." padded to the widest.
  std::vector<std::string> names;
  size_t width = 7;
  for (const SweepPointResult& p : *result) {
    std::vector<std::string> parts;
    for (const auto& [flag, value] : p.settings) {
      parts.push_back(json ? absl::StrCat(JsonString(flag), ": ",
                                          JsonString(value))
                           : absl::StrCat(flag, "=", value));
    }
    names.push_back(absl::StrJoin(parts, json ? ", " : " "));
    if (names.back().empty()) names.back() = "(base)";
    width = std::max(width, names.back().size());
  }
  if (!json) {
    absl::PrintF("%-*s %8s %8s %8s %6s %9s %9s\n", static_cast<int>(width),
                "setting", "median", "q25", "q75", "seeds", "D", "seconds");
  }
  for (size_t i = 0; i < result->size(); ++i) {
    const SweepPointResult& p = (*result)[i];
    if (json) {
      absl::PrintF(
          "{\"settings\": {%s}, \"seeds\": %zu, \"median_test_accuracy\": "
          "%.6f, \"q25_test_accuracy\": %.6f, \"q75_test_accuracy\": %.6f, "
          "\"test_accuracies\": [%s], \"cumulative_drive\": %.6g, "
          "\"train_seconds\": %.2f}\n",
          p.settings.empty() ? "" : names[i], p.test_accuracies.size(),
          p.median, p.q25, p.q75,
          absl::StrJoin(p.test_accuracies, ", ",
                        [](std::string* out, double a) {
                          absl::StrAppendFormat(out, "%.6f", a);
                        }),
          p.mean_cumulative_drive, p.train_seconds);
    } else {
      absl::PrintF("%-*s %7.2f%% %7.2f%% %7.2f%% %6zu %9.3g %9.1f\n",
                  static_cast<int>(width), names[i], 100 * p.median,
                  100 * p.q25, 100 * p.q75, p.test_accuracies.size(),
                  p.mean_cumulative_drive, p.train_seconds);
    }
  }
  return 0;
}

int Main(int argc, char** argv) {
  CommandLine cl;
  if (auto exit = ParseCommandLine(argc, argv, &cl)) return *exit;
  const bool json = cl.values.count("json") > 0;
  const bool sweep = cl.values.count("sweep") > 0;
  const bool resume = cl.values.count("resume") > 0;

  // In a sweep, the first value of each list is checked here; RunSweep
  // checks every grid point before it trains.
  std::vector<Setting> settings;
  for (const std::string& name : cl.order) {
    const std::string& value = cl.values.at(name);
    if (!sweep && value.find(',') != std::string::npos) {
      return Fail(2, absl::InvalidArgumentError(absl::StrCat(
                         "--", name, " has a list of values; add --sweep")));
    }
    if (resume && name != "threads") {
      return Fail(2, absl::InvalidArgumentError(absl::StrCat(
                         "--", name, " cannot be changed with --resume; the "
                         "checkpoint holds the training settings")));
    }
    settings.emplace_back(name, value.substr(0, value.find(',')));
  }
  absl::StatusOr<TrainingSpec> made = MakeTrainingSpec(settings);
  if (!made.ok()) return Fail(2, made.status());
  TrainingSpec& spec = *made;
  if (cl.values.count("seeds") && !sweep) {
    return Fail(2, absl::InvalidArgumentError("--seeds needs --sweep"));
  }
  if (sweep && (resume || cl.values.count("out") ||
                cl.values.count("checkpoint"))) {
    return Fail(2, absl::InvalidArgumentError(
                       "--sweep does not take --resume, --out or --checkpoint"));
  }
  int input_dim = 1;
  if (cl.values.count("input-dim") &&
      (!absl::SimpleAtoi(cl.values.at("input-dim"), &input_dim) ||
       input_dim < 1)) {
    return Fail(2, absl::InvalidArgumentError(
                       "--input-dim: need an integer >= 1"));
  }
  std::signal(SIGINT, OnSigint);

  auto data = LoadData(cl, input_dim);
  if (!data.ok()) return Fail(1, data.status());
  spec.network.input_dim = data->train.input_dim;
  spec.network.num_classes = static_cast<int>(data->train.class_labels.size());
  if (sweep) return RunSweepCommand(cl, spec, *data, json);

  absl::StatusOr<Checkpoint> start;
  if (resume) {
    start = LoadCheckpoint(cl.values.at("resume"));
    if (start.ok() && cl.values.count("threads")) {
      start->model.train.threads = spec.train.threads;
    }
  } else {
    start = StartTraining(spec.network, spec.device, spec.train, data->train);
    if (!start.ok() && start.status().code() ==
                           absl::StatusCode::kInvalidArgument) {
      return Fail(2, start.status());
    }
  }
  if (!start.ok()) return Fail(1, start.status());
  if (!json) {
    absl::PrintF("training %s: %d x %d %s, %ld train / %ld test sequences of %d "
                "steps, %d epochs, seed %llu\n",
                data->train.name.c_str(), start->model.network.layers,
                start->model.network.neurons,
                CellTypeName(start->model.network.cell).c_str(),
                static_cast<long>(data->train.size()),
                static_cast<long>(data->test.size()), data->train.steps,
                start->model.train.epochs,
                static_cast<unsigned long long>(start->model.train.seed));
  }
  CliObserver observer(json, start->model.train.epochs,
                       cl.values.count("checkpoint") ? cl.values.at("checkpoint")
                                                     : "");
  auto done = Train(*std::move(start), data->train, data->test, &observer);
  if (!observer.checkpoint_status().ok()) {
    return Fail(1, observer.checkpoint_status());
  }
  if (!done.ok()) {
    if (done.status().code() == absl::StatusCode::kCancelled) {
      absl::FPrintF(stderr, "\nspinnet-train: interrupted: %s\n",
                   std::string(done.status().message()).c_str());
      return 130;
    }
    return Fail(1, done.status());
  }
  if (cl.values.count("out")) {
    absl::Status s = SaveModel(done->model, cl.values.at("out"));
    if (!s.ok()) return Fail(1, s);
  }
  const EpochMetrics& last = done->history.back();
  if (json) {
    absl::PrintF(
        "{\"final\": true, \"epochs\": %d, \"test_accuracy\": %.6f, "
        "\"test_loss\": %.6f, \"train_accuracy\": %.6f, "
        "\"energy_per_sample_joules\": %.6g, \"cumulative_drive\": %.6g, "
        "\"model\": %s}\n",
        done->epochs_done, last.test_accuracy, last.test_loss,
        last.train_accuracy, last.energy_per_sample_joules,
        last.cumulative_drive,
        JsonString(cl.values.count("out") ? cl.values.at("out") : ""));
  } else {
    absl::PrintF("final test accuracy %.2f%%%s\n", 100 * last.test_accuracy,
                cl.values.count("out")
                    ? absl::StrCat(", model written to ", cl.values.at("out"))
                          .c_str()
                    : "");
  }
  return 0;
}

}  // namespace
}  // namespace spinnet

int main(int argc, char** argv) { return spinnet::Main(argc, argv); }
