#include "server/storage/pg_connection.h"

#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/logging.h"
#include "core/status_macros.h"

namespace spinnet::server {
namespace {

// libpq's messages span lines ("...failed: Connection refused\n\tIs the
// server running...?"); a status message is one line.
std::string OneLine(absl::string_view message) {
  std::vector<absl::string_view> lines;
  for (absl::string_view line : absl::StrSplit(message, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty()) lines.push_back(line);
  }
  return absl::StrJoin(lines, "; ");
}

// The code of a server error, by what the caller can do about it.
absl::StatusCode CodeOf(absl::string_view sqlstate) {
  if (absl::StartsWith(sqlstate, "08") ||  // connection exception
      sqlstate == "57P01" ||               // admin shutdown
      sqlstate == "57P02" ||               // crash shutdown
      sqlstate == "57P03" ||               // cannot connect now
      sqlstate == "53300" ||               // too many connections
      sqlstate == "40001" ||               // serialization failure
      sqlstate == "40P01") {               // deadlock detected
    return absl::StatusCode::kUnavailable;
  }
  if (sqlstate == "23505") return absl::StatusCode::kAlreadyExists;
  if (sqlstate == "53100") return absl::StatusCode::kResourceExhausted;
  if (absl::StartsWith(sqlstate, "28") ||  // invalid authorization
      sqlstate == "3D000") {               // no such database
    return absl::StatusCode::kFailedPrecondition;
  }
  return absl::StatusCode::kInternal;
}

// A failed login. libpq keeps no SQLSTATE for it, so its text tells a
// configuration problem (retrying will not help) from an outage.
absl::Status ConnectError(PGconn* conn, const std::string& url) {
  const std::string error = OneLine(PQerrorMessage(conn));
  const std::string message = absl::StrCat(url, ": ", error);
  if (PQconnectionNeedsPassword(conn)) {
    return absl::FailedPreconditionError(absl::StrCat(
        message, " (no password: use --store-password-file or PGPASSWORD)"));
  }
  for (const char* config :
       {"authentication failed", "no pg_hba.conf entry", "does not exist"}) {
    if (absl::StrContains(error, config)) {
      return absl::FailedPreconditionError(message);
    }
  }
  return absl::UnavailableError(message);
}

enum class Ready { kFd, kStop, kTimeout };

// Waits until `fd` (if >= 0) has `events`, `stop_fd` (if >= 0) is
// readable, or `timeout` passes.
Ready WaitFor(int fd, short events, int stop_fd, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  pollfd fds[2] = {{stop_fd, POLLIN, 0}, {fd, events, 0}};
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    const int ms = left == absl::InfiniteDuration()
                       ? -1
                       : static_cast<int>(std::max<int64_t>(
                             0, absl::ToInt64Milliseconds(left)));
    // A negative fd is ignored by poll.
    const int n = poll(fds, 2, ms);
    if (n < 0 && errno == EINTR) continue;
    if (fds[0].revents != 0) return Ready::kStop;
    if (n > 0) return Ready::kFd;
    if (n == 0 && ms == 0) return Ready::kTimeout;
    if (n == 0) continue;  // woke a little early: the deadline decides
    SPINNET_LOG(Error, "poll: ", strerror(errno));
    return Ready::kTimeout;
  }
}

}  // namespace

PgParam::PgParam(int64_t value) : type_(kInt8), int8_(8, '\0') {
  for (int i = 7; i >= 0; --i, value >>= 8) {
    int8_[i] = static_cast<char>(value & 0xff);
  }
}

absl::string_view PgResult::Bytes(int row, int col) const {
  return absl::string_view(PQgetvalue(result_.get(), row, col),
                           PQgetlength(result_.get(), row, col));
}

int64_t PgResult::Int(int row, int col) const {
  const absl::string_view bytes = Bytes(row, col);
  if (bytes.empty()) return 0;
  uint64_t value = 0;
  for (const char c : bytes) value = (value << 8) | static_cast<uint8_t>(c);
  // Sign-extend an int2 or int4.
  const int shift = 64 - 8 * static_cast<int>(bytes.size());
  return static_cast<int64_t>(value << shift) >> shift;
}

bool PgResult::Bool(int row, int col) const {
  const absl::string_view bytes = Bytes(row, col);
  return !bytes.empty() && bytes[0] != 0;
}

absl::StatusOr<std::unique_ptr<PgConnection>> PgConnection::Connect(
    const PgConnectParams& params, int stop_fd) {
  // Later keywords win: the URL may set its own application_name and
  // options, and the password (never part of the URL) comes last. A session
  // idle inside a transaction is ended by the server after 10 s: a replica
  // frozen mid-transaction (SIGSTOP, a stalled VM) must not keep its row
  // locks, or the reaper (SKIP LOCKED) could never take its job back.
  std::vector<const char*> keys = {"application_name", "options", "dbname"};
  std::vector<const char*> values = {
      "spinnet-server", "-c idle_in_transaction_session_timeout=10000",
      params.url.c_str()};
  if (!params.password.empty()) {
    keys.push_back("password");
    values.push_back(params.password.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* conn = PQconnectStartParams(keys.data(), values.data(),
                                      /*expand_dbname=*/1);
  if (conn == nullptr) return absl::ResourceExhaustedError("libpq: no memory");
  // Owned from here: every return below closes it unless connected.
  auto owned = absl::WrapUnique(new PgConnection(conn, params.url));
  // Notices ("... already exists, skipping") are not errors; libpq would
  // print them on stderr.
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  const absl::Time deadline = absl::Now() + params.connect_timeout;
  PostgresPollingStatusType polled = PGRES_POLLING_WRITING;
  while (polled != PGRES_POLLING_OK) {
    if (polled == PGRES_POLLING_FAILED || PQstatus(conn) == CONNECTION_BAD) {
      return ConnectError(conn, params.url);
    }
    switch (WaitFor(PQsocket(conn),
                    polled == PGRES_POLLING_READING ? POLLIN : POLLOUT, stop_fd,
                    deadline - absl::Now())) {
      case Ready::kStop:
        return absl::CancelledError("connect: stopping");
      case Ready::kTimeout:
        return absl::UnavailableError(
            absl::StrCat(params.url, ": no connection within ",
                         absl::FormatDuration(params.connect_timeout)));
      case Ready::kFd:
        polled = PQconnectPoll(conn);
        break;
    }
  }
  return owned;
}

absl::Status PgConnection::Error(const PGresult* result,
                                 absl::string_view sql) const {
  const char* sqlstate = result == nullptr
                             ? nullptr
                             : PQresultErrorField(result, PG_DIAG_SQLSTATE);
  if (sqlstate == nullptr) {
    // libpq's own error: mostly a lost connection.
    const std::string message =
        absl::StrCat(url_, ": ", OneLine(PQerrorMessage(conn_)));
    if (PQstatus(conn_) == CONNECTION_BAD) {
      return absl::UnavailableError(message);
    }
    return absl::InternalError(message);
  }
  const absl::StatusCode code = CodeOf(sqlstate);
  const std::string message =
      OneLine(PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY));
  if (code == absl::StatusCode::kUnavailable) {
    return absl::UnavailableError(absl::StrCat(url_, ": ", message));
  }
  // The statement's start says where, without a page of SQL.
  const absl::string_view start = sql.substr(0, sql.find_first_of("\n("));
  return absl::Status(
      code, absl::StrCat("postgresql \"", start, "\": ", message, " (SQLSTATE ",
                         sqlstate, ")"));
}

absl::StatusOr<PgResult> PgConnection::Exec(const std::string& sql,
                                            absl::Span<const PgParam> params) {
  std::vector<Oid> types;
  std::vector<const char*> values;
  std::vector<int> lengths;
  const std::vector<int> formats(params.size(), 1);  // binary
  for (const PgParam& param : params) {
    const absl::string_view value = param.value();
    types.push_back(param.type_);
    // A null pointer would mean NULL, also for an empty value.
    values.push_back(param.null_               ? nullptr
                     : value.data() != nullptr ? value.data()
                                               : "");
    lengths.push_back(static_cast<int>(value.size()));
  }
  PgResult result(PQexecParams(conn_, sql.c_str(),
                               static_cast<int>(params.size()), types.data(),
                               values.data(), lengths.data(), formats.data(),
                               /*resultFormat=*/1));
  switch (PQresultStatus(result.raw())) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
      return result;
    default:
      return Error(result.raw(), sql);
  }
}

absl::Status PgConnection::ExecScript(const std::string& sql) {
  PgResult result(PQexec(conn_, sql.c_str()));
  if (PQresultStatus(result.raw()) == PGRES_COMMAND_OK) {
    return absl::OkStatus();
  }
  return Error(result.raw(), sql);
}

absl::Status PgConnection::Transact(const std::function<absl::Status()>& body) {
  RETURN_IF_ERROR(Exec("BEGIN").status());
  const absl::Status status = body();
  if (status.ok()) return Exec("COMMIT").status();
  // If the ROLLBACK fails too, the connection is lost and the server rolls
  // back by itself.
  Exec("ROLLBACK").IgnoreError();
  return status;
}

bool PgConnection::Unusable() {
  if (PQstatus(conn_) == CONNECTION_BAD ||
      PQtransactionStatus(conn_) != PQTRANS_IDLE) {
    return true;
  }
  // An idle connection has nothing to read unless the server is closing it,
  // as a restart does to every connection.
  pollfd fd = {PQsocket(conn_), POLLIN, 0};
  return poll(&fd, 1, 0) != 0;
}

absl::StatusOr<PgPool::Handle> PgPool::Acquire() {
  std::unique_ptr<PgConnection> conn;
  {
    std::unique_lock<std::mutex> lock(mu_);
    freed_.wait(lock, [this] { return CanAcquire(); });
    if (idle_.empty()) {
      ++open_;  // a slot for the connection opened below
    } else {
      conn = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (conn != nullptr && !conn->Unusable()) {
    return Handle(this, std::move(conn));
  }
  conn.reset();  // dead (the server restarted): open a new one
  absl::StatusOr<std::unique_ptr<PgConnection>> opened =
      PgConnection::Connect(params_);
  if (!opened.ok()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      --open_;
    }
    freed_.notify_one();
    return opened.status();
  }
  return Handle(this, *std::move(opened));
}

void PgPool::Release(std::unique_ptr<PgConnection> conn) {
  const bool unusable = conn->Unusable();
  if (unusable) conn.reset();  // closed outside the lock
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (unusable) {
      --open_;
    } else {
      idle_.push_back(std::move(conn));
    }
  }
  freed_.notify_one();
}

PgListener::PgListener(PgConnectParams params, std::string channel,
                       std::function<void(const std::string&)> notify)
    : params_(std::move(params)),
      channel_(std::move(channel)),
      notify_(std::move(notify)),
      stop_fd_(eventfd(0, EFD_CLOEXEC)) {
  SPINNET_CHECK(stop_fd_ >= 0);
  thread_ = std::thread([this] { Run(); });
}

PgListener::~PgListener() {
  const uint64_t one = 1;
  SPINNET_CHECK(write(stop_fd_, &one, sizeof(one)) == sizeof(one));
  thread_.join();
  close(stop_fd_);
}

void PgListener::Run() {
  absl::Duration backoff = absl::Seconds(1);
  bool outage = false;
  for (;;) {
    absl::StatusOr<std::unique_ptr<PgConnection>> conn =
        PgConnection::Connect(params_, stop_fd_);
    absl::Status status = conn.status();
    if (conn.ok()) {
      // The channel is an identifier of ours, not user input.
      status = (*conn)->Exec(absl::StrCat("LISTEN ", channel_)).status();
    }
    if (status.ok()) {
      if (outage) {
        SPINNET_LOG(Info, "LISTEN ", channel_, ": reconnected to ",
                    params_.url);
        outage = false;
      }
      backoff = absl::Seconds(1);
      status = Listen(**conn);
    }
    if (status.ok() || absl::IsCancelled(status)) return;  // stopping
    if (!outage) {
      SPINNET_LOG(Warning, "LISTEN ", channel_, ": ", status.message(),
                  "; reconnecting (every 1 s .. 10 s)");
      outage = true;
    }
    if (WaitFor(-1, 0, stop_fd_, backoff) == Ready::kStop) return;
    backoff = std::min(2 * backoff, absl::Seconds(10));
  }
}

absl::Status PgListener::Listen(PgConnection& conn) {
  PGconn* raw = conn.raw();
  for (;;) {
    // First those that libpq has read already (with LISTEN's reply).
    while (PGnotify* note = PQnotifies(raw)) {
      const std::string payload = note->extra;
      PQfreemem(note);
      notify_(payload);
    }
    if (WaitFor(PQsocket(raw), POLLIN, stop_fd_, absl::InfiniteDuration()) ==
        Ready::kStop) {
      return absl::OkStatus();
    }
    if (!PQconsumeInput(raw) || PQstatus(raw) == CONNECTION_BAD) {
      return absl::UnavailableError(
          absl::StrCat(params_.url, ": ", OneLine(PQerrorMessage(raw))));
    }
  }
}

}  // namespace spinnet::server
