#include "server/storage/open_store.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/file_util.h"
#include "core/status_macros.h"
#include "server/storage/postgres_store.h"
#include "server/storage/sqlite_store.h"

namespace spinnet::server {
namespace {

absl::StatusOr<std::string> ReadPassword(const std::string& file) {
  ASSIGN_OR_RETURN(const std::string contents, ReadFile(file));
  const absl::string_view password =
      absl::StripTrailingAsciiWhitespace(contents);
  if (password.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("password file ", file, " is empty"));
  }
  return std::string(password);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenStore(const StoreOptions& options) {
  absl::string_view dir = options.url;
  if (absl::ConsumePrefix(&dir, "sqlite://")) {
    if (!options.password_file.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a password file (", options.password_file,
          ") is for a postgresql:// store; ", options.url, " has none"));
    }
    if (dir.empty()) {
      return absl::InvalidArgumentError(
          "sqlite:// needs a data directory: sqlite:///var/lib/spinnet or "
          "sqlite://DIR");
    }
    return SqliteStore::Open(std::string(dir));
  }
  if (absl::StartsWith(options.url, "postgresql://") ||
      absl::StartsWith(options.url, "postgres://")) {
    std::string password;
    if (!options.password_file.empty()) {
      ASSIGN_OR_RETURN(password, ReadPassword(options.password_file));
    }
    return PostgresStore::Open(options.url, password, PostgresOptions());
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown store URL \"", options.url,
                   "\"; use sqlite://DIR or postgresql://USER@HOST:PORT/DB"));
}

}  // namespace spinnet::server
