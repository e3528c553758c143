#include "server/api/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <future>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "spinnet/v1/inference.grpc.pb.h"

namespace spinnet::server {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using Labels = std::map<std::string, std::string>;

// The series `name`{labels} (exactly those labels) as collected now.
std::optional<prometheus::ClientMetric> Series(ServerMetrics& metrics,
                                               const std::string& name,
                                               const Labels& labels) {
  for (const prometheus::MetricFamily& family : metrics.registry()->Collect()) {
    if (family.name != name) continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      Labels have;
      for (const auto& label : metric.label) have[label.name] = label.value;
      if (have == labels) return metric;
    }
  }
  return std::nullopt;
}

constexpr double kAbsent = std::numeric_limits<double>::quiet_NaN();

double CounterValue(ServerMetrics& m, const std::string& name,
                    const Labels& labels = {}) {
  const auto series = Series(m, name, labels);
  return series ? series->counter.value : kAbsent;
}

double GaugeValue(ServerMetrics& m, const std::string& name,
                  const Labels& labels = {}) {
  const auto series = Series(m, name, labels);
  return series ? series->gauge.value : kAbsent;
}

prometheus::ClientMetric::Histogram HistogramOf(ServerMetrics& m,
                                                const std::string& name,
                                                const Labels& labels = {}) {
  const auto series = Series(m, name, labels);
  EXPECT_TRUE(series.has_value()) << name;
  return series ? series->histogram : prometheus::ClientMetric::Histogram{};
}

std::vector<double> UpperBounds(const prometheus::ClientMetric::Histogram& h) {
  std::vector<double> bounds;
  for (const auto& bucket : h.bucket) bounds.push_back(bucket.upper_bound);
  return bounds;
}

// The cumulative count of the bucket with upper bound `le`.
uint64_t CountAtMost(const prometheus::ClientMetric::Histogram& h, double le) {
  for (const auto& bucket : h.bucket) {
    if (bucket.upper_bound == le) return bucket.cumulative_count;
  }
  ADD_FAILURE() << "no bucket le=" << le;
  return 0;
}

const double kInf = std::numeric_limits<double>::infinity();

TEST(ServerMetricsTest, JobGauges) {
  ServerMetrics m;
  m.SetJobsByState("RUNNING", 3);
  m.SetJobsByState("QUEUED", 1);
  m.SetJobsByState("RUNNING", 2);
  m.SetQueueDepth(4);
  EXPECT_EQ(GaugeValue(m, "spinnet_training_jobs", {{"state", "RUNNING"}}), 2);
  EXPECT_EQ(GaugeValue(m, "spinnet_training_jobs", {{"state", "QUEUED"}}), 1);
  EXPECT_EQ(GaugeValue(m, "spinnet_training_queue_depth"), 4);
  m.SetQueueDepth(0);
  EXPECT_EQ(GaugeValue(m, "spinnet_training_queue_depth"), 0);
}

TEST(ServerMetricsTest, ObserveEpoch) {
  ServerMetrics m;
  EXPECT_EQ(GaugeValue(m, "spinnet_training_samples_per_second"), 0);
  m.ObserveEpoch(2.5, 1200);
  m.ObserveEpoch(0.3, 1500);
  const auto h = HistogramOf(m, "spinnet_training_epoch_duration_seconds");
  EXPECT_EQ(h.sample_count, 2u);
  EXPECT_DOUBLE_EQ(h.sample_sum, 2.8);
  EXPECT_EQ(CountAtMost(h, 0.5), 1u);
  EXPECT_EQ(CountAtMost(h, 5), 2u);
  EXPECT_EQ(GaugeValue(m, "spinnet_training_samples_per_second"), 1500);
}

TEST(ServerMetricsTest, StreamSeries) {
  ServerMetrics m;
  m.StreamOpened();
  m.StreamOpened();
  m.StreamClosed();
  EXPECT_EQ(GaugeValue(m, "spinnet_stream_sessions_active"), 1);
  m.StreamClosed();
  EXPECT_EQ(GaugeValue(m, "spinnet_stream_sessions_active"), 0);

  m.AddStreamedSamples(10);
  m.AddStreamedSamples(5);
  EXPECT_EQ(CounterValue(m, "spinnet_streamed_samples_total"), 15);

  m.ObserveStepLatency(2e-5);
  m.ObserveStepLatency(0.3);
  const auto h = HistogramOf(m, "spinnet_stream_step_latency_seconds");
  EXPECT_EQ(h.sample_count, 2u);
  EXPECT_EQ(
      UpperBounds(h),
      (std::vector<double>{1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3,
                           1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1, kInf}));
  EXPECT_EQ(CountAtMost(h, 1e-5), 0u);
  EXPECT_EQ(CountAtMost(h, 2e-5), 1u);  // le is inclusive
  EXPECT_EQ(CountAtMost(h, 0.2), 1u);
  EXPECT_EQ(CountAtMost(h, 0.5), 2u);
}

TEST(ServerMetricsTest, ClassificationsPerModel) {
  ServerMetrics m;
  m.RecordClassification("digits", 3e-12);
  m.RecordClassification("digits", 4e-12);
  m.RecordClassification("sine", 5e-11);
  EXPECT_EQ(
      CounterValue(m, "spinnet_classifications_total", {{"model", "digits"}}),
      2);
  EXPECT_EQ(
      CounterValue(m, "spinnet_classifications_total", {{"model", "sine"}}), 1);
  const auto digits = HistogramOf(m, "spinnet_classification_energy_joules",
                                  {{"model", "digits"}});
  EXPECT_EQ(digits.sample_count, 2u);
  EXPECT_DOUBLE_EQ(digits.sample_sum, 7e-12);
  EXPECT_EQ(
      UpperBounds(digits),
      (std::vector<double>{1e-13, 2e-13, 5e-13, 1e-12, 2e-12, 5e-12, 1e-11,
                           2e-11, 5e-11, 1e-10, 2e-10, 5e-10, 1e-9, kInf}));
  EXPECT_EQ(CountAtMost(digits, 2e-12), 0u);
  EXPECT_EQ(CountAtMost(digits, 5e-12), 2u);
  EXPECT_EQ(HistogramOf(m, "spinnet_classification_energy_joules",
                        {{"model", "sine"}})
                .sample_count,
            1u);
}

TEST(ServerMetricsTest, RecordRpcLabels) {
  ServerMetrics m;
  m.RecordRpc("/a.v1.S/M", "alice", grpc::StatusCode::OK, 0.002);
  m.RecordRpc("/a.v1.S/M", "alice", grpc::StatusCode::INVALID_ARGUMENT, 0.003);
  m.RecordRpc("/a.v1.S/M", "alice", grpc::StatusCode::INVALID_ARGUMENT, 40);
  const std::string requests = "spinnet_grpc_requests_total";
  EXPECT_EQ(CounterValue(m, requests, {{"method", "a.v1.S/M"}, {"code", "OK"}}),
            1);
  EXPECT_EQ(
      CounterValue(m, requests,
                   {{"method", "a.v1.S/M"}, {"code", "INVALID_ARGUMENT"}}),
      2);
  const auto h = HistogramOf(m, "spinnet_grpc_request_duration_seconds",
                             {{"method", "a.v1.S/M"}});
  EXPECT_EQ(h.sample_count, 3u);
  EXPECT_EQ(UpperBounds(h).front(), 1e-4);
  EXPECT_EQ(UpperBounds(h)[UpperBounds(h).size() - 2], 30);
  EXPECT_EQ(CountAtMost(h, 30), 2u);

  // A name the server has not answered with anything but UNIMPLEMENTED is
  // the client's choice: no label of its own.
  m.RecordRpc("/evil.S/Random123", "alice", grpc::StatusCode::UNIMPLEMENTED, 0.001);
  EXPECT_EQ(CounterValue(m, requests,
                         {{"method", "other"}, {"code", "UNIMPLEMENTED"}}),
            1);
  EXPECT_TRUE(std::isnan(CounterValue(
      m, requests,
      {{"method", "evil.S/Random123"}, {"code", "UNIMPLEMENTED"}})));
  // A known method keeps its label for every code.
  m.RecordRpc("/a.v1.S/M", "alice", grpc::StatusCode::UNIMPLEMENTED, 0.001);
  EXPECT_EQ(CounterValue(m, requests,
                         {{"method", "a.v1.S/M"}, {"code", "UNIMPLEMENTED"}}),
            1);
  m.RecordRpc("/a.v1.S/M", "alice", grpc::StatusCode::UNAUTHENTICATED, 0.001);
  EXPECT_EQ(CounterValue(m, requests,
                         {{"method", "a.v1.S/M"}, {"code", "UNAUTHENTICATED"}}),
            1);
}

TEST(ServerMetricsTest, ConcurrentRecordingLosesNothing) {
  ServerMetrics m;
  constexpr int kThreads = 8, kEach = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&m, t] {
      // Half the threads share labels, half make their own.
      const std::string model = t % 2 == 0 ? "shared" : absl::StrCat("m", t);
      for (int i = 0; i < kEach; ++i) {
        m.RecordRpc("/a.S/M", "alice", grpc::StatusCode::OK, 1e-3);
        m.RecordClassification(model, 1e-12);
        m.StreamOpened();
        m.AddStreamedSamples(1);
        m.StreamClosed();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(CounterValue(m, "spinnet_grpc_requests_total",
                         {{"method", "a.S/M"}, {"code", "OK"}}),
            kThreads * kEach);
  EXPECT_EQ(
      CounterValue(m, "spinnet_classifications_total", {{"model", "shared"}}),
      kThreads / 2 * kEach);
  EXPECT_EQ(CounterValue(m, "spinnet_classifications_total", {{"model", "m1"}}),
            kEach);
  EXPECT_EQ(CounterValue(m, "spinnet_streamed_samples_total"),
            kThreads * kEach);
  EXPECT_EQ(GaugeValue(m, "spinnet_stream_sessions_active"), 0);
}

// GET http://127.0.0.1:<port><path> over a plain socket; the whole response.
std::string HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ADD_FAILURE() << "connect to port " << port << " failed";
  } else {
    const std::string request = absl::StrCat("GET ", path,
                                             " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                             "Connection: close\r\n\r\n");
    EXPECT_EQ(write(fd, request.data(), request.size()),
              static_cast<ssize_t>(request.size()));
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) response.append(buf, n);
  }
  close(fd);
  return response;
}

int PortOf(const std::string& address) {
  int port = 0;
  EXPECT_TRUE(absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port))
      << address;
  return port;
}

TEST(ServerMetricsTest, ExposerServesMetrics) {
  ServerMetrics m;
  m.SetQueueDepth(7);
  const absl::StatusOr<std::string> address = m.StartExposer("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_THAT(*address, StartsWith("127.0.0.1:"));
  const int port = PortOf(*address);
  ASSERT_GT(port, 0);

  const std::string response = HttpGet(port, "/metrics");
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(response, HasSubstr("spinnet_training_queue_depth 7"));
  // prometheus-cpp leaves out labelled families until they have a series.
  EXPECT_THAT(
      response,
      HasSubstr("# TYPE spinnet_stream_step_latency_seconds histogram"));

  // The same object cannot start a second exposer.
  const absl::StatusOr<std::string> again = m.StartExposer("127.0.0.1:0");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(again.status().message(), HasSubstr(*address));

  // Nor can another one bind the taken port.
  ServerMetrics other;
  const absl::StatusOr<std::string> taken = other.StartExposer(*address);
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(taken.status().message(),
              HasSubstr("cannot serve metrics on " + *address));
  EXPECT_THAT(taken.status().message(), HasSubstr("in use"));
}

TEST(ServerMetricsTest, ExposerRejectsMalformedAddresses) {
  for (const std::string listen :
       {"", "9090", "127.0.0.1", "127.0.0.1:", "127.0.0.1:70000", "127.0.0.1:x",
        "127.0.0.1:0,127.0.0.1:0", "127.0.0.1:0s", ":0"}) {
    ServerMetrics m;
    const absl::StatusOr<std::string> address = m.StartExposer(listen);
    EXPECT_EQ(address.status().code(), absl::StatusCode::kInvalidArgument)
        << "'" << listen << "': " << address.status();
  }
}

// A sync bidi-streaming method, to see the interceptor on the sync API.
class StreamService final : public v1::InferenceService::Service {
  grpc::Status StreamClassify(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<v1::StreamClassifyResponse,
                               v1::StreamClassifyRequest>* stream) override {
    v1::StreamClassifyRequest request;
    while (stream->Read(&request)) {
    }
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no model");
  }
};

class InterceptorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    // gRPC 1.51 refuses to build a server whose only service is the default
    // health service ("At least one of the completion queues must be
    // frequently polled"), so there is always a second one.
    builder.RegisterService(&service_);
    std::vector<
        std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        creators;
    creators.push_back(metrics_.MakeInterceptorFactory(&auth_, SelfTimed()));
    builder.experimental().SetInterceptorCreators(std::move(creators));
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials());
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  // MakeInterceptorFactory's `self_timed`.
  virtual std::vector<std::string> SelfTimed() const { return {}; }

  // A unary call with raw bytes as request; the status, `*response` set.
  grpc::Status Unary(const std::string& method, const std::string& request,
                     std::string* response,
                     const std::string& authorization = "") {
    grpc::GenericStub stub(channel_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    if (!authorization.empty()) {
      ctx.AddMetadata("authorization", authorization);
    }
    grpc::Slice slice(request);
    grpc::ByteBuffer request_buffer(&slice, 1);
    grpc::ByteBuffer response_buffer;
    std::promise<grpc::Status> done;
    stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request_buffer,
                   &response_buffer,
                   [&done](grpc::Status s) { done.set_value(std::move(s)); });
    const grpc::Status status = done.get_future().get();
    std::vector<grpc::Slice> slices;
    response->clear();
    if (status.ok() && response_buffer.Dump(&slices).ok()) {
      for (const grpc::Slice& s : slices) {
        response->append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
    }
    return status;
  }

  // The counter once it reaches `want` or after 5 s: the server records
  // when it sends the status, which can be after the client has seen it end
  // (cancellation).
  double AwaitCounter(const Labels& labels, double want,
                      const std::string& name = kRequests) {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(5);
    double value = CounterValue(metrics_, name, labels);
    while (value != want && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      value = CounterValue(metrics_, name, labels);
    }
    return value;
  }

  static TokenTable Clients() {
    TokenTable table;
    EXPECT_TRUE(table.Add("alice", Role::kReader, "alice-token", "test").ok());
    EXPECT_TRUE(table.Add("bob", Role::kAdmin, "bob-token", "test").ok());
    return table;
  }

  static constexpr char kRequests[] = "spinnet_grpc_requests_total";
  // Names the clients of the per-client counter; the services here do not
  // authorize (health never does).
  TokenAuthorizer auth_{Clients()};
  ServerMetrics metrics_;
  StreamService service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(InterceptorTest, CountsCallbackUnaryCall) {
  std::string response;
  // HealthCheckRequest{service: ""} is empty on the wire.
  const grpc::Status status =
      Unary("/grpc.health.v1.Health/Check", "", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response, std::string("\x08\x01", 2));  // status: SERVING
  EXPECT_EQ(AwaitCounter(
                {{"method", "grpc.health.v1.Health/Check"}, {"code", "OK"}}, 1),
            1);
  EXPECT_EQ(HistogramOf(metrics_, "spinnet_grpc_request_duration_seconds",
                        {{"method", "grpc.health.v1.Health/Check"}})
                .sample_count,
            1u);
}

TEST_F(InterceptorTest, CountsSyncBidiStream) {
  auto stub = v1::InferenceService::NewStub(channel_);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = stub->StreamClassify(&ctx);
  v1::StreamClassifyRequest request;
  EXPECT_TRUE(stream->Write(request));
  EXPECT_TRUE(stream->Write(request));
  stream->WritesDone();
  v1::StreamClassifyResponse response;
  EXPECT_FALSE(stream->Read(&response));
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(
      AwaitCounter({{"method", "spinnet.v1.InferenceService/StreamClassify"},
                    {"code", "INVALID_ARGUMENT"}},
                   1),
      1);
}

// Health/Watch is a callback server-streaming method that ends only when
// the client cancels.
TEST_F(InterceptorTest, CountsCancelledCallbackStream) {
  grpc::GenericStub stub(channel_);
  grpc::ClientContext ctx;
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(&ctx, "/grpc.health.v1.Health/Watch", &cq);
  void* tag;
  bool ok;
  const auto next = [&](intptr_t want) {
    ASSERT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(reinterpret_cast<intptr_t>(tag), want);
    EXPECT_TRUE(ok);
  };
  call->StartCall(reinterpret_cast<void*>(1));
  next(1);
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1);
  call->WriteLast(request, grpc::WriteOptions(), reinterpret_cast<void*>(2));
  next(2);
  grpc::ByteBuffer update;
  call->Read(&update, reinterpret_cast<void*>(3));
  next(3);  // the current status, SERVING
  ctx.TryCancel();
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  ASSERT_TRUE(cq.Next(&tag, &ok));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }

  // What the server sends to a cancelled call: gRPC's health service
  // finishes it with UNKNOWN "OnCancel()" in 1.51.
  double total = 0;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (total == 0 && std::chrono::steady_clock::now() < deadline) {
    for (const prometheus::MetricFamily& family :
         metrics_.registry()->Collect()) {
      if (family.name != kRequests) continue;
      for (const auto& metric : family.metric) {
        for (const auto& label : metric.label) {
          if (label.name == "method" &&
              label.value == "grpc.health.v1.Health/Watch") {
            total += metric.counter.value;
          }
        }
      }
    }
    if (total == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(total, 1);
}

class SelfTimedInterceptorTest : public InterceptorTest {
  std::vector<std::string> SelfTimed() const override {
    return {"/spinnet.v1.InferenceService/StreamClassify"};
  }
};

// A self-timed method's calls get no interceptor (the handler records them);
// the other methods are still counted.
TEST_F(SelfTimedInterceptorTest, SkipsSelfTimedMethods) {
  auto stub = v1::InferenceService::NewStub(channel_);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = stub->StreamClassify(&ctx);
  EXPECT_TRUE(stream->Write(v1::StreamClassifyRequest()));
  stream->WritesDone();
  v1::StreamClassifyResponse response;
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // The server records a call before its status reaches the client, so
  // once the later Check is counted, the stream would have been.
  std::string check;
  ASSERT_TRUE(Unary("/grpc.health.v1.Health/Check", "", &check).ok());
  EXPECT_EQ(AwaitCounter(
                {{"method", "grpc.health.v1.Health/Check"}, {"code", "OK"}}, 1),
            1);
  EXPECT_FALSE(Series(metrics_, kRequests,
                      {{"method", "spinnet.v1.InferenceService/StreamClassify"},
                       {"code", "INVALID_ARGUMENT"}})
                   .has_value());
}

TEST_F(InterceptorTest, UnknownMethodsShareOneLabel) {
  std::string response;
  for (const std::string method : {"/pkg.Nope/A", "/pkg.Nope/B",
                                   "/spinnet.v1.InferenceService/Classify"}) {
    EXPECT_EQ(Unary(method, "", &response).error_code(),
              grpc::StatusCode::UNIMPLEMENTED)
        << method;
  }
  EXPECT_EQ(AwaitCounter({{"method", "other"}, {"code", "UNIMPLEMENTED"}}, 3),
            3);
  for (const prometheus::MetricFamily& family :
       metrics_.registry()->Collect()) {
    for (const auto& metric : family.metric) {
      for (const auto& label : metric.label) {
        EXPECT_THAT(label.value, ::testing::Not(HasSubstr("Nope")));
      }
    }
  }
}

TEST_F(InterceptorTest, CountsEachClientsCalls) {
  std::string response;
  const std::string check = "/grpc.health.v1.Health/Check";
  for (const std::string authorization :
       {"Bearer alice-token", "Bearer alice-token", "bearer bob-token",
        "Bearer mallory", "Basic alice-token", ""}) {
    EXPECT_TRUE(Unary(check, "", &response, authorization).ok());
  }
  const std::string by_client = "spinnet_client_requests_total";
  const auto labels = [](const std::string& client) {
    return Labels{{"client", client},
                  {"method", "grpc.health.v1.Health/Check"},
                  {"code", "OK"}};
  };
  EXPECT_EQ(AwaitCounter(labels("alice"), 2, by_client), 2);
  EXPECT_EQ(AwaitCounter(labels("bob"), 1, by_client), 1);
  EXPECT_EQ(AwaitCounter(labels("unauthenticated"), 3, by_client), 3);
  EXPECT_EQ(AwaitCounter({{"method", "grpc.health.v1.Health/Check"},
                          {"code", "OK"}},
                         6),
            6);
  // Only the clients' names become labels, never a token.
  for (const prometheus::MetricFamily& family :
       metrics_.registry()->Collect()) {
    for (const auto& metric : family.metric) {
      for (const auto& label : metric.label) {
        EXPECT_THAT(label.value, ::testing::Not(HasSubstr("token")));
        EXPECT_THAT(label.value, ::testing::Not(HasSubstr("mallory")));
      }
    }
  }
}

TEST(ServerMetricsTest, ClientCounterWithAuthOff) {
  const TokenAuthorizer off;
  EXPECT_EQ(off.ClientOf({}), "anonymous");
  ServerMetrics m;
  m.RecordRpc("/a.v1.S/M", off.ClientOf({}), grpc::StatusCode::OK, 0.001);
  m.RecordRpc("/a.v1.S/M", "alice", grpc::StatusCode::NOT_FOUND, 0.001);
  EXPECT_EQ(CounterValue(m, "spinnet_client_requests_total",
                         {{"client", "anonymous"},
                          {"method", "a.v1.S/M"},
                          {"code", "OK"}}),
            1);
  EXPECT_EQ(CounterValue(m, "spinnet_client_requests_total",
                         {{"client", "alice"},
                          {"method", "a.v1.S/M"},
                          {"code", "NOT_FOUND"}}),
            1);
}

}  // namespace
}  // namespace spinnet::server
