// stream_load: StreamClassify under load next to a trivial echo service on
// the same gRPC callback API, plus unary Classify throughput. Everything runs
// in this process: a SpinnetServer (which first trains a default model on
// "digits" for 2 epochs) and an echo server on loopback port 0.
//
// For each session count S, S closed-loop sessions (one ClientBidiReactor
// each, spread over up to 16 channels) send the test digits one time step
// per message and send the next step only once the previous one's answer
// (provisional_every = 1) is back. Reported: round-trip latency per step and
// steps/s, for spinnet and for echo. Then the open rate: 16 threads (one
// channel each) open a session, send one time step, wait for its answer and
// close, over and over: sessions per second and the p50 time from the call's
// start to the first answer. Then 4 threads call Classify with batches of 1
// and of 32 sequences.
//
//   stream_load [--sessions 1,16,256,1024] [--seconds 5] [--json]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/client.h"
#include "core/dataset.h"
#include "echo.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "server/app/server.h"

namespace spinnet {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kModel[] = "bench";
constexpr int kMaxChannels = 16;
constexpr int kOpeners = 16;  // concurrent sessions of the open-rate test
constexpr double kWarmupSeconds = 1.0;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "stream_load: %s\n", what.c_str());
  std::exit(1);
}

// ---------------------------------------------------------------------------
// The echo baseline: one reply per request, same callback API as
// InferenceServiceImpl's StreamClassify. Reads and writes alternate, so the
// reactor needs no lock.
class EchoReactor final
    : public grpc::ServerBidiReactor<bench::EchoRequest, bench::EchoReply> {
 public:
  EchoReactor() { StartRead(&request_); }
  void OnReadDone(bool ok) override {
    if (!ok) return Finish(grpc::Status::OK);  // half-close or cancel
    *reply_.mutable_payload() = request_.payload();
    StartWrite(&reply_);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) return Finish(grpc::Status::CANCELLED);
    StartRead(&request_);
  }
  void OnDone() override { delete this; }

 private:
  bench::EchoRequest request_;
  bench::EchoReply reply_;
};

class EchoService final : public bench::Echo::CallbackService {
  grpc::ServerBidiReactor<bench::EchoRequest, bench::EchoReply>* Stream(
      grpc::CallbackServerContext*) override {
    return new EchoReactor;
  }
};

// ---------------------------------------------------------------------------
// The two streaming APIs as the driver sees them: an optional opening
// message, then one message per time step, each answered by one response.
struct SpinnetApi {
  using Service = v1::InferenceService;
  using Request = v1::StreamClassifyRequest;
  using Response = v1::StreamClassifyResponse;
  static constexpr const char* kName = "spinnet";
  static constexpr bool kOpens = true;

  static void Call(Service::Stub* stub, grpc::ClientContext* ctx,
                   grpc::ClientBidiReactor<Request, Response>* reactor) {
    stub->async()->StreamClassify(ctx, reactor);
  }
  static void SetOpen(Request* r) {
    r->mutable_open()->set_model(kModel);
    r->mutable_open()->set_provisional_every(1);
  }
  static void SetStep(double value, bool end_of_sequence, Request* r) {
    v1::StreamSteps* steps = r->mutable_steps();
    steps->clear_values();
    steps->add_values(value);
    steps->set_end_of_sequence(end_of_sequence);
  }
  // Whether `r` is the expected answer to the opening message or a step.
  static bool Expected(const Response& r, bool opening) {
    return opening ? r.has_opened() : r.has_answer();
  }
};

struct EchoApi {
  using Service = bench::Echo;
  using Request = bench::EchoRequest;
  using Response = bench::EchoReply;
  static constexpr const char* kName = "echo";
  static constexpr bool kOpens = false;

  static void Call(Service::Stub* stub, grpc::ClientContext* ctx,
                   grpc::ClientBidiReactor<Request, Response>* reactor) {
    stub->async()->Stream(ctx, reactor);
  }
  static void SetOpen(Request*) {}
  static void SetStep(double value, bool, Request* r) {
    r->clear_payload();
    r->add_payload(value);
  }
  static bool Expected(const Response& r, bool) {
    return r.payload_size() == 1;
  }
};

// What one load point shares between its sessions.
class Run {
 public:
  enum Phase { kWarmup, kMeasuring, kStopping };
  Phase phase() const { return phase_.load(std::memory_order_acquire); }
  void set_phase(Phase p) { phase_.store(p, std::memory_order_release); }

  // A session's end: its latencies (µs) and an error, if any.
  void SessionDone(const std::vector<float>& latencies, std::string error) {
    std::lock_guard<std::mutex> lock(mu_);
    latencies_.insert(latencies_.end(), latencies.begin(), latencies.end());
    if (!error.empty() && error_.empty()) error_ = std::move(error);
    ++done_;
    cv_.notify_all();
  }
  // Waits for `n` sessions to end; returns all latencies (µs).
  std::vector<float> Wait(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_ == n; });
    if (!error_.empty()) Die(error_);
    return std::move(latencies_);
  }

 private:
  std::atomic<Phase> phase_{kWarmup};
  std::mutex mu_;
  std::condition_variable cv_;
  int done_ = 0;
  std::vector<float> latencies_;
  std::string error_;
};

// One closed-loop session: a message goes out once the previous message's
// write has completed and its answer is in (whichever callback comes second
// sends). A read is always outstanding until the stream ends. A `one_step`
// session half-closes after its first answer and records the time from its
// start to that answer instead of each step's round trip.
template <typename Api>
class Session final : public grpc::ClientBidiReactor<typename Api::Request,
                                                     typename Api::Response> {
 public:
  Session(typename Api::Service::Stub* stub, const Dataset* data, int first,
          Run* run, bool one_step = false)
      : data_(data),
        sequence_(first % data->size()),
        run_(run),
        one_step_(one_step),
        start_ns_(Clock::now().time_since_epoch().count()) {
    Api::Call(stub, &ctx_, this);
    this->StartRead(&response_);
    if (Api::kOpens) {
      opening_ = true;
      Api::SetOpen(&request_);
      Send();
    } else {
      SendNextStep();
    }
    this->StartCall();
  }

  void OnWriteDone(bool ok) override {
    if (ok && --outstanding_ == 0) SendNextStep();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended; OnDone follows
    if (!Api::Expected(response_, opening_)) {
      error_ = std::string(Api::kName) + ": unexpected response " +
               response_.ShortDebugString();
      ctx_.TryCancel();
      return;
    }
    if (!opening_ && run_->phase() == Run::kMeasuring) {
      const int64_t now = Clock::now().time_since_epoch().count();
      latencies_.push_back((now - (one_step_ ? start_ns_ : sent_ns_.load())) /
                           1e3f);
    }
    opening_ = false;
    this->StartRead(&response_);
    if (--outstanding_ == 0) SendNextStep();
  }

  void OnDone(const grpc::Status& status) override {
    if (error_.empty() && !status.ok()) {
      error_ = std::string(Api::kName) + ": stream ended with " +
               status.error_message();
    }
    run_->SessionDone(latencies_, std::move(error_));  // the last touch
  }

 private:
  void SendNextStep() {
    if (run_->phase() == Run::kStopping || (one_step_ && sent_steps_ == 1)) {
      return this->StartWritesDone();
    }
    ++sent_steps_;
    const Index steps = data_->values.rows();
    Api::SetStep(data_->values(step_, sequence_), step_ == steps - 1,
                 &request_);
    if (++step_ == steps) {
      step_ = 0;
      sequence_ = (sequence_ + 1) % data_->size();
    }
    Send();
  }
  void Send() {
    outstanding_ = 2;  // its write and its answer
    sent_ns_ = Clock::now().time_since_epoch().count();
    this->StartWrite(&request_);
  }

  const Dataset* const data_;
  Index sequence_;
  Index step_ = 0;
  Run* const run_;
  const bool one_step_;
  const int64_t start_ns_;
  int64_t sent_steps_ = 0;
  grpc::ClientContext ctx_;
  typename Api::Request request_;
  typename Api::Response response_;
  bool opening_ = false;  // the answer awaited is the opening one
  std::atomic<int> outstanding_{0};
  std::atomic<int64_t> sent_ns_{0};
  std::vector<float> latencies_;  // µs, measured steps only
  std::string error_;
};

// `n` channels with their own connections (not one shared subchannel).
std::vector<std::shared_ptr<grpc::Channel>> Channels(const std::string& target,
                                                     int n) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < n; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channels.push_back(grpc::CreateCustomChannel(
        target, grpc::InsecureChannelCredentials(), args));
  }
  return channels;
}

struct StreamResult {
  double p50_us = 0, p99_us = 0, steps_per_second = 0;
};

struct OpenResult {
  double sessions_per_second = 0, p50_us = 0;
};

double Percentile(std::vector<float>& v, double q) {
  if (v.empty()) return 0;
  auto nth =
      v.begin() + std::min(v.size() - 1, static_cast<size_t>(q * v.size()));
  std::nth_element(v.begin(), nth, v.end());
  return *nth;
}

template <typename Api>
StreamResult RunStreams(const std::string& target, int sessions, double seconds,
                        const Dataset& data) {
  std::fprintf(stderr, "S=%d %s...\n", sessions, Api::kName);
  std::vector<std::unique_ptr<typename Api::Service::Stub>> stubs;
  for (const auto& channel :
       Channels(target, std::min(sessions, kMaxChannels))) {
    stubs.push_back(Api::Service::NewStub(channel));
  }
  Run run;
  std::vector<std::unique_ptr<Session<Api>>> all;
  for (int i = 0; i < sessions; ++i) {
    all.push_back(std::make_unique<Session<Api>>(stubs[i % stubs.size()].get(),
                                                 &data, i * 7, &run));
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(kWarmupSeconds));
  run.set_phase(Run::kMeasuring);
  const auto start = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  run.set_phase(Run::kStopping);
  const std::chrono::duration<double> measured = Clock::now() - start;
  std::vector<float> latencies = run.Wait(sessions);
  StreamResult r;
  r.steps_per_second = latencies.size() / measured.count();
  r.p50_us = Percentile(latencies, 0.50);
  r.p99_us = Percentile(latencies, 0.99);
  return r;
}

// kOpeners threads, each with its own channel, run one-step sessions one
// after the other for `seconds`.
template <typename Api>
OpenResult RunOpens(const std::string& target, double seconds,
                    const Dataset& data) {
  std::fprintf(stderr, "open rate, %s...\n", Api::kName);
  const auto channels = Channels(target, kOpeners);
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  std::mutex mu;
  std::vector<float> all;  // µs from a session's start to its first answer
  const auto start = Clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < kOpeners; ++t) {
    workers.emplace_back([&, t] {
      auto stub = Api::Service::NewStub(channels[t]);
      std::vector<float> mine;
      for (int i = 0; Clock::now() < end; ++i) {
        Run run;
        run.set_phase(Run::kMeasuring);
        Session<Api> session(stub.get(), &data, t * 7919 + i, &run,
                             /*one_step=*/true);
        std::vector<float> first = run.Wait(1);
        mine.insert(mine.end(), first.begin(), first.end());
      }
      std::lock_guard<std::mutex> lock(mu);
      all.insert(all.end(), mine.begin(), mine.end());
    });
  }
  for (std::thread& w : workers) w.join();
  const std::chrono::duration<double> elapsed = Clock::now() - start;
  OpenResult r;
  r.sessions_per_second = all.size() / elapsed.count();
  r.p50_us = Percentile(all, 0.50);
  return r;
}

// ---------------------------------------------------------------------------
struct ClassifyResult {
  int batch = 0;
  double sequences_per_second = 0, calls_per_second = 0;
};

// `threads` threads, each with its own channel, call Classify with `batch`
// sequences for `seconds`.
ClassifyResult RunClassify(const std::string& target, int threads, int batch,
                           double seconds, const Dataset& data) {
  const auto channels = Channels(target, threads);
  std::atomic<int64_t> calls{0};
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      client::Client::Stubs stubs;
      stubs.inference = v1::InferenceService::NewStub(channels[t]);
      client::Client client(std::move(stubs), channels[t], {});
      v1::ClassifyRequest request;
      request.set_model(kModel);
      for (int i = 0; i < batch; ++i) {
        const Index col = (t * batch + i) % data.size();
        request.add_sequences()->mutable_values()->Assign(
            data.values.col(col).data(),
            data.values.col(col).data() + data.values.rows());
      }
      while (Clock::now() < end) {
        absl::StatusOr<v1::ClassifyResponse> r = client.Classify(request);
        if (!r.ok()) Die("Classify: " + r.status().ToString());
        ++calls;
      }
    });
  }
  for (std::thread& w : workers) w.join();
  const std::chrono::duration<double> elapsed = Clock::now() - start;
  ClassifyResult r;
  r.batch = batch;
  r.calls_per_second = calls / elapsed.count();
  r.sequences_per_second = r.calls_per_second * batch;
  return r;
}

// ---------------------------------------------------------------------------
// Trains the default configuration on "digits" for 2 epochs as model kModel.
void TrainModel(const std::string& target) {
  client::ClientOptions options;
  options.target = target;
  auto client = client::Client::Connect(options);
  if (!client.ok()) Die(client.status().ToString());
  v1::SubmitTrainingJobRequest submit;
  submit.set_model_name(kModel);
  submit.set_dataset("digits");
  submit.mutable_spec()->set_epochs(2);
  absl::StatusOr<v1::TrainingJob> job = (*client)->SubmitTrainingJob(submit);
  if (!job.ok()) Die("submit: " + job.status().ToString());
  std::fprintf(stderr, "training %s (2 epochs of digits)...\n", kModel);
  v1::JobState state = job->state();
  absl::Status s = (*client)->WatchTrainingJob(
      job->id(), [&](const v1::WatchTrainingJobResponse& u) {
        state = u.job().state();
        return true;
      });
  if (!s.ok()) Die("watch: " + s.ToString());
  if (state != v1::JOB_STATE_SUCCEEDED) {
    Die("training ended in " + v1::JobState_Name(state));
  }
}

struct Flags {
  std::vector<int> sessions = {1, 16, 256, 1024};
  double seconds = 5;
  bool json = false;
};

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  const std::string usage =
      "usage: stream_load [--sessions 1,16,256,1024] [--seconds 5] [--json]";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--json") {
      f.json = true;
    } else if (arg == "--seconds" && has_value) {
      if (!absl::SimpleAtod(argv[++i], &f.seconds) || f.seconds <= 0)
        Die(usage);
    } else if (arg == "--sessions" && has_value) {
      f.sessions.clear();
      for (absl::string_view s : absl::StrSplit(argv[++i], ',')) {
        int n;
        if (!absl::SimpleAtoi(s, &n) || n < 1) Die(usage);
        f.sessions.push_back(n);
      }
    } else {
      Die(usage);
    }
  }
  return f;
}

struct Point {
  int sessions;
  StreamResult spinnet, echo;
};

struct Opens {
  OpenResult spinnet, echo;
};

void PrintMarkdown(const Flags& flags, const std::vector<Point>& points,
                   const Opens& opens,
                   const std::vector<ClassifyResult>& classify) {
  std::printf(
      "StreamClassify vs echo, closed loop, one step per message, "
      "%g s per point, %u cores\n\n",
      flags.seconds, std::thread::hardware_concurrency());
  std::printf(
      "| S | spinnet p50 µs | spinnet p99 µs | echo p50 µs | "
      "echo p99 µs | p50 ratio | spinnet steps/s | echo steps/s | "
      "throughput ratio |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Point& p : points) {
    std::printf(
        "| %d | %.0f | %.0f | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f |\n",
        p.sessions, p.spinnet.p50_us, p.spinnet.p99_us, p.echo.p50_us,
        p.echo.p99_us, p.spinnet.p50_us / p.echo.p50_us,
        p.spinnet.steps_per_second, p.echo.steps_per_second,
        p.spinnet.steps_per_second / p.echo.steps_per_second);
  }
  std::printf(
      "\nOpen rate, %d concurrent one-step sessions: spinnet %.0f/s (p50 "
      "%.0f µs to the first answer), echo %.0f/s (p50 %.0f µs), ratio "
      "%.2f\n\n",
      kOpeners, opens.spinnet.sessions_per_second, opens.spinnet.p50_us,
      opens.echo.sessions_per_second, opens.echo.p50_us,
      opens.spinnet.sessions_per_second / opens.echo.sessions_per_second);
  for (const ClassifyResult& c : classify) {
    std::printf(
        "Classify, 4 threads, %d sequence(s) per call: %.0f "
        "sequences/s (%.0f calls/s)\n",
        c.batch, c.sequences_per_second, c.calls_per_second);
  }
}

void PrintJson(const Flags& flags, const std::vector<Point>& points,
               const Opens& opens,
               const std::vector<ClassifyResult>& classify) {
  auto stream = [](const StreamResult& r) {
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "{\"p50_us\": %.1f, \"p99_us\": %.1f, "
                  "\"steps_per_second\": %.1f}",
                  r.p50_us, r.p99_us, r.steps_per_second);
    return std::string(buf);
  };
  std::vector<std::string> rows;
  for (const Point& p : points) {
    rows.push_back("{\"sessions\": " + std::to_string(p.sessions) +
                   ", \"spinnet\": " + stream(p.spinnet) +
                   ", \"echo\": " + stream(p.echo) + "}");
  }
  std::vector<std::string> calls;
  for (const ClassifyResult& c : classify) {
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "{\"threads\": 4, \"batch\": %d, "
                  "\"sequences_per_second\": %.1f, \"calls_per_second\": %.1f}",
                  c.batch, c.sequences_per_second, c.calls_per_second);
    calls.push_back(buf);
  }
  auto open = [](const OpenResult& r) {
    char buf[120];
    std::snprintf(buf, sizeof buf,
                  "{\"sessions_per_second\": %.1f, \"p50_us\": %.1f}",
                  r.sessions_per_second, r.p50_us);
    return std::string(buf);
  };
  std::printf(
      "{\"seconds\": %g, \"cores\": %u,\n \"streams\": [%s],\n"
      " \"opens\": {\"concurrency\": %d, \"spinnet\": %s, \"echo\": %s},\n"
      " \"classify\": [%s]}\n",
      flags.seconds, std::thread::hardware_concurrency(),
      absl::StrJoin(rows, ",\n  ").c_str(), kOpeners,
      open(opens.spinnet).c_str(), open(opens.echo).c_str(),
      absl::StrJoin(calls, ",\n  ").c_str());
}

int Main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  absl::StatusOr<Dataset> digits = LoadDigits(DefaultDigitsPath());
  if (!digits.ok()) Die(digits.status().ToString());
  const Dataset test = SplitFixed(*digits).test;

  char dir[] = "/tmp/stream_load.XXXXXX";
  if (mkdtemp(dir) == nullptr) Die("mkdtemp failed");
  server::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.metrics_listen = "";
  options.data_dir = dir;
  // No admission limit in the way: a stream counts until the server's
  // OnDone, which can come well after the client has seen the call end
  // (sessions of the previous point, or of the open-rate test).
  options.max_streams = 1 << 20;
  auto spinnet = std::make_unique<server::SpinnetServer>(options);
  if (absl::Status s = spinnet->Start(); !s.ok()) Die(s.ToString());
  TrainModel(spinnet->address());

  EchoService echo_service;
  grpc::ServerBuilder builder;
  int echo_port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &echo_port);
  builder.RegisterService(&echo_service);
  std::unique_ptr<grpc::Server> echo = builder.BuildAndStart();
  if (echo == nullptr) Die("cannot start the echo server");
  const std::string echo_address = "127.0.0.1:" + std::to_string(echo_port);

  std::vector<Point> points;
  for (int s : flags.sessions) {
    // Braced initialisers run in order: spinnet, then echo.
    points.push_back(
        {s, RunStreams<SpinnetApi>(spinnet->address(), s, flags.seconds, test),
         RunStreams<EchoApi>(echo_address, s, flags.seconds, test)});
  }
  // Braced initialisers run in order: spinnet, then echo.
  const Opens opens{
      RunOpens<SpinnetApi>(spinnet->address(), flags.seconds, test),
      RunOpens<EchoApi>(echo_address, flags.seconds, test)};
  std::vector<ClassifyResult> classify;
  for (int batch : {1, 32}) {
    std::fprintf(stderr, "Classify, batch %d...\n", batch);
    classify.push_back(
        RunClassify(spinnet->address(), 4, batch, flags.seconds, test));
  }

  echo->Shutdown();
  spinnet.reset();
  std::filesystem::remove_all(dir);
  (flags.json ? PrintJson : PrintMarkdown)(flags, points, opens, classify);
  return 0;
}

}  // namespace
}  // namespace spinnet

int main(int argc, char** argv) { return spinnet::Main(argc, argv); }
