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

}  // namespace spinnet
