// Inference commands: classify (batched calls) and stream (a streaming
// session that fails over between replicas, client/failover_stream.h).
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/cli.h"
#include "client/failover_stream.h"
#include "client/output.h"
#include "core/dataset.h"
#include "core/status_macros.h"

namespace spinnet::client {
namespace {

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

// "A:B,C:D" as neuron selectors; "" as none (the server's default).
absl::StatusOr<std::vector<v1::NeuronSelector>> ParseNeurons(
    const std::string& text) {
  std::vector<v1::NeuronSelector> neurons;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    const std::vector<absl::string_view> parts = absl::StrSplit(item, ':');
    int layer = 0, index = 0;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &layer) ||
        !absl::SimpleAtoi(parts[1], &index)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--neurons: '", item, "' is not LAYER:INDEX (e.g. 2:0,2:5)"));
    }
    neurons.emplace_back();
    neurons.back().set_layer(layer);
    neurons.back().set_index(index);
  }
  return neurons;
}

// "1,5,9" (1-based row numbers of a file of n rows) as 0-based indices;
// "" as every row.
absl::StatusOr<std::vector<int>> ParseRows(const std::string& text, Index n) {
  std::vector<int> rows;
  if (text.empty()) {
    for (int i = 0; i < n; ++i) rows.push_back(i);
    return rows;
  }
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int row = 0;
    if (!absl::SimpleAtoi(item, &row) || row < 1 || row > n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--rows: '", item, "' is not a row number of the file (1..", n, ")"));
    }
    rows.push_back(row - 1);
  }
  return rows;
}

int RunTrace(const Invocation& inv, Client& client) {
  const absl::StatusOr<std::vector<v1::NeuronSelector>> neurons =
      ParseNeurons(inv.Get("neurons"));
  if (!neurons.ok()) return UsageFail(neurons.status().message());
  v1::GetModelRequest get;
  get.set_name(inv.Get("model"));
  get.set_version(inv.Int("version", 0));
  const absl::StatusOr<v1::Model> model = client.GetModel(get);
  if (!model.ok()) return Fail(model.status());
  const absl::StatusOr<Dataset> file = LoadRows(inv.args[0], *model);
  if (!file.ok()) return Fail(file.status());
  const absl::StatusOr<std::vector<int>> rows =
      ParseRows(inv.Get("rows"), file->size());
  if (!rows.ok()) return UsageFail(rows.status().message());
  const bool labelled = !file->labels.empty() && file->labels[0] >= 0;

  v1::TraceNeuronsRequest request;
  request.set_model(model->name());
  request.set_version(model->version());  // the one whose labels we read
  for (const v1::NeuronSelector& n : *neurons) *request.add_neurons() = n;
  const Index length = file->values.rows();
  for (int row : *rows) {
    const double* values = file->values.col(row).data();
    request.add_sequences()->mutable_values()->Add(values, values + length);
  }
  const absl::StatusOr<v1::TraceNeuronsResponse> response =
      client.TraceNeurons(request);
  if (!response.ok()) return Fail(response.status());
  if (response->sequences_size() != request.sequences_size()) {
    return Fail(absl::InternalError(
        absl::StrFormat("the server answered %d of %d sequences",
                        response->sequences_size(), request.sequences_size())));
  }
  if (inv.json()) {
    PrintJson(*response);
    return 0;
  }
  std::string header = absl::StrFormat("%10s", "t[ns]");
  for (const v1::NeuronSelector& n : response->neurons()) {
    absl::StrAppend(
        &header,
        absl::StrFormat(" %12s", absl::StrCat(n.layer(), ":", n.index())));
  }
  for (int j = 0; j < response->sequences_size(); ++j) {
    const v1::SequenceTrace& trace = response->sequences(j);
    const int row = (*rows)[j];
    const std::string* truth =
        labelled ? &file->class_labels[file->labels[row]] : nullptr;
    absl::PrintF("%srow %d: %s%s\n%s\n", j == 0 ? "" : "\n", row + 1,
                 Describe(trace.classification()),
                 Mismatch(trace.classification().label(), truth), header);
    for (int k = 0; k < response->time_ns_size(); ++k) {
      std::string line = absl::StrFormat("%10.4g", response->time_ns(k));
      for (const v1::NeuronTrace& t : trace.traces()) {
        absl::StrAppend(&line, absl::StrFormat(" %12.6g", t.values(k)));
      }
      absl::PrintF("%s\n", line);
    }
  }
  return 0;
}

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


}  // namespace

const std::vector<Command>& InferenceCommands() {
  const FlagSpec model = {"model", Kind::kText, "NAME", "the model",
                          /*required=*/true};
  const FlagSpec version = {"version", Kind::kInt, "V",
                            "the model's version (default: the latest)"};
  static const std::vector<Command>* commands = new std::vector<Command>{
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
      {"trace",
       "--model NAME [--version V] [--neurons L:I,...] [--rows R,...] "
       "FILE.csv",
       "Prints, for each row of FILE.csv (as classify reads it; at most 16),\n"
       "its classification and a table of the chosen neurons' outputs after\n"
       "every input interval: time in ns, then one column per neuron.",
       {model,
        version,
        {"neurons", Kind::kText, "L:I,...",
         "neurons to trace as LAYER:INDEX, 0-based (default: every neuron of "
         "the last layer, at most 64)"},
        {"rows", Kind::kText, "R,...",
         "trace only these rows of the file, 1-based (default: every row)"}},
       false,
       1,
       1,
       RunTrace},
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
  };
  return *commands;
}

}  // namespace spinnet::client
