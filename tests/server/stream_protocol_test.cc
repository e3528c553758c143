// The StreamClassify protocol without gRPC: what each request is answered
// with, provisional and final answers, sequence numbering, in-band errors
// that feed nothing, and a long message paused while the sink is full and
// resumed with the same answers.
#include "server/streaming/stream_protocol.h"

#include <deque>
#include <memory>
#include <vector>

#include "core/model_io.h"
#include "core/parameters.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/storage/memory_store.h"

namespace spinnet::server {
namespace {

using Request = v1::StreamClassifyRequest;
using Response = v1::StreamClassifyResponse;

constexpr int kDim = 2;

// Collects responses; room for `capacity` unread ones.
class Sink : public ResponseSink {
 public:
  explicit Sink(size_t capacity = 1 << 20) : capacity_(capacity) {}
  bool HasRoom() const override { return unread.size() < capacity_; }
  void Send(Response r) override { unread.push_back(std::move(r)); }
  std::vector<Response> Drain() {
    std::vector<Response> out(unread.begin(), unread.end());
    unread.clear();
    return out;
  }
  std::deque<Response> unread;

 private:
  size_t capacity_;
};

Request Open(const std::string& model, int every) {
  Request r;
  r.mutable_open()->set_model(model);
  r.mutable_open()->set_provisional_every(every);
  return r;
}

Request Steps(int steps, bool end, double scale = 1.0) {
  Request r;
  for (int i = 0; i < steps * kDim; ++i) {
    r.mutable_steps()->add_values(scale * ((i * 37) % 11) / 10.0);
  }
  r.mutable_steps()->set_end_of_sequence(end);
  return r;
}

class StreamProtocolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Model model;
    model.network.layers = 2;
    model.network.neurons = 8;
    model.network.input_dim = kDim;
    model.network.num_classes = 3;
    model.mask = MakeTrainableMask(model.network, 7);
    model.params = InitParameters(model.network, model.mask, 0.5, 7);
    model.class_labels = {"a", "b", "c"};
    model.sequence_steps = 10;
    v1::TrainingJob job;
    job.set_id("j-1");
    job.set_state(v1::JOB_STATE_QUEUED);
    ASSERT_TRUE(store_.InsertJob(job, 1).ok());
    auto claimed = store_.ClaimJob("test", absl::Seconds(60));
    ASSERT_TRUE(claimed.ok() && claimed->has_value());
    job = (*claimed)->job;
    job.set_state(v1::JOB_STATE_SUCCEEDED);
    v1::Model info;
    info.set_name("m");
    ASSERT_TRUE(store_
                    .FinishJob((*claimed)->lease, job,
                               ModelToPublish{info, SerializeModel(model)})
                    .ok());
  }

  std::unique_ptr<StreamProtocol> NewProtocol() {
    return std::make_unique<StreamProtocol>(&models_, nullptr,
                                            /*max_values_per_message=*/1000);
  }

  MemoryStore store_;
  ModelRegistry models_{&store_, 1 << 20};
};

TEST_F(StreamProtocolTest, OpensAnswersProvisionallyAndFinallyAndNumbersSequences) {
  auto p = NewProtocol();
  Sink sink;
  ASSERT_TRUE(p->Handle(Open("m", 4), sink));
  std::vector<Response> out = sink.Drain();
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(out[0].has_opened());
  EXPECT_EQ(out[0].opened().version(), 1);
  EXPECT_EQ(out[0].opened().input_dim(), kDim);
  EXPECT_THAT(out[0].opened().class_labels(), ::testing::ElementsAre("a", "b", "c"));

  // 10 steps, one sequence: provisional after 4 and 8, final at 10.
  ASSERT_TRUE(p->Handle(Steps(10, true), sink));
  out = sink.Drain();
  ASSERT_EQ(out.size(), 3u);
  EXPECT_FALSE(out[0].answer().final());
  EXPECT_EQ(out[0].answer().classification().steps(), 4);
  EXPECT_EQ(out[1].answer().classification().steps(), 8);
  EXPECT_TRUE(out[2].answer().final());
  EXPECT_EQ(out[2].answer().classification().steps(), 10);
  EXPECT_EQ(out[2].answer().sequence(), 0);
  // A final answer at a multiple of k replaces the provisional one.
  ASSERT_TRUE(p->Handle(Steps(8, true), sink));
  out = sink.Drain();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(out[1].answer().final());
  EXPECT_EQ(out[1].answer().sequence(), 1);
  // Reset drops the current sequence and numbers the next.
  ASSERT_TRUE(p->Handle(Steps(3, false), sink));
  Request reset;
  reset.mutable_reset();
  ASSERT_TRUE(p->Handle(reset, sink));
  ASSERT_TRUE(p->Handle(Steps(2, true), sink));
  out = sink.Drain();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].answer().sequence(), 3);
  EXPECT_EQ(out[0].answer().classification().steps(), 2);
}

TEST_F(StreamProtocolTest, ErrorsComeInBandAndFeedNothing) {
  auto p = NewProtocol();
  Sink sink;
  auto error_code = [&](Request r) {
    EXPECT_TRUE(p->Handle(std::move(r), sink));
    std::vector<Response> out = sink.Drain();
    EXPECT_EQ(out.size(), 1u);
    return out.empty() || !out[0].has_error()
               ? -1
               : out[0].error().code();
  };
  EXPECT_EQ(error_code(Steps(1, true)),
            static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(error_code(Open("nope", 0)),
            static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_EQ(error_code(Open("m", -1)),
            static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(error_code(Request()),
            static_cast<int>(absl::StatusCode::kInvalidArgument));
  ASSERT_TRUE(p->Handle(Open("m", 0), sink));
  sink.Drain();
  EXPECT_EQ(error_code(Open("m", 0)),
            static_cast<int>(absl::StatusCode::kFailedPrecondition));
  Request nan = Steps(3, true);
  nan.mutable_steps()->set_values(5, std::nan(""));
  EXPECT_EQ(error_code(nan), static_cast<int>(absl::StatusCode::kInvalidArgument));
  Request odd = Steps(3, true);
  odd.mutable_steps()->add_values(0.5);  // not whole steps
  EXPECT_EQ(error_code(odd), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(error_code(Steps(501, true)),  // 1,002 values > 1,000
            static_cast<int>(absl::StatusCode::kInvalidArgument));

  // Nothing of the bad messages was fed: the next sequence is answered as
  // on a fresh stream, and numbered 0.
  ASSERT_TRUE(p->Handle(Steps(6, true), sink));
  const Response after = sink.Drain().at(0);
  auto fresh = NewProtocol();
  Sink fresh_sink;
  fresh->Handle(Open("m", 0), fresh_sink);
  fresh->Handle(Steps(6, true), fresh_sink);
  const Response expected = fresh_sink.Drain().at(1);
  EXPECT_EQ(after.answer().sequence(), 0);
  EXPECT_EQ(after.answer().classification().probabilities(0),
            expected.answer().classification().probabilities(0));
}

// A client that stops reading: the message pauses with the sink full and
// resumes where it stopped, with exactly the answers of an unpaused run.
TEST_F(StreamProtocolTest, PausesOnAFullSinkAndResumesWithTheSameAnswers) {
  auto unpaused = NewProtocol();
  Sink all;
  unpaused->Handle(Open("m", 1), all);
  unpaused->Handle(Steps(40, true), all);
  const std::vector<Response> expected = all.Drain();

  auto p = NewProtocol();
  Sink small(2);
  ASSERT_TRUE(p->Handle(Open("m", 1), small));
  std::vector<Response> got = small.Drain();
  bool done = p->Handle(Steps(40, true), small);
  int pauses = 0;
  while (!done) {
    ++pauses;
    EXPECT_EQ(small.unread.size(), 2u);  // never more than it has room for
    for (Response& r : small.Drain()) got.push_back(std::move(r));
    done = p->Continue(small);
  }
  for (Response& r : small.Drain()) got.push_back(std::move(r));
  EXPECT_GE(pauses, 19);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].SerializeAsString(), expected[i].SerializeAsString()) << i;
  }
}

}  // namespace
}  // namespace spinnet::server
