// The whole service end to end: a real SpinnetServer in-process on
// 127.0.0.1:0 with a temporary data dir, driven by the real client library
// (and by raw stubs only where the client cannot send the wrong thing, e.g.
// a bad checksum or steps before `open`). Status codes follow the table in
// shared/spec/style.md; each case checks the code and a piece of the
// message.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "client/client.h"
#include "core/dataset.h"
#include "core/file_util.h"
#include "core/model_io.h"
#include "core/sha256.h"
#include "core/status_macros.h"
#include "core/trainer.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/status_matchers.h"
#include "proto/api_convert.h"
#include "proto/grpc_status.h"
#include "server/app/server.h"
#include "server/jobs/job_queue.h"
#include "server/storage/sqlite_store.h"

namespace spinnet {
namespace {

using client::Client;
using client::ClientOptions;
using client::StreamSession;
using server::ServerOptions;
using server::SpinnetServer;
using ::testing::AnyOf;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAreArray;
using Code = absl::StatusCode;
using spinnet::status_testing::StatusIs;

// ---------------------------------------------------------------------------
// Test data and training specs.

constexpr int kDim = 2;     // values per time step of the uploaded dataset
constexpr int kSteps = 12;  // time steps per sequence
constexpr int kRows = 300;  // sequences: three classes, split 80/20
constexpr int64_t kMaxDatasetBytes = 256 << 10;
constexpr char kToken[] = "s3cret-token";

// Every submit starts from this spec; a test passes overrides (text format,
// later fields win). Alone it trains the tiny dataset in a few milliseconds.
constexpr char kBaseSpec[] = "epochs: 1 neurons: 8 layers: 1";
// About a tenth of a second per epoch on the tiny dataset: a watcher sees
// every epoch.
constexpr char kFlowSpec[] = "epochs: 3 substeps: 256";
// Minutes on digits: cancelled, queued behind or interrupted by the tests.
constexpr char kLongSpec[] = "epochs: 200";
// About a second on digits: long enough to interrupt after one epoch.
constexpr int kResumableEpochs = 6;
constexpr char kResumableSpec[] = "epochs: 6";

// Sequence `i` of class i % 3: two waves whose frequency is the class's, in
// [0.1, 0.9], `steps` time steps of kDim values.
std::vector<double> SequenceValues(int i, int steps = kSteps) {
  std::vector<double> values;
  for (int k = 0; k < steps; ++k) {
    const double x = (i % 3 + 1) * 0.5 * k + 0.7 * i;
    values.push_back(0.5 + 0.4 * std::sin(x));
    values.push_back(0.5 + 0.4 * std::cos(x));
  }
  return values;
}

const std::vector<std::string>& ClassLabels() {
  static const auto* labels =
      new std::vector<std::string>{"circle", "line", "spiral"};
  return *labels;
}

// The tiny dataset in the core's CSV format: label, then K*d values. About
// 45 KB: the client uploads it in one message, which must fit the 64 KiB
// message limit of OversizedMessageIsRejectedAndTheNextCallWorks.
std::string TinyCsv() {
  std::string csv = "# three classes of two-dimensional waves\n";
  for (int i = 0; i < kRows; ++i) {
    absl::StrAppend(&csv, ClassLabels()[i % 3]);
    for (double v : SequenceValues(i)) {
      absl::StrAppend(&csv, absl::StrFormat(",%.3f", v));
    }
    csv += '\n';
  }
  return csv;
}

// The first `steps` time steps of `values`.
std::vector<double> Prefix(const std::vector<double>& values, int steps) {
  return {values.begin(), values.begin() + steps * kDim};
}

void ExpectSameClassification(const v1::Classification& got,
                              const v1::Classification& want) {
  EXPECT_EQ(got.class_index(), want.class_index());
  EXPECT_EQ(got.label(), want.label());
  EXPECT_EQ(got.steps(), want.steps());
  ASSERT_EQ(got.probabilities_size(), want.probabilities_size());
  for (int i = 0; i < want.probabilities_size(); ++i) {
    EXPECT_NEAR(got.probabilities(i), want.probabilities(i), 1e-12)
        << "class " << i;
  }
  EXPECT_NEAR(got.energy_joules(), want.energy_joules(),
              1e-9 * std::abs(want.energy_joules()));
}

bool IsTerminal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

// Polls `condition` every 20 ms until it holds or `timeout` passes.
bool WaitUntil(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

// The next message of a stream; UNAVAILABLE once the stream has ended.
absl::StatusOr<v1::StreamClassifyResponse> NextMessage(StreamSession& session) {
  ASSIGN_OR_RETURN(std::optional<v1::StreamClassifyResponse> message,
                   session.Read());
  if (!message.has_value()) return absl::UnavailableError("the stream ended");
  return *std::move(message);
}

class TempDir {
 public:
  TempDir() : path_(::testing::TempDir() + "spinnet_integration.XXXXXX") {
    EXPECT_NE(mkdtemp(path_.data()), nullptr) << strerror(errno);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ---------------------------------------------------------------------------
// The fixture: one server per test, a client on it, helpers over both.

class IntegrationTest : public ::testing::Test {
 protected:
  void TearDown() override { StopServer(); }

  ServerOptions Options() const {
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.metrics_listen = "";
    o.data_dir = DataDir();
    o.training_workers = 1;
    o.max_dataset_bytes = kMaxDatasetBytes;
    return o;
  }
  std::string DataDir() const { return temp_.path() + "/data"; }

  // Starts a server with `options` and connects client_ with `token`.
  void StartServer(const ServerOptions& options,
                   const std::string& token = "") {
    server_ = std::make_unique<SpinnetServer>(options);
    ASSERT_OK(server_->Start());
    client_ = Connect(token);
    ASSERT_NE(client_, nullptr);
  }

  void StopServer() {
    client_.reset();
    if (server_ == nullptr) return;
    server_->Shutdown(absl::Now());
    server_.reset();
  }

  std::unique_ptr<Client> Connect(const std::string& token,
                                  const std::string& target = "") const {
    ClientOptions options;
    options.target = target.empty() ? server_->address() : target;
    options.token = token;
    absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  std::shared_ptr<grpc::Channel> Channel() const {
    return grpc::CreateChannel(server_->address(),
                               grpc::InsecureChannelCredentials());
  }

  std::string WriteFile(const std::string& name, const std::string& contents) {
    const std::string path = temp_.path() + "/" + name;
    std::ofstream(path) << contents;
    return path;
  }

  absl::Status UploadTiny() {
    return client_->UploadDataset("tiny", kDim, TinyCsv()).status();
  }

  // Submits kBaseSpec with `spec_overrides` applied.
  absl::StatusOr<v1::TrainingJob> Submit(const std::string& spec_overrides,
                                         const std::string& dataset = "tiny",
                                         const std::string& model = "m",
                                         const std::string& request_id = "") {
    v1::SubmitTrainingJobRequest request;
    request.set_request_id(request_id);
    request.set_model_name(model);
    request.set_dataset(dataset);
    if (!google::protobuf::TextFormat::MergeFromString(
            absl::StrCat(kBaseSpec, " ", spec_overrides),
            request.mutable_spec())) {
      return absl::InternalError(
          absl::StrCat("test bug: bad spec text '", spec_overrides, "'"));
    }
    return client_->SubmitTrainingJob(request);
  }

  absl::StatusOr<v1::TrainingJob> GetJob(const std::string& id) {
    v1::GetTrainingJobRequest request;
    request.set_job_id(id);
    return client_->GetTrainingJob(request);
  }

  absl::StatusOr<v1::TrainingJob> Cancel(const std::string& id) {
    v1::CancelTrainingJobRequest request;
    request.set_job_id(id);
    return client_->CancelTrainingJob(request);
  }

  absl::StatusOr<v1::ListTrainingJobsResponse> ListJobs(
      int page_size = 0, const std::string& page_token = "") {
    v1::ListTrainingJobsRequest request;
    request.set_page_size(page_size);
    request.set_page_token(page_token);
    return client_->ListTrainingJobs(request);
  }

  absl::StatusOr<v1::GetTrainingMetricsResponse> Metrics(
      const std::string& id) {
    v1::GetTrainingMetricsRequest request;
    request.set_job_id(id);
    return client_->GetTrainingMetrics(request);
  }

  absl::StatusOr<v1::ServerStats> Stats() {
    return client_->GetServerStats(v1::GetServerStatsRequest());
  }

  int ActiveStreams() {
    absl::StatusOr<v1::ServerStats> stats = Stats();
    return stats.ok() ? stats->active_streams() : -1;
  }

  absl::StatusOr<v1::ClassifyResponse> Classify(
      const std::string& model, const std::vector<std::vector<double>>& seqs,
      int version = 0) {
    v1::ClassifyRequest request;
    request.set_model(model);
    request.set_version(version);
    for (const auto& values : seqs) {
      request.add_sequences()->mutable_values()->Assign(values.begin(),
                                                        values.end());
    }
    return client_->Classify(request);
  }

  // TraceNeurons of `seqs` by `model`; `neurons` as {layer, index} pairs.
  absl::StatusOr<v1::TraceNeuronsResponse> Trace(
      const std::string& model, const std::vector<std::vector<double>>& seqs,
      const std::vector<std::pair<int, int>>& neurons) {
    v1::TraceNeuronsRequest request;
    request.set_model(model);
    for (const auto& values : seqs) {
      request.add_sequences()->mutable_values()->Assign(values.begin(),
                                                        values.end());
    }
    for (const auto& [layer, index] : neurons) {
      v1::NeuronSelector* n = request.add_neurons();
      n->set_layer(layer);
      n->set_index(index);
    }
    return client_->TraceNeurons(request);
  }

  // Polls the job until `done(job)`; FAILED_PRECONDITION if it ends
  // otherwise, DEADLINE_EXCEEDED after `timeout`.
  absl::StatusOr<v1::TrainingJob> WaitForJob(
      const std::string& id,
      const std::function<bool(const v1::TrainingJob&)>& done,
      absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      ASSIGN_OR_RETURN(v1::TrainingJob job, GetJob(id));
      if (done(job)) return job;
      if (IsTerminal(job.state())) {
        return absl::FailedPreconditionError(
            absl::StrCat("job ", id, " ended ", v1::JobState_Name(job.state()),
                         ": ", job.failure_reason()));
      }
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("job ", id, " still ", v1::JobState_Name(job.state()),
                         " after ", absl::FormatDuration(timeout)));
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  absl::StatusOr<v1::TrainingJob> WaitForState(const std::string& id,
                                               v1::JobState state,
                                               absl::Duration timeout) {
    return WaitForJob(
        id, [state](const v1::TrainingJob& j) { return j.state() == state; },
        timeout);
  }

  // A long digits job, once a worker runs it.
  absl::StatusOr<v1::TrainingJob> StartLongJob(const std::string& model) {
    ASSIGN_OR_RETURN(v1::TrainingJob job, Submit(kLongSpec, "digits", model));
    return WaitForState(job.id(), v1::JOB_STATE_RUNNING, absl::Seconds(30));
  }

  // Uploads the tiny dataset and trains `model` (version 1) on it.
  absl::StatusOr<v1::TrainingJob> TrainTinyModel(const std::string& model) {
    RETURN_IF_ERROR(UploadTiny());
    ASSIGN_OR_RETURN(v1::TrainingJob job, Submit("", "tiny", model));
    return WaitForState(job.id(), v1::JOB_STATE_SUCCEEDED, absl::Seconds(60));
  }

  // Reads the answers a stream owes for `values` fed as sequence `sequence`
  // with provisional_every = 4: provisional ones at `provisional_steps`,
  // then the final one if `final`. Each must equal Classify of the same
  // prefix.
  void ExpectStreamAnswers(StreamSession& session, const std::string& model,
                           int64_t sequence, const std::vector<double>& values,
                           const std::vector<int>& provisional_steps,
                           bool final) {
    std::vector<std::pair<int, bool>> expected;
    for (int steps : provisional_steps) expected.emplace_back(steps, false);
    if (final) expected.emplace_back(values.size() / kDim, true);
    for (const auto& [steps, is_final] : expected) {
      SCOPED_TRACE(absl::StrCat("sequence ", sequence, ", step ", steps));
      ASSERT_OK_AND_ASSIGN(const v1::StreamClassifyResponse message,
                           NextMessage(session));
      ASSERT_TRUE(message.has_answer()) << message.ShortDebugString();
      EXPECT_EQ(message.answer().sequence(), sequence);
      EXPECT_EQ(message.answer().final(), is_final);
      ASSERT_OK_AND_ASSIGN(const v1::ClassifyResponse whole,
                           Classify(model, {Prefix(values, steps)}));
      ExpectSameClassification(message.answer().classification(),
                               whole.results(0));
    }
  }

  TempDir temp_;
  std::unique_ptr<SpinnetServer> server_;
  std::unique_ptr<Client> client_;
};

// ---------------------------------------------------------------------------
// 1. The whole flow through the client library.

TEST_F(IntegrationTest, WholeFlowThroughTheClient) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));

  // Upload.
  const std::string csv = TinyCsv();
  ASSERT_OK_AND_ASSIGN(const v1::Dataset dataset,
                       client_->UploadDataset("tiny", kDim, csv));
  EXPECT_EQ(dataset.name(), "tiny");
  EXPECT_EQ(dataset.input_dim(), kDim);
  EXPECT_EQ(dataset.steps(), kSteps);
  EXPECT_EQ(dataset.sequences(), kRows);
  EXPECT_THAT(dataset.class_labels(), ElementsAreArray(ClassLabels()));
  EXPECT_EQ(dataset.size_bytes(), static_cast<int64_t>(csv.size()));
  EXPECT_EQ(dataset.sha256(), Sha256Hex(csv));
  EXPECT_FALSE(dataset.read_only());

  // Submit and watch to the end.
  ASSERT_OK_AND_ASSIGN(const v1::TrainingJob submitted,
                       Submit(kFlowSpec, "tiny", "flow"));
  EXPECT_EQ(submitted.state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(submitted.epochs_total(), 3);
  std::vector<v1::JobState> states;  // each change once
  std::vector<double> progress;
  std::vector<int> epochs;
  ASSERT_OK(client_->WatchTrainingJob(
      submitted.id(), [&](const v1::WatchTrainingJobResponse& update) {
        if (states.empty() || states.back() != update.job().state()) {
          states.push_back(update.job().state());
        }
        progress.push_back(update.job().progress());
        if (update.has_epoch()) epochs.push_back(update.epoch().epoch());
        return true;
      }));
  ASSERT_GE(states.size(), 2u);
  EXPECT_THAT(states.front(),
              AnyOf(v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING));
  EXPECT_EQ(states.back(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_TRUE(std::is_sorted(states.begin(), states.end()))  // no way back
      << ::testing::PrintToString(states);
  EXPECT_TRUE(std::is_sorted(progress.begin(), progress.end()))
      << ::testing::PrintToString(progress);
  EXPECT_LT(progress.front(), 1.0);
  EXPECT_DOUBLE_EQ(progress.back(), 1.0);
  EXPECT_THAT(epochs, ElementsAre(1, 2, 3));

  ASSERT_OK_AND_ASSIGN(const v1::TrainingJob job, GetJob(submitted.id()));
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job.epochs_done(), 3);
  EXPECT_EQ(job.model_version(), 1);

  // The published model.
  v1::GetModelRequest get_model;
  get_model.set_name("flow");
  ASSERT_OK_AND_ASSIGN(const v1::Model model, client_->GetModel(get_model));
  EXPECT_EQ(model.version(), 1);
  EXPECT_EQ(model.dataset(), "tiny");
  EXPECT_EQ(model.source_job_id(), job.id());
  EXPECT_THAT(model.class_labels(), ElementsAreArray(ClassLabels()));
  EXPECT_EQ(model.input_dim(), kDim);
  EXPECT_EQ(model.sequence_steps(), kSteps);
  EXPECT_EQ(model.spec().neurons(), 8);
  EXPECT_EQ(model.spec().substeps(), job.spec().substeps());  // as asked
  EXPECT_EQ(model.spec().tau(), 1.0);  // STNO default, filled in
  EXPECT_DOUBLE_EQ(model.final_train_accuracy(),
                   job.latest_epoch().train_accuracy());
  EXPECT_DOUBLE_EQ(model.final_test_accuracy(),
                   job.latest_epoch().test_accuracy());
  EXPECT_GE(model.final_test_accuracy(), 0.0);
  EXPECT_LE(model.final_test_accuracy(), 1.0);
  EXPECT_GT(model.energy_per_classification_joules(), 0.0);  // STNO

  // Classify in one call equals one call per sequence (lengths differ).
  std::vector<std::vector<double>> sequences;
  for (int i = 0; i < 6; ++i) sequences.push_back(SequenceValues(i));
  sequences.push_back(SequenceValues(6, 5));
  ASSERT_OK_AND_ASSIGN(const v1::ClassifyResponse batch,
                       Classify("flow", sequences));
  EXPECT_EQ(batch.model_version(), 1);
  ASSERT_EQ(batch.results_size(), static_cast<int>(sequences.size()));
  for (size_t i = 0; i < sequences.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("sequence ", i));
    ASSERT_OK_AND_ASSIGN(const v1::ClassifyResponse one,
                         Classify("flow", {sequences[i]}));
    ExpectSameClassification(batch.results(i), one.results(0));
    EXPECT_EQ(batch.results(i).steps(),
              static_cast<int64_t>(sequences[i].size() / kDim));
    double sum = 0;
    for (double p : batch.results(i).probabilities()) sum += p;
    EXPECT_NEAR(sum, 1.0, 1e-9);
  }

  // Streaming with provisional answers every 4 steps.
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<StreamSession> session,
                         client_->OpenStream("flow", 0, 4));
    EXPECT_EQ(session->opened().model(), "flow");
    EXPECT_EQ(session->opened().version(), 1);
    EXPECT_EQ(session->opened().input_dim(), kDim);
    EXPECT_THAT(session->opened().class_labels(),
                ElementsAreArray(ClassLabels()));
    // Sequence 0: whole, in one message.
    ASSERT_OK(session->SendSteps(SequenceValues(0), true));
    ExpectStreamAnswers(*session, "flow", 0, SequenceValues(0), {4, 8}, true);
    // Sequence 1: 5 steps, then dropped by a reset.
    const std::vector<double> dropped = Prefix(SequenceValues(2), 5);
    ASSERT_OK(session->SendSteps(dropped, false));
    ExpectStreamAnswers(*session, "flow", 1, dropped, {4}, false);
    ASSERT_OK(session->Reset());
    // Sequence 2 starts afresh, in two messages.
    const std::vector<double> row = SequenceValues(1);
    ASSERT_OK(session->SendSteps(Prefix(row, 6), false));
    ASSERT_OK(
        session->SendSteps(absl::MakeConstSpan(row).subspan(6 * kDim), true));
    ExpectStreamAnswers(*session, "flow", 2, row, {4, 8}, true);
    ASSERT_OK(session->Finish());
  }

  // Metrics and stats.
  ASSERT_OK_AND_ASSIGN(const v1::GetTrainingMetricsResponse metrics,
                       Metrics(job.id()));
  ASSERT_EQ(metrics.epochs_size(), job.epochs_total());
  for (int i = 0; i < metrics.epochs_size(); ++i) {
    EXPECT_EQ(metrics.epochs(i).epoch(), i + 1);
  }
  EXPECT_DOUBLE_EQ(metrics.epochs(2).test_accuracy(),
                   job.latest_epoch().test_accuracy());
  EXPECT_TRUE(
      WaitUntil([&] { return ActiveStreams() == 0; }, absl::Seconds(2)));
  ASSERT_OK_AND_ASSIGN(const v1::ServerStats stats, Stats());
  EXPECT_FALSE(stats.version().empty());
  EXPECT_EQ(stats.jobs_queued(), 0);
  EXPECT_EQ(stats.jobs_running(), 0);
  EXPECT_EQ(stats.jobs_succeeded(), 1);
  EXPECT_EQ(stats.jobs_failed(), 0);
  EXPECT_EQ(stats.jobs_cancelled(), 0);
  EXPECT_EQ(stats.active_streams(), 0);
  EXPECT_EQ(stats.models(), 1);
  EXPECT_EQ(stats.datasets(), 2);  // digits and tiny
  EXPECT_EQ(stats.training_workers(), 1);
}

// ---------------------------------------------------------------------------
// 2. Idempotent submit.

TEST_F(IntegrationTest, SubmitWithTheSameRequestIdIsIdempotent) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ASSERT_OK(UploadTiny());
  ASSERT_OK_AND_ASSIGN(const v1::TrainingJob first,
                       Submit("", "tiny", "m", "req-1"));
  ASSERT_OK_AND_ASSIGN(const v1::TrainingJob again,
                       Submit("", "tiny", "m", "req-1"));
  EXPECT_EQ(again.id(), first.id());
  EXPECT_EQ(again.request_id(), "req-1");
  EXPECT_THAT(Submit("epochs: 2", "tiny", "m", "req-1"),
              StatusIs(Code::kAlreadyExists, "different request"));
  ASSERT_OK_AND_ASSIGN(const v1::ListTrainingJobsResponse list, ListJobs());
  ASSERT_EQ(list.jobs_size(), 1);
  EXPECT_EQ(list.jobs(0).id(), first.id());
}

// ---------------------------------------------------------------------------
// 3. Cancel.

TEST_F(IntegrationTest, CancelStopsARunningJob) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ASSERT_OK_AND_ASSIGN(const v1::TrainingJob running, StartLongJob("long"));
  const absl::Time start = absl::Now();
  ASSERT_OK_AND_ASSIGN(const v1::TrainingJob reply, Cancel(running.id()));
  EXPECT_EQ(reply.state(), v1::JOB_STATE_CANCELLED);
  ASSERT_OK_AND_ASSIGN(
      const v1::TrainingJob cancelled,
      WaitForState(running.id(), v1::JOB_STATE_CANCELLED, absl::Seconds(10)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_TRUE(cancelled.has_end_time());
  EXPECT_EQ(cancelled.failure_reason(), "");

  EXPECT_THAT(Cancel(running.id()),
              StatusIs(Code::kFailedPrecondition, "already ended"));
  EXPECT_THAT(Cancel("j-0000000000000000"),
              StatusIs(Code::kNotFound, "not found"));
}

TEST_F(IntegrationTest, CancelledQueuedJobNeverRuns) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));  // one worker
  ASSERT_OK_AND_ASSIGN(const v1::TrainingJob running, StartLongJob("first"));
  ASSERT_OK_AND_ASSIGN(const v1::TrainingJob queued,
                       Submit(kLongSpec, "digits", "second"));
  EXPECT_EQ(queued.state(), v1::JOB_STATE_QUEUED);
  ASSERT_OK_AND_ASSIGN(const v1::TrainingJob reply, Cancel(queued.id()));
  EXPECT_EQ(reply.state(), v1::JOB_STATE_CANCELLED);

  // Free the worker: it must not pick the cancelled job up.
  ASSERT_OK(Cancel(running.id()));
  ASSERT_OK(
      WaitForState(running.id(), v1::JOB_STATE_CANCELLED, absl::Seconds(10)));
  absl::SleepFor(absl::Milliseconds(500));
  ASSERT_OK_AND_ASSIGN(const v1::TrainingJob after, GetJob(queued.id()));
  EXPECT_EQ(after.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_FALSE(after.has_start_time());
  EXPECT_EQ(after.epochs_done(), 0);
  ASSERT_OK_AND_ASSIGN(const v1::GetTrainingMetricsResponse metrics,
                       Metrics(queued.id()));
  EXPECT_THAT(metrics.epochs(), IsEmpty());
  ASSERT_OK_AND_ASSIGN(const v1::ServerStats stats, Stats());
  EXPECT_EQ(stats.jobs_running(), 0);
  EXPECT_EQ(stats.jobs_queued(), 0);
  EXPECT_EQ(stats.jobs_cancelled(), 2);
}

// ---------------------------------------------------------------------------
// 4. Bad input.

TEST_F(IntegrationTest, RejectsBadTrainingRequests) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ASSERT_OK(UploadTiny());
  struct Case {
    const char* what;
    const char* model;
    const char* dataset;
    const char* spec_overrides;
    Code code;
    const char* message;
  };
  const Case cases[] = {
      {"bad model name", "no spaces!", "tiny", "", Code::kInvalidArgument,
       "model name"},
      {"empty dataset", "m", "", "", Code::kInvalidArgument,
       "dataset is empty"},
      {"unknown dataset", "m", "nope", "", Code::kNotFound,
       "dataset \"nope\" not found"},
      {"NaN lr", "m", "tiny", "lr: nan", Code::kInvalidArgument, "lr = nan"},
      {"zero epochs", "m", "tiny", "epochs: 0", Code::kInvalidArgument,
       "epochs = 0"},
      {"density above 1", "m", "tiny", "density_int: 1.5",
       Code::kInvalidArgument, "density_int = 1.5"},
      {"unstable Euler step", "m", "tiny", "dt_in: 10 substeps: 1",
       Code::kInvalidArgument, "unstable"},
      {"unknown optimizer", "m", "tiny", "optimizer: 'sgd'",
       Code::kInvalidArgument, "unknown optimizer"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    EXPECT_THAT(Submit(c.spec_overrides, c.dataset, c.model),
                StatusIs(c.code, c.message));
  }
  ASSERT_OK_AND_ASSIGN(const v1::ListTrainingJobsResponse list, ListJobs());
  EXPECT_THAT(list.jobs(), IsEmpty());  // nothing was created

  EXPECT_THAT(GetJob("j-0000000000000000"),
              StatusIs(Code::kNotFound, "not found"));
  EXPECT_THAT(ListJobs(1000), StatusIs(Code::kInvalidArgument, "page_size"));
}

TEST_F(IntegrationTest, ListTrainingJobsPagesThroughEveryJobOnce) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ASSERT_OK(UploadTiny());
  std::vector<std::string> submitted;
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK_AND_ASSIGN(const v1::TrainingJob job,
                         Submit("", "tiny", absl::StrCat("m", i)));
    submitted.push_back(job.id());
  }
  std::vector<std::string> listed;
  std::string token;
  int pages = 0;
  do {
    ASSERT_OK_AND_ASSIGN(const v1::ListTrainingJobsResponse page,
                         ListJobs(2, token));
    EXPECT_LE(page.jobs_size(), 2);
    for (const v1::TrainingJob& job : page.jobs()) listed.push_back(job.id());
    token = page.next_page_token();
    ASSERT_LT(++pages, 10) << "paging does not end";
  } while (!token.empty());
  EXPECT_EQ(pages, 3);
  EXPECT_THAT(listed, UnorderedElementsAreArray(submitted));  // each once
  EXPECT_THAT(listed, ElementsAreArray(submitted.rbegin(), submitted.rend()))
      << "not newest first";
}

TEST_F(IntegrationTest, RejectsBadClassifyRequests) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ASSERT_OK(TrainTinyModel("m"));
  const std::vector<double> good = SequenceValues(0);
  struct Case {
    const char* what;
    const char* model;
    int version;
    std::vector<std::vector<double>> sequences;
    Code code;
    const char* message;
  };
  const Case cases[] = {
      {"unknown model",
       "nope",
       0,
       {good},
       Code::kNotFound,
       "model \"nope\" not found"},
      {"unknown version", "m", 7, {good}, Code::kNotFound, "version 7"},
      {"no sequences", "m", 0, {}, Code::kInvalidArgument,
       "sequences: none to classify"},
      {"length not whole steps of d",
       "m",
       0,
       {good, {0.1, 0.2, 0.3}},
       Code::kInvalidArgument,
       "sequence 1: 3 values is not a multiple"},
      {"NaN value",
       "m",
       0,
       {{0.1, std::numeric_limits<double>::quiet_NaN()}},
       Code::kInvalidArgument,
       "sequence 0: step 0, value 1: nan is not finite"},
      {"negative version",
       "m",
       -1,
       {good},
       Code::kInvalidArgument,
       "version -1"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    EXPECT_THAT(Classify(c.model, c.sequences, c.version),
                StatusIs(c.code, c.message));
  }
}

TEST_F(IntegrationTest, TraceNeuronsFollowsEachNeuronAndAgreesWithClassify) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ASSERT_OK(TrainTinyModel("m"));  // 1 layer of 8 neurons, dt_in 1 ns
  const std::vector<std::vector<double>> seqs = {
      SequenceValues(0), SequenceValues(1), SequenceValues(2)};
  ASSERT_OK_AND_ASSIGN(const v1::TraceNeuronsResponse traced,
                       Trace("m", seqs, {{0, 7}, {0, 0}}));
  EXPECT_EQ(traced.model_version(), 1);
  ASSERT_EQ(traced.time_ns_size(), kSteps);
  for (int k = 0; k < kSteps; ++k) {
    EXPECT_DOUBLE_EQ(traced.time_ns(k), k + 1.0) << k;
  }
  ASSERT_EQ(traced.neurons_size(), 2);
  EXPECT_EQ(traced.neurons(0).layer(), 0);
  EXPECT_EQ(traced.neurons(0).index(), 7);
  EXPECT_EQ(traced.neurons(1).index(), 0);
  ASSERT_OK_AND_ASSIGN(const v1::ClassifyResponse classified,
                       Classify("m", seqs));
  ASSERT_EQ(traced.sequences_size(), 3);
  for (int j = 0; j < 3; ++j) {
    SCOPED_TRACE(absl::StrCat("sequence ", j));
    const v1::SequenceTrace& t = traced.sequences(j);
    ExpectSameClassification(t.classification(), classified.results(j));
    ASSERT_EQ(t.traces_size(), 2);
    for (const v1::NeuronTrace& n : t.traces()) {
      ASSERT_EQ(n.values_size(), kSteps);
      // A neuron at rest would trace zeros; these respond to the input.
      EXPECT_GT(*std::max_element(n.values().begin(), n.values().end()) -
                    *std::min_element(n.values().begin(), n.values().end()),
                1e-6);
    }
    // Two neurons, two curves.
    EXPECT_THAT(t.traces(0).values(),
                ::testing::Not(ElementsAreArray(t.traces(1).values())));
  }
  // Inputs of different classes, different curves of one neuron.
  EXPECT_THAT(
      traced.sequences(0).traces(0).values(),
      ::testing::Not(ElementsAreArray(traced.sequences(1).traces(0).values())));

  // No neurons named: every neuron of the last layer, each one's curve the
  // same as when named.
  ASSERT_OK_AND_ASSIGN(const v1::TraceNeuronsResponse all,
                       Trace("m", {seqs[1]}, {}));
  ASSERT_EQ(all.neurons_size(), 8);
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(all.neurons(i).layer(), 0);
    EXPECT_EQ(all.neurons(i).index(), i);
  }
  EXPECT_THAT(all.sequences(0).traces(7).values(),
              ElementsAreArray(traced.sequences(1).traces(0).values()));
}

TEST_F(IntegrationTest, RejectsBadTraceRequests) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ASSERT_OK(TrainTinyModel("m"));  // 1 layer of 8 neurons
  const std::vector<double> good = SequenceValues(0);
  const std::vector<std::pair<int, int>> one = {{0, 1}};
  struct Case {
    const char* what;
    const char* model;
    std::vector<std::vector<double>> sequences;
    std::vector<std::pair<int, int>> neurons;
    Code code;
    const char* message;
  };
  const Case cases[] = {
      {"unknown model",
       "nope",
       {good},
       one,
       Code::kNotFound,
       "model \"nope\" not found"},
      {"layer out of range",
       "m",
       {good},
       {{0, 1}, {1, 0}},
       Code::kInvalidArgument,
       "neuron 1 (layer 1, index 0): layer 1 out of range; the model has 1 "
       "layer(s)"},
      {"index out of range",
       "m",
       {good},
       {{0, 8}},
       Code::kInvalidArgument,
       "neuron 0 (layer 0, index 8): index 8 out of range; each layer has 8"},
      {"negative index",
       "m",
       {good},
       {{0, -1}},
       Code::kInvalidArgument,
       "index -1 out of range"},
      {"too many sequences", "m", std::vector<std::vector<double>>(17, good),
       one, Code::kInvalidArgument,
       "sequences: 17 in one call; the limit is 16"},
      {"too many neurons",
       "m",
       {good},
       std::vector<std::pair<int, int>>(65, {0, 0}),
       Code::kInvalidArgument,
       "neurons: 65 selected; the limit is 64"},
      {"no sequences",
       "m",
       {},
       one,
       Code::kInvalidArgument,
       "sequences: none to trace"},
      {"length not whole steps of d",
       "m",
       {good, {0.1, 0.2, 0.3}},
       one,
       Code::kInvalidArgument,
       "sequence 1: 3 values is not a multiple"},
      {"unequal lengths",
       "m",
       {good, Prefix(good, 5)},
       one,
       Code::kInvalidArgument,
       "sequence 1: 10 values, but sequence 0 has 24; traced sequences share "
       "one time axis"},
      {"NaN value",
       "m",
       {{0.1, std::numeric_limits<double>::quiet_NaN()}},
       one,
       Code::kInvalidArgument,
       "sequence 0: step 0, value 1: nan"},
      {"too many traced values",
       "m",
       std::vector<std::vector<double>>(16, SequenceValues(0, 2049)),
       {},
       Code::kInvalidArgument,
       "16 x 8 x 2049 = 262272 traced values; the limit is 262144"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    EXPECT_THAT(Trace(c.model, c.sequences, c.neurons),
                StatusIs(c.code, c.message));
  }
  // Nothing was lost: the server traces the next good request.
  ASSERT_OK_AND_ASSIGN(
      const v1::TraceNeuronsResponse traced,
      Trace("m", std::vector<std::vector<double>>(16, good), {{0, 0}}));
  EXPECT_EQ(traced.sequences_size(), 16);
}

TEST_F(IntegrationTest, RejectsBadUploadsAndChangesToBuiltIns) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  const std::string csv = TinyCsv();

  // A wrong checksum needs a raw stub: the client computes the right one.
  {
    auto stub = v1::DatasetService::NewStub(Channel());
    grpc::ClientContext context;
    v1::Dataset out;
    auto writer = stub->UploadDataset(&context, &out);
    v1::UploadDatasetRequest request;
    v1::UploadDatasetHeader* header = request.mutable_header();
    header->set_name("tiny");
    header->set_input_dim(kDim);
    header->set_size_bytes(static_cast<int64_t>(csv.size()));
    header->set_sha256(std::string(64, '0'));
    if (writer->Write(request)) {
      request.set_chunk(csv);
      if (writer->Write(request)) writer->WritesDone();
    }
    EXPECT_THAT(api::FromGrpcStatus(writer->Finish()),
                StatusIs(Code::kDataLoss, "checksum"));
  }
  EXPECT_THAT(
      client_->UploadDataset("ragged", kDim,
                             "circle,0.1,0.2,0.3,0.4\nline,0.5,0.6,0.7,0.8\n"
                             "spiral,0.1,0.2,0.3\n"),
      StatusIs(Code::kInvalidArgument, "line 3"));
  EXPECT_THAT(client_->UploadDataset("big", kDim,
                                     std::string(kMaxDatasetBytes + 1, 'x')),
              StatusIs(Code::kInvalidArgument, "limit"));
  EXPECT_THAT(client_->UploadDataset("digits", kDim, csv),
              StatusIs(Code::kAlreadyExists, "digits"));
  ASSERT_OK_AND_ASSIGN(const v1::ListDatasetsResponse datasets,
                       client_->ListDatasets(v1::ListDatasetsRequest()));
  ASSERT_EQ(datasets.datasets_size(), 1);  // nothing was stored
  EXPECT_EQ(datasets.datasets(0).name(), "digits");

  v1::DeleteDatasetRequest delete_digits;
  delete_digits.set_name("digits");
  EXPECT_THAT(client_->DeleteDataset(delete_digits),
              StatusIs(Code::kFailedPrecondition, "read-only"));
  v1::DeleteModelRequest delete_latest;
  delete_latest.set_name("m");
  delete_latest.set_version(0);
  EXPECT_THAT(client_->DeleteModel(delete_latest),
              StatusIs(Code::kInvalidArgument, "version"));
}

TEST_F(IntegrationTest, OversizedMessageIsRejectedAndTheNextCallWorks) {
  ServerOptions options = Options();
  options.max_message_bytes = 64 << 10;
  ASSERT_NO_FATAL_FAILURE(StartServer(options));
  ASSERT_OK(TrainTinyModel("m"));
  const std::vector<double> huge(10000 * kDim, 0.5);  // 160 KB of doubles
  EXPECT_THAT(Classify("m", {huge}),
              StatusIs(Code::kResourceExhausted, "larger than max"));
  ASSERT_OK_AND_ASSIGN(const v1::ClassifyResponse normal,
                       Classify("m", {SequenceValues(0)}));
  EXPECT_EQ(normal.results_size(), 1);
}

// Errors about one stream message come back in-band and the stream goes on.
// A raw stub, since the client always opens first.
TEST_F(IntegrationTest, StreamErrorsComeInBandAndTheStreamGoesOn) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ASSERT_OK(TrainTinyModel("m"));
  auto stub = v1::InferenceService::NewStub(Channel());
  grpc::ClientContext context;
  auto stream = stub->StreamClassify(&context);
  const auto send = [&stream](const v1::StreamClassifyRequest& request) {
    return stream->Write(request);
  };
  const auto next = [&stream]() -> absl::StatusOr<v1::StreamClassifyResponse> {
    v1::StreamClassifyResponse response;
    if (!stream->Read(&response)) {
      return absl::UnavailableError("the stream ended");
    }
    return response;
  };
  const auto steps = [](const std::vector<double>& values) {
    v1::StreamClassifyRequest request;
    request.mutable_steps()->mutable_values()->Assign(values.begin(),
                                                      values.end());
    request.mutable_steps()->set_end_of_sequence(true);
    return request;
  };
  const auto open = [](const std::string& model) {
    v1::StreamClassifyRequest request;
    request.mutable_open()->set_model(model);
    return request;
  };
  const auto expect_error = [&next](Code code, const char* message) {
    absl::StatusOr<v1::StreamClassifyResponse> response = next();
    ASSERT_OK(response);
    ASSERT_TRUE(response->has_error()) << response->ShortDebugString();
    EXPECT_THAT(client::StreamErrorStatus(response->error()),
                StatusIs(code, message));
  };

  ASSERT_TRUE(send(steps(SequenceValues(0))));
  expect_error(Code::kFailedPrecondition, "send `open` first");
  ASSERT_TRUE(send(open("nope")));
  expect_error(Code::kNotFound, "nope");
  ASSERT_TRUE(send(open("m")));
  ASSERT_OK_AND_ASSIGN(const v1::StreamClassifyResponse opened, next());
  ASSERT_TRUE(opened.has_opened()) << opened.ShortDebugString();
  EXPECT_EQ(opened.opened().version(), 1);
  ASSERT_TRUE(send(steps({0.1, 0.2, 0.3})));
  expect_error(Code::kInvalidArgument, "not a multiple");

  // Still serving: a good sequence gets Classify's answer.
  ASSERT_TRUE(send(steps(SequenceValues(0))));
  ASSERT_OK_AND_ASSIGN(const v1::StreamClassifyResponse answer, next());
  ASSERT_TRUE(answer.has_answer()) << answer.ShortDebugString();
  EXPECT_TRUE(answer.answer().final());
  EXPECT_EQ(answer.answer().sequence(), 0);
  ASSERT_OK_AND_ASSIGN(const v1::ClassifyResponse whole,
                       Classify("m", {SequenceValues(0)}));
  ExpectSameClassification(answer.answer().classification(), whole.results(0));
  stream->WritesDone();
  EXPECT_THAT(next(), StatusIs(Code::kUnavailable, "ended"));
  ASSERT_OK(api::FromGrpcStatus(stream->Finish()));
}

// ---------------------------------------------------------------------------
// 5. Auth.

TEST_F(IntegrationTest, TokenAuthGuardsEveryServiceButHealth) {
  ServerOptions options = Options();
  options.auth_token_file = WriteFile("token", absl::StrCat(kToken, "\n"));
  ASSERT_NO_FATAL_FAILURE(StartServer(options, kToken));
  const std::unique_ptr<Client> anonymous = Connect("");
  const std::unique_ptr<Client> wrong = Connect("not-the-token");
  ASSERT_NE(anonymous, nullptr);
  ASSERT_NE(wrong, nullptr);

  // One call of each service.
  const std::vector<
      std::pair<const char*, std::function<absl::Status(Client&)>>>
      calls = {
          {"training",
           [](Client& c) {
             return c.ListTrainingJobs(v1::ListTrainingJobsRequest()).status();
           }},
          {"datasets",
           [](Client& c) {
             return c.ListDatasets(v1::ListDatasetsRequest()).status();
           }},
          {"models",
           [](Client& c) {
             return c.ListModels(v1::ListModelsRequest()).status();
           }},
          {"metrics",
           [](Client& c) {
             return c.GetServerStats(v1::GetServerStatsRequest()).status();
           }},
      };
  for (const auto& [service, call] : calls) {
    SCOPED_TRACE(service);
    EXPECT_THAT(call(*anonymous),
                StatusIs(Code::kUnauthenticated, "missing bearer token"));
    EXPECT_THAT(call(*wrong),
                StatusIs(Code::kUnauthenticated, "invalid bearer token"));
    ASSERT_OK(call(*client_));
  }
  v1::ClassifyRequest classify;
  classify.set_model("m");
  classify.add_sequences()->add_values(0.5);
  EXPECT_THAT(anonymous->Classify(classify),
              StatusIs(Code::kUnauthenticated, "missing bearer token"));
  v1::TraceNeuronsRequest trace;
  trace.set_model("m");
  trace.add_sequences()->add_values(0.5);
  EXPECT_THAT(anonymous->TraceNeurons(trace),
              StatusIs(Code::kUnauthenticated, "missing bearer token"));
  EXPECT_THAT(anonymous->OpenStream("m", 0, 0),
              StatusIs(Code::kUnauthenticated, "missing bearer token"));
  EXPECT_THAT(wrong->OpenStream("m", 0, 0),
              StatusIs(Code::kUnauthenticated, "invalid bearer token"));
  v1::ExportModelRequest export_m;
  export_m.set_name("m");
  EXPECT_THAT(anonymous->ExportModel(export_m),
              StatusIs(Code::kUnauthenticated, "missing bearer token"));
  EXPECT_THAT(wrong->ImportModel("m", "bytes"),
              StatusIs(Code::kUnauthenticated, "invalid bearer token"));
  ASSERT_OK_AND_ASSIGN(const bool serving, anonymous->Health(""));
  EXPECT_TRUE(serving);
}

TEST_F(IntegrationTest, AuthOffServesCallsWithoutAToken) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));  // no token file
  ASSERT_OK(client_->ListTrainingJobs(v1::ListTrainingJobsRequest()));
  ASSERT_OK(client_->ListDatasets(v1::ListDatasetsRequest()));
  ASSERT_OK(Stats());
}

TEST_F(IntegrationTest, NonLoopbackListenNeedsATokenFileOrAnOptIn) {
  ServerOptions options = Options();
  options.listen = "0.0.0.0:0";
  SpinnetServer refused(options);
  EXPECT_THAT(refused.Start(),
              StatusIs(Code::kFailedPrecondition, "refusing to listen"));

  options.allow_insecure_remote = true;
  ASSERT_NO_FATAL_FAILURE(StartServer(options));
  const std::string port =
      server_->address().substr(server_->address().rfind(':') + 1);
  const std::unique_ptr<Client> local = Connect("", "127.0.0.1:" + port);
  ASSERT_NE(local, nullptr);
  ASSERT_OK(local->GetServerStats(v1::GetServerStatsRequest()));
}

// ---------------------------------------------------------------------------
// 6. Admission.

TEST_F(IntegrationTest, FullTrainingQueueRejectsAtOnce) {
  ServerOptions options = Options();
  options.training_workers = 1;
  options.max_queued_jobs = 1;
  ASSERT_NO_FATAL_FAILURE(StartServer(options));
  ASSERT_OK(StartLongJob("first"));
  ASSERT_OK_AND_ASSIGN(const v1::TrainingJob queued,
                       Submit(kLongSpec, "digits", "second"));
  EXPECT_EQ(queued.state(), v1::JOB_STATE_QUEUED);
  const absl::Time start = absl::Now();
  EXPECT_THAT(Submit(kLongSpec, "digits", "third"),
              StatusIs(Code::kResourceExhausted, "queue is full"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
}

TEST_F(IntegrationTest, StreamLimitRejectsAtOnce) {
  ServerOptions options = Options();
  options.max_streams = 2;
  ASSERT_NO_FATAL_FAILURE(StartServer(options));
  ASSERT_OK(TrainTinyModel("m"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<StreamSession> first,
                       client_->OpenStream("m", 0, 0));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<StreamSession> second,
                       client_->OpenStream("m", 0, 0));
  const absl::Time start = absl::Now();
  EXPECT_THAT(client_->OpenStream("m", 0, 0),
              StatusIs(Code::kResourceExhausted, "too many stream"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));

  // A freed slot takes a new stream.
  first.reset();
  ASSERT_TRUE(
      WaitUntil([&] { return ActiveStreams() == 1; }, absl::Seconds(2)));
  ASSERT_OK(client_->OpenStream("m", 0, 0));
}

// Watchers hold an RPC thread each: past --max-watchers (shared by both
// Watch RPCs) a watch is refused at once, and a finished one frees its slot.
TEST_F(IntegrationTest, WatchLimitRejectsAtOnce) {
  ServerOptions options = Options();
  options.max_watchers = 1;
  ASSERT_NO_FATAL_FAILURE(StartServer(options));
  ASSERT_OK_AND_ASSIGN(const v1::TrainingJob job, StartLongJob("long"));
  auto training = v1::TrainingService::NewStub(Channel());
  auto sweeps = v1::SweepService::NewStub(Channel());
  v1::WatchTrainingJobRequest request;
  request.set_job_id(job.id());
  auto first_context = std::make_unique<grpc::ClientContext>();
  auto first = training->WatchTrainingJob(first_context.get(), request);
  v1::WatchTrainingJobResponse update;
  ASSERT_TRUE(first->Read(&update));  // the snapshot: the watch is open

  const absl::Time start = absl::Now();
  grpc::ClientContext second_context;
  auto second = training->WatchTrainingJob(&second_context, request);
  EXPECT_FALSE(second->Read(&update));
  EXPECT_THAT(api::FromGrpcStatus(second->Finish()),
              StatusIs(Code::kResourceExhausted, "too many watchers (limit 1)"));
  grpc::ClientContext sweep_context;
  v1::WatchSweepRequest sweep_request;
  sweep_request.set_sweep_id("no-such-sweep");
  auto sweep = sweeps->WatchSweep(&sweep_context, sweep_request);
  v1::Sweep unused;
  EXPECT_FALSE(sweep->Read(&unused));
  EXPECT_THAT(api::FromGrpcStatus(sweep->Finish()),
              StatusIs(Code::kResourceExhausted, "too many watchers"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));

  first_context->TryCancel();
  while (first->Read(&update)) {
  }
  first->Finish();
  ASSERT_TRUE(WaitUntil(
      [&] {
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
        auto again = training->WatchTrainingJob(&context, request);
        const bool open = again->Read(&update);
        context.TryCancel();
        while (again->Read(&update)) {
        }
        again->Finish();
        return open;
      },
      absl::Seconds(3)));
}

// ---------------------------------------------------------------------------
// 7. Deadlines and client cancellation.

TEST_F(IntegrationTest, WatchHonoursTheClientDeadline) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ASSERT_OK_AND_ASSIGN(const v1::TrainingJob job, StartLongJob("long"));
  auto stub = v1::TrainingService::NewStub(Channel());
  grpc::ClientContext context;
  const absl::Time start = absl::Now();
  context.set_deadline(absl::ToChronoTime(start + absl::Milliseconds(300)));
  v1::WatchTrainingJobRequest request;
  request.set_job_id(job.id());
  auto reader = stub->WatchTrainingJob(&context, request);
  v1::WatchTrainingJobResponse update;
  int updates = 0;
  while (reader->Read(&update)) ++updates;
  EXPECT_THAT(api::FromGrpcStatus(reader->Finish()),
              StatusIs(Code::kDeadlineExceeded, ""));
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(1500));
  EXPECT_GE(updates, 1);  // the snapshot came at once
}

TEST_F(IntegrationTest, DroppedStreamSessionFreesItsSlot) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ASSERT_OK(TrainTinyModel("m"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<StreamSession> session,
                       client_->OpenStream("m", 0, 0));
  EXPECT_EQ(ActiveStreams(), 1);
  session.reset();  // cancels the call
  EXPECT_TRUE(WaitUntil([&] { return ActiveStreams() == 0; }, absl::Seconds(2)))
      << "active_streams is still " << ActiveStreams();
}

// ---------------------------------------------------------------------------
// 8. Graceful shutdown and resume.

TEST_F(IntegrationTest, ShutdownEndsCallsAndKeepsTheRunningJobForRestart) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ASSERT_OK(TrainTinyModel("m"));
  ASSERT_OK_AND_ASSIGN(const v1::TrainingJob job,
                       Submit(kResumableSpec, "digits", "resumed"));
  // Interrupt it after its first checkpoint, with a stream open.
  ASSERT_OK(WaitForJob(
      job.id(), [](const v1::TrainingJob& j) { return j.epochs_done() >= 1; },
      absl::Seconds(60)));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<StreamSession> session,
                       client_->OpenStream("m", 0, 0));

  const absl::Time start = absl::Now();
  server_->Shutdown(start + absl::Milliseconds(500));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));

  // The server has ended every call, so the stream cannot hang.
  ASSERT_OK_AND_ASSIGN(const std::optional<v1::StreamClassifyResponse> next,
                       session->Read());
  EXPECT_FALSE(next.has_value()) << next->ShortDebugString();
  EXPECT_THAT(session->Finish().code(),
              AnyOf(Code::kUnavailable, Code::kCancelled));
  session.reset();
  StopServer();

  // The job went back to the queue with its progress, its attempt given
  // back (a shutdown is not the job's fault)...
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<server::SqliteStore> store,
                         server::SqliteStore::Open(DataDir()));
    ASSERT_OK_AND_ASSIGN(const v1::TrainingJob stored, store->GetJob(job.id()));
    EXPECT_EQ(stored.state(), v1::JOB_STATE_QUEUED);
    EXPECT_GE(stored.epochs_done(), 1);
    EXPECT_EQ(stored.restarts(), 1);
    EXPECT_EQ(stored.attempt(), 0);
  }
  // ...and a new server on the same data dir resumes and finishes it.
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ASSERT_OK_AND_ASSIGN(
      const v1::TrainingJob resumed,
      WaitForState(job.id(), v1::JOB_STATE_SUCCEEDED, absl::Seconds(60)));
  EXPECT_EQ(resumed.restarts(), 1);
  EXPECT_EQ(resumed.attempt(), 1);
  EXPECT_EQ(resumed.epochs_done(), kResumableEpochs);
  ASSERT_OK_AND_ASSIGN(const v1::GetTrainingMetricsResponse metrics,
                       Metrics(job.id()));
  std::vector<int> epochs;
  for (const v1::EpochMetrics& m : metrics.epochs()) {
    epochs.push_back(m.epoch());
  }
  EXPECT_THAT(epochs, ElementsAre(1, 2, 3, 4, 5, 6));
}

// ---------------------------------------------------------------------------
// 9. Health.

TEST_F(IntegrationTest, HealthReportsServingWhileUp) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  std::vector<std::string> services = {""};
  for (const std::string& name : server::ServiceNames()) {
    services.push_back(name);
  }
  for (const std::string& service : services) {
    SCOPED_TRACE(absl::StrCat("service '", service, "'"));
    ASSERT_OK_AND_ASSIGN(const bool serving, client_->Health(service));
    EXPECT_TRUE(serving);
  }
}

// ---------------------------------------------------------------------------
// 10. Models in and out: ExportModel and ImportModel.

// A model trained offline the way spinnet-train trains one (the core's
// StartTraining and Train on the tiny dataset, kBaseSpec plus
// `spec_overrides`, no server involved); without `train` the initialised
// network, untrained.
absl::StatusOr<Model> TrainOffline(const std::string& spec_overrides,
                                   bool train = true) {
  CsvOptions csv;
  csv.input_dim = kDim;
  ASSIGN_OR_RETURN(const Dataset data, ParseCsv(TinyCsv(), csv, "tiny"));
  const DatasetSplit split = SplitFixed(data);
  v1::TrainingSpec request;
  if (!google::protobuf::TextFormat::MergeFromString(
          absl::StrCat(kBaseSpec, " ", spec_overrides), &request)) {
    return absl::InternalError("test bug: bad spec text");
  }
  ASSIGN_OR_RETURN(const TrainingSpec spec,
                   server::ResolveSpec(request, split.train));
  ASSIGN_OR_RETURN(Checkpoint start, StartTraining(spec.network, spec.device,
                                                   spec.train, split.train));
  if (!train) return start.model;
  ASSIGN_OR_RETURN(Checkpoint done,
                   Train(std::move(start), split.train, split.test, nullptr));
  return done.model;
}

// The tiny dataset's first `n` sequences.
std::vector<std::vector<double>> FirstSequences(int n) {
  std::vector<std::vector<double>> seqs;
  for (int i = 0; i < n; ++i) seqs.push_back(SequenceValues(i));
  return seqs;
}

absl::StatusOr<client::ModelFile> Export(Client& client,
                                         const std::string& name,
                                         int version = 0) {
  v1::ExportModelRequest request;
  request.set_name(name);
  request.set_version(version);
  return client.ExportModel(request);
}

// Every model version the server lists, as "name@version".
std::vector<std::string> ListedVersions(Client& client) {
  absl::StatusOr<v1::ListModelsResponse> r =
      client.ListModels(v1::ListModelsRequest());
  EXPECT_TRUE(r.ok()) << r.status();
  std::vector<std::string> out;
  if (!r.ok()) return out;
  for (const v1::Model& m : r->models()) {
    out.push_back(absl::StrCat(m.name(), "@", m.version()));
  }
  return out;
}

// The files under a directory of the data dir, sorted.
std::vector<std::string> FilesIn(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST_F(IntegrationTest, ExportThenImportIsByteIdenticalAndClassifiesTheSame) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ASSERT_OK_AND_ASSIGN(const v1::TrainingJob job, TrainTinyModel("m"));

  // The export is the stored file, byte for byte.
  ASSERT_OK_AND_ASSIGN(const client::ModelFile exported, Export(*client_, "m"));
  EXPECT_EQ(exported.model.name(), "m");
  EXPECT_EQ(exported.model.version(), 1);
  EXPECT_EQ(exported.model.source_job_id(), job.id());
  ASSERT_OK_AND_ASSIGN(const std::string stored,
                       ReadFile(DataDir() + "/models/" + job.id() + ".spnm"));
  EXPECT_TRUE(exported.bytes == stored) << "the export differs from the file";
  ASSERT_OK_AND_ASSIGN(const Model parsed, ParseModel(exported.bytes));
  EXPECT_EQ(parsed.class_labels, ClassLabels());

  // Imported under another name: a new model, served at once, answering
  // exactly as the original, and exported again byte for byte.
  ASSERT_OK_AND_ASSIGN(const v1::Model copy,
                       client_->ImportModel("copy", exported.bytes));
  EXPECT_EQ(copy.name(), "copy");
  EXPECT_EQ(copy.version(), 1);
  EXPECT_EQ(copy.source_job_id(), "");
  EXPECT_EQ(copy.dataset(), "tiny");
  EXPECT_THAT(copy.class_labels(), ElementsAreArray(ClassLabels()));
  EXPECT_EQ(copy.input_dim(), kDim);
  EXPECT_EQ(copy.sequence_steps(), kSteps);
  EXPECT_EQ(copy.spec().neurons(), 8);
  EXPECT_EQ(copy.spec().layers(), 1);
  EXPECT_TRUE(copy.has_create_time());
  const std::vector<std::vector<double>> seqs = FirstSequences(12);
  ASSERT_OK_AND_ASSIGN(const v1::ClassifyResponse original,
                       Classify("m", seqs));
  ASSERT_OK_AND_ASSIGN(const v1::ClassifyResponse imported,
                       Classify("copy", seqs));
  ASSERT_EQ(imported.results_size(), original.results_size());
  for (int i = 0; i < original.results_size(); ++i) {
    SCOPED_TRACE(absl::StrCat("sequence ", i));
    ExpectSameClassification(imported.results(i), original.results(i));
  }
  ASSERT_OK_AND_ASSIGN(const client::ModelFile again, Export(*client_, "copy"));
  EXPECT_TRUE(again.bytes == exported.bytes) << "the re-export differs";
  EXPECT_EQ(again.model.version(), 1);
  EXPECT_EQ(again.model.source_job_id(), "");

  // Into the job's own model: versions continue across imports and jobs.
  ASSERT_OK_AND_ASSIGN(const v1::Model m2,
                       client_->ImportModel("m", exported.bytes));
  EXPECT_EQ(m2.version(), 2);
  ASSERT_OK_AND_ASSIGN(const v1::TrainingJob job3, Submit("", "tiny", "m"));
  ASSERT_OK_AND_ASSIGN(
      const v1::TrainingJob done3,
      WaitForState(job3.id(), v1::JOB_STATE_SUCCEEDED, absl::Seconds(60)));
  EXPECT_EQ(done3.model_version(), 3);
  ASSERT_OK_AND_ASSIGN(const v1::ClassifyResponse v2,
                       Classify("m", seqs, /*version=*/2));
  ExpectSameClassification(v2.results(0), original.results(0));
  EXPECT_THAT(ListedVersions(*client_),
              ElementsAre("copy@1", "m@1", "m@2", "m@3"));

  // Deleting the imported version removes its file; the version stays used.
  v1::DeleteModelRequest del;
  del.set_name("m");
  del.set_version(2);
  ASSERT_OK(client_->DeleteModel(del));
  EXPECT_THAT(Export(*client_, "m", 2), StatusIs(Code::kNotFound, "version 2"));
  EXPECT_THAT(Classify("m", seqs, 2), StatusIs(Code::kNotFound, "version 2"));
  EXPECT_THAT(FilesIn(DataDir() + "/imported-models"),
              ElementsAre("copy@1.spnm"));
  ASSERT_OK_AND_ASSIGN(const v1::Model m4,
                       client_->ImportModel("m", exported.bytes));
  EXPECT_EQ(m4.version(), 4);
  ASSERT_OK_AND_ASSIGN(const client::ModelFile latest, Export(*client_, "m"));
  EXPECT_EQ(latest.model.version(), 4);
}

// A file `spinnet-train --out` writes (the core's SaveModel of an offline
// training) is served as it answers offline.
TEST_F(IntegrationTest, OfflineTrainedModelFileIsImportedAndServed) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ASSERT_OK_AND_ASSIGN(const Model offline, TrainOffline("epochs: 1"));
  const std::string path = temp_.path() + "/offline.spnm";
  ASSERT_OK(SaveModel(offline, path));
  ASSERT_OK_AND_ASSIGN(const std::string bytes, ReadFile(path));

  ASSERT_OK_AND_ASSIGN(const v1::Model imported,
                       client_->ImportModel("offline", bytes));
  EXPECT_EQ(imported.version(), 1);
  EXPECT_EQ(imported.dataset(), "tiny");
  ASSERT_OK_AND_ASSIGN(const v1::Model got, [&] {
    v1::GetModelRequest request;
    request.set_name("offline");
    return client_->GetModel(request);
  }());
  EXPECT_EQ(got.version(), 1);

  const std::vector<std::vector<double>> seqs = FirstSequences(9);
  Matrix columns(kSteps * kDim, static_cast<Index>(seqs.size()));
  for (size_t j = 0; j < seqs.size(); ++j) {
    for (size_t r = 0; r < seqs[j].size(); ++r) columns(r, j) = seqs[j][r];
  }
  ASSERT_OK_AND_ASSIGN(const std::vector<Classification> want,
                       spinnet::Classify(offline, columns));
  ASSERT_OK_AND_ASSIGN(const v1::ClassifyResponse served,
                       Classify("offline", seqs));
  ASSERT_EQ(served.results_size(), static_cast<int>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("sequence ", i));
    EXPECT_EQ(served.results(i).class_index(), want[i].class_index);
    EXPECT_EQ(served.results(i).label(), want[i].label);
    for (int c = 0; c < want[i].probabilities.size(); ++c) {
      EXPECT_NEAR(served.results(i).probabilities(c), want[i].probabilities[c],
                  1e-12);
    }
  }
  // And it comes back out as the file that went in.
  ASSERT_OK_AND_ASSIGN(const client::ModelFile exported,
                       Export(*client_, "offline"));
  EXPECT_TRUE(exported.bytes == bytes);
}

// Files of big networks do not fit one gRPC message (4 MB by default on the
// client): both directions stream them in chunks.
TEST_F(IntegrationTest, ModelFilesLargerThanAMessageGoBothWays) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ASSERT_OK_AND_ASSIGN(const Model big,
                       TrainOffline("neurons: 1024", /*train=*/false));
  const std::string bytes = SerializeModel(big);
  ASSERT_GT(bytes.size(), size_t{8} << 20);
  ASSERT_OK_AND_ASSIGN(const v1::Model imported,
                       client_->ImportModel("big", bytes));
  EXPECT_EQ(imported.spec().neurons(), 1024);
  ASSERT_OK_AND_ASSIGN(const client::ModelFile exported,
                       Export(*client_, "big"));
  EXPECT_EQ(exported.bytes.size(), bytes.size());
  EXPECT_TRUE(exported.bytes == bytes) << "the export differs";
  ASSERT_OK_AND_ASSIGN(const v1::ClassifyResponse r,
                       Classify("big", FirstSequences(1)));
  EXPECT_EQ(r.results_size(), 1);
}

TEST_F(IntegrationTest, CorruptImportsAreRefusedAndNothingIsWritten) {
  ServerOptions options = Options();
  ASSERT_OK_AND_ASSIGN(const Model model, TrainOffline("", /*train=*/false));
  const std::string good = SerializeModel(model);
  const int64_t limit = 8 * static_cast<int64_t>(good.size());
  options.max_model_bytes = limit;
  ASSERT_NO_FATAL_FAILURE(StartServer(options));

  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x20;
  Checkpoint checkpoint;
  checkpoint.model = model;
  checkpoint.adam_m = checkpoint.adam_v = Vector::Zero(model.params.size());
  const struct {
    const char* what;
    std::string bytes;
    Code code;
    const char* message;
  } cases[] = {
      {"a flipped byte", flipped, Code::kDataLoss, "checksum mismatch"},
      {"truncated", good.substr(0, good.size() - 1), Code::kDataLoss,
       "checksum mismatch"},
      {"cut short", good.substr(0, 20), Code::kDataLoss, "at least"},
      {"empty", "", Code::kInvalidArgument, "empty"},
      {"a CSV file", TinyCsv().substr(0, 1000), Code::kInvalidArgument,
       "not a spinnet model file"},
      {"a checkpoint", SerializeCheckpoint(checkpoint), Code::kInvalidArgument,
       "not a spinnet model file"},
      {"over the limit", good + std::string(limit, '\0'),
       Code::kInvalidArgument, "limit"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    EXPECT_THAT(client_->ImportModel("m", c.bytes),
                StatusIs(c.code, c.message));
  }
  // The message names the model it was for.
  EXPECT_THAT(client_->ImportModel("m", flipped),
              StatusIs(Code::kDataLoss, "model file for m"));

  // Streams that break the protocol: raw stubs, since the client cannot.
  const auto raw_import = [&](const std::vector<v1::ImportModelRequest>& msgs) {
    auto stub = v1::ModelService::NewStub(Channel());
    grpc::ClientContext context;
    v1::Model out;
    auto writer = stub->ImportModel(&context, &out);
    bool open = true;
    for (const v1::ImportModelRequest& msg : msgs) {
      open = open && writer->Write(msg);
    }
    if (open) writer->WritesDone();
    return api::FromGrpcStatus(writer->Finish());
  };
  v1::ImportModelRequest header, chunk;
  header.mutable_header()->set_name("m");
  header.mutable_header()->set_size_bytes(static_cast<int64_t>(good.size()));
  chunk.set_chunk(good.substr(0, good.size() / 2));
  EXPECT_THAT(raw_import({chunk}),
              StatusIs(Code::kInvalidArgument, "must be the header"));
  EXPECT_THAT(raw_import({header, chunk}),
              StatusIs(Code::kInvalidArgument, "the header said"));
  EXPECT_THAT(raw_import({header, chunk, header}),
              StatusIs(Code::kInvalidArgument, "second header"));
  EXPECT_THAT(raw_import({header, chunk, chunk, chunk}),
              StatusIs(Code::kInvalidArgument, "longer than"));
  header.mutable_header()->set_size_bytes(-1);
  EXPECT_THAT(raw_import({header}), StatusIs(Code::kInvalidArgument, "limit"));

  // Nothing was stored and no version was used up.
  EXPECT_THAT(ListedVersions(*client_), IsEmpty());
  EXPECT_THAT(FilesIn(DataDir() + "/imported-models"), IsEmpty());
  ASSERT_OK_AND_ASSIGN(const v1::Model m, client_->ImportModel("m", good));
  EXPECT_EQ(m.version(), 1);
}

TEST_F(IntegrationTest, ExportAndImportRejectUnknownModelsAndBadNames) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ASSERT_OK_AND_ASSIGN(const Model model, TrainOffline("", /*train=*/false));
  const std::string good = SerializeModel(model);
  ASSERT_OK(client_->ImportModel("m", good));

  EXPECT_THAT(Export(*client_, "none"), StatusIs(Code::kNotFound, "none"));
  EXPECT_THAT(Export(*client_, "m", 2), StatusIs(Code::kNotFound, "version 2"));
  EXPECT_THAT(Export(*client_, "m", -1),
              StatusIs(Code::kInvalidArgument, "version -1"));
  for (const std::string& name : std::vector<std::string>{
           "", "../etc", "a/b", "a@1", ".hidden", std::string(65, 'x')}) {
    SCOPED_TRACE(absl::StrCat("name '", name, "'"));
    EXPECT_THAT(Export(*client_, name),
                StatusIs(Code::kInvalidArgument, "name"));
    EXPECT_THAT(client_->ImportModel(name, good),
                StatusIs(Code::kInvalidArgument, "name"));
  }
  EXPECT_THAT(ListedVersions(*client_), ElementsAre("m@1"));
}

}  // namespace
}  // namespace spinnet
