// The streaming session of `spinnet stream` that survives the loss of a
// server replica (see FailoverStream).
#ifndef SPINNET_CLIENT_FAILOVER_STREAM_H_
#define SPINNET_CLIENT_FAILOVER_STREAM_H_

#include "client/cli.h"
#include "client/output.h"
#include <string>
#include <vector>
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <iostream>
#include "absl/time/time.h"

namespace spinnet::client {

// After its replica is lost, `spinnet stream` tries this long to open a new
// stream, pausing between tries from kFirstBackoff doubling to kMaxBackoff.
constexpr absl::Duration kReconnectFor = absl::Seconds(30);
constexpr absl::Duration kFirstBackoff = absl::Milliseconds(100);
constexpr absl::Duration kMaxBackoff = absl::Seconds(2);

// "UNAVAILABLE: Socket closed"
inline std::string StatusText(const absl::Status& status) {
  return absl::StrCat(absl::StatusCodeToString(status.code()), ": ",
                      status.message());
}

// What `spinnet stream` counted, for its summary and exit status.
struct StreamTally {
  int finals = 0, correct = 0;  // answers to labelled sequences
  int errors = 0;               // in-band errors
  bool closed = false;          // the server closed the stream
};

// The streaming session of `spinnet stream`, across replicas. A stream stays
// on the replica it opened on; when it ends UNAVAILABLE (its replica was
// lost) while input or answers are still due, a new stream is opened on the
// same model version (the channel's round_robin picks a live replica) and
// the sequences still waiting for their final answers are sent again from
// their first steps. Sequences are numbered across streams.
//
// One thread sends (AddLabel, SendSteps, WritesDone); one reads (ReadAll),
// and reconnects. On a new stream a short-lived thread sends the unfinished
// sequences again while the reading thread takes their answers: were nobody
// reading, the server's backpressure could block that sending for ever.
class FailoverStream {
 public:
  FailoverStream(Client& client, std::unique_ptr<StreamSession> session,
                 int every, bool json)
      : client_(client),
        every_(every),
        json_(json),
        opened_(session->opened()),
        session_(std::move(session)) {}
  FailoverStream(const FailoverStream&) = delete;
  FailoverStream& operator=(const FailoverStream&) = delete;
  ~FailoverStream() {
    if (resender_.joinable()) resender_.join();
  }

  // What the first stream opened; later ones open the same model version.
  const v1::StreamOpened& opened() const { return opened_; }

  // ---- The sending thread.

  // The true label of the next sequence: its final answer is checked.
  void AddLabel(std::string label) {
    std::lock_guard<std::mutex> lock(mu_);
    labels_.push_back(std::move(label));
  }

  // Sends time steps, and keeps them until their sequence's final answer
  // arrives. Waits while a new stream is being opened. UNAVAILABLE once the
  // stream has ended for good (ReadAll says why).
  absl::Status SendSteps(absl::Span<const double> values,
                         bool end_of_sequence) {
    for (;;) {
      std::unique_lock<std::mutex> write_lock(write_mu_);
      std::unique_lock<std::mutex> lock(mu_);
      if (ended_) return absl::UnavailableError("the stream has ended");
      if (!broken_) {
        pending_.push_back({std::vector<double>(values.begin(), values.end()),
                            end_of_sequence});
        lock.unlock();
        // Fails once the stream has ended: the reading thread then sends
        // these steps again on a new stream, or ends.
        session_->SendSteps(values, end_of_sequence).IgnoreError();
        return absl::OkStatus();
      }
      // Off the ended stream until the next one has its resent steps.
      write_lock.unlock();
      cv_.wait(lock, [this] { return !broken_ || ended_; });
    }
  }

  // No more input: the server ends the stream after its last answers.
  void WritesDone() {
    std::lock_guard<std::mutex> write_lock(write_mu_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      input_done_ = true;
      if (broken_) return;  // the next stream, if any, hears it in Resend
    }
    session_->WritesDone().IgnoreError();  // an ended stream tells Finish
  }

  // ---- The reading thread.

  // Prints the answers until the last stream ends; returns its status.
  absl::Status ReadAll() {
    for (;;) {
      // session_ is replaced on this thread only, below.
      for (;;) {
        const absl::StatusOr<std::optional<v1::StreamClassifyResponse>>
            message = session_->Read();
        if (!message.ok() || !message->has_value()) break;
        std::lock_guard<std::mutex> lock(mu_);
        TakeLocked(**message);
      }
      // The stream has ended; a resend on it fails at once.
      if (resender_.joinable()) resender_.join();
      {
        std::lock_guard<std::mutex> write_lock(write_mu_);
        std::lock_guard<std::mutex> lock(mu_);
        broken_ = true;  // the sending thread keeps off the ended stream
      }
      const absl::Status status = session_->Finish();
      {
        std::lock_guard<std::mutex> lock(mu_);
        // Once all input is sent and answered there is nothing to redo.
        if (!absl::IsUnavailable(status) || (input_done_ && pending_.empty())) {
          return EndLocked(status);
        }
      }
      absl::StatusOr<std::unique_ptr<StreamSession>> next = Reopen(status);
      std::lock_guard<std::mutex> lock(mu_);
      if (!next.ok()) return EndLocked(next.status());
      session_ = *std::move(next);
      base_ = answered_;  // the new stream's sequence 0
      std::vector<SentSteps> resend(pending_.begin(), pending_.end());
      absl::FPrintF(stderr,
                    "spinnet: stream: replica lost (%s); reconnected%s\n",
                    StatusText(status), Restarted(resend));
      std::fflush(stderr);
      resender_ = std::thread(&FailoverStream::Resend, this, std::move(resend));
    }
  }

  // After both threads are done.
  const StreamTally& tally() const { return tally_; }

 private:
  struct SentSteps {
    std::vector<double> values;
    bool end_of_sequence;
  };

  absl::Status EndLocked(absl::Status status) {
    ended_ = true;
    cv_.notify_all();
    return status;
  }

  // ", sequence 3 restarted from its first step"; "" for none.
  std::string Restarted(const std::vector<SentSteps>& steps) const {
    int64_t sequences = 0;
    for (const SentSteps& s : steps) sequences += s.end_of_sequence;
    if (!steps.empty() && !steps.back().end_of_sequence) ++sequences;
    if (sequences == 0) return "";
    if (sequences == 1) {
      return absl::StrCat(", sequence ", base_,
                          " restarted from its first step");
    }
    return absl::StrCat(", sequences ", base_, " to ", base_ + sequences - 1,
                        " restarted from their first steps");
  }

  // Opens a stream on another replica, retrying while none is reachable.
  absl::StatusOr<std::unique_ptr<StreamSession>> Reopen(
      const absl::Status& lost) {
    const absl::Time give_up = absl::Now() + kReconnectFor;
    absl::Duration backoff = kFirstBackoff;
    for (;;) {
      absl::StatusOr<std::unique_ptr<StreamSession>> next =
          client_.OpenStream(opened_.model(), opened_.version(), every_);
      absl::Status status = next.status();
      if (next.ok()) {
        const v1::StreamOpened& o = (*next)->opened();
        if (o.input_dim() == opened_.input_dim() &&
            std::equal(o.class_labels().begin(), o.class_labels().end(),
                       opened_.class_labels().begin(),
                       opened_.class_labels().end())) {
          return next;
        }
        status = absl::FailedPreconditionError(absl::StrCat(
            "the new stream's model ", o.model(), " version ", o.version(),
            " takes ", o.input_dim(), " value(s) per step and classes ",
            absl::StrJoin(o.class_labels(), " "), ", unlike the first's"));
      } else if (absl::IsUnavailable(status) &&
                 absl::Now() + backoff < give_up) {
        absl::SleepFor(backoff);
        backoff = std::min(2 * backoff, kMaxBackoff);
        continue;
      }
      return absl::Status(
          status.code(),
          absl::StrCat("stream: replica lost (", StatusText(lost),
                       "); no new stream on model ", opened_.model(),
                       " version ", opened_.version(),
                       absl::IsUnavailable(status)
                           ? absl::StrCat(" within ",
                                          absl::FormatDuration(kReconnectFor))
                           : "",
                       ": ", status.message()));
    }
  }

  // Sends the unfinished sequences again on the new stream.
  void Resend(std::vector<SentSteps> steps) {
    std::lock_guard<std::mutex> write_lock(write_mu_);
    for (const SentSteps& s : steps) {
      // Fails once this stream has ended too; the reading thread sees why.
      if (!session_->SendSteps(s.values, s.end_of_sequence).ok()) break;
    }
    bool input_done;
    {
      std::lock_guard<std::mutex> lock(mu_);
      broken_ = false;
      input_done = input_done_;
    }
    cv_.notify_all();
    if (input_done) session_->WritesDone().IgnoreError();
  }

  void TakeLocked(const v1::StreamClassifyResponse& m) {
    switch (m.kind_case()) {
      case v1::StreamClassifyResponse::kAnswer: {
        const v1::StreamAnswer& a = m.answer();
        const v1::Classification& c = a.classification();
        const int64_t sequence = base_ + a.sequence();
        if (a.final()) {
          ++answered_;
          // The steps of the sequence are no longer needed.
          while (!pending_.empty()) {
            const bool last = pending_.front().end_of_sequence;
            pending_.pop_front();
            if (last) break;
          }
        }
        const std::string* truth =
            a.final() && sequence >= 0 &&
                    sequence < static_cast<int64_t>(labels_.size())
                ? &labels_[sequence]
                : nullptr;
        if (truth != nullptr) {
          ++tally_.finals;
          tally_.correct += c.label() == *truth;
        }
        if (json_) {
          v1::StreamClassifyResponse numbered = m;
          numbered.mutable_answer()->set_sequence(sequence);
          PrintJson(numbered);
        } else {
          absl::PrintF("sequence %d (%s, %d steps): %s%s\n", sequence,
                       a.final() ? "final" : "provisional", c.steps(),
                       Describe(c), Mismatch(c.label(), truth));
          std::fflush(stdout);
        }
        return;
      }
      case v1::StreamClassifyResponse::kError:
        if (json_) PrintJson(m);
        ++tally_.errors;
        Fail(StreamErrorStatus(m.error()));
        return;
      case v1::StreamClassifyResponse::kClosed:
        if (json_) PrintJson(m);
        tally_.closed = true;
        Fail(absl::StrCat("the server closed the stream: ",
                          m.closed().reason()));
        return;
      default:
        if (json_) PrintJson(m);
        return;
    }
  }

  Client& client_;
  const int every_;
  const bool json_;
  const v1::StreamOpened opened_;
  // Replaced by the reading thread only, while broken_; used by the sending
  // thread only under write_mu_ while not broken_.
  std::unique_ptr<StreamSession> session_;
  std::thread resender_;  // of the reading thread

  // Held while sending on session_: the sending thread's steps, a resend,
  // or marking the stream broken. Taken before mu_.
  std::mutex write_mu_;
  std::mutex mu_;
  std::condition_variable cv_;       // broken_ or ended_ changed
  std::deque<SentSteps> pending_;    // sent; their final answer not yet in
  std::vector<std::string> labels_;  // by sequence number
  int64_t answered_ = 0;             // final answers so far
  int64_t base_ = 0;         // the number of the current stream's sequence 0
  bool broken_ = false;      // session_ ended; a new one may come
  bool ended_ = false;       // no more streams
  bool input_done_ = false;  // WritesDone was called
  StreamTally tally_;
};


}  // namespace spinnet::client

#endif  // SPINNET_CLIENT_FAILOVER_STREAM_H_
