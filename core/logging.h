// Minimal logging shim: Debian 12's Abseil has no absl/log.
#ifndef SPINNET_CORE_LOGGING_H_
#define SPINNET_CORE_LOGGING_H_

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"

namespace spinnet {

enum class LogLevel { kInfo, kWarning, kError };

// Writes one line to stderr: "<level> <file>:<line>] <message>".
void LogLine(LogLevel level, const char* file, int line, const std::string& msg);

}  // namespace spinnet

#define SPINNET_LOG(level, ...)                                         \
  ::spinnet::LogLine(::spinnet::LogLevel::k##level, __FILE__, __LINE__, \
                     ::absl::StrCat(__VA_ARGS__))

namespace spinnet {

// Lets one call site log at most `burst` lines per `window`, for lines that a
// client can cause at will (a refused token, a denied call): the rest are
// counted, and the next line logged says how many were left out.
class LogLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  LogLimiter(int burst, Clock::duration window)
      : burst_(burst), window_(window) {}
  // Whether to log a line at `now`; if so, *dropped is how many lines were
  // left out since the last one logged.
  bool Allow(Clock::time_point now, int64_t* dropped);

 private:
  const int burst_;
  const Clock::duration window_;
  std::mutex mu_;
  Clock::time_point window_start_{};
  int logged_ = 0;
  int64_t dropped_ = 0;
};

// Appended to a line logged through a LogLimiter.
std::string DroppedSuffix(int64_t dropped);

}  // namespace spinnet

// SPINNET_LOG, at most 20 lines per 10 s from this call site.
#define SPINNET_LOG_LIMITED(level, ...)                                     \
  do {                                                                      \
    static ::spinnet::LogLimiter spinnet_log_limiter(20,                    \
                                                     std::chrono::seconds(10)); \
    int64_t spinnet_log_dropped = 0;                                        \
    if (spinnet_log_limiter.Allow(::spinnet::LogLimiter::Clock::now(),      \
                                  &spinnet_log_dropped)) {                  \
      SPINNET_LOG(level, __VA_ARGS__,                                       \
                  ::spinnet::DroppedSuffix(spinnet_log_dropped));           \
    }                                                                       \
  } while (0)

// Invariant check: a failure is a bug in spinnet, never bad user input.
#define SPINNET_CHECK(cond)                                                   \
  do {                                                                       \
    if (!(cond)) {                                                           \
      ::spinnet::LogLine(::spinnet::LogLevel::kError, __FILE__, __LINE__,    \
                         "CHECK failed: " #cond);                            \
      std::abort();                                                          \
    }                                                                        \
  } while (0)

#endif  // SPINNET_CORE_LOGGING_H_
