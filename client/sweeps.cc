// Commands of sweeps (studies): sweep submit, list, get, cancel, watch.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/cli.h"
#include "client/output.h"
#include "core/sweep.h"

namespace spinnet::client {
namespace {

std::string SweepStateName(v1::SweepState state) {
  return ShortName(v1::SweepState_Name(state), "SWEEP_STATE_");
}

// "dt-in=0.5 cell=stno", or "(base)" for a grid without axes.
std::string PointName(const v1::SweepPoint& p) {
  if (p.settings().empty()) return "(base)";
  return absl::StrJoin(p.settings(), " ",
                       [](std::string* out, const v1::Setting& s) {
                         absl::StrAppend(out, s.flag(), "=", s.value());
                       });
}

std::string Counts(const v1::Sweep& s) {
  std::string out = absl::StrFormat(
      "%d/%d jobs done", s.jobs_succeeded() + s.jobs_failed() +
                             s.jobs_cancelled(),
      s.jobs_total());
  if (s.jobs_running() > 0) absl::StrAppend(&out, ", ", s.jobs_running(), " running");
  if (s.jobs_failed() > 0) absl::StrAppend(&out, ", ", s.jobs_failed(), " failed");
  if (s.jobs_cancelled() > 0) {
    absl::StrAppend(&out, ", ", s.jobs_cancelled(), " cancelled");
  }
  return out;
}

// The per-point table: statistics over the seeds that succeeded, which the
// SEEDS column counts ("8/10 2 failed").
std::vector<std::string> PointTable(const v1::Sweep& s) {
  size_t width = 5;
  for (const v1::SweepPoint& p : s.points()) {
    width = std::max(width, PointName(p).size());
  }
  const int w = static_cast<int>(width);
  std::vector<std::string> rows = {absl::StrFormat(
      "%-*s  %-16s %8s %8s %8s %9s", w, "POINT", "SEEDS OK", "MEDIAN", "Q25",
      "Q75", "D")};
  for (const v1::SweepPoint& p : s.points()) {
    std::string seeds = absl::StrCat(p.seeds_succeeded(), "/", p.seeds_total());
    if (p.seeds_failed() > 0) absl::StrAppend(&seeds, " ", p.seeds_failed(), " failed");
    if (p.seeds_succeeded() == 0) {
      rows.push_back(absl::StrFormat("%-*s  %-16s %8s %8s %8s %9s", w,
                                     PointName(p), seeds, "-", "-", "-", "-"));
      continue;
    }
    rows.push_back(absl::StrFormat(
        "%-*s  %-16s %7.2f%% %7.2f%% %7.2f%% %9.3g", w, PointName(p), seeds,
        100 * p.median_test_accuracy(), 100 * p.q25_test_accuracy(),
        100 * p.q75_test_accuracy(), p.mean_cumulative_drive()));
  }
  return rows;
}

void PrintSweep(const v1::Sweep& s) {
  absl::PrintF("sweep %s\n  state     %s%s\n", s.id(), SweepStateName(s.state()),
               s.cancel_requested() && s.state() != v1::SWEEP_STATE_CANCELLED
                   ? " (cancel requested)"
                   : "");
  absl::PrintF("  dataset   %s\n", s.dataset());
  absl::PrintF("  grid      %d points x %d seeds\n", s.points_size(),
               s.seeds_size());
  if (!s.fixed().empty()) {
    absl::PrintF("  fixed     %s\n",
                  absl::StrJoin(s.fixed(), " ",
                                [](std::string* out, const v1::Setting& f) {
                                  absl::StrAppend(out, "--", f.flag(), " ",
                                                  f.value());
                                }));
  }
  if (!s.model_name().empty()) absl::PrintF("  model     %s\n", s.model_name());
  absl::PrintF("  progress  %s, %.0f%%\n", Counts(s), 100 * s.progress());
  absl::PrintF("  created   %s\n", FormatTime(s.create_time()));
  if (!s.request_id().empty()) absl::PrintF("  request   %s\n", s.request_id());
  absl::PrintF("\n%s\n", absl::StrJoin(PointTable(s), "\n"));
}

constexpr char kSweepRow[] = "%-18s  %-10s  %-16s  %8s  %-22s  %s\n";

bool Ended(const v1::Sweep& s) {
  return s.state() == v1::SWEEP_STATE_DONE ||
         s.state() == v1::SWEEP_STATE_CANCELLED;
}

// Follows a sweep to its end. On a terminal, stderr shows the live
// per-point table (a summary line when the grid is taller than 40 rows);
// otherwise a line per change of the counts. Then the final table on
// stdout. Exits 1 if the sweep was cancelled.
int WatchSweep(Client& client, const std::string& id, bool json) {
  const bool live = !json && isatty(STDERR_FILENO);
  v1::Sweep last;
  int shown = 0;  // lines of the live view on screen
  std::string last_counts;
  const absl::Status status = client.WatchSweep(id, [&](const v1::Sweep& s) {
    last = s;
    if (json) {
      PrintJson(s);
      return true;
    }
    const std::string counts = absl::StrCat(
        "sweep ", s.id(), ": ", SweepStateName(s.state()), ", ", Counts(s));
    if (!live) {
      if (counts != last_counts) absl::FPrintF(stderr, "%s\n", counts);
      last_counts = counts;
      return true;
    }
    std::vector<std::string> lines = {absl::StrFormat(
        "%s, %.0f%%", counts, 100 * s.progress())};
    if (s.points_size() <= 40) {
      for (std::string& row : PointTable(s)) lines.push_back(std::move(row));
    }
    if (shown > 0) absl::FPrintF(stderr, "\033[%dA", shown);
    for (const std::string& line : lines) {
      absl::FPrintF(stderr, "\r\033[K%s\n", line);
    }
    shown = static_cast<int>(lines.size());
    std::fflush(stderr);
    return true;
  });
  if (!status.ok()) return Fail(status);
  if (json) return Ended(last) && last.state() == v1::SWEEP_STATE_DONE ? 0 : 1;
  absl::PrintF("%s\n", absl::StrJoin(PointTable(last), "\n"));
  if (last.jobs_failed() > 0) {
    absl::FPrintF(stderr,
                  "spinnet: %d jobs of sweep %s failed; each point's "
                  "statistics are over the seeds that succeeded\n",
                  last.jobs_failed(), id);
  }
  switch (last.state()) {
    case v1::SWEEP_STATE_DONE:
      return 0;
    case v1::SWEEP_STATE_CANCELLED:
      return Fail(absl::StrCat("sweep ", id, " was cancelled"));
    default:
      return Fail(absl::StrCat("the watch of sweep ", id, " ended while it was ",
                               SweepStateName(last.state())));
  }
}

int RunSweepSubmit(const Invocation& inv, Client& client) {
  v1::SubmitSweepRequest request;
  request.set_dataset(inv.Get("dataset"));
  request.set_model_name(inv.Get("model"));
  request.set_request_id(inv.Get("request-id"));
  // The grid: a training flag with a comma-separated list is an axis, as in
  // `spinnet-train --sweep`.
  std::vector<Setting> fixed;
  std::vector<SweepAxis> axes;
  SplitSweepSettings(inv.training, &fixed, &axes);
  for (const auto& [flag, value] : fixed) {
    v1::Setting* s = request.add_fixed();
    s->set_flag(flag);
    s->set_value(value);
  }
  for (const SweepAxis& axis : axes) {
    v1::SweepAxis* a = request.add_axes();
    a->set_flag(axis.flag);
    for (const std::string& v : axis.values) a->add_values(v);
  }
  const absl::StatusOr<std::vector<uint64_t>> seeds =
      ParseSeeds(inv.Get("seeds", "0"));
  if (!seeds.ok()) return UsageFail(absl::StrCat("--", seeds.status().message()));
  for (uint64_t seed : *seeds) request.add_seeds(seed);
  const absl::StatusOr<v1::Sweep> sweep = client.SubmitSweep(request);
  if (!inv.Has("watch")) return Show(sweep, inv, PrintSweep);
  if (!sweep.ok()) return Fail(sweep.status());
  if (inv.json()) {
    PrintJson(*sweep);
  } else {
    absl::PrintF("submitted sweep %s: %d points x %d seeds = %d jobs\n",
                 sweep->id(), sweep->points_size(), sweep->seeds_size(),
                 sweep->jobs_total());
    std::fflush(stdout);
  }
  return WatchSweep(client, sweep->id(), inv.json());
}

int RunSweepList(const Invocation& inv, Client& client) {
  v1::ListSweepsRequest request;
  do {
    const absl::StatusOr<v1::ListSweepsResponse> page =
        client.ListSweeps(request);
    if (!page.ok()) return Fail(page.status());
    if (inv.json()) {
      PrintJson(*page);
    } else {
      if (request.page_token().empty()) {
        absl::PrintF(kSweepRow, "ID", "STATE", "DATASET", "POINTS", "JOBS DONE",
                     "CREATED");
      }
      for (const v1::Sweep& s : page->sweeps()) {
        absl::PrintF(kSweepRow, s.id(), SweepStateName(s.state()), s.dataset(),
                     absl::StrCat(s.points_size(), "x", s.seeds_size()),
                     absl::StrCat(s.jobs_succeeded() + s.jobs_failed() +
                                      s.jobs_cancelled(),
                                  "/", s.jobs_total(),
                                  s.jobs_failed() > 0
                                      ? absl::StrCat(" (", s.jobs_failed(),
                                                     " failed)")
                                      : ""),
                     FormatTime(s.create_time()));
      }
    }
    request.set_page_token(page->next_page_token());
  } while (!request.page_token().empty());
  return 0;
}

int RunSweepGet(const Invocation& inv, Client& client) {
  v1::GetSweepRequest request;
  request.set_sweep_id(inv.args[0]);
  return Show(client.GetSweep(request), inv, PrintSweep);
}

int RunSweepCancel(const Invocation& inv, Client& client) {
  v1::CancelSweepRequest request;
  request.set_sweep_id(inv.args[0]);
  return Show(client.CancelSweep(request), inv, PrintSweep);
}

int RunSweepWatch(const Invocation& inv, Client& client) {
  return WatchSweep(client, inv.args[0], inv.json());
}

}  // namespace

const std::vector<Command>& SweepCommands() {
  static const std::vector<Command>* commands = new std::vector<Command>{
      {"sweep submit",
       "--dataset NAME [training flags, lists as a,b,c] [--seeds 0-9] "
       "[--model NAME] [--request-id ID] [--watch]",
       "Submits a sweep (a study): every combination of the comma-separated\n"
       "training flag values (e.g. --dt-in 0.2,0.5,1 --cell stno,ctrnn) is\n"
       "trained once per seed, as one training job each in the server's\n"
       "queue, which every replica's workers take from. The same grid as\n"
       "'spinnet-train --sweep'. Prints the sweep; with --watch, follows it\n"
       "as 'spinnet sweep watch' does.",
       {{"dataset", Kind::kText, "NAME",
         "dataset to train on: digits or an uploaded one", true},
        {"seeds", Kind::kText, "LIST",
         "seeds of each point: list and ranges, e.g. 0-9 or 1,5,7 (default 0)"},
        {"model", Kind::kText, "NAME",
         "publish every trained network as a version of this model (default: "
         "publish none)"},
        {"request-id", Kind::kText, "ID",
         "idempotency key: submitting it again returns the first sweep"},
        {"watch", Kind::kSwitch, "", "follow the sweep until it ends"}},
       true,
       0,
       0,
       RunSweepSubmit},
      {"sweep list", "", "Lists sweeps, newest first.", {}, false, 0, 0,
       RunSweepList},
      {"sweep get",
       "ID",
       "Shows a sweep: per point the median and 25th/75th percentiles of\n"
       "the final test accuracy over the seeds that succeeded (SEEDS OK\n"
       "counts them) and the mean cumulative drive D.",
       {},
       false,
       1,
       1,
       RunSweepGet},
      {"sweep cancel",
       "ID",
       "Cancels every queued and running job of a sweep and shows it.",
       {},
       false,
       1,
       1,
       RunSweepCancel},
      {"sweep watch",
       "ID",
       "Follows a sweep until every job has ended: on a terminal a live\n"
       "per-point table on stderr, else a line per change; then the final\n"
       "table on stdout. Exits 1 if the sweep was cancelled.",
       {},
       false,
       1,
       1,
       RunSweepWatch},
  };
  return *commands;
}

}  // namespace spinnet::client
