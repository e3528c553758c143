#include "core/logging.h"

#include <mutex>

namespace spinnet {

void LogLine(LogLevel level, const char* file, int line,
             const std::string& msg) {
  static std::mutex mu;
  const char* tag = level == LogLevel::kInfo      ? "I"
                    : level == LogLevel::kWarning ? "W"
                                                  : "E";
  std::lock_guard<std::mutex> lock(mu);
  std::fprintf(stderr, "%s %s:%d] %s\n", tag, file, line, msg.c_str());
}

bool LogLimiter::Allow(Clock::time_point now, int64_t* dropped) {
  std::lock_guard<std::mutex> lock(mu_);
  if (logged_ == 0 || now - window_start_ >= window_) {
    window_start_ = now;
    logged_ = 0;
  }
  if (logged_ >= burst_) {
    ++dropped_;
    return false;
  }
  ++logged_;
  *dropped = dropped_;
  dropped_ = 0;
  return true;
}

std::string DroppedSuffix(int64_t dropped) {
  return dropped == 0
             ? std::string()
             : absl::StrCat(" (", dropped, " more like this were not logged)");
}

}  // namespace spinnet
