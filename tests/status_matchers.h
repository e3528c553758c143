// Status helpers for tests (Debian's Abseil has no status matchers):
// ASSERT_OK, ASSERT_OK_AND_ASSIGN and the StatusIs(code, message part)
// matcher, for absl::Status and absl::StatusOr alike.
#ifndef SPINNET_TESTS_STATUS_MATCHERS_H_
#define SPINNET_TESTS_STATUS_MATCHERS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace spinnet::status_testing {

inline const absl::Status& ToStatus(const absl::Status& status) {
  return status;
}
template <typename T>
const absl::Status& ToStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

MATCHER_P2(StatusIs, code, message,
           absl::StrCat(negation ? "isn't " : "is ",
                        absl::StatusCodeToString(code),
                        " with a message containing \"", message, "\"")) {
  const absl::Status& status = ::spinnet::status_testing::ToStatus(arg);
  *result_listener << "whose status is " << status;
  return status.code() == code && absl::StrContains(status.message(), message);
}

}  // namespace spinnet::status_testing

#define ASSERT_OK(expr)                                                    \
  do {                                                                     \
    const absl::Status assert_ok_status_ =                                 \
        ::spinnet::status_testing::ToStatus(expr);                                \
    ASSERT_TRUE(assert_ok_status_.ok()) << #expr << ": "                   \
                                        << assert_ok_status_;              \
  } while (0)

#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL(SPINNET_CONCAT(statusor_, __LINE__), lhs, expr)
#define ASSERT_OK_AND_ASSIGN_IMPL(statusor, lhs, expr)              \
  auto statusor = (expr);                                           \
  ASSERT_TRUE(statusor.ok()) << #expr << ": " << statusor.status(); \
  lhs = std::move(statusor).value()

#endif  // SPINNET_TESTS_STATUS_MATCHERS_H_
