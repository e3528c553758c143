// Abseil 20220623 (Debian 12) ships no status macros; these are ours.
#ifndef SPINNET_CORE_STATUS_MACROS_H_
#define SPINNET_CORE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SPINNET_CONCAT_INNER(a, b) a##b
#define SPINNET_CONCAT(a, b) SPINNET_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                   \
  do {                                          \
    ::absl::Status spinnet_status_ = (expr);    \
    if (!spinnet_status_.ok()) return spinnet_status_; \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(SPINNET_CONCAT(spinnet_statusor_, __LINE__), lhs, expr)

#define ASSIGN_OR_RETURN_IMPL(statusor, lhs, expr) \
  auto statusor = (expr);                          \
  if (!statusor.ok()) return statusor.status();    \
  lhs = std::move(statusor).value()

#endif  // SPINNET_CORE_STATUS_MACROS_H_
