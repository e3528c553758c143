// Minimal logging shim: Debian 12's Abseil has no absl/log.
#ifndef SPINNET_CORE_LOGGING_H_
#define SPINNET_CORE_LOGGING_H_

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace spinnet {

enum class LogLevel { kInfo, kWarning, kError };

// Writes one line to stderr: "<level> <file>:<line>] <message>".
void LogLine(LogLevel level, const char* file, int line, const std::string& msg);

}  // namespace spinnet

#define SPINNET_LOG(level, ...)                                         \
  ::spinnet::LogLine(::spinnet::LogLevel::k##level, __FILE__, __LINE__, \
                     ::absl::StrCat(__VA_ARGS__))

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
