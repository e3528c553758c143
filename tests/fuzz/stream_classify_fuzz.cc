// StreamClassify on arbitrary bytes parsed as one call's requests: the
// server's StreamProtocol (streaming/stream_protocol.h) answers each
// request into a writer that holds `sink_room` responses (1-8) and is
// drained whenever a `steps` message pauses, as the reactor does. Every
// request is finished, answers are numbered in order, and each paused
// message goes on once the writer has room.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "server/streaming/stream_protocol.h"
#include "tests/fuzz/fuzz_fixture.h"
#include "tests/fuzz/fuzz_inputs.pb.h"

namespace {

using spinnet::v1::StreamClassifyResponse;

class Sink : public spinnet::server::ResponseSink {
 public:
  explicit Sink(int room) : room_(room) {}
  bool HasRoom() const override {
    return static_cast<int>(pending_.size()) < room_;
  }
  void Send(StreamClassifyResponse response) override {
    // The protocol may exceed the room only by the one response it owes
    // (an error or an `opened`); steps wait for room.
    FUZZ_CHECK(static_cast<int>(pending_.size()) <= room_);
    pending_.push_back(std::move(response));
  }
  // The client reads everything written so far.
  void Drain() {
    for (const StreamClassifyResponse& r : pending_) {
      if (r.has_answer()) {
        FUZZ_CHECK(r.answer().sequence() >= last_sequence_);
        last_sequence_ = r.answer().sequence();
        double sum = 0;
        for (double p : r.answer().classification().probabilities()) {
          FUZZ_CHECK(p >= 0 && p <= 1);
          sum += p;
        }
        FUZZ_CHECK(std::abs(sum - 1) < 1e-9);
      }
      if (r.has_error()) FUZZ_CHECK(!r.error().message().empty());
    }
    pending_.clear();
  }

 private:
  const int room_;
  std::vector<StreamClassifyResponse> pending_;
  int64_t last_sequence_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  spinnet::fuzz::StreamClassifySession session;
  if (!spinnet::fuzz::ParseInput(data, size, &session)) return 0;
  spinnet::fuzz::Service& service = spinnet::fuzz::SharedService();
  // A small per-message limit, so that the fuzzer reaches it.
  spinnet::server::StreamProtocol protocol(&service.models, nullptr, 1024);
  Sink sink(1 + (session.sink_room() & 7));
  for (const spinnet::v1::StreamClassifyRequest& request : session.requests()) {
    bool done = protocol.Handle(request, sink);
    // Each Continue after a drain feeds at least one step, so a message
    // of at most 1024 values finishes within that many rounds.
    for (int rounds = 0; !done; ++rounds) {
      FUZZ_CHECK(rounds <= 1024 + 1);
      sink.Drain();
      done = protocol.Continue(sink);
    }
    sink.Drain();
  }
  return 0;
}
