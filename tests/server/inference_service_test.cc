// InferenceService over a real in-process gRPC server on 127.0.0.1:0 with
// real stubs: Classify against the core, the streaming protocol (provisional
// and final answers, reset, in-band errors), admission, idle close, many idle
// streams on few threads, cancellation and backpressure.
#include "server/api/inference_service.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/inference.h"
#include "core/model_io.h"
#include "core/parameters.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/api/auth.h"
#include "server/api/metrics.h"
#include "server/catalog/registry.h"
#include "server/storage/memory_store.h"

namespace spinnet::server {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;
using Stub = v1::InferenceService::Stub;
using Request = v1::StreamClassifyRequest;
using Response = v1::StreamClassifyResponse;

constexpr int kDim = 2;
constexpr char kJobId[] = "job-1";

// Deterministic inputs in [0, 1]: `steps` time steps of kDim values.
std::vector<double> Inputs(int steps, int seed) {
  std::vector<double> v(steps * kDim);
  for (size_t i = 0; i < v.size(); ++i) {
    v[i] = 0.5 + 0.5 * std::sin(0.37 * i + 1.3 * seed);
  }
  return v;
}

int ThreadCount() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
}

Request OpenMsg(const std::string& model, int provisional_every = 0) {
  Request r;
  r.mutable_open()->set_model(model);
  r.mutable_open()->set_provisional_every(provisional_every);
  return r;
}

Request StepsMsg(const std::vector<double>& values, bool end = false) {
  Request r;
  r.mutable_steps()->mutable_values()->Assign(values.begin(), values.end());
  r.mutable_steps()->set_end_of_sequence(end);
  return r;
}

Request ResetMsg() {
  Request r;
  r.mutable_reset();
  return r;
}

// A client stream; cancelled and finished on destruction if the test did
// not finish it.
struct ClientStream {
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReaderWriter<Request, Response>> rw;
  bool finished = false;

  Response Next() {
    Response r;
    EXPECT_TRUE(rw->Read(&r)) << "stream ended early";
    return r;
  }
  grpc::Status Finish() {
    finished = true;
    return rw->Finish();
  }
  // Half-closes, expects no further message, and returns the status.
  grpc::Status Close() {
    rw->WritesDone();
    Response r;
    EXPECT_FALSE(rw->Read(&r)) << r.DebugString();
    return Finish();
  }
  ~ClientStream() {
    if (!finished && rw != nullptr) {
      ctx.TryCancel();
      rw->Finish();
    }
  }
};

class InferenceServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::make_unique<MemoryStore>();
    auto model = std::make_shared<Model>();
    model->network.layers = 2;
    model->network.neurons = 8;
    model->network.input_dim = kDim;
    model->network.num_classes = 3;
    model->mask = MakeTrainableMask(model->network, 7);
    model->params = InitParameters(model->network, model->mask, 0.5, 7);
    model->class_labels = {"a", "b", "c"};
    model->dataset_name = "test";
    model->sequence_steps = 10;
    model_ = model;
    v1::Model info;
    info.set_name("m");
    info.set_input_dim(kDim);
    info.set_sequence_steps(10);
    for (const auto& l : model->class_labels) info.add_class_labels(l);
    // Published as a job's result, as the runner does.
    v1::TrainingJob job;
    job.set_id(kJobId);
    job.set_state(v1::JOB_STATE_QUEUED);
    ASSERT_TRUE(store_->InsertJob(job, 1).ok());
    auto claimed = store_->ClaimJob("test", absl::Seconds(60));
    ASSERT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status();
    job = (*claimed)->job;
    job.set_state(v1::JOB_STATE_SUCCEEDED);
    auto done = store_->FinishJob((*claimed)->lease, job,
                                  ModelToPublish{info, SerializeModel(*model)});
    ASSERT_TRUE(done.ok()) << done.status();
    ASSERT_EQ(done->model_version(), 1);

    registry_ = std::make_unique<ModelRegistry>(store_.get(), 1 << 20);
    metrics_ = std::make_unique<ServerMetrics>();
  }

  void TearDown() override {
    streams_.clear();
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::seconds(1));
      server_->Wait();
    }
    server_.reset();
    service_.reset();
  }

  // bdp_probe false keeps HTTP/2 flow-control windows at their initial 64
  // KiB instead of letting them grow (to MiBs) with the measured bandwidth,
  // so that what a stream buffers in the transport is small and fixed.
  void StartServer(StreamLimits limits = {}, const std::string& token = "",
                   bool bdp_probe = true) {
    if (token.empty()) {
      auth_ = std::make_unique<TokenAuthorizer>();
    } else {
      TokenTable table;
      ASSERT_TRUE(table.Add("tester", Role::kReader, token, "test").ok());
      auth_ = std::make_unique<TokenAuthorizer>(std::move(table));
    }
    service_ = std::make_unique<InferenceServiceImpl>(
        registry_.get(), metrics_.get(), auth_.get(), limits);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(service_.get());
    // The metrics interceptor as the server installs it.
    std::vector<
        std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        interceptors;
    interceptors.push_back(
        metrics_->MakeInterceptorFactory(auth_.get(), {kStreamClassifyMethod}));
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
    if (!bdp_probe) builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    address_ = absl::StrCat("127.0.0.1:", port);
    channel_ = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
    stub_ = v1::InferenceService::NewStub(channel_);
  }

  // A new stream with a 30 s deadline, so that a broken server fails the
  // test instead of hanging it.
  ClientStream* NewStream(const std::string& token = "",
                          Stub* stub = nullptr) {
    streams_.push_back(std::make_unique<ClientStream>());
    ClientStream* s = streams_.back().get();
    s->ctx.set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(30));
    if (!token.empty()) s->ctx.AddMetadata("authorization", "Bearer " + token);
    s->rw = (stub != nullptr ? stub : stub_.get())->StreamClassify(&s->ctx);
    return s;
  }

  // Opens a stream on model "m" and checks the `opened` answer.
  ClientStream* OpenStream(int provisional_every = 0, Stub* stub = nullptr) {
    ClientStream* s = NewStream("", stub);
    EXPECT_TRUE(s->rw->Write(OpenMsg("m", provisional_every)));
    Response r = s->Next();
    EXPECT_TRUE(r.has_opened()) << r.DebugString();
    return s;
  }

  grpc::Status CallClassify(const v1::ClassifyRequest& req,
                            v1::ClassifyResponse* resp,
                            const std::string& token = "") {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    return stub_->Classify(&ctx, req, resp);
  }

  // The Classify RPC's answer for one sequence.
  v1::Classification ClassifyOne(const std::vector<double>& values) {
    v1::ClassifyRequest req;
    req.set_model("m");
    req.add_sequences()->mutable_values()->Assign(values.begin(),
                                                  values.end());
    v1::ClassifyResponse resp;
    grpc::Status s = CallClassify(req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.results_size() == 1 ? resp.results(0) : v1::Classification();
  }

  static void ExpectSameClassification(const v1::Classification& got,
                                       const v1::Classification& want) {
    EXPECT_EQ(got.class_index(), want.class_index());
    EXPECT_EQ(got.label(), want.label());
    EXPECT_EQ(got.steps(), want.steps());
    ASSERT_EQ(got.probabilities_size(), want.probabilities_size());
    for (int i = 0; i < got.probabilities_size(); ++i) {
      EXPECT_NEAR(got.probabilities(i), want.probabilities(i), 1e-12);
    }
    EXPECT_NEAR(got.energy_joules(), want.energy_joules(),
                1e-12 * std::abs(want.energy_joules()));
  }

  // Waits up to `timeout` for the service's live streams to reach `n`.
  bool WaitForActiveStreams(int n, std::chrono::milliseconds timeout) {
    const auto end = Clock::now() + timeout;
    while (Clock::now() < end) {
      if (service_->active_streams() == n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return service_->active_streams() == n;
  }

  std::shared_ptr<const Model> model_;
  std::unique_ptr<MemoryStore> store_;
  std::unique_ptr<ModelRegistry> registry_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<TokenAuthorizer> auth_;
  std::unique_ptr<InferenceServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Stub> stub_;
  std::vector<std::unique_ptr<ClientStream>> streams_;
};

TEST_F(InferenceServiceTest, ClassifyEqualsCoreInRequestOrder) {
  StartServer();
  // Mixed lengths: the service batches by length and must keep the order.
  const std::vector<std::vector<double>> seqs = {
      Inputs(10, 1), Inputs(4, 2), Inputs(10, 3), Inputs(1, 4)};
  v1::ClassifyRequest req;
  req.set_model("m");
  for (const auto& s : seqs) {
    req.add_sequences()->mutable_values()->Assign(s.begin(), s.end());
  }
  v1::ClassifyResponse resp;
  grpc::Status status = CallClassify(req, &resp);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(resp.model_version(), 1);
  ASSERT_EQ(resp.results_size(), static_cast<int>(seqs.size()));
  for (size_t i = 0; i < seqs.size(); ++i) {
    const Matrix one =
        ConstMatrixMap(seqs[i].data(), static_cast<Index>(seqs[i].size()), 1);
    auto core = spinnet::Classify(*model_, one, 1);
    ASSERT_TRUE(core.ok()) << core.status();
    const Classification& want = (*core)[0];
    const v1::Classification& got = resp.results(i);
    EXPECT_EQ(got.class_index(), want.class_index) << i;
    EXPECT_EQ(got.label(), want.label) << i;
    EXPECT_EQ(got.steps(), static_cast<int64_t>(seqs[i].size() / kDim)) << i;
    ASSERT_EQ(got.probabilities_size(), 3);
    for (int c = 0; c < 3; ++c) {
      EXPECT_NEAR(got.probabilities(c), want.probabilities[c], 1e-12) << i;
    }
    EXPECT_DOUBLE_EQ(got.energy_joules(), want.energy_joules) << i;
    EXPECT_GT(got.energy_joules(), 0) << i;
  }
  // Sequences of different inputs give different answers: results are not
  // all copies of one.
  EXPECT_NE(resp.results(0).probabilities(0), resp.results(2).probabilities(0));
}

TEST_F(InferenceServiceTest, ClassifyRejectsBadRequests) {
  StartServer();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct Case {
    std::string name, model;
    std::vector<std::vector<double>> seqs;
    grpc::StatusCode code;
    std::string message;
  };
  const std::vector<double> good = Inputs(3, 1);
  const std::vector<Case> cases = {
      {"unknown model", "nope", {good}, grpc::StatusCode::NOT_FOUND, ""},
      {"empty model name", "", {good}, grpc::StatusCode::INVALID_ARGUMENT,
       "model"},
      {"no sequences", "m", {}, grpc::StatusCode::INVALID_ARGUMENT,
       "sequences: none to classify"},
      {"empty sequence", "m", {good, {}}, grpc::StatusCode::INVALID_ARGUMENT,
       "sequence 1: no values"},
      {"wrong dimension", "m", {{1, 2, 3}}, grpc::StatusCode::INVALID_ARGUMENT,
       "not a multiple of the model's input dimension 2"},
      {"NaN", "m", {good, {1, 2, 3, nan}}, grpc::StatusCode::INVALID_ARGUMENT,
       "sequence 1: step 1, value 1: nan is not finite"},
      {"infinity", "m", {{inf, 0}}, grpc::StatusCode::INVALID_ARGUMENT,
       "not finite"},
      {"too many sequences", "m",
       std::vector<std::vector<double>>(kMaxSequencesPerClassify + 1, {1, 2}),
       grpc::StatusCode::INVALID_ARGUMENT, "the limit is 4096"},
  };
  for (const Case& c : cases) {
    v1::ClassifyRequest req;
    req.set_model(c.model);
    for (const auto& s : c.seqs) {
      req.add_sequences()->mutable_values()->Assign(s.begin(), s.end());
    }
    v1::ClassifyResponse resp;
    grpc::Status status = CallClassify(req, &resp);
    EXPECT_EQ(status.error_code(), c.code)
        << c.name << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.message)) << c.name;
  }
  // The service is unharmed.
  EXPECT_EQ(ClassifyOne(good).steps(), 3);
}

TEST_F(InferenceServiceTest, TokenIsRequiredWhenSet) {
  StartServer({}, "s3cret");
  v1::ClassifyRequest req;
  req.set_model("m");
  const std::vector<double> seq = Inputs(2, 1);
  req.add_sequences()->mutable_values()->Assign(seq.begin(), seq.end());
  v1::ClassifyResponse resp;
  EXPECT_EQ(CallClassify(req, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(CallClassify(req, &resp, "wrong").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(CallClassify(req, &resp, "s3cret").ok());

  ClientStream* anonymous = NewStream();
  Response r;
  EXPECT_FALSE(anonymous->rw->Read(&r));
  EXPECT_EQ(anonymous->Finish().error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  ClientStream* good = NewStream("s3cret");
  ASSERT_TRUE(good->rw->Write(OpenMsg("m")));
  EXPECT_TRUE(good->Next().has_opened());
  EXPECT_TRUE(good->Close().ok());
  EXPECT_TRUE(WaitForActiveStreams(0, std::chrono::seconds(1)));
}

TEST_F(InferenceServiceTest, StreamAnswersProvisionallyAndAtTheEnd) {
  StartServer();
  ClientStream* s = NewStream();
  ASSERT_TRUE(s->rw->Write(OpenMsg("m", 3)));
  const Response opened = s->Next();
  ASSERT_TRUE(opened.has_opened()) << opened.DebugString();
  EXPECT_EQ(opened.opened().model(), "m");
  EXPECT_EQ(opened.opened().version(), 1);
  EXPECT_EQ(opened.opened().input_dim(), kDim);
  EXPECT_THAT(opened.opened().class_labels(),
              ::testing::ElementsAre("a", "b", "c"));
  EXPECT_EQ(service_->active_streams(), 1);

  // Sequence 0: 10 steps in two messages (4 + 6): provisional answers after
  // steps 3, 6 and 9, the final one after step 10.
  const std::vector<double> seq = Inputs(10, 5);
  ASSERT_TRUE(s->rw->Write(
      StepsMsg(std::vector<double>(seq.begin(), seq.begin() + 4 * kDim))));
  ASSERT_TRUE(s->rw->Write(StepsMsg(
      std::vector<double>(seq.begin() + 4 * kDim, seq.end()), true)));
  for (int steps : {3, 6, 9}) {
    const Response r = s->Next();
    ASSERT_TRUE(r.has_answer()) << r.DebugString();
    EXPECT_EQ(r.answer().sequence(), 0);
    EXPECT_FALSE(r.answer().final());
    EXPECT_EQ(r.answer().classification().steps(), steps);
    // A provisional answer is the class of the sequence so far.
    ExpectSameClassification(
        r.answer().classification(),
        ClassifyOne(std::vector<double>(seq.begin(),
                                        seq.begin() + steps * kDim)));
  }
  const Response final = s->Next();
  ASSERT_TRUE(final.has_answer()) << final.DebugString();
  EXPECT_TRUE(final.answer().final());
  EXPECT_EQ(final.answer().sequence(), 0);
  ExpectSameClassification(final.answer().classification(), ClassifyOne(seq));

  // Sequence 1 starts afresh; a final answer at a multiple of
  // provisional_every replaces the provisional one.
  const std::vector<double> seq1 = Inputs(3, 6);
  ASSERT_TRUE(s->rw->Write(StepsMsg(seq1, true)));
  const Response r1 = s->Next();
  ASSERT_TRUE(r1.has_answer()) << r1.DebugString();
  EXPECT_TRUE(r1.answer().final());
  EXPECT_EQ(r1.answer().sequence(), 1);
  ExpectSameClassification(r1.answer().classification(), ClassifyOne(seq1));
  EXPECT_TRUE(s->Close().ok());
  EXPECT_TRUE(WaitForActiveStreams(0, std::chrono::seconds(1)));
}

TEST_F(InferenceServiceTest, ResetDropsTheCurrentSequence) {
  StartServer();
  ClientStream* s = OpenStream();
  ASSERT_TRUE(s->rw->Write(StepsMsg(Inputs(5, 1))));
  ASSERT_TRUE(s->rw->Write(ResetMsg()));
  const std::vector<double> seq = Inputs(10, 2);
  ASSERT_TRUE(s->rw->Write(StepsMsg(seq, true)));
  const Response r = s->Next();
  ASSERT_TRUE(r.has_answer()) << r.DebugString();
  EXPECT_EQ(r.answer().sequence(), 1);  // the reset sequence was number 0
  EXPECT_TRUE(r.answer().final());
  ExpectSameClassification(r.answer().classification(), ClassifyOne(seq));
  EXPECT_TRUE(s->Close().ok());
}

TEST_F(InferenceServiceTest, ErrorsComeInBandAndTheStreamGoesOn) {
  StartServer();
  ClientStream* s = NewStream();
  auto expect_error = [&](const Request& req, grpc::StatusCode code,
                          const std::string& message) {
    ASSERT_TRUE(s->rw->Write(req));
    const Response r = s->Next();
    ASSERT_TRUE(r.has_error()) << r.DebugString();
    EXPECT_EQ(r.error().code(), code) << r.error().message();
    EXPECT_THAT(r.error().message(), HasSubstr(message));
  };
  expect_error(StepsMsg(Inputs(2, 1)), grpc::StatusCode::FAILED_PRECONDITION,
               "send `open` first");
  expect_error(ResetMsg(), grpc::StatusCode::FAILED_PRECONDITION,
               "send `open` first");
  expect_error(OpenMsg("nope"), grpc::StatusCode::NOT_FOUND, "");
  expect_error(OpenMsg("m", -1), grpc::StatusCode::INVALID_ARGUMENT,
               "provisional_every -1");
  ASSERT_TRUE(s->rw->Write(OpenMsg("m")));
  ASSERT_TRUE(s->Next().has_opened());
  expect_error(OpenMsg("m"), grpc::StatusCode::FAILED_PRECONDITION,
               "already open on model m");
  expect_error(StepsMsg({1, 2, 3}), grpc::StatusCode::INVALID_ARGUMENT,
               "3 values is not a multiple of the model's input dimension 2");
  expect_error(StepsMsg({}, true), grpc::StatusCode::INVALID_ARGUMENT,
               "no values");
  std::vector<double> bad = Inputs(4, 1);
  bad[2 * kDim + 1] = std::numeric_limits<double>::quiet_NaN();
  expect_error(StepsMsg(bad, true), grpc::StatusCode::INVALID_ARGUMENT,
               "step 2, value 1: nan is not finite; nothing of this message "
               "was fed");
  expect_error(Request(), grpc::StatusCode::INVALID_ARGUMENT, "empty request");
  expect_error(StepsMsg(std::vector<double>(65536 + 2, 0.5)),
               grpc::StatusCode::INVALID_ARGUMENT, "the limit is 65536");

  // None of the rejected steps was fed: the answer covers these 10 only.
  const std::vector<double> seq = Inputs(10, 3);
  ASSERT_TRUE(s->rw->Write(StepsMsg(seq, true)));
  const Response r = s->Next();
  ASSERT_TRUE(r.has_answer()) << r.DebugString();
  EXPECT_EQ(r.answer().sequence(), 0);
  ExpectSameClassification(r.answer().classification(), ClassifyOne(seq));
  EXPECT_TRUE(s->Close().ok());
}

TEST_F(InferenceServiceTest, StreamsBeyondTheLimitAreRefusedAtOnce) {
  StreamLimits limits;
  limits.max_streams = 2;
  StartServer(limits);
  ClientStream* a = OpenStream();
  OpenStream();
  EXPECT_EQ(service_->active_streams(), 2);

  const auto start = Clock::now();
  ClientStream* third = NewStream();
  Response r;
  EXPECT_FALSE(third->rw->Read(&r));
  const grpc::Status status = third->Finish();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(1));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(status.error_message(), "too many stream sessions (limit 2)");
  EXPECT_EQ(service_->active_streams(), 2);

  // A slot freed is a slot taken again.
  EXPECT_TRUE(a->Close().ok());
  ASSERT_TRUE(WaitForActiveStreams(1, std::chrono::seconds(1)));
  OpenStream();
  EXPECT_EQ(service_->active_streams(), 2);
}

// StreamClassify has no interceptor (see kStreamClassifyMethod): its
// streams count themselves, once each, with the status they end with.
TEST_F(InferenceServiceTest, StreamsRecordTheirRpcMetricOnce) {
  StreamLimits limits;
  limits.max_streams = 1;
  StartServer(limits);
  ClientStream* a = OpenStream();
  ClientStream* refused = NewStream();
  EXPECT_EQ(refused->Finish().error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(a->Close().ok());
  // The requests counter of `code` and the duration histogram's count.
  const auto counts = [this](const std::string& code) {
    std::pair<double, uint64_t> n{0, 0};
    for (const prometheus::MetricFamily& family :
         metrics_->registry()->Collect()) {
      for (const prometheus::ClientMetric& metric : family.metric) {
        std::map<std::string, std::string> labels;
        for (const auto& l : metric.label) labels[l.name] = l.value;
        if (labels["method"] != "spinnet.v1.InferenceService/StreamClassify") {
          continue;
        }
        if (family.name == "spinnet_grpc_requests_total" &&
            labels["code"] == code) {
          n.first += metric.counter.value;
        }
        if (family.name == "spinnet_grpc_request_duration_seconds") {
          n.second += metric.histogram.sample_count;
        }
      }
    }
    return n;
  };
  // The server records as it sends a status, which the client may see first.
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (counts("OK").first < 1 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(counts("OK").first, 1);
  EXPECT_EQ(counts("RESOURCE_EXHAUSTED").first, 1);
  EXPECT_EQ(counts("OK").second, 2u);
}

TEST_F(InferenceServiceTest, IdleStreamIsClosedWithAReason) {
  StreamLimits limits;
  limits.idle_timeout = absl::Milliseconds(300);
  StartServer(limits);

  // Requests every 100 ms keep a stream alive past the timeout.
  ClientStream* busy = OpenStream(1);
  for (int i = 0; i < 8; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_TRUE(busy->rw->Write(StepsMsg(Inputs(1, i))));
    const Response r = busy->Next();
    ASSERT_TRUE(r.has_answer()) << r.DebugString();
  }
  EXPECT_TRUE(busy->Close().ok());

  const auto start = Clock::now();
  ClientStream* idle = OpenStream();
  const Response closed = idle->Next();
  const auto waited = Clock::now() - start;
  ASSERT_TRUE(closed.has_closed()) << closed.DebugString();
  EXPECT_EQ(closed.closed().reason(), "idle for 0.3s; closed by server");
  EXPECT_GE(waited, std::chrono::milliseconds(300));
  EXPECT_LT(waited, std::chrono::milliseconds(1500));
  Response r;
  EXPECT_FALSE(idle->rw->Read(&r));
  EXPECT_TRUE(idle->Finish().ok());
  EXPECT_TRUE(WaitForActiveStreams(0, std::chrono::seconds(1)));
}

TEST_F(InferenceServiceTest, ThousandIdleStreamsNeedFewThreads) {
  StartServer();
  ASSERT_TRUE(OpenStream()->Close().ok());  // warm up the channel
  const int threads_before = ThreadCount();
  constexpr int kStreams = 1000;
  std::vector<ClientStream*> streams;
  for (int i = 0; i < kStreams; ++i) {
    streams.push_back(NewStream());
    ASSERT_TRUE(streams.back()->rw->Write(OpenMsg("m")));
  }
  int opened = 0;
  for (ClientStream* s : streams) opened += s->Next().has_opened();
  EXPECT_EQ(opened, kStreams);
  EXPECT_EQ(service_->active_streams(), kStreams);
  const int threads_after = ThreadCount();
  RecordProperty("threads_before", threads_before);
  RecordProperty("threads_after", threads_after);
  EXPECT_LT(threads_after - threads_before, 100)
      << threads_before << " -> " << threads_after;
  // Each of them still works.
  const std::vector<double> seq = Inputs(2, 9);
  for (ClientStream* s : streams) ASSERT_TRUE(s->rw->Write(StepsMsg(seq, true)));
  int answered = 0;
  for (ClientStream* s : streams) answered += s->Next().answer().final();
  EXPECT_EQ(answered, kStreams);
  for (ClientStream* s : streams) s->rw->WritesDone();
  for (ClientStream* s : streams) EXPECT_TRUE(s->Finish().ok());
  EXPECT_TRUE(WaitForActiveStreams(0, std::chrono::seconds(2)));
}

TEST_F(InferenceServiceTest, ClientCancelEndsTheSession) {
  StartServer();
  ClientStream* s = OpenStream(1);
  ASSERT_TRUE(s->rw->Write(StepsMsg(Inputs(50, 1))));
  EXPECT_TRUE(s->Next().has_answer());
  EXPECT_EQ(service_->active_streams(), 1);
  s->ctx.TryCancel();
  EXPECT_TRUE(WaitForActiveStreams(0, std::chrono::seconds(1)))
      << service_->active_streams() << " streams still active";
  EXPECT_EQ(s->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(InferenceServiceTest, ServerShutdownEndsStreamsUnavailable) {
  StartServer();
  ClientStream* s = OpenStream();
  server_->Shutdown(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(200));
  // Shutdown returns after every reactor is done, so the service may go.
  EXPECT_EQ(service_->active_streams(), 0);
  Response r;
  EXPECT_FALSE(s->rw->Read(&r));
  EXPECT_EQ(s->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

// Writes `messages` steps messages from a thread, counting those written.
class Writer {
 public:
  Writer(ClientStream* s, int messages, const std::vector<double>& values)
      : thread_([this, s, messages, values] {
          for (int i = 0; i < messages; ++i) {
            if (!s->rw->Write(StepsMsg(values, i == messages - 1))) return;
            ++written_;
          }
        }) {}
  ~Writer() { thread_.join(); }
  int written() const { return written_; }

 private:
  std::atomic<int> written_{0};
  std::thread thread_;
};

// Reads answers until the final one; returns how many answers came.
int ReadUntilFinal(ClientStream* s) {
  int answers = 0;
  Response r;
  while (s->rw->Read(&r)) {
    if (!r.has_answer()) {
      ADD_FAILURE() << r.DebugString();
      return answers;
    }
    ++answers;
    if (r.answer().final()) break;
  }
  return answers;
}

TEST_F(InferenceServiceTest, ClientThatStopsReadingStopsBeingRead) {
  // Small, fixed transport windows on both ends: what the transport buffers
  // is then far less than the 2,000 messages, and a client whose writes
  // stall shows that the service stopped reading.
  StartServer({}, "", /*bdp_probe=*/false);
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  auto stub = v1::InferenceService::NewStub(grpc::CreateCustomChannel(
      address_, grpc::InsecureChannelCredentials(), args));
  constexpr int kMessages = 2000, kSteps = 50, kEvery = 5;
  constexpr int kAnswers = kMessages * kSteps / kEvery;  // the last is final
  ClientStream* s = OpenStream(kEvery, stub.get());
  Writer writer(s, kMessages, Inputs(kSteps, 1));
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const int after_1s = writer.written();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const int after_2s = writer.written();
  EXPECT_GT(after_2s, 0);
  EXPECT_LT(after_2s, kMessages) << "the server read everything it was sent";
  EXPECT_EQ(after_1s, after_2s) << "the server went on reading";
  EXPECT_EQ(service_->active_streams(), 1);
  // Reading again lets everything through.
  const auto start = Clock::now();
  EXPECT_EQ(ReadUntilFinal(s), kAnswers);
  EXPECT_EQ(writer.written(), kMessages);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
  EXPECT_TRUE(s->Close().ok());
}

}  // namespace
}  // namespace spinnet::server
