// Commands of models: models, models delete, models export, models import.
#include "client/cli.h"
#include "client/output.h"
#include <string>
#include <vector>
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/strings/numbers.h"
#include "core/file_util.h"

namespace spinnet::client {
namespace {

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

int RunExportModel(const Invocation& inv, Client& client) {
  v1::ExportModelRequest request;
  request.set_name(inv.args[0]);
  request.set_version(inv.Int("version", 0));
  if (request.version() < 0) {
    return UsageFail(absl::StrCat("--version ", request.version(),
                                  " is not a number >= 1 (or 0: the latest)"));
  }
  const std::string out = inv.Get("out");
  const absl::StatusOr<ModelFile> file = client.ExportModel(request);
  if (!file.ok()) return Fail(file.status());
  // Atomically: an interrupted export never leaves half a model behind.
  if (absl::Status s = WriteFileAtomically(out, file->bytes); !s.ok()) {
    return Fail(s);
  }
  if (inv.json()) {
    PrintJson(file->model);
  } else {
    absl::PrintF("exported model %s version %d to %s (%s)\n",
                 file->model.name(), file->model.version(), out,
                 FormatBytes(static_cast<int64_t>(file->bytes.size())));
  }
  return 0;
}

int RunImportModel(const Invocation& inv, Client& client) {
  const std::string& path = inv.args[1];
  const absl::StatusOr<std::string> bytes = ReadFile(path);
  if (!bytes.ok()) return Fail(bytes.status());
  return Show(client.ImportModel(inv.args[0], *bytes), inv,
              [&](const v1::Model& m) {
                absl::PrintF("imported %s as model %s version %d\n", path,
                             m.name(), m.version());
              });
}

int RunModels(const Invocation& inv, Client& client) {
  v1::ListModelsRequest request;
  if (!inv.args.empty()) request.set_name(inv.args[0]);
  return Show(client.ListModels(request), inv, PrintModels);
}


}  // namespace

const std::vector<Command>& ModelCommands() {
  static const std::vector<Command>* commands = new std::vector<Command>{
      {"models delete",
       "NAME VERSION",
       "Deletes one version of a model; streams open on it keep running,\n"
       "every replica stops serving it at once.",
       {},
       false,
       2,
       2,
       RunDeleteModel},
      {"models export",
       "NAME --out FILE [--version V]",
       "Writes a version's model file (checksummed, the format of\n"
       "spinnet-train --out) to FILE, byte for byte as the server stores it.",
       {{"out", Kind::kText, "FILE", "where to write the model file", true},
        {"version", Kind::kInt, "V", "the version (default: the latest)"}},
       false,
       1,
       1,
       RunExportModel},
      {"models import",
       "NAME FILE",
       "Publishes a model file (e.g. from spinnet-train --out, or an export)\n"
       "as the next version of NAME and prints that version; the server\n"
       "checks the file first and stores nothing if it is corrupt.",
       {},
       false,
       2,
       2,
       RunImportModel},
      {"models",
       "[NAME]",
       "Lists the models (or the versions of NAME).",
       {},
       false,
       0,
       1,
       RunModels},
  };
  return *commands;
}

}  // namespace spinnet::client
