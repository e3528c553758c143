// Opens the store that a server is configured with, chosen by URL, so that
// the server holds a Store and never names a backend.
#ifndef SPINNET_SERVER_STORAGE_OPEN_STORE_H_
#define SPINNET_SERVER_STORAGE_OPEN_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/storage/store.h"

namespace spinnet::server {

struct StoreOptions {
  // sqlite://DIR: SQLite and files in a data directory, for one server
  // (sqlite:///var/lib/spinnet is absolute, sqlite://spinnet-data
  // relative). postgresql://USER@HOST:PORT/DB (or postgres://, libpq
  // parameters after '?'): PostgreSQL, shared by any number of replicas.
  std::string url;
  // A file holding the PostgreSQL password (trailing whitespace ignored).
  // Empty: libpq's own (PGPASSWORD, ~/.pgpass). The URL itself must not
  // carry one: command lines are visible to every local user.
  std::string password_file;
};

// INVALID_ARGUMENT for a bad URL or password file; otherwise the backend's
// errors (UNAVAILABLE when the database cannot be reached).
absl::StatusOr<std::unique_ptr<Store>> OpenStore(const StoreOptions& options);

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_STORAGE_OPEN_STORE_H_
