// spinnet: the command-line client of a spinnet server. Run with --help.
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "core/dataset.h"
#include "core/file_util.h"
#include "core/status_macros.h"
#include "core/training_flags.h"
#include "google/protobuf/util/json_util.h"
#include "proto/api_convert.h"

namespace spinnet::client {
namespace {

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
constexpr int kClassifyBatch = 256;  // sequences per Classify call
constexpr char kDefaultServer[] = "127.0.0.1:50051";

// ---- Errors: every one is printed here, as "spinnet: <what>".

int Fail(absl::string_view what, int exit_status = kExitError) {
  absl::FPrintF(stderr, "spinnet: %s\n", what);
  std::fflush(stderr);
  return exit_status;
}

int Fail(const absl::Status& status) {
  return Fail(absl::StrCat(absl::StatusCodeToString(status.code()), ": ",
                           status.message()));
}

int UsageFail(absl::string_view what) {
  return Fail(absl::StrCat(what, " (see spinnet --help)"), kExitUsage);
}

// ---- The command line.

enum class Kind { kSwitch, kText, kInt, kSeconds };

struct FlagSpec {
  const char* name;
  Kind kind;
  const char* value;  // the value's name in help; "" for switches
  const char* help;
  bool required = false;
};

const FlagSpec kGlobalFlags[] = {
    {"server", Kind::kText, "TARGET",
     "server: HOST:PORT, dns:///HOST:PORT (every replica it resolves to) or "
     "ipv4:IP:PORT,IP:PORT; calls are balanced round-robin (default "
     "$SPINNET_SERVER, else 127.0.0.1:50051)"},
    {"token-file", Kind::kText, "PATH",
     "file holding the bearer token to send"},
    {"tls-ca", Kind::kText, "PATH",
     "CA certificate (PEM) that signed the server's: use TLS"},
    {"tls-cert", Kind::kText, "PATH",
     "client certificate (PEM) for mutual TLS; needs --tls-key, --tls-ca"},
    {"tls-key", Kind::kText, "PATH", "the client certificate's key (PEM)"},
    {"timeout", Kind::kSeconds, "SECONDS",
     "deadline of each call (default 30; watching and streaming have none)"},
    {"json", Kind::kSwitch, "",
     "print the server's response messages as JSON, one per line"},
    {"help", Kind::kSwitch, "", "show help (after a command: its help)"},
};

// Parsed command line.
struct Command;
struct Invocation {
  const Command* command = nullptr;
  std::vector<std::string> args;             // after the command's name
  std::map<std::string, std::string> flags;  // name -> value as given
  std::vector<Setting> training;             // training flags, in order

  bool Has(const std::string& name) const { return flags.count(name) > 0; }
  std::string Get(const std::string& name,
                  const std::string& fallback = "") const {
    auto it = flags.find(name);
    return it == flags.end() ? fallback : it->second;
  }
  // Values were checked when parsed.
  int Int(const std::string& name, int fallback) const {
    int value = fallback;
    if (Has(name)) (void)absl::SimpleAtoi(Get(name), &value);
    return value;
  }
  double Seconds(const std::string& name, double fallback) const {
    double value = fallback;
    if (Has(name)) (void)absl::SimpleAtod(Get(name), &value);
    return value;
  }
  bool json() const { return Has("json"); }
};

struct Command {
  const char* name;   // one or two words, e.g. "datasets upload"
  const char* usage;  // what follows the name
  const char* help;
  std::vector<FlagSpec> flags;
  bool training_flags;     // takes spinnet-train's training flags
  int min_args, max_args;  // positional arguments after the name
  int (*run)(const Invocation&, Client&);
};

// ---- Output.

void PrintJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  // Fails only on Any fields it cannot resolve; the API has none.
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  absl::PrintF("%s\n", json);
  std::fflush(stdout);
}

// A unary call's outcome: its response printed as JSON or by `print`, or
// the error. Returns the exit status.
template <typename Response, typename Print>
int Show(const absl::StatusOr<Response>& response, const Invocation& inv,
         Print print) {
  if (!response.ok()) return Fail(response.status());
  if (inv.json()) {
    PrintJson(*response);
  } else {
    print(*response);
  }
  return 0;
}

// JOB_STATE_RUNNING -> "running".
std::string ShortName(const std::string& enum_name, absl::string_view prefix) {
  return absl::AsciiStrToLower(absl::StripPrefix(enum_name, prefix));
}
std::string StateName(v1::JobState state) {
  return ShortName(v1::JobState_Name(state), "JOB_STATE_");
}

std::string FormatTime(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S",
                          absl::FromUnixSeconds(t.seconds()),
                          absl::LocalTimeZone());
}

std::string FormatDuration(int64_t seconds) {
  if (seconds >= 3600) {
    return absl::StrFormat("%dh%02dm", seconds / 3600, seconds % 3600 / 60);
  }
  if (seconds >= 60) {
    return absl::StrFormat("%dm%02ds", seconds / 60, seconds % 60);
  }
  return absl::StrFormat("%ds", seconds);
}

std::string FormatBytes(int64_t bytes) {
  if (bytes >= (1 << 20)) return absl::StrFormat("%.1f MiB", bytes / 1048576.0);
  if (bytes >= (1 << 10)) return absl::StrFormat("%.1f KiB", bytes / 1024.0);
  return absl::StrFormat("%d B", bytes);
}

// "7 (p=0.93, 15.2 pJ)"
std::string Describe(const v1::Classification& c) {
  const int i = c.class_index();
  const double p =
      i >= 0 && i < c.probabilities_size() ? c.probabilities(i) : 0.0;
  return absl::StrFormat("%s (p=%.2f, %.1f pJ)", c.label(), p,
                         c.energy_joules() * 1e12);
}

// Appended to an answer whose true label differs.
std::string Mismatch(const std::string& predicted, const std::string* truth) {
  if (truth == nullptr || predicted == *truth) return "";
  return absl::StrCat("  [label ", *truth, "]");
}

void PrintJob(const v1::TrainingJob& job) {
  std::string state = StateName(job.state());
  if (job.state() == v1::JOB_STATE_FAILED) {
    absl::StrAppend(&state, ": ", job.failure_reason());
  }
  absl::PrintF("job %s\n  state     %s\n", job.id(), state);
  absl::PrintF("  model     %s%s\n", job.model_name(),
               job.model_version() > 0
                   ? absl::StrCat(" version ", job.model_version())
                   : "");
  absl::PrintF("  dataset   %s\n", job.dataset());
  absl::PrintF("  progress  %d/%d epochs, %.0f%%%s\n", job.epochs_done(),
               job.epochs_total(), 100 * job.progress(),
               job.state() == v1::JOB_STATE_RUNNING && job.has_eta()
                   ? absl::StrCat(", ETA ", FormatDuration(job.eta().seconds()))
                   : "");
  const v1::EpochMetrics& m = job.latest_epoch();
  if (m.epoch() > 0) {
    absl::PrintF(
        "  latest    epoch %d: train loss %.4f, train accuracy %.1f%%, test "
        "accuracy %.1f%%\n",
        m.epoch(), m.train_loss(), 100 * m.train_accuracy(),
        100 * m.test_accuracy());
  }
  absl::PrintF("  created   %s\n", FormatTime(job.create_time()));
  if (job.has_start_time()) {
    absl::PrintF("  started   %s\n", FormatTime(job.start_time()));
  }
  if (job.has_end_time()) {
    absl::PrintF("  ended     %s\n", FormatTime(job.end_time()));
  }
  if (!job.request_id().empty()) {
    absl::PrintF("  request   %s\n", job.request_id());
  }
  if (job.restarts() > 0) absl::PrintF("  restarts  %d\n", job.restarts());
  absl::StatusOr<std::vector<Setting>> settings =
      api::SettingsFromSpec(job.spec());
  if (settings.ok() && !settings->empty()) {
    absl::PrintF(
        "  settings  %s\n",
        absl::StrJoin(*settings, " ", [](std::string* out, const Setting& s) {
          absl::StrAppend(out, "--", s.first, " ", s.second);
        }));
  }
}

constexpr char kJobRow[] = "%-36s  %-9s  %-20s  %-16s  %7s  %4s  %s\n";

void PrintJobRows(const v1::ListTrainingJobsResponse& page) {
  for (const v1::TrainingJob& job : page.jobs()) {
    absl::PrintF(kJobRow, job.id(), StateName(job.state()), job.model_name(),
                 job.dataset(),
                 absl::StrCat(job.epochs_done(), "/", job.epochs_total()),
                 absl::StrFormat("%.0f%%", 100 * job.progress()),
                 FormatTime(job.create_time()));
  }
}

constexpr char kDatasetRow[] = "%-24s  %3s  %6s  %9s  %7s  %10s  %-19s  %s\n";

void PrintDatasetHeader() {
  absl::PrintF(kDatasetRow, "NAME", "D", "STEPS", "SEQUENCES", "CLASSES",
               "SIZE", "CREATED", "");
}

void PrintDatasetRow(const v1::Dataset& d) {
  absl::PrintF(kDatasetRow, d.name(), absl::StrCat(d.input_dim()),
               absl::StrCat(d.steps()), absl::StrCat(d.sequences()),
               absl::StrCat(d.class_labels_size()), FormatBytes(d.size_bytes()),
               FormatTime(d.create_time()), d.read_only() ? "read-only" : "");
}

void PrintDataset(const v1::Dataset& d) {
  PrintDatasetHeader();
  PrintDatasetRow(d);
}

void PrintDatasets(const v1::ListDatasetsResponse& r) {
  PrintDatasetHeader();
  for (const v1::Dataset& d : r.datasets()) PrintDatasetRow(d);
}

void PrintModels(const v1::ListModelsResponse& r) {
  constexpr char kRow[] =
      "%-20s  %7s  %-16s  %-5s  %7s  %6s  %6s  %9s  %-19s  %s\n";
  absl::PrintF(kRow, "NAME", "VERSION", "DATASET", "CELL", "LxN", "TRAIN",
               "TEST", "pJ/CLASS", "CREATED", "JOB");
  for (const v1::Model& m : r.models()) {
    absl::PrintF(
        kRow, m.name(), absl::StrCat(m.version()), m.dataset(),
        ShortName(v1::CellType_Name(m.spec().cell()), "CELL_TYPE_"),
        absl::StrCat(m.spec().layers(), "x", m.spec().neurons()),
        absl::StrFormat("%.1f%%", 100 * m.final_train_accuracy()),
        absl::StrFormat("%.1f%%", 100 * m.final_test_accuracy()),
        absl::StrFormat("%.3g", m.energy_per_classification_joules() * 1e12),
        FormatTime(m.create_time()), m.source_job_id());
  }
}

std::string EpochHeader() {
  return absl::StrFormat("%5s  %8s  %10s  %9s  %9s  %8s  %9s  %7s  %9s",
                         "epoch", "lr", "train loss", "train acc", "test loss",
                         "test acc", "samples/s", "seconds", "pJ/sample");
}

std::string EpochRow(const v1::EpochMetrics& m) {
  return absl::StrFormat(
      "%5d  %8.2e  %10.4f  %8.1f%%  %9.4f  %7.1f%%  %9.0f  %7.1f  %9.3g",
      m.epoch(), m.learning_rate(), m.train_loss(), 100 * m.train_accuracy(),
      m.test_loss(), 100 * m.test_accuracy(), m.samples_per_second(),
      m.epoch_seconds(), m.energy_per_sample_joules() * 1e12);
}

void PrintMetrics(const v1::GetTrainingMetricsResponse& r) {
  absl::PrintF("%s\n", EpochHeader());
  for (const v1::EpochMetrics& m : r.epochs()) {
    absl::PrintF("%s\n", EpochRow(m));
  }
}

// ---- Watching a job.

// "running  epoch 3/20 [###.................]  15%  loss 0.4321  test acc
// 88.1%  ETA 2m13s"
std::string ProgressLine(const v1::TrainingJob& job) {
  constexpr int kBar = 20;
  const double progress = std::clamp(job.progress(), 0.0, 1.0);
  const int filled = static_cast<int>(progress * kBar);
  const bool running = job.state() == v1::JOB_STATE_RUNNING;
  const int epoch = running
                        ? std::min(job.epochs_done() + 1, job.epochs_total())
                        : job.epochs_done();
  std::string line =
      absl::StrFormat("%-9s epoch %d/%d [%s%s] %3.0f%%", StateName(job.state()),
                      epoch, job.epochs_total(), std::string(filled, '#'),
                      std::string(kBar - filled, '.'), 100 * progress);
  const v1::EpochMetrics& m = job.latest_epoch();
  if (m.epoch() > 0) {
    absl::StrAppendFormat(&line, "  loss %.4f  test acc %.1f%%", m.train_loss(),
                          100 * m.test_accuracy());
  }
  if (running && job.has_eta()) {
    absl::StrAppend(&line, "  ETA ", FormatDuration(job.eta().seconds()));
  }
  return line;
}

// The exit status of a watch that saw `job` last.
int JobOutcome(const v1::TrainingJob& job, bool json) {
  switch (job.state()) {
    case v1::JOB_STATE_SUCCEEDED:
      if (!json) {
        absl::PrintF(
            "job %s succeeded: model %s version %d, test accuracy %.1f%%\n",
            job.id(), job.model_name(), job.model_version(),
            100 * job.latest_epoch().test_accuracy());
      }
      return 0;
    case v1::JOB_STATE_FAILED:
      return Fail(
          absl::StrCat("job ", job.id(), " failed: ", job.failure_reason()));
    case v1::JOB_STATE_CANCELLED:
      return Fail(absl::StrCat("job ", job.id(), " was cancelled"));
    default:
      return Fail(absl::StrCat("the watch of job ", job.id(),
                               " ended while it was ", StateName(job.state())));
  }
}

// Follows a job to its end: epoch rows on stdout; on stderr a live progress
// line when it is a terminal, else a line per state change.
int WatchJob(Client& client, const std::string& job_id, bool json) {
  const bool live = !json && isatty(STDERR_FILENO);
  v1::TrainingJob job;
  bool header_shown = false;
  const absl::Status status = client.WatchTrainingJob(
      job_id, [&](const v1::WatchTrainingJobResponse& update) {
        const bool state_changed = update.job().state() != job.state();
        job = update.job();
        if (json) {
          PrintJson(update);
          return true;
        }
        if (live) absl::FPrintF(stderr, "\r\033[K");
        if (update.has_epoch()) {
          if (!header_shown) absl::PrintF("%s\n", EpochHeader());
          header_shown = true;
          absl::PrintF("%s\n", EpochRow(update.epoch()));
          std::fflush(stdout);
        }
        if (live) {
          absl::FPrintF(stderr, "%s", ProgressLine(job));
        } else if (state_changed) {
          absl::FPrintF(stderr, "job %s: %s\n", job_id, StateName(job.state()));
        }
        std::fflush(stderr);
        return true;
      });
  if (live) absl::FPrintF(stderr, "\r\033[K");
  if (!status.ok()) return Fail(status);
  return JobOutcome(job, json);
}

// ---- Commands.

int RunTrain(const Invocation& inv, Client& client) {
  v1::SubmitTrainingJobRequest request;
  request.set_dataset(inv.Get("dataset"));
  request.set_model_name(inv.Get("model"));
  request.set_request_id(inv.Get("request-id"));
  for (const auto& [flag, value] : inv.training) {
    const absl::Status set =
        api::SetSpecField(flag, value, request.mutable_spec());
    if (!set.ok()) return UsageFail(set.message());
  }
  const absl::StatusOr<v1::TrainingJob> job = client.SubmitTrainingJob(request);
  if (!inv.Has("watch")) return Show(job, inv, PrintJob);
  if (!job.ok()) return Fail(job.status());
  if (inv.json()) {
    PrintJson(*job);
  } else {
    absl::PrintF("submitted job %s\n", job->id());
    std::fflush(stdout);
  }
  return WatchJob(client, job->id(), inv.json());
}

int RunJobs(const Invocation& inv, Client& client) {
  v1::ListTrainingJobsRequest request;
  if (inv.Has("state")) {
    v1::JobState state;
    const std::string name = inv.Get("state");
    if (!v1::JobState_Parse("JOB_STATE_" + absl::AsciiStrToUpper(name),
                            &state) ||
        state == v1::JOB_STATE_UNSPECIFIED) {
      return UsageFail(absl::StrCat(
          "--state: '", name,
          "' is not queued, running, succeeded, failed or cancelled"));
    }
    request.set_state(state);
  }
  do {
    const absl::StatusOr<v1::ListTrainingJobsResponse> page =
        client.ListTrainingJobs(request);
    if (!page.ok()) return Fail(page.status());
    if (inv.json()) {
      PrintJson(*page);
    } else {
      if (request.page_token().empty()) {
        absl::PrintF(kJobRow, "ID", "STATE", "MODEL", "DATASET", "EPOCHS",
                     "DONE", "CREATED");
      }
      PrintJobRows(*page);
    }
    request.set_page_token(page->next_page_token());
  } while (!request.page_token().empty());
  return 0;
}

int RunJob(const Invocation& inv, Client& client) {
  v1::GetTrainingJobRequest request;
  request.set_job_id(inv.args[0]);
  return Show(client.GetTrainingJob(request), inv, PrintJob);
}

int RunCancel(const Invocation& inv, Client& client) {
  v1::CancelTrainingJobRequest request;
  request.set_job_id(inv.args[0]);
  return Show(client.CancelTrainingJob(request), inv, PrintJob);
}

int RunWatch(const Invocation& inv, Client& client) {
  return WatchJob(client, inv.args[0], inv.json());
}

// "data/train.csv.gz" -> "train".
std::string DatasetNameOf(absl::string_view path) {
  path = path.substr(path.rfind('/') + 1);  // npos + 1 == 0
  absl::ConsumeSuffix(&path, ".gz");
  absl::ConsumeSuffix(&path, ".csv");
  return std::string(path);
}

int RunUpload(const Invocation& inv, Client& client) {
  const std::string& path = inv.args[0];
  const absl::StatusOr<std::string> bytes = ReadFile(path);
  if (!bytes.ok()) return Fail(bytes.status());
  return Show(client.UploadDataset(inv.Get("name", DatasetNameOf(path)),
                                   inv.Int("input-dim", 1), *bytes),
              inv, PrintDataset);
}

int RunDatasets(const Invocation& inv, Client& client) {
  return Show(client.ListDatasets(v1::ListDatasetsRequest()), inv,
              PrintDatasets);
}

int RunDeleteDataset(const Invocation& inv, Client& client) {
  v1::DeleteDatasetRequest request;
  request.set_name(inv.args[0]);
  const absl::StatusOr<v1::DeleteDatasetResponse> r =
      client.DeleteDataset(request);
  if (!r.ok()) return Fail(r.status());
  if (!inv.json()) absl::PrintF("deleted dataset %s\n", request.name());
  return 0;
}

int RunDeleteModel(const Invocation& inv, Client& client) {
  v1::DeleteModelRequest request;
  request.set_name(inv.args[0]);
  int version = 0;
  if (!absl::SimpleAtoi(inv.args[1], &version) || version < 1) {
    return UsageFail(
        absl::StrCat("VERSION '", inv.args[1], "' is not a number >= 1"));
  }
  request.set_version(version);
  const absl::StatusOr<v1::DeleteModelResponse> r = client.DeleteModel(request);
  if (!r.ok()) return Fail(r.status());
  if (!inv.json()) {
    absl::PrintF("deleted model %s version %d\n", request.name(), version);
  }
  return 0;
}

int RunModels(const Invocation& inv, Client& client) {
  v1::ListModelsRequest request;
  if (!inv.args.empty()) request.set_name(inv.args[0]);
  return Show(client.ListModels(request), inv, PrintModels);
}

// The rows of the CSV file at `path` as `model` reads them: labelled when
// every row's label is one of the model's classes, else bare values. A row
// of bare values can pass for a labelled one when its first value happens
// to be a class label; the model's sequence length tells the two apart.
absl::StatusOr<Dataset> LoadRows(const std::string& path,
                                 const v1::Model& model) {
  const auto fits = [&model](const absl::StatusOr<Dataset>& rows) {
    return rows.ok() && (model.sequence_steps() == 0 ||
                         rows->steps == model.sequence_steps());
  };
  CsvOptions options;
  options.input_dim = model.input_dim();
  options.known_labels.assign(model.class_labels().begin(),
                              model.class_labels().end());
  absl::StatusOr<Dataset> labelled = LoadCsv(path, options);
  if (fits(labelled)) return labelled;
  if (!labelled.ok() && !absl::IsInvalidArgument(labelled.status())) {
    return labelled.status();  // the file, not its contents
  }
  options.known_labels.clear();
  options.unlabelled = true;
  absl::StatusOr<Dataset> bare = LoadCsv(path, options);
  if (fits(bare)) return bare;
  // Neither fits the model's sequence length: the server says what it
  // makes of the one that parses.
  if (labelled.ok()) return labelled;
  if (bare.ok()) return bare;
  return absl::InvalidArgumentError(
      absl::StrCat("as labelled rows: ", labelled.status().message(),
                   "; as unlabelled rows: ", bare.status().message()));
}

int RunClassify(const Invocation& inv, Client& client) {
  v1::GetModelRequest get;
  get.set_name(inv.Get("model"));
  get.set_version(inv.Int("version", 0));
  const absl::StatusOr<v1::Model> model = client.GetModel(get);
  if (!model.ok()) return Fail(model.status());
  const absl::StatusOr<Dataset> rows = LoadRows(inv.args[0], *model);
  if (!rows.ok()) return Fail(rows.status());
  const bool labelled = !rows->labels.empty() && rows->labels[0] >= 0;

  v1::ClassifyRequest request;
  request.set_model(model->name());
  request.set_version(model->version());  // the one whose labels we read
  const Index n = rows->size(), length = rows->values.rows();
  int correct = 0;
  for (Index first = 0; first < n; first += kClassifyBatch) {
    const Index count = std::min<Index>(kClassifyBatch, n - first);
    request.clear_sequences();
    for (Index i = first; i < first + count; ++i) {
      const double* values = rows->values.col(i).data();
      request.add_sequences()->mutable_values()->Add(values, values + length);
    }
    const absl::StatusOr<v1::ClassifyResponse> response =
        client.Classify(request);
    if (!response.ok()) return Fail(response.status());
    if (response->results_size() != count) {
      return Fail(absl::InternalError(
          absl::StrFormat("the server answered %d of %d sequences",
                          response->results_size(), count)));
    }
    if (inv.json()) PrintJson(*response);
    for (int j = 0; j < count; ++j) {
      const v1::Classification& c = response->results(j);
      const std::string* truth =
          labelled ? &rows->class_labels[rows->labels[first + j]] : nullptr;
      correct += truth != nullptr && c.label() == *truth;
      if (!inv.json()) {
        absl::PrintF("row %d: %s%s\n", first + j + 1, Describe(c),
                     Mismatch(c.label(), truth));
      }
    }
  }
  if (labelled && !inv.json()) {
    absl::PrintF("accuracy: %.1f%% (%d/%d)\n", 100.0 * correct / n, correct, n);
  }
  return 0;
}

// ---- Streaming.

// After its replica is lost, `spinnet stream` tries this long to open a new
// stream, pausing between tries from kFirstBackoff doubling to kMaxBackoff.
constexpr absl::Duration kReconnectFor = absl::Seconds(30);
constexpr absl::Duration kFirstBackoff = absl::Milliseconds(100);
constexpr absl::Duration kMaxBackoff = absl::Seconds(2);

// "UNAVAILABLE: Socket closed"
std::string StatusText(const absl::Status& status) {
  return absl::StrCat(absl::StatusCodeToString(status.code()), ": ",
                      status.message());
}

// What `spinnet stream` counted, for its summary and exit status.
struct StreamTally {
  int finals = 0, correct = 0;  // answers to labelled sequences
  int errors = 0;               // in-band errors
  bool closed = false;          // the server closed the stream
};

// The streaming session of `spinnet stream`, across replicas. A stream stays
// on the replica it opened on; when it ends UNAVAILABLE (its replica was
// lost) while input or answers are still due, a new stream is opened on the
// same model version (the channel's round_robin picks a live replica) and
// the sequences still waiting for their final answers are sent again from
// their first steps. Sequences are numbered across streams.
//
// One thread sends (AddLabel, SendSteps, WritesDone); one reads (ReadAll),
// and reconnects. On a new stream a short-lived thread sends the unfinished
// sequences again while the reading thread takes their answers: were nobody
// reading, the server's backpressure could block that sending for ever.
class FailoverStream {
 public:
  FailoverStream(Client& client, std::unique_ptr<StreamSession> session,
                 int every, bool json)
      : client_(client),
        every_(every),
        json_(json),
        opened_(session->opened()),
        session_(std::move(session)) {}
  FailoverStream(const FailoverStream&) = delete;
  FailoverStream& operator=(const FailoverStream&) = delete;
  ~FailoverStream() {
    if (resender_.joinable()) resender_.join();
  }

  // What the first stream opened; later ones open the same model version.
  const v1::StreamOpened& opened() const { return opened_; }

  // ---- The sending thread.

  // The true label of the next sequence: its final answer is checked.
  void AddLabel(std::string label) {
    std::lock_guard<std::mutex> lock(mu_);
    labels_.push_back(std::move(label));
  }

  // Sends time steps, and keeps them until their sequence's final answer
  // arrives. Waits while a new stream is being opened. UNAVAILABLE once the
  // stream has ended for good (ReadAll says why).
  absl::Status SendSteps(absl::Span<const double> values,
                         bool end_of_sequence) {
    for (;;) {
      std::unique_lock<std::mutex> write_lock(write_mu_);
      std::unique_lock<std::mutex> lock(mu_);
      if (ended_) return absl::UnavailableError("the stream has ended");
      if (!broken_) {
        pending_.push_back({std::vector<double>(values.begin(), values.end()),
                            end_of_sequence});
        lock.unlock();
        // Fails once the stream has ended: the reading thread then sends
        // these steps again on a new stream, or ends.
        session_->SendSteps(values, end_of_sequence).IgnoreError();
        return absl::OkStatus();
      }
      // Off the ended stream until the next one has its resent steps.
      write_lock.unlock();
      cv_.wait(lock, [this] { return !broken_ || ended_; });
    }
  }

  // No more input: the server ends the stream after its last answers.
  void WritesDone() {
    std::lock_guard<std::mutex> write_lock(write_mu_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      input_done_ = true;
      if (broken_) return;  // the next stream, if any, hears it in Resend
    }
    session_->WritesDone().IgnoreError();  // an ended stream tells Finish
  }

  // ---- The reading thread.

  // Prints the answers until the last stream ends; returns its status.
  absl::Status ReadAll() {
    for (;;) {
      // session_ is replaced on this thread only, below.
      for (;;) {
        const absl::StatusOr<std::optional<v1::StreamClassifyResponse>>
            message = session_->Read();
        if (!message.ok() || !message->has_value()) break;
        std::lock_guard<std::mutex> lock(mu_);
        TakeLocked(**message);
      }
      // The stream has ended; a resend on it fails at once.
      if (resender_.joinable()) resender_.join();
      {
        std::lock_guard<std::mutex> write_lock(write_mu_);
        std::lock_guard<std::mutex> lock(mu_);
        broken_ = true;  // the sending thread keeps off the ended stream
      }
      const absl::Status status = session_->Finish();
      {
        std::lock_guard<std::mutex> lock(mu_);
        // Once all input is sent and answered there is nothing to redo.
        if (!absl::IsUnavailable(status) || (input_done_ && pending_.empty())) {
          return EndLocked(status);
        }
      }
      absl::StatusOr<std::unique_ptr<StreamSession>> next = Reopen(status);
      std::lock_guard<std::mutex> lock(mu_);
      if (!next.ok()) return EndLocked(next.status());
      session_ = *std::move(next);
      base_ = answered_;  // the new stream's sequence 0
      std::vector<SentSteps> resend(pending_.begin(), pending_.end());
      absl::FPrintF(stderr,
                    "spinnet: stream: replica lost (%s); reconnected%s\n",
                    StatusText(status), Restarted(resend));
      std::fflush(stderr);
      resender_ = std::thread(&FailoverStream::Resend, this, std::move(resend));
    }
  }

  // After both threads are done.
  const StreamTally& tally() const { return tally_; }

 private:
  struct SentSteps {
    std::vector<double> values;
    bool end_of_sequence;
  };

  absl::Status EndLocked(absl::Status status) {
    ended_ = true;
    cv_.notify_all();
    return status;
  }

  // ", sequence 3 restarted from its first step"; "" for none.
  std::string Restarted(const std::vector<SentSteps>& steps) const {
    int64_t sequences = 0;
    for (const SentSteps& s : steps) sequences += s.end_of_sequence;
    if (!steps.empty() && !steps.back().end_of_sequence) ++sequences;
    if (sequences == 0) return "";
    if (sequences == 1) {
      return absl::StrCat(", sequence ", base_,
                          " restarted from its first step");
    }
    return absl::StrCat(", sequences ", base_, " to ", base_ + sequences - 1,
                        " restarted from their first steps");
  }

  // Opens a stream on another replica, retrying while none is reachable.
  absl::StatusOr<std::unique_ptr<StreamSession>> Reopen(
      const absl::Status& lost) {
    const absl::Time give_up = absl::Now() + kReconnectFor;
    absl::Duration backoff = kFirstBackoff;
    for (;;) {
      absl::StatusOr<std::unique_ptr<StreamSession>> next =
          client_.OpenStream(opened_.model(), opened_.version(), every_);
      absl::Status status = next.status();
      if (next.ok()) {
        const v1::StreamOpened& o = (*next)->opened();
        if (o.input_dim() == opened_.input_dim() &&
            std::equal(o.class_labels().begin(), o.class_labels().end(),
                       opened_.class_labels().begin(),
                       opened_.class_labels().end())) {
          return next;
        }
        status = absl::FailedPreconditionError(absl::StrCat(
            "the new stream's model ", o.model(), " version ", o.version(),
            " takes ", o.input_dim(), " value(s) per step and classes ",
            absl::StrJoin(o.class_labels(), " "), ", unlike the first's"));
      } else if (absl::IsUnavailable(status) &&
                 absl::Now() + backoff < give_up) {
        absl::SleepFor(backoff);
        backoff = std::min(2 * backoff, kMaxBackoff);
        continue;
      }
      return absl::Status(
          status.code(),
          absl::StrCat("stream: replica lost (", StatusText(lost),
                       "); no new stream on model ", opened_.model(),
                       " version ", opened_.version(),
                       absl::IsUnavailable(status)
                           ? absl::StrCat(" within ",
                                          absl::FormatDuration(kReconnectFor))
                           : "",
                       ": ", status.message()));
    }
  }

  // Sends the unfinished sequences again on the new stream.
  void Resend(std::vector<SentSteps> steps) {
    std::lock_guard<std::mutex> write_lock(write_mu_);
    for (const SentSteps& s : steps) {
      // Fails once this stream has ended too; the reading thread sees why.
      if (!session_->SendSteps(s.values, s.end_of_sequence).ok()) break;
    }
    bool input_done;
    {
      std::lock_guard<std::mutex> lock(mu_);
      broken_ = false;
      input_done = input_done_;
    }
    cv_.notify_all();
    if (input_done) session_->WritesDone().IgnoreError();
  }

  void TakeLocked(const v1::StreamClassifyResponse& m) {
    switch (m.kind_case()) {
      case v1::StreamClassifyResponse::kAnswer: {
        const v1::StreamAnswer& a = m.answer();
        const v1::Classification& c = a.classification();
        const int64_t sequence = base_ + a.sequence();
        if (a.final()) {
          ++answered_;
          // The steps of the sequence are no longer needed.
          while (!pending_.empty()) {
            const bool last = pending_.front().end_of_sequence;
            pending_.pop_front();
            if (last) break;
          }
        }
        const std::string* truth =
            a.final() && sequence >= 0 &&
                    sequence < static_cast<int64_t>(labels_.size())
                ? &labels_[sequence]
                : nullptr;
        if (truth != nullptr) {
          ++tally_.finals;
          tally_.correct += c.label() == *truth;
        }
        if (json_) {
          v1::StreamClassifyResponse numbered = m;
          numbered.mutable_answer()->set_sequence(sequence);
          PrintJson(numbered);
        } else {
          absl::PrintF("sequence %d (%s, %d steps): %s%s\n", sequence,
                       a.final() ? "final" : "provisional", c.steps(),
                       Describe(c), Mismatch(c.label(), truth));
          std::fflush(stdout);
        }
        return;
      }
      case v1::StreamClassifyResponse::kError:
        if (json_) PrintJson(m);
        ++tally_.errors;
        Fail(StreamErrorStatus(m.error()));
        return;
      case v1::StreamClassifyResponse::kClosed:
        if (json_) PrintJson(m);
        tally_.closed = true;
        Fail(absl::StrCat("the server closed the stream: ",
                          m.closed().reason()));
        return;
      default:
        if (json_) PrintJson(m);
        return;
    }
  }

  Client& client_;
  const int every_;
  const bool json_;
  const v1::StreamOpened opened_;
  // Replaced by the reading thread only, while broken_; used by the sending
  // thread only under write_mu_ while not broken_.
  std::unique_ptr<StreamSession> session_;
  std::thread resender_;  // of the reading thread

  // Held while sending on session_: the sending thread's steps, a resend,
  // or marking the stream broken. Taken before mu_.
  std::mutex write_mu_;
  std::mutex mu_;
  std::condition_variable cv_;       // broken_ or ended_ changed
  std::deque<SentSteps> pending_;    // sent; their final answer not yet in
  std::vector<std::string> labels_;  // by sequence number
  int64_t answered_ = 0;             // final answers so far
  int64_t base_ = 0;         // the number of the current stream's sequence 0
  bool broken_ = false;      // session_ ended; a new one may come
  bool ended_ = false;       // no more streams
  bool input_done_ = false;  // WritesDone was called
  StreamTally tally_;
};

// Sends `in` over the stream: one time step per line and an empty line
// after each sequence, or with `sequences` one labelled CSV row per line.
absl::Status SendInput(std::istream& in, FailoverStream& stream,
                       bool sequences) {
  const int d = stream.opened().input_dim();
  CsvOptions options;
  options.input_dim = d;
  options.unlabelled = !sequences;
  // A step waits for the next line, which says whether it ends a sequence.
  std::vector<double> held;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const absl::string_view text = absl::StripAsciiWhitespace(line);
    if (text.empty() && !held.empty()) {
      RETURN_IF_ERROR(stream.SendSteps(held, /*end_of_sequence=*/true));
      held.clear();
    }
    if (text.empty() || text[0] == '#') continue;
    const absl::StatusOr<Dataset> row = ParseCsv(text, options, "stdin");
    if (!row.ok()) {
      // ParseCsv numbers the lines of its input, here always line 1.
      return absl::InvalidArgumentError(absl::StrCat(
          "stdin line ", number, ": ",
          absl::StripPrefix(
              absl::StripPrefix(row.status().message(), "line 1, "),
              "line 1: ")));
    }
    const double* values = row->values.data();  // one column
    const Index count = row->values.rows();
    if (!sequences) {
      if (!held.empty()) RETURN_IF_ERROR(stream.SendSteps(held, false));
      held.assign(values, values + count);
      continue;
    }
    stream.AddLabel(row->class_labels[row->labels[0]]);
    for (Index k = 0; k < count; k += d) {
      RETURN_IF_ERROR(
          stream.SendSteps(absl::MakeConstSpan(values + k, d), k + d == count));
    }
  }
  if (!held.empty()) RETURN_IF_ERROR(stream.SendSteps(held, true));
  return absl::OkStatus();
}

int RunStream(const Invocation& inv, Client& client) {
  absl::StatusOr<std::unique_ptr<StreamSession>> opened = client.OpenStream(
      inv.Get("model"), inv.Int("version", 0), inv.Int("every", 0));
  if (!opened.ok()) return Fail(opened.status());
  if (inv.json()) {
    v1::StreamClassifyResponse message;
    *message.mutable_opened() = (*opened)->opened();
    PrintJson(message);
  } else {
    const v1::StreamOpened& o = (*opened)->opened();
    absl::FPrintF(stderr,
                  "streaming to model %s version %d: %d value(s) per step, "
                  "classes %s\n",
                  o.model(), o.version(), o.input_dim(),
                  absl::StrJoin(o.class_labels(), " "));
  }

  FailoverStream stream(client, *std::move(opened), inv.Int("every", 0),
                        inv.json());
  absl::Status finished;
  std::thread reader([&stream, &finished] { finished = stream.ReadAll(); });
  const absl::Status sent = SendInput(std::cin, stream, inv.Has("sequences"));
  stream.WritesDone();
  reader.join();
  if (!finished.ok()) return Fail(finished);
  const StreamTally& tally = stream.tally();
  // After the server closed the stream, failed sends say nothing new.
  if (!sent.ok() && !(tally.closed && absl::IsUnavailable(sent))) {
    return Fail(sent);
  }
  if (tally.finals > 0 && !inv.json()) {
    absl::PrintF("accuracy: %.1f%% (%d/%d)\n",
                 100.0 * tally.correct / tally.finals, tally.correct,
                 tally.finals);
  }
  return tally.errors > 0 || tally.closed ? kExitError : 0;
}

int RunMetrics(const Invocation& inv, Client& client) {
  v1::GetTrainingMetricsRequest request;
  request.set_job_id(inv.args[0]);
  return Show(client.GetTrainingMetrics(request), inv, PrintMetrics);
}

int RunHealth(const Invocation& inv, Client& client) {
  const absl::StatusOr<bool> serving =
      client.Health(inv.args.empty() ? "" : inv.args[0]);
  if (!serving.ok()) return Fail(serving.status());
  if (!*serving) return Fail("the server is not serving");
  absl::PrintF("%s\n", inv.json() ? "{\"status\":\"SERVING\"}" : "SERVING");
  return 0;
}

const std::vector<Command>& Commands() {
  const FlagSpec model = {"model", Kind::kText, "NAME", "the model",
                          /*required=*/true};
  const FlagSpec version = {"version", Kind::kInt, "V",
                            "the model's version (default: the latest)"};
  // "datasets upload" before "datasets": the first whose words match wins.
  static const std::vector<Command>* commands = new std::vector<Command>{
      {"train",
       "--dataset NAME --model NAME [training flags] [--request-id ID] "
       "[--watch]",
       "Submits a training job: the network trains on the dataset and is\n"
       "published as a new version of the model. Prints the job; with\n"
       "--watch, follows it as 'spinnet watch' does.",
       {{"dataset", Kind::kText, "NAME",
         "dataset to train on: digits or an uploaded one", true},
        {"model", Kind::kText, "NAME",
         "model to publish the trained network as", true},
        {"request-id", Kind::kText, "ID",
         "idempotency key: submitting it again returns the first job"},
        {"watch", Kind::kSwitch, "", "follow the job until it ends"}},
       true,
       0,
       0,
       RunTrain},
      {"jobs",
       "[--state STATE]",
       "Lists training jobs, newest first.",
       {{"state", Kind::kText, "STATE",
         "only jobs that are queued, running, succeeded, failed or "
         "cancelled"}},
       false,
       0,
       0,
       RunJobs},
      {"job", "ID", "Shows a training job.", {}, false, 1, 1, RunJob},
      {"cancel",
       "ID",
       "Cancels a queued or running job and shows it.",
       {},
       false,
       1,
       1,
       RunCancel},
      {"watch",
       "ID",
       "Follows a job until it ends: a row per finished epoch on stdout; on\n"
       "stderr a live progress line (epoch, loss, test accuracy, progress,\n"
       "ETA) if it is a terminal, else a line per state change. Exits 1 if\n"
       "the job fails (printing why) or is cancelled.",
       {},
       false,
       1,
       1,
       RunWatch},
      {"datasets upload",
       "FILE [--name NAME] [--input-dim D]",
       "Uploads a CSV dataset: one sequence per line, its label then K*d\n"
       "values (step k's d values at k*d+1 .. k*d+d).",
       {{"name", Kind::kText, "NAME",
         "dataset name (default: FILE's name without .csv/.gz)"},
        {"input-dim", Kind::kInt, "D", "values per time step d (default 1)"}},
       false,
       1,
       1,
       RunUpload},
      {"datasets delete",
       "NAME",
       "Deletes an uploaded dataset (jobs already training on it go on).",
       {},
       false,
       1,
       1,
       RunDeleteDataset},
      {"datasets", "", "Lists the datasets.", {}, false, 0, 0, RunDatasets},
      {"models delete",
       "NAME VERSION",
       "Deletes one version of a model; streams open on it keep running,\n"
       "every replica stops serving it at once.",
       {},
       false,
       2,
       2,
       RunDeleteModel},
      {"models",
       "[NAME]",
       "Lists the models (or the versions of NAME).",
       {},
       false,
       0,
       1,
       RunModels},
      {"classify",
       "--model NAME [--version V] FILE.csv",
       "Classifies every row of FILE.csv, 256 sequences per call, and prints\n"
       "each answer. Rows are a label then K*d values, or the values alone;\n"
       "if every row's label is one of the model's, prints the accuracy.",
       {model, version},
       false,
       1,
       1,
       RunClassify},
      {"stream",
       "--model NAME [--version V] [--every K] [--sequences]",
       "Classifies stdin over a streaming session, printing answers as they\n"
       "arrive. Each line is one time step of d comma-separated values; an\n"
       "empty line (or the end of input) ends a sequence. A step is sent\n"
       "when the next line shows whether it ends its sequence. If the\n"
       "server replica is lost, reconnects (to another replica, trying for\n"
       "up to 30 s) and sends the unfinished sequences again from their\n"
       "first steps; sequence numbers go on across reconnections.",
       {model,
        version,
        {"every", Kind::kInt, "K",
         "also answer provisionally every K steps (default 0: only at the "
         "end of each sequence)"},
        {"sequences", Kind::kSwitch, "",
         "each line is a whole labelled CSV row, streamed a step per "
         "message; prints the accuracy at the end"}},
       false,
       0,
       0,
       RunStream},
      {"metrics",
       "JOB",
       "Prints a job's metrics, a row per epoch.",
       {},
       false,
       1,
       1,
       RunMetrics},
      {"health",
       "[SERVICE]",
       "Asks grpc.health.v1 whether the server (or SERVICE) is serving; exits\n"
       "0 if it is.",
       {},
       false,
       0,
       1,
       RunHealth},
  };
  return *commands;
}

// The kind of flag `name` is, wherever it applies; nullopt if unknown.
std::optional<Kind> FlagKind(const std::string& name) {
  for (const FlagSpec& f : kGlobalFlags) {
    if (name == f.name) return f.kind;
  }
  for (const Command& c : Commands()) {
    for (const FlagSpec& f : c.flags) {
      if (name == f.name) return f.kind;
    }
  }
  if (const TrainingFlag* t = FindTrainingFlag(name)) {
    return t->is_bool ? Kind::kSwitch : Kind::kText;
  }
  return std::nullopt;
}

bool Applies(const std::string& name, const Command& command) {
  for (const FlagSpec& f : kGlobalFlags) {
    if (name == f.name) return true;
  }
  for (const FlagSpec& f : command.flags) {
    if (name == f.name) return true;
  }
  return command.training_flags && FindTrainingFlag(name) != nullptr;
}

absl::Status CheckValue(const std::string& name, Kind kind,
                        const std::string& value) {
  int i;
  double d;
  if (kind == Kind::kInt && !absl::SimpleAtoi(value, &i)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": '", value, "' is not an integer"));
  }
  if (kind == Kind::kSeconds && !(absl::SimpleAtod(value, &d) && d > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", name, ": '", value, "' is not a positive number of seconds"));
  }
  return absl::OkStatus();
}

const Command* FindCommand(const std::vector<std::string>& words,
                           size_t* used) {
  for (const Command& c : Commands()) {
    const std::vector<std::string> name = absl::StrSplit(c.name, ' ');
    if (name.size() <= words.size() &&
        std::equal(name.begin(), name.end(), words.begin())) {
      *used = name.size();
      return &c;
    }
  }
  return nullptr;
}

// Global flags may come before or after the command; "--name value" and
// "--name=value" are the same.
absl::StatusOr<Invocation> ParseCommandLine(int argc, char** argv) {
  Invocation inv;
  std::vector<std::string> words;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = std::string(argv[i]) == "-h" ? "--help" : argv[i];
    if (arg.size() < 2 || arg[0] != '-') {
      words.push_back(arg);
      continue;
    }
    if (!absl::StartsWith(arg, "--")) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", arg));
    }
    std::string name = arg.substr(2), value;
    const size_t eq = name.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    const std::optional<Kind> kind = FlagKind(name);
    const bool training = FindTrainingFlag(name) != nullptr;
    if (!kind.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    if (*kind == Kind::kSwitch && inline_value && !training) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " takes no value"));
    }
    if (*kind != Kind::kSwitch && !inline_value) {
      if (++i == argc) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " needs a value"));
      }
      value = argv[i];
    }
    RETURN_IF_ERROR(CheckValue(name, *kind, value));
    if (!inv.flags.emplace(name, value).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " is given twice"));
    }
    if (training) inv.training.emplace_back(name, value);
  }
  if (words.empty()) return inv;  // only --help makes sense

  size_t used = 0;
  inv.command = FindCommand(words, &used);
  if (inv.command == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown command '", words[0], "'"));
  }
  const Command& c = *inv.command;
  inv.args.assign(words.begin() + used, words.end());
  for (const auto& [name, value] : inv.flags) {
    if (!Applies(name, c)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", name, " does not apply to 'spinnet ", c.name, "'"));
    }
  }
  if (inv.Has("help")) return inv;
  const int args = static_cast<int>(inv.args.size());
  if (args < c.min_args || args > c.max_args) {
    return absl::InvalidArgumentError(
        absl::StrCat("usage: spinnet ", c.name, " ", c.usage));
  }
  for (const FlagSpec& f : c.flags) {
    if (f.required && !inv.Has(f.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(c.name, " needs --", f.name, " ", f.value));
    }
  }
  return inv;
}

// ---- Help.

void PrintFlag(absl::string_view indent, absl::string_view name,
               absl::string_view value, absl::string_view help) {
  absl::PrintF("%s--%-24s %s\n", indent,
               absl::StrCat(name, value.empty() ? "" : " ", value), help);
}

void PrintFlags(absl::string_view indent, const std::vector<FlagSpec>& flags) {
  for (const FlagSpec& f : flags) PrintFlag(indent, f.name, f.value, f.help);
}

void PrintTrainingFlags() {
  absl::PrintF(
      "\ntraining flags (as spinnet-train's; unset ones take the cell's "
      "default, in brackets):\n");
  for (const TrainingFlag& f : TrainingFlags()) {
    PrintFlag("  ", f.name, f.is_bool ? "" : "VALUE",
              absl::StrCat(f.help, " [", DefaultsText(f), "]"));
  }
}

void PrintGlobalFlagsAndExit() {
  absl::PrintF("\nglobal flags (before or after the command):\n");
  for (const FlagSpec& f : kGlobalFlags) {
    PrintFlag("  ", f.name, f.value, f.help);
  }
  absl::PrintF(
      "\nexit status: 0 success; 1 error (RPC, file, a watched job failed or "
      "was cancelled); 2 bad usage\n");
}

std::string Indent(absl::string_view text, absl::string_view indent) {
  return absl::StrCat(
      indent, absl::StrReplaceAll(text, {{"\n", absl::StrCat("\n", indent)}}));
}

void PrintHelp(const Command* command) {
  if (command != nullptr) {
    absl::PrintF("usage: spinnet %s\n%s\n",
                 absl::StripTrailingAsciiWhitespace(
                     absl::StrCat(command->name, " ", command->usage)),
                 command->help);
    if (!command->flags.empty()) absl::PrintF("\nflags:\n");
    PrintFlags("  ", command->flags);
    if (command->training_flags) PrintTrainingFlags();
    PrintGlobalFlagsAndExit();
    return;
  }
  absl::PrintF(
      "usage: spinnet [global flags] COMMAND [flags] [arguments]\n"
      "Talks to a spinnet server: trains spintronic recurrent networks on its\n"
      "datasets and classifies time series with the models they publish.\n"
      "'spinnet COMMAND --help' shows one command.\n\ncommands:\n");
  bool training_flags = false;
  for (const Command& c : Commands()) {
    absl::PrintF(
        "  spinnet %s\n%s\n",
        absl::StripTrailingAsciiWhitespace(absl::StrCat(c.name, " ", c.usage)),
        Indent(c.help, "      "));
    PrintFlags("      ", c.flags);
    training_flags |= c.training_flags;
  }
  if (training_flags) PrintTrainingFlags();
  PrintGlobalFlagsAndExit();
}

// ---- main.

absl::StatusOr<ClientOptions> MakeClientOptions(const Invocation& inv) {
  ClientOptions options;
  const char* env = std::getenv("SPINNET_SERVER");
  options.target =
      inv.Get("server", env != nullptr && *env != '\0' ? env : kDefaultServer);
  options.tls_ca_file = inv.Get("tls-ca");
  options.tls_cert_file = inv.Get("tls-cert");
  options.tls_key_file = inv.Get("tls-key");
  options.deadline = absl::Seconds(inv.Seconds("timeout", 30));
  if (inv.Has("token-file")) {
    const std::string path = inv.Get("token-file");
    ASSIGN_OR_RETURN(const std::string text, ReadFile(path));
    options.token = std::string(absl::StripAsciiWhitespace(text));
    if (options.token.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("token file ", path, " is empty"));
    }
  }
  return options;
}

int Main(int argc, char** argv) {
  const absl::StatusOr<Invocation> inv = ParseCommandLine(argc, argv);
  if (!inv.ok()) return UsageFail(inv.status().message());
  if (inv->Has("help")) {
    PrintHelp(inv->command);
    return 0;
  }
  if (inv->command == nullptr) return UsageFail("no command given");
  const absl::StatusOr<ClientOptions> options = MakeClientOptions(*inv);
  if (!options.ok()) return Fail(options.status());
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(*options);
  // Connect rejects only inconsistent TLS flags, or PEM files it cannot read.
  if (absl::IsInvalidArgument(client.status())) {
    return UsageFail(client.status().message());
  }
  if (!client.ok()) return Fail(client.status());
  return inv->command->run(*inv, **client);
}

}  // namespace
}  // namespace spinnet::client

int main(int argc, char** argv) { return spinnet::client::Main(argc, argv); }
