// Commands of training jobs: train, jobs, job, cancel, watch.
#include "client/cli.h"
#include "client/output.h"
#include <string>
#include <vector>
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/strings/numbers.h"
#include "proto/api_convert.h"
#include "core/status_macros.h"

namespace spinnet::client {
namespace {

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


}  // namespace

const std::vector<Command>& JobCommands() {
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
  };
  return *commands;
}

}  // namespace spinnet::client
