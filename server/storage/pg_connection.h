// A small libpq wrapper for PostgresStore: connections with parameterized
// statements (typed parameters, binary results), a pool, and a LISTEN
// thread. libpq connections are not thread-safe: each is used by one thread
// at a time, which the pool enforces.
#ifndef SPINNET_SERVER_STORAGE_PG_CONNECTION_H_
#define SPINNET_SERVER_STORAGE_PG_CONNECTION_H_

#include <libpq-fe.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace spinnet::server {

// Where and how to connect.
struct PgConnectParams {
  std::string url;       // a libpq URI or key=value string, without password
  std::string password;  // empty: libpq's own (PGPASSWORD, ~/.pgpass)
  // For the whole attempt (libpq's asynchronous connect, which a stop can
  // interrupt, leaves the URL's connect_timeout to the caller).
  absl::Duration connect_timeout = absl::Seconds(5);
};

// A statement parameter with its type, so that the server never has to
// infer one (a parameter may then also go unused in a statement). Sent in
// binary format: no escaping, and text and bytes are not copied.
class PgParam {
 public:
  PgParam(absl::string_view text) : type_(kText), data_(text) {}
  PgParam(const std::string& text) : type_(kText), data_(text) {}
  PgParam(const char* text) : type_(kText), data_(text) {}
  PgParam(int64_t value);
  PgParam(int value) : PgParam(static_cast<int64_t>(value)) {}
  PgParam(bool value)
      : type_(kBool),
        data_(value ? absl::string_view("\1", 1) : absl::string_view("\0", 1)) {
  }
  static PgParam Bytes(absl::string_view bytes) {
    PgParam p(bytes);
    p.type_ = kBytea;
    return p;
  }
  // NULL for empty text (unique columns where "none" must not collide).
  static PgParam TextOrNull(absl::string_view text) {
    PgParam p(text);
    p.null_ = text.empty();
    return p;
  }

 private:
  friend class PgConnection;
  // pg_type OIDs of the built-in types.
  static constexpr Oid kBool = 16, kBytea = 17, kInt8 = 20, kText = 25;

  absl::string_view value() const { return type_ == kInt8 ? int8_ : data_; }

  Oid type_;
  absl::string_view data_;
  std::string int8_;  // owned: 8 bytes, big-endian
  bool null_ = false;
};

// A successful statement's rows, in binary format.
class PgResult {
 public:
  explicit PgResult(PGresult* result) : result_(result, &PQclear) {}

  int rows() const { return PQntuples(result_.get()); }
  // text or bytea (0 bytes for NULL)
  absl::string_view Bytes(int row, int col) const;
  // int2, int4 or int8 (0 for NULL)
  int64_t Int(int row, int col) const;
  bool Bool(int row, int col) const;

  const PGresult* raw() const { return result_.get(); }

 private:
  std::unique_ptr<PGresult, decltype(&PQclear)> result_;
};

// One connection. Errors map to status codes by what the caller can do:
// UNAVAILABLE for a lost or refused connection and retryable conflicts
// (serialization failure, deadlock), FAILED_PRECONDITION for credentials
// and a missing database or role, ALREADY_EXISTS for a unique violation,
// RESOURCE_EXHAUSTED for a full disk, INTERNAL otherwise.
class PgConnection {
 public:
  // Connects; returns CANCELLED early when `stop_fd` (if >= 0) turns
  // readable, so that a closing LISTEN thread need not wait out a timeout.
  static absl::StatusOr<std::unique_ptr<PgConnection>> Connect(
      const PgConnectParams& params, int stop_fd = -1);
  ~PgConnection() { PQfinish(conn_); }
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // One statement with $1, $2, ... parameters.
  absl::StatusOr<PgResult> Exec(const std::string& sql,
                                absl::Span<const PgParam> params = {});
  // Several statements without parameters (a schema).
  absl::Status ExecScript(const std::string& sql);

  // Runs `body` in a transaction: committed when it returns OK, rolled
  // back otherwise.
  absl::Status Transact(const std::function<absl::Status()>& body);

  // Whether the connection can no longer be used: broken, or (when idle)
  // closed by the server, which a restart does to every connection.
  bool Unusable();

  PGconn* raw() { return conn_; }

 private:
  PgConnection(PGconn* conn, std::string url)
      : conn_(conn), url_(std::move(url)) {}
  // The status of a failed statement `sql` (`result` may be null).
  absl::Status Error(const PGresult* result, absl::string_view sql) const;

  PGconn* conn_;
  std::string url_;  // for messages
};

// Up to `size` connections, opened on demand. A connection that went bad
// is dropped when returned and a new one opened on the next Acquire, so the
// pool recovers by itself once the database is back.
class PgPool {
 public:
  PgPool(PgConnectParams params, int size)
      : params_(std::move(params)), size_(size) {}

  class Handle {
   public:
    Handle(Handle&& other) noexcept
        : pool_(other.pool_), conn_(std::move(other.conn_)) {}
    Handle& operator=(Handle&&) = delete;
    ~Handle() {
      if (conn_ != nullptr) pool_->Release(std::move(conn_));
    }
    PgConnection* operator->() const { return conn_.get(); }
    PgConnection& operator*() const { return *conn_; }

   private:
    friend class PgPool;
    Handle(PgPool* pool, std::unique_ptr<PgConnection> conn)
        : pool_(pool), conn_(std::move(conn)) {}
    PgPool* pool_;
    std::unique_ptr<PgConnection> conn_;
  };

  // Waits for a free connection; UNAVAILABLE (or FAILED_PRECONDITION for
  // credentials) when a new one cannot be opened.
  absl::StatusOr<Handle> Acquire();

  const PgConnectParams& params() const { return params_; }

 private:
  void Release(std::unique_ptr<PgConnection> conn);
  bool CanAcquire() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !idle_.empty() || open_ < size_;
  }

  const PgConnectParams params_;
  const int size_;
  std::mutex mu_;
  std::condition_variable freed_;  // a connection went idle or a slot freed
  std::vector<std::unique_ptr<PgConnection>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;  // idle or handed out
};

// LISTENs on `channel` on a connection of its own in a background thread
// and calls `notify` with every notification's payload. Reconnects with
// backoff (1 s .. 10 s) after the connection is lost, logging once per
// outage. The destructor stops the thread promptly.
class PgListener {
 public:
  PgListener(PgConnectParams params, std::string channel,
             std::function<void(const std::string&)> notify);
  ~PgListener();
  PgListener(const PgListener&) = delete;
  PgListener& operator=(const PgListener&) = delete;

 private:
  void Run();
  // Delivers notifications until the connection fails (returns its error)
  // or the listener stops (returns OK).
  absl::Status Listen(PgConnection& conn);

  const PgConnectParams params_;
  const std::string channel_;
  const std::function<void(const std::string&)> notify_;
  const int stop_fd_;  // an eventfd, written by the destructor
  std::thread thread_;
};

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_STORAGE_PG_CONNECTION_H_
