// A ceiling on calls that stay open: StreamClassify sessions, and the Watch
// RPCs, each of which holds a sync-server thread for as long as it runs.
// The call past the ceiling is refused at once with RESOURCE_EXHAUSTED,
// never queued, so that overload answers instead of hanging the client.
#ifndef SPINNET_SERVER_API_ADMISSION_H_
#define SPINNET_SERVER_API_ADMISSION_H_

#include <atomic>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace spinnet::server {

class AdmissionLimit {
 public:
  // `what` names the calls in the refusal ("stream sessions"); limit > 0.
  AdmissionLimit(std::string what, int limit);

  AdmissionLimit(const AdmissionLimit&) = delete;
  AdmissionLimit& operator=(const AdmissionLimit&) = delete;

  // Takes a slot: OK, or RESOURCE_EXHAUSTED "too many <what> (limit N)"
  // when `limit` are taken. Each OK is paired with one Release().
  absl::Status TryAcquire();
  void Release();

  // A slot held for one scope (a Watch handler's body).
  class Slot {
   public:
    Slot(Slot&& other) noexcept : limit_(other.limit_) {
      other.limit_ = nullptr;
    }
    Slot& operator=(Slot&&) = delete;
    ~Slot() {
      if (limit_ != nullptr) limit_->Release();
    }

   private:
    friend class AdmissionLimit;
    explicit Slot(AdmissionLimit* limit) : limit_(limit) {}
    AdmissionLimit* limit_;
  };
  // TryAcquire as a Slot that releases itself.
  absl::StatusOr<Slot> Acquire();

  int active() const { return active_.load(std::memory_order_relaxed); }
  int limit() const { return limit_; }

 private:
  const std::string what_;
  const int limit_;
  std::atomic<int> active_{0};
};

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_API_ADMISSION_H_
