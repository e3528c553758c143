#include "server/api/admission.h"

#include "absl/strings/str_cat.h"
#include "core/logging.h"

namespace spinnet::server {

AdmissionLimit::AdmissionLimit(std::string what, int limit)
    : what_(std::move(what)), limit_(limit) {
  SPINNET_CHECK(limit_ > 0);
}

absl::Status AdmissionLimit::TryAcquire() {
  int n = active_.load(std::memory_order_relaxed);
  do {
    if (n >= limit_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("too many ", what_, " (limit ", limit_, ")"));
    }
  } while (!active_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
  return absl::OkStatus();
}

void AdmissionLimit::Release() {
  const int before = active_.fetch_sub(1, std::memory_order_relaxed);
  SPINNET_CHECK(before > 0);
}

absl::StatusOr<AdmissionLimit::Slot> AdmissionLimit::Acquire() {
  absl::Status s = TryAcquire();
  if (!s.ok()) return s;
  return Slot(this);
}

}  // namespace spinnet::server
