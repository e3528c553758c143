// Commands of datasets: datasets, datasets upload, datasets delete.
#include "client/cli.h"
#include "client/output.h"
#include <string>
#include <vector>
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "core/file_util.h"
#include "core/status_macros.h"

namespace spinnet::client {
namespace {

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


}  // namespace

const std::vector<Command>& DatasetCommands() {
  static const std::vector<Command>* commands = new std::vector<Command>{
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
  };
  return *commands;
}

}  // namespace spinnet::client
