#include "server/storage/sqlite_store.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "core/file_util.h"
#include "core/logging.h"
#include "core/status_macros.h"
#include "google/protobuf/message_lite.h"
#include "server/storage/job_records.h"

namespace spinnet::server {
namespace {

// Versioned migrations, applied in order at Open inside one write
// transaction; PRAGMA user_version holds the number applied. Every record
// is its API message serialized in `proto`; the other columns are keys,
// indexes and the lease, derived from or kept beside it. request_id is NULL
// when the job has none, so that jobs without one never collide.
// model_versions remembers the last version of each name so that a deleted
// version is never reused; counters hands out lease tokens and revisions.
constexpr const char* kMigrations[] = {
    // 1: the single-server schema.
    R"sql(
CREATE TABLE jobs (
  id TEXT PRIMARY KEY NOT NULL,
  request_id TEXT UNIQUE,
  state INTEGER NOT NULL,
  create_us INTEGER NOT NULL,
  proto BLOB NOT NULL
);
CREATE INDEX jobs_by_time ON jobs (create_us, id);
CREATE INDEX jobs_by_state_time ON jobs (state, create_us, id);
CREATE TABLE epochs (
  job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  epoch INTEGER NOT NULL,
  proto BLOB NOT NULL,
  PRIMARY KEY (job_id, epoch)
);
CREATE TABLE datasets (
  name TEXT PRIMARY KEY NOT NULL,
  proto BLOB NOT NULL
);
CREATE TABLE models (
  name TEXT NOT NULL,
  version INTEGER NOT NULL,
  proto BLOB NOT NULL,
  PRIMARY KEY (name, version)
);
CREATE TABLE model_versions (
  name TEXT PRIMARY KEY NOT NULL,
  last_version INTEGER NOT NULL
);
)sql",
    // 2: leases. Jobs RUNNING under schema 1 get an expired lease, so the
    // reaper requeues them.
    R"sql(
ALTER TABLE jobs ADD COLUMN lease_token INTEGER;
ALTER TABLE jobs ADD COLUMN lease_expires_us INTEGER;
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET lease_token = 0, lease_expires_us = 0 WHERE state = 2;
CREATE TABLE counters (
  name TEXT PRIMARY KEY NOT NULL,
  value INTEGER NOT NULL
);
)sql",
    // 3: sweeps, and their jobs.
    R"sql(
ALTER TABLE jobs ADD COLUMN sweep_id TEXT;
CREATE INDEX jobs_by_sweep ON jobs (sweep_id) WHERE sweep_id IS NOT NULL;
CREATE TABLE sweeps (
  id TEXT PRIMARY KEY NOT NULL,
  request_id TEXT UNIQUE,
  create_us INTEGER NOT NULL,
  proto BLOB NOT NULL
);
CREATE INDEX sweeps_by_time ON sweeps (create_us, id);
)sql",
};
constexpr int kSchemaVersion = sizeof(kMigrations) / sizeof(kMigrations[0]);

// How long a statement waits for another process's lock before failing
// with UNAVAILABLE.
constexpr int kBusyTimeoutMs = 5000;

// The columns a job is read with: the message, then its key (for errors),
// then the columns overlaid on the message.
constexpr char kJobColumns[] = "proto, id, revision, cancel_requested";

std::string Quoted(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

// The status code of an SQLite result code, by what the caller can do.
absl::StatusCode CodeOf(int rc) {
  switch (rc & 0xff) {  // the primary code of an extended one
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::StatusCode::kUnavailable;  // another process holds a lock
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::StatusCode::kDataLoss;
    case SQLITE_FULL:
      return absl::StatusCode::kResourceExhausted;
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
      return absl::StatusCode::kFailedPrecondition;  // fix the file or dir
    default:
      return absl::StatusCode::kInternal;
  }
}

// The status of a failed call on `db` that returned `rc`; `what` names the
// operation.
absl::Status SqliteError(sqlite3* db, int rc, absl::string_view what) {
  std::string msg = absl::StrCat(what, ": ", sqlite3_errmsg(db));
  if ((rc & 0xff) == SQLITE_CANTOPEN) {
    // SQLite's text is the same for every cause; errno tells them apart.
    const int err = sqlite3_system_errno(db);
    absl::StrAppend(&msg, " (", strerror(err), ")");
    if (err == ENOENT) return absl::NotFoundError(msg);
  }
  return absl::Status(CodeOf(rc), msg);
}

// Runs fixed SQL without parameters (pragmas, schema, transactions).
absl::Status Exec(sqlite3* db, const std::string& sql) {
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
  if (rc == SQLITE_OK) return absl::OkStatus();
  return SqliteError(db, rc, absl::StrCat("sqlite ", Quoted(sql)));
}

// A prepared statement, finalized when destroyed. The first failed bind is
// kept and returned by Step, so that call sites bind without a check each.
class Statement {
 public:
  static absl::StatusOr<Statement> Prepare(sqlite3* db,
                                           const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v2(
        db, sql.c_str(), static_cast<int>(sql.size()), &stmt, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return SqliteError(db, rc, absl::StrCat("sqlite prepare ", Quoted(sql)));
    }
    return Statement(db, stmt);
  }

  Statement(Statement&& other) noexcept
      : db_(other.db_),
        stmt_(std::exchange(other.stmt_, nullptr)),
        bind_rc_(other.bind_rc_),
        rc_(other.rc_) {}
  Statement& operator=(Statement&&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  // Parameters are numbered from 1, as ?1, ?2, ... in the SQL.
  void BindInt(int index, int64_t value) {
    Keep(sqlite3_bind_int64(stmt_, index, value));
  }
  // SQLITE_TRANSIENT copies the bytes: no lifetime to keep in mind.
  void BindText(int index, absl::string_view text) {
    Keep(sqlite3_bind_text64(stmt_, index, text.data(), text.size(),
                             SQLITE_TRANSIENT, SQLITE_UTF8));
  }
  // NULL for empty text.
  void BindTextOrNull(int index, absl::string_view text) {
    if (text.empty()) {
      Keep(sqlite3_bind_null(stmt_, index));
    } else {
      BindText(index, text);
    }
  }
  void BindBlob(int index, absl::string_view blob) {
    Keep(sqlite3_bind_blob64(stmt_, index, blob.data(), blob.size(),
                             SQLITE_TRANSIENT));
  }

  // True when a row is ready, false when the statement is done.
  absl::StatusOr<bool> Step() {
    rc_ = bind_rc_ == SQLITE_OK ? sqlite3_step(stmt_) : bind_rc_;
    if (rc_ == SQLITE_ROW) return true;
    if (rc_ == SQLITE_DONE) return false;
    return SqliteError(db_, rc_,
                       absl::StrCat("sqlite ", Quoted(sqlite3_sql(stmt_))));
  }
  // Steps a statement that returns no rows.
  absl::Status Run() { return Step().status(); }

  // The extended result code of the last Step, so that a caller can say
  // which key a constraint failure is about.
  int result_code() const { return rc_; }

  int64_t ColumnInt(int col) { return sqlite3_column_int64(stmt_, col); }
  std::string ColumnText(int col) {
    const unsigned char* text = sqlite3_column_text(stmt_, col);
    if (text == nullptr) return "";  // NULL
    return std::string(reinterpret_cast<const char*>(text),
                       sqlite3_column_bytes(stmt_, col));
  }

  // Parses column 0 of the current row as an M. The other columns are the
  // row's key, which a DATA_LOSS error names.
  template <typename M>
  absl::StatusOr<M> ParseRow(absl::string_view table) {
    M message;
    const void* blob = sqlite3_column_blob(stmt_, 0);
    if (!message.ParseFromArray(blob, sqlite3_column_bytes(stmt_, 0))) {
      return absl::DataLossError(
          absl::StrCat(table, " row ", RowKey(), ": stored ",
                       message.GetTypeName(), " does not parse"));
    }
    return message;
  }

  // The message of the next row, or nullopt when there is none.
  template <typename M>
  absl::StatusOr<std::optional<M>> ParseNext(absl::string_view table) {
    ASSIGN_OR_RETURN(const bool row, Step());
    if (!row) return std::optional<M>();
    ASSIGN_OR_RETURN(M message, ParseRow<M>(table));
    return std::optional<M>(std::move(message));
  }

  // The messages of all remaining rows.
  template <typename M>
  absl::StatusOr<std::vector<M>> ParseAll(absl::string_view table) {
    std::vector<M> out;
    for (;;) {
      ASSIGN_OR_RETURN(std::optional<M> message, ParseNext<M>(table));
      if (!message.has_value()) return out;
      out.push_back(*std::move(message));
    }
  }

 private:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}

  void Keep(int rc) {
    if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }

  // `"j-1"` for a one-column key, `("m", 3)` for a longer one.
  std::string RowKey() {
    std::vector<std::string> parts;
    const int columns = sqlite3_column_count(stmt_);
    for (int col = 1; col < columns; ++col) {
      if (sqlite3_column_type(stmt_, col) == SQLITE_INTEGER) {
        parts.push_back(absl::StrCat(ColumnInt(col)));
      } else {
        parts.push_back(Quoted(ColumnText(col)));
      }
    }
    const std::string key = absl::StrJoin(parts, ", ");
    return parts.size() == 1 ? key : absl::StrCat("(", key, ")");
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  int bind_rc_ = SQLITE_OK;  // the first failed bind
  int rc_ = SQLITE_OK;       // the last step's result
};

// BEGIN IMMEDIATE ... COMMIT: takes the write lock at once, so that a
// read-then-write sequence cannot be interleaved by another process. Rolled
// back if destroyed before a successful Commit.
class Transaction {
 public:
  static absl::StatusOr<Transaction> Begin(sqlite3* db) {
    RETURN_IF_ERROR(Exec(db, "BEGIN IMMEDIATE"));
    return Transaction(db);
  }

  Transaction(Transaction&& other) noexcept
      : db_(std::exchange(other.db_, nullptr)) {}
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction() {
    // A failed COMMIT may leave the transaction open or may have rolled it
    // back already; only the first needs a ROLLBACK.
    if (db_ != nullptr && !sqlite3_get_autocommit(db_)) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }

  absl::Status Commit() {
    RETURN_IF_ERROR(Exec(db_, "COMMIT"));
    db_ = nullptr;
    return absl::OkStatus();
  }

 private:
  explicit Transaction(sqlite3* db) : db_(db) {}

  sqlite3* db_;
};

// The job of the current row of a statement that selected kJobColumns.
absl::StatusOr<v1::TrainingJob> ParseJob(Statement& stmt) {
  ASSIGN_OR_RETURN(v1::TrainingJob job, stmt.ParseRow<v1::TrainingJob>("jobs"));
  job.set_revision(stmt.ColumnInt(2));
  job.set_cancel_requested(stmt.ColumnInt(3) != 0);
  return job;
}

absl::StatusOr<std::optional<v1::TrainingJob>> ParseNextJob(Statement& stmt) {
  ASSIGN_OR_RETURN(const bool row, stmt.Step());
  if (!row) return std::optional<v1::TrainingJob>();
  ASSIGN_OR_RETURN(v1::TrainingJob job, ParseJob(stmt));
  return std::optional<v1::TrainingJob>(std::move(job));
}

absl::StatusOr<std::vector<v1::TrainingJob>> ParseAllJobs(Statement& stmt) {
  std::vector<v1::TrainingJob> out;
  for (;;) {
    ASSIGN_OR_RETURN(std::optional<v1::TrainingJob> job, ParseNextJob(stmt));
    if (!job.has_value()) return out;
    out.push_back(*std::move(job));
  }
}

absl::StatusOr<std::optional<v1::TrainingJob>> FindJob(sqlite3* db,
                                                       const std::string& id) {
  ASSIGN_OR_RETURN(
      Statement stmt,
      Statement::Prepare(db, absl::StrCat("SELECT ", kJobColumns,
                                          " FROM jobs WHERE id = ?1")));
  stmt.BindText(1, id);
  return ParseNextJob(stmt);
}

// Whether job `id`, which the caller's lease holds, has a pending cancel.
absl::StatusOr<bool> CancelRequested(sqlite3* db, const std::string& id) {
  ASSIGN_OR_RETURN(std::optional<v1::TrainingJob> job, FindJob(db, id));
  if (!job.has_value()) return JobNotFound(id);
  return job->cancel_requested();
}

// Bumps and returns counter `name` of `table` (1 for a new name); the
// caller's transaction makes it atomic with what it numbers.
absl::StatusOr<int64_t> Bump(sqlite3* db, absl::string_view table,
                             absl::string_view column, const std::string& name) {
  ASSIGN_OR_RETURN(
      Statement stmt,
      Statement::Prepare(
          db, absl::StrCat("INSERT INTO ", table, " (name, ", column,
                           ") VALUES (?1, 1) ON CONFLICT (name) DO UPDATE SET ",
                           column, " = ", column, " + 1 RETURNING ", column)));
  stmt.BindText(1, name);
  ASSIGN_OR_RETURN(const bool row, stmt.Step());
  SPINNET_CHECK(row);  // RETURNING yields the one row written
  return stmt.ColumnInt(0);
}

// Writes `job` to its row with the next revision; the lease columns are set
// by the callers that change them.
absl::Status WriteJob(sqlite3* db, const v1::TrainingJob& job) {
  ASSIGN_OR_RETURN(const std::string blob, Serialize(job));
  ASSIGN_OR_RETURN(const int64_t revision, Bump(db, "counters", "value", "revision"));
  ASSIGN_OR_RETURN(
      Statement stmt,
      Statement::Prepare(db,
                         "UPDATE jobs SET state = ?2, proto = ?3, revision = ?4, "
                         "cancel_requested = cancel_requested AND ?5 "
                         "WHERE id = ?1"));
  stmt.BindText(1, job.id());
  stmt.BindInt(2, job.state());
  stmt.BindBlob(3, blob);
  stmt.BindInt(4, revision);
  stmt.BindInt(5, !IsTerminal(job.state()));
  RETURN_IF_ERROR(stmt.Run());
  if (sqlite3_changes(db) == 0) return JobNotFound(job.id());
  return absl::OkStatus();
}

// Inserts new row `job` (its first revision); ALREADY_EXISTS for a taken id.
absl::StatusOr<int64_t> InsertJobRow(sqlite3* db, const v1::TrainingJob& job) {
  ASSIGN_OR_RETURN(const std::string blob, Serialize(job));
  ASSIGN_OR_RETURN(const int64_t revision,
                   Bump(db, "counters", "value", "revision"));
  ASSIGN_OR_RETURN(
      Statement stmt,
      Statement::Prepare(db,
                         "INSERT INTO jobs (id, request_id, state, create_us, "
                         "proto, revision, sweep_id) "
                         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
  stmt.BindText(1, job.id());
  stmt.BindTextOrNull(2, job.request_id());
  stmt.BindInt(3, job.state());
  stmt.BindInt(4, ToMicros(job.create_time()));
  stmt.BindBlob(5, blob);
  stmt.BindInt(6, revision);
  stmt.BindTextOrNull(7, job.sweep_id());
  const absl::Status inserted = stmt.Run();
  if (stmt.result_code() == SQLITE_CONSTRAINT_PRIMARYKEY) {
    return absl::AlreadyExistsError(
        absl::StrCat("job ", Quoted(job.id()), " already exists"));
  }
  RETURN_IF_ERROR(inserted);
  return revision;
}

// Cancels `job`, which has not ended, as CancelJob does: a QUEUED job ends
// now, a RUNNING one gets cancel_requested. Returns whether the job ended.
absl::StatusOr<bool> CancelRow(sqlite3* db, v1::TrainingJob job) {
  if (job.state() == v1::JOB_STATE_QUEUED) ApplyCancel(&job);
  RETURN_IF_ERROR(WriteJob(db, job));
  if (job.state() != v1::JOB_STATE_RUNNING) return true;
  ASSIGN_OR_RETURN(Statement stmt,
                   Statement::Prepare(db, "UPDATE jobs SET cancel_requested "
                                          "= 1 WHERE id = ?1"));
  stmt.BindText(1, job.id());
  RETURN_IF_ERROR(stmt.Run());
  return false;
}

// The create time of row `id` of table `kind`s ("job": jobs), where a page
// after it starts; INVALID_ARGUMENT "bad page token" for an unknown id.
absl::StatusOr<int64_t> PageTokenTime(sqlite3* db, const std::string& kind,
                                      const std::string& id) {
  ASSIGN_OR_RETURN(Statement after,
                   Statement::Prepare(db, absl::StrCat("SELECT create_us FROM ",
                                                       kind, "s WHERE id = ?1")));
  after.BindText(1, id);
  ASSIGN_OR_RETURN(const bool found, after.Step());
  if (!found) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad page token: no ", kind, " ", Quoted(id)));
  }
  return after.ColumnInt(0);
}

// A sweep row: the record, with the key for errors.
constexpr char kSweepColumns[] = "proto, id";

absl::StatusOr<std::optional<v1::Sweep>> FindSweep(sqlite3* db,
                                                   const std::string& id) {
  ASSIGN_OR_RETURN(
      Statement stmt,
      Statement::Prepare(db, absl::StrCat("SELECT ", kSweepColumns,
                                          " FROM sweeps WHERE id = ?1")));
  stmt.BindText(1, id);
  return stmt.ParseNext<v1::Sweep>("sweeps");
}

// Sets (token > 0) or clears (token 0) the lease of job `id`.
absl::Status SetLease(sqlite3* db, const std::string& id, int64_t token,
                      absl::Time expires) {
  ASSIGN_OR_RETURN(Statement stmt,
                   Statement::Prepare(db,
                                      "UPDATE jobs SET lease_token = ?2, "
                                      "lease_expires_us = ?3 WHERE id = ?1"));
  stmt.BindText(1, id);
  if (token > 0) {
    stmt.BindInt(2, token);
    stmt.BindInt(3, absl::ToUnixMicros(expires));
  }  // else both stay unbound: NULL
  return stmt.Run();
}

absl::StatusOr<int64_t> CountRows(sqlite3* db, const std::string& sql) {
  ASSIGN_OR_RETURN(Statement stmt, Statement::Prepare(db, sql));
  ASSIGN_OR_RETURN(const bool row, stmt.Step());
  SPINNET_CHECK(row);  // count(*) yields one row
  return stmt.ColumnInt(0);
}

// Sets the connection's pragmas, then creates or migrates the schema.
absl::Status SetUp(sqlite3* db) {
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  {
    // The first statement reads the file: a non-database fails here.
    ASSIGN_OR_RETURN(Statement wal,
                     Statement::Prepare(db, "PRAGMA journal_mode = WAL"));
    ASSIGN_OR_RETURN(const bool row, wal.Step());
    SPINNET_CHECK(row);  // the pragma yields the mode it set
    const std::string mode = wal.ColumnText(0);
    if (mode != "wal") {  // e.g. "memory" for an in-memory database
      return absl::FailedPreconditionError(
          absl::StrCat("journal mode is \"", mode, "\", not \"wal\""));
    }
  }
  // FULL: in WAL mode NORMAL may lose the last commits on power loss, and
  // every method promises durability when it returns.
  RETURN_IF_ERROR(Exec(db, "PRAGMA synchronous = FULL"));
  RETURN_IF_ERROR(Exec(db, "PRAGMA foreign_keys = ON"));

  ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db));
  ASSIGN_OR_RETURN(const int64_t version, CountRows(db, "PRAGMA user_version"));
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "schema version ", version, " is newer than this spinnet-server knows (",
        kSchemaVersion, "); upgrade the server"));
  }
  for (int64_t v = version; v < kSchemaVersion; ++v) {
    RETURN_IF_ERROR(Exec(db, kMigrations[v]));
  }
  RETURN_IF_ERROR(
      Exec(db, absl::StrCat("PRAGMA user_version = ", kSchemaVersion)));
  // The data dir lock proves that no worker of another process holds a
  // lease: expire them all, for the reaper to requeue.
  RETURN_IF_ERROR(Exec(
      db, "UPDATE jobs SET lease_expires_us = 0 WHERE lease_token IS NOT NULL"));
  return txn.Commit();
}

absl::StatusOr<int> TakeDirLock(const std::string& dir) {
  const std::string lock = dir + "/LOCK";
  const int fd = open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("cannot open", lock);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    close(fd);
    return absl::FailedPreconditionError(absl::StrCat(
        "another spinnet-server is already running on data dir ", dir));
  }
  return fd;
}

absl::Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoError("cannot create directory", path);
  }
  return absl::OkStatus();
}

}  // namespace

void SqliteStore::CloseDb::operator()(sqlite3* db) const {
  // Every statement is finalized by its owner before this runs.
  sqlite3_close(db);
}

SqliteStore::SqliteStore(std::unique_ptr<sqlite3, CloseDb> db,
                         std::unique_ptr<sqlite3, CloseDb> reader,
                         std::string dir, int lock_fd)
    : dir_(std::move(dir)),
      lock_fd_(lock_fd),
      blobs_(dir_),
      db_(std::move(db)),
      reader_(std::move(reader)) {}

SqliteStore::~SqliteStore() {
  reader_.reset();  // close the database first,
  db_.reset();
  close(lock_fd_);  // then let another server in
}

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(
    const std::string& data_dir) {
  RETURN_IF_ERROR(MakeDir(data_dir));
  ASSIGN_OR_RETURN(const int lock_fd, TakeDirLock(data_dir));
  // The lock is closed on every early return below.
  struct LockGuard {
    int fd;
    ~LockGuard() {
      if (fd >= 0) close(fd);
    }
  } guard{lock_fd};
  for (const char* sub :
       {"/models", "/imported-models", "/checkpoints", "/datasets"}) {
    RETURN_IF_ERROR(MakeDir(data_dir + sub));
    // A blob write cut short by a crash leaves its temp file; the lock
    // proves that no writer is alive.
    ASSIGN_OR_RETURN(const int removed, RemoveStaleTemporaries(data_dir + sub));
    if (removed > 0) {
      SPINNET_LOG(Info, "removed ", removed, " unfinished blob write(s) in ",
                  data_dir, sub);
    }
  }
  const std::string path = data_dir + "/spinnet.db";
  const std::string what = absl::StrCat("open store ", Quoted(path));
  // NOMUTEX: the store's own mutexes serialize use of each connection.
  const auto open = [&](std::unique_ptr<sqlite3, CloseDb>* db) -> absl::Status {
    sqlite3* raw = nullptr;
    const int rc =
        sqlite3_open_v2(path.c_str(), &raw,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                            SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
                        nullptr);
    // sqlite3_open_v2 returns a handle to close even when it fails.
    db->reset(raw);
    if (rc != SQLITE_OK) return SqliteError(raw, rc, what);
    return absl::OkStatus();
  };
  std::unique_ptr<sqlite3, CloseDb> db, reader;
  RETURN_IF_ERROR(open(&db));
  absl::Status status = SetUp(db.get());
  if (status.ok()) status = open(&reader);
  if (status.ok()) {
    sqlite3_busy_timeout(reader.get(), kBusyTimeoutMs);
    status = Exec(reader.get(), "PRAGMA query_only = ON");
  }
  if (!status.ok()) {
    return absl::Status(status.code(),
                        absl::StrCat(what, ": ", status.message()));
  }
  guard.fd = -1;
  return absl::WrapUnique(
      new SqliteStore(std::move(db), std::move(reader), data_dir, lock_fd));
}

std::string SqliteStore::Describe() const {
  return absl::StrCat("sqlite://", dir_);
}

absl::Status SqliteStore::Ping() {
  std::lock_guard<std::mutex> lock(read_mu_);
  return CountRows(reader_.get(), "SELECT 1").status();
}

void SqliteStore::Notify(const std::string& job_id) {
  if (changed_) changed_(job_id);
}

absl::Status SqliteStore::IntegrityCheck() {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(Statement stmt,
                   Statement::Prepare(db_.get(), "PRAGMA integrity_check"));
  std::vector<std::string> problems;
  for (;;) {
    ASSIGN_OR_RETURN(const bool row, stmt.Step());
    if (!row) break;
    problems.push_back(stmt.ColumnText(0));
  }
  // A sound database yields the single row "ok".
  if (problems.size() == 1 && problems[0] == "ok") return absl::OkStatus();
  return absl::DataLossError(
      absl::StrCat("store ", Quoted(dir_),
                   " integrity check: ", absl::StrJoin(problems, "; ")));
}

absl::StatusOr<Store::Inserted> SqliteStore::InsertJob(
    const v1::TrainingJob& job, int max_queued) {
  RETURN_IF_ERROR(CheckSingleJob(job));
  Inserted out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    sqlite3* db = db_.get();
    ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db));
    if (!job.request_id().empty()) {
      ASSIGN_OR_RETURN(Statement find,
                       Statement::Prepare(db, absl::StrCat(
                                                  "SELECT ", kJobColumns,
                                                  " FROM jobs WHERE request_id = ?1")));
      find.BindText(1, job.request_id());
      ASSIGN_OR_RETURN(std::optional<v1::TrainingJob> existing,
                       ParseNextJob(find));
      if (existing.has_value()) return Inserted{*std::move(existing), false};
    }
    ASSIGN_OR_RETURN(const int64_t queued,
                     CountRows(db, "SELECT count(*) FROM jobs WHERE state = 1 "
                                   "AND sweep_id IS NULL"));
    if (queued >= max_queued) return QueueFull(max_queued);
    ASSIGN_OR_RETURN(const int64_t revision, InsertJobRow(db, job));
    RETURN_IF_ERROR(txn.Commit());
    v1::TrainingJob stored = job;
    stored.set_revision(revision);
    stored.set_cancel_requested(false);
    out = Inserted{std::move(stored), true};
  }
  Notify(job.id());
  return out;
}

absl::StatusOr<v1::TrainingJob> SqliteStore::GetJob(const std::string& id) {
  std::lock_guard<std::mutex> lock(read_mu_);
  ASSIGN_OR_RETURN(std::optional<v1::TrainingJob> job,
                   FindJob(reader_.get(), id));
  if (!job.has_value()) return JobNotFound(id);
  return *std::move(job);
}

absl::StatusOr<std::vector<v1::TrainingJob>> SqliteStore::ListJobs(
    v1::JobState state, int limit, const std::string& after_id) {
  if (limit < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("page size ", limit, "; need >= 1"));
  }
  std::lock_guard<std::mutex> lock(read_mu_);
  ASSIGN_OR_RETURN(
      Statement stmt,
      Statement::Prepare(
          reader_.get(),
          absl::StrCat("SELECT ", kJobColumns,
                       " FROM jobs "
                       "WHERE (?1 = 0 OR state = ?1) "
                       "AND (?2 IS NULL OR (create_us, id) < (?2, ?3)) "
                       "ORDER BY create_us DESC, id DESC LIMIT ?4")));
  stmt.BindInt(1, state);
  if (!after_id.empty()) {
    ASSIGN_OR_RETURN(const int64_t after_us,
                     PageTokenTime(reader_.get(), "job", after_id));
    stmt.BindInt(2, after_us);
    stmt.BindText(3, after_id);
  }
  stmt.BindInt(4, limit);
  return ParseAllJobs(stmt);
}

absl::StatusOr<StoreCounts> SqliteStore::Count() {
  std::lock_guard<std::mutex> lock(read_mu_);
  sqlite3* db = reader_.get();
  StoreCounts c;
  ASSIGN_OR_RETURN(Statement stmt,
                   Statement::Prepare(db, "SELECT state, count(*) FROM jobs "
                                          "GROUP BY state"));
  for (;;) {
    ASSIGN_OR_RETURN(const bool row, stmt.Step());
    if (!row) break;
    const int64_t n = stmt.ColumnInt(1);
    switch (stmt.ColumnInt(0)) {
      case v1::JOB_STATE_QUEUED: c.queued = n; break;
      case v1::JOB_STATE_RUNNING: c.running = n; break;
      case v1::JOB_STATE_SUCCEEDED: c.succeeded = n; break;
      case v1::JOB_STATE_FAILED: c.failed = n; break;
      case v1::JOB_STATE_CANCELLED: c.cancelled = n; break;
      default: break;
    }
  }
  ASSIGN_OR_RETURN(c.models, CountRows(db, "SELECT count(*) FROM models"));
  ASSIGN_OR_RETURN(c.datasets, CountRows(db, "SELECT count(*) FROM datasets"));
  return c;
}

absl::StatusOr<std::optional<ClaimedJob>> SqliteStore::ClaimJob(
    const std::string& worker, absl::Duration ttl) {
  ClaimedJob claimed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    sqlite3* db = db_.get();
    ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db));
    ASSIGN_OR_RETURN(
        Statement stmt,
        Statement::Prepare(db, absl::StrCat("SELECT ", kJobColumns,
                                            " FROM jobs WHERE state = 1 "
                                            "ORDER BY create_us, id LIMIT 1")));
    ASSIGN_OR_RETURN(std::optional<v1::TrainingJob> job, ParseNextJob(stmt));
    if (!job.has_value()) return std::optional<ClaimedJob>();
    ApplyClaim(worker, &*job);
    RETURN_IF_ERROR(WriteJob(db, *job));
    ASSIGN_OR_RETURN(const int64_t token, Bump(db, "counters", "value", "lease"));
    RETURN_IF_ERROR(SetLease(db, job->id(), token, absl::Now() + ttl));
    ASSIGN_OR_RETURN(std::optional<v1::TrainingJob> stored, FindJob(db, job->id()));
    RETURN_IF_ERROR(txn.Commit());
    claimed = ClaimedJob{*std::move(stored), Lease{job->id(), token}};
  }
  Notify(claimed.lease.job_id);
  return std::optional<ClaimedJob>(std::move(claimed));
}

absl::Status SqliteStore::WithLease(
    const Lease& lease, const std::function<absl::Status()>& change) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    sqlite3* db = db_.get();
    ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db));
    ASSIGN_OR_RETURN(Statement stmt,
                     Statement::Prepare(db,
                                        "SELECT 1 FROM jobs WHERE id = ?1 AND "
                                        "lease_token = ?2 AND state = 2"));
    stmt.BindText(1, lease.job_id);
    stmt.BindInt(2, lease.token);
    ASSIGN_OR_RETURN(const bool held, stmt.Step());
    if (!held) return LeaseLost(lease.job_id);
    RETURN_IF_ERROR(change());
    RETURN_IF_ERROR(txn.Commit());
  }
  Notify(lease.job_id);
  return absl::OkStatus();
}

absl::StatusOr<bool> SqliteStore::Heartbeat(const Lease& lease,
                                            const v1::TrainingJob& job,
                                            absl::Duration ttl) {
  bool cancel = false;
  RETURN_IF_ERROR(WithLease(lease, [&]() -> absl::Status {
    sqlite3* db = db_.get();
    RETURN_IF_ERROR(WriteJob(db, job));
    RETURN_IF_ERROR(SetLease(db, lease.job_id, lease.token, absl::Now() + ttl));
    ASSIGN_OR_RETURN(cancel, CancelRequested(db, lease.job_id));
    return absl::OkStatus();
  }));
  return cancel;
}

absl::Status SqliteStore::RecordEpoch(const Lease& lease,
                                      const v1::TrainingJob& job,
                                      const v1::EpochMetrics& epoch,
                                      absl::string_view checkpoint) {
  RETURN_IF_ERROR(CheckEpochNumber(epoch));
  ASSIGN_OR_RETURN(const std::string blob, Serialize(epoch));
  const std::string newest = CheckpointBlobKey(job.id());
  const std::string previous = PreviousCheckpointBlobKey(job.id());
  bool rotated = false;
  const absl::Status status = WithLease(lease, [&]() -> absl::Status {
    sqlite3* db = db_.get();
    // Files first: keep the previous checkpoint until the new one is
    // written. A crash before the commit leaves a checkpoint a little ahead
    // of the rows, which the resume reads as it is.
    if (!checkpoint.empty()) {
      RETURN_IF_ERROR(blobs_.Rename(newest, previous));
      rotated = true;
      RETURN_IF_ERROR(blobs_.Put(newest, checkpoint));
    }
    ASSIGN_OR_RETURN(
        Statement stmt,
        Statement::Prepare(db,
                           "INSERT INTO epochs (job_id, epoch, proto) "
                           "VALUES (?1, ?2, ?3) ON CONFLICT (job_id, epoch) "
                           "DO UPDATE SET proto = excluded.proto"));
    stmt.BindText(1, job.id());
    stmt.BindInt(2, epoch.epoch());
    stmt.BindBlob(3, blob);
    RETURN_IF_ERROR(stmt.Run());
    return WriteJob(db, job);
  });
  if (!status.ok() && rotated) {
    // The rows were rolled back (a full disk fails the commit): the files
    // go back too, or a resume would start past an epoch never recorded.
    // A crash in between leaves the previous checkpoint, which a resume
    // reads.
    absl::Status undo = blobs_.Delete(newest);
    if (undo.ok()) undo = blobs_.Rename(previous, newest);
    if (!undo.ok()) {
      SPINNET_LOG(Warning, "job ", job.id(), ": ", undo.ToString());
    }
  }
  return status;
}

absl::StatusOr<Store::Checkpoints> SqliteStore::LoadCheckpoints(
    const std::string& job_id) {
  return ReadCheckpoints(blobs_, job_id);
}

namespace {

// Publishes `model` as the next version of its name, inside the caller's
// transaction: the file, then the row that names it. `job_id` is the source
// job, empty for an import. Returns the record.
absl::StatusOr<v1::Model> PublishModel(sqlite3* db, LocalBlobStore& blobs,
                                       ModelToPublish model,
                                       const std::string& job_id) {
  v1::Model& info = model.info;
  ASSIGN_OR_RETURN(const int64_t version,
                   Bump(db, "model_versions", "last_version", info.name()));
  info.set_version(static_cast<int>(version));
  info.set_source_job_id(job_id);
  ASSIGN_OR_RETURN(const std::string blob, Serialize(info));
  // The file before the row that names it. Its key is the job's, or the
  // version's (which a rolled-back transaction hands out again), so a retry
  // overwrites an orphan.
  RETURN_IF_ERROR(blobs.Put(ModelBlobKeyOf(info), model.bytes));
  ASSIGN_OR_RETURN(Statement stmt,
                   Statement::Prepare(db,
                                      "INSERT INTO models (name, version, "
                                      "proto) VALUES (?1, ?2, ?3)"));
  stmt.BindText(1, info.name());
  stmt.BindInt(2, version);
  stmt.BindBlob(3, blob);
  RETURN_IF_ERROR(stmt.Run());
  return std::move(info);
}

}  // namespace

absl::StatusOr<v1::TrainingJob> SqliteStore::FinishJob(
    const Lease& lease, v1::TrainingJob job,
    std::optional<ModelToPublish> model) {
  RETURN_IF_ERROR(CheckFinishable(job, model.has_value()));
  RETURN_IF_ERROR(WithLease(lease, [&]() -> absl::Status {
    sqlite3* db = db_.get();
    ASSIGN_OR_RETURN(const bool cancel, CancelRequested(db, job.id()));
    if (!ApplyFinish(cancel, &job)) model.reset();
    if (model.has_value()) {
      ASSIGN_OR_RETURN(const v1::Model info,
                       PublishModel(db, blobs_, *std::move(model), job.id()));
      job.set_model_version(info.version());
    }
    RETURN_IF_ERROR(WriteJob(db, job));
    RETURN_IF_ERROR(SetLease(db, job.id(), 0, absl::InfinitePast()));
    ASSIGN_OR_RETURN(std::optional<v1::TrainingJob> stored, FindJob(db, job.id()));
    job = *std::move(stored);
    return absl::OkStatus();
  }));
  DropCheckpoints(job.id());
  return job;
}

void SqliteStore::DropCheckpoints(const std::string& job_id) {
  for (const std::string& key :
       {CheckpointBlobKey(job_id), PreviousCheckpointBlobKey(job_id)}) {
    if (absl::Status s = blobs_.Delete(key); !s.ok()) {
      SPINNET_LOG(Warning, "job ", job_id, ": ", s.ToString());
    }
  }
}

absl::Status SqliteStore::ReleaseJob(const Lease& lease,
                                     const v1::TrainingJob& job) {
  v1::TrainingJob released = job;
  RETURN_IF_ERROR(WithLease(lease, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(const bool cancel, CancelRequested(db_.get(), job.id()));
    ApplyRelease(cancel, &released);
    RETURN_IF_ERROR(WriteJob(db_.get(), released));
    return SetLease(db_.get(), job.id(), 0, absl::InfinitePast());
  }));
  if (IsTerminal(released.state())) DropCheckpoints(job.id());
  return absl::OkStatus();
}

absl::StatusOr<v1::TrainingJob> SqliteStore::CancelJob(const std::string& id) {
  v1::TrainingJob out;
  bool ended = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    sqlite3* db = db_.get();
    ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db));
    ASSIGN_OR_RETURN(std::optional<v1::TrainingJob> job, FindJob(db, id));
    if (!job.has_value()) return JobNotFound(id);
    if (IsTerminal(job->state())) return AlreadyEnded(*job);
    ASSIGN_OR_RETURN(ended, CancelRow(db, *std::move(job)));
    ASSIGN_OR_RETURN(std::optional<v1::TrainingJob> stored, FindJob(db, id));
    RETURN_IF_ERROR(txn.Commit());
    out = *std::move(stored);
  }
  // A job cancelled while queued may hold an earlier attempt's checkpoints.
  if (ended) DropCheckpoints(id);
  Notify(id);
  return out;
}

absl::StatusOr<ReapResult> SqliteStore::ReapExpiredLeases(int max_attempts) {
  ReapResult result;
  std::vector<std::string> changed, ended;
  {
    std::lock_guard<std::mutex> lock(mu_);
    sqlite3* db = db_.get();
    ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db));
    ASSIGN_OR_RETURN(
        Statement stmt,
        Statement::Prepare(db, absl::StrCat("SELECT ", kJobColumns,
                                            " FROM jobs WHERE state = 2 AND "
                                            "lease_expires_us < ?1")));
    stmt.BindInt(1, absl::ToUnixMicros(absl::Now()));
    ASSIGN_OR_RETURN(std::vector<v1::TrainingJob> expired, ParseAllJobs(stmt));
    for (v1::TrainingJob& job : expired) {
      switch (ApplyExpiry(max_attempts, job.cancel_requested(), &job)) {
        case v1::JOB_STATE_QUEUED: ++result.requeued; break;
        case v1::JOB_STATE_FAILED: ++result.failed; break;
        default: ++result.cancelled; break;
      }
      RETURN_IF_ERROR(WriteJob(db, job));
      RETURN_IF_ERROR(SetLease(db, job.id(), 0, absl::InfinitePast()));
      changed.push_back(job.id());
      if (IsTerminal(job.state())) ended.push_back(job.id());
    }
    RETURN_IF_ERROR(txn.Commit());
  }
  for (const std::string& id : ended) DropCheckpoints(id);
  for (const std::string& id : changed) Notify(id);
  return result;
}

absl::StatusOr<std::vector<v1::EpochMetrics>> SqliteStore::ListEpochs(
    const std::string& job_id) {
  std::lock_guard<std::mutex> lock(read_mu_);
  ASSIGN_OR_RETURN(Statement stmt,
                   Statement::Prepare(reader_.get(),
                                      "SELECT proto, job_id, epoch FROM epochs "
                                      "WHERE job_id = ?1 ORDER BY epoch"));
  stmt.BindText(1, job_id);
  ASSIGN_OR_RETURN(std::vector<v1::EpochMetrics> epochs,
                   stmt.ParseAll<v1::EpochMetrics>("epochs"));
  // No rows: a job before its first epoch, or no such job.
  if (epochs.empty()) {
    ASSIGN_OR_RETURN(std::optional<v1::TrainingJob> job,
                     FindJob(reader_.get(), job_id));
    if (!job.has_value()) return JobNotFound(job_id);
  }
  return epochs;
}

absl::StatusOr<Store::InsertedSweep> SqliteStore::InsertSweep(
    const v1::Sweep& sweep, const std::vector<v1::TrainingJob>& jobs,
    int max_queued) {
  RETURN_IF_ERROR(CheckSweepJobs(sweep, jobs));
  ASSIGN_OR_RETURN(const std::string blob, Serialize(sweep));
  {
    std::lock_guard<std::mutex> lock(mu_);
    sqlite3* db = db_.get();
    ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db));
    if (!sweep.request_id().empty()) {
      ASSIGN_OR_RETURN(
          Statement find,
          Statement::Prepare(db, absl::StrCat("SELECT ", kSweepColumns,
                                              " FROM sweeps WHERE request_id = ?1")));
      find.BindText(1, sweep.request_id());
      ASSIGN_OR_RETURN(std::optional<v1::Sweep> existing,
                       find.ParseNext<v1::Sweep>("sweeps"));
      if (existing.has_value()) return InsertedSweep{*std::move(existing), false};
    }
    ASSIGN_OR_RETURN(const int64_t queued,
                     CountRows(db, "SELECT count(*) FROM jobs WHERE state = 1 "
                                   "AND sweep_id IS NOT NULL"));
    if (queued + static_cast<int64_t>(jobs.size()) > max_queued) {
      return SweepQueueFull(max_queued, queued, jobs.size());
    }
    ASSIGN_OR_RETURN(
        Statement stmt,
        Statement::Prepare(db,
                           "INSERT INTO sweeps (id, request_id, create_us, "
                           "proto) VALUES (?1, ?2, ?3, ?4)"));
    stmt.BindText(1, sweep.id());
    stmt.BindTextOrNull(2, sweep.request_id());
    stmt.BindInt(3, ToMicros(sweep.create_time()));
    stmt.BindBlob(4, blob);
    const absl::Status inserted = stmt.Run();
    if (stmt.result_code() == SQLITE_CONSTRAINT_PRIMARYKEY) {
      return absl::AlreadyExistsError(
          absl::StrCat("sweep ", Quoted(sweep.id()), " already exists"));
    }
    RETURN_IF_ERROR(inserted);
    for (const v1::TrainingJob& job : jobs) {
      RETURN_IF_ERROR(InsertJobRow(db, job).status());
    }
    RETURN_IF_ERROR(txn.Commit());
  }
  for (const v1::TrainingJob& job : jobs) Notify(job.id());
  return InsertedSweep{sweep, true};
}

absl::StatusOr<v1::Sweep> SqliteStore::GetSweep(const std::string& id) {
  std::lock_guard<std::mutex> lock(read_mu_);
  ASSIGN_OR_RETURN(std::optional<v1::Sweep> sweep,
                   FindSweep(reader_.get(), id));
  if (!sweep.has_value()) return SweepNotFound(id);
  return *std::move(sweep);
}

absl::StatusOr<std::vector<v1::Sweep>> SqliteStore::ListSweeps(
    int limit, const std::string& after_id) {
  if (limit < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("page size ", limit, "; need >= 1"));
  }
  std::lock_guard<std::mutex> lock(read_mu_);
  ASSIGN_OR_RETURN(
      Statement stmt,
      Statement::Prepare(
          reader_.get(),
          absl::StrCat("SELECT ", kSweepColumns,
                       " FROM sweeps "
                       "WHERE ?1 IS NULL OR (create_us, id) < (?1, ?2) "
                       "ORDER BY create_us DESC, id DESC LIMIT ?3")));
  if (!after_id.empty()) {
    ASSIGN_OR_RETURN(const int64_t after_us,
                     PageTokenTime(reader_.get(), "sweep", after_id));
    stmt.BindInt(1, after_us);
    stmt.BindText(2, after_id);
  }
  stmt.BindInt(3, limit);
  return stmt.ParseAll<v1::Sweep>("sweeps");
}

absl::StatusOr<std::vector<v1::TrainingJob>> SqliteStore::ListSweepJobs(
    const std::string& sweep_id) {
  std::lock_guard<std::mutex> lock(read_mu_);
  ASSIGN_OR_RETURN(std::optional<v1::Sweep> sweep,
                   FindSweep(reader_.get(), sweep_id));
  if (!sweep.has_value()) return SweepNotFound(sweep_id);
  ASSIGN_OR_RETURN(
      Statement stmt,
      Statement::Prepare(reader_.get(),
                         absl::StrCat("SELECT ", kJobColumns,
                                      " FROM jobs WHERE sweep_id = ?1")));
  stmt.BindText(1, sweep_id);
  return ParseAllJobs(stmt);
}

absl::StatusOr<v1::Sweep> SqliteStore::CancelSweep(const std::string& id) {
  v1::Sweep out;
  std::vector<std::string> changed, ended;
  {
    std::lock_guard<std::mutex> lock(mu_);
    sqlite3* db = db_.get();
    ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db));
    ASSIGN_OR_RETURN(std::optional<v1::Sweep> sweep, FindSweep(db, id));
    if (!sweep.has_value()) return SweepNotFound(id);
    sweep->set_cancel_requested(true);
    ASSIGN_OR_RETURN(const std::string blob, Serialize(*sweep));
    ASSIGN_OR_RETURN(Statement update,
                     Statement::Prepare(db, "UPDATE sweeps SET proto = ?2 "
                                            "WHERE id = ?1"));
    update.BindText(1, id);
    update.BindBlob(2, blob);
    RETURN_IF_ERROR(update.Run());
    ASSIGN_OR_RETURN(
        Statement open,
        Statement::Prepare(db, absl::StrCat("SELECT ", kJobColumns,
                                            " FROM jobs WHERE sweep_id = ?1 "
                                            "AND state IN (1, 2)")));
    open.BindText(1, id);
    ASSIGN_OR_RETURN(std::vector<v1::TrainingJob> jobs, ParseAllJobs(open));
    for (v1::TrainingJob& job : jobs) {
      changed.push_back(job.id());
      ASSIGN_OR_RETURN(const bool job_ended, CancelRow(db, std::move(job)));
      if (job_ended) ended.push_back(changed.back());
    }
    RETURN_IF_ERROR(txn.Commit());
    out = *std::move(sweep);
  }
  for (const std::string& job_id : ended) DropCheckpoints(job_id);
  for (const std::string& job_id : changed) Notify(job_id);
  return out;
}

absl::Status SqliteStore::InsertDataset(const v1::Dataset& dataset,
                                        absl::string_view bytes) {
  if (dataset.name().empty()) {
    return absl::InvalidArgumentError("dataset name is empty");
  }
  ASSIGN_OR_RETURN(const std::string blob, Serialize(dataset));
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db_.get()));
  ASSIGN_OR_RETURN(
      Statement stmt,
      Statement::Prepare(db_.get(),
                         "INSERT INTO datasets (name, proto) VALUES (?1, ?2)"));
  stmt.BindText(1, dataset.name());
  stmt.BindBlob(2, blob);
  const absl::Status status = stmt.Run();
  if (stmt.result_code() == SQLITE_CONSTRAINT_PRIMARYKEY) {
    return absl::AlreadyExistsError(
        absl::StrCat("dataset ", Quoted(dataset.name()), " already exists"));
  }
  RETURN_IF_ERROR(status);
  // The file inside the transaction: a failed write leaves no row, and a
  // crash after it leaves an orphan file that the next upload replaces.
  RETURN_IF_ERROR(blobs_.Put(DatasetBlobKey(dataset.name()), bytes));
  return txn.Commit();
}

absl::StatusOr<v1::Dataset> SqliteStore::GetDataset(const std::string& name) {
  std::lock_guard<std::mutex> lock(read_mu_);
  ASSIGN_OR_RETURN(
      Statement stmt,
      Statement::Prepare(reader_.get(),
                         "SELECT proto, name FROM datasets WHERE name = ?1"));
  stmt.BindText(1, name);
  ASSIGN_OR_RETURN(std::optional<v1::Dataset> dataset,
                   stmt.ParseNext<v1::Dataset>("datasets"));
  if (!dataset.has_value()) return DatasetNotFound(name);
  return *std::move(dataset);
}

absl::StatusOr<std::vector<v1::Dataset>> SqliteStore::ListDatasets() {
  std::lock_guard<std::mutex> lock(read_mu_);
  ASSIGN_OR_RETURN(
      Statement stmt,
      Statement::Prepare(reader_.get(),
                         "SELECT proto, name FROM datasets ORDER BY name"));
  return stmt.ParseAll<v1::Dataset>("datasets");
}

absl::Status SqliteStore::DeleteDataset(const std::string& name) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(
        Statement stmt,
        Statement::Prepare(db_.get(), "DELETE FROM datasets WHERE name = ?1"));
    stmt.BindText(1, name);
    RETURN_IF_ERROR(stmt.Run());
    if (sqlite3_changes(db_.get()) == 0) return DatasetNotFound(name);
  }
  return blobs_.Delete(DatasetBlobKey(name));
}

absl::StatusOr<v1::Model> SqliteStore::GetModel(const std::string& name,
                                                int version) {
  if (version < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model version ", version, "; need >= 0"));
  }
  std::lock_guard<std::mutex> lock(read_mu_);
  // Version 0 matches every version, and the latest comes first.
  ASSIGN_OR_RETURN(Statement stmt,
                   Statement::Prepare(reader_.get(),
                                      "SELECT proto, name, version FROM models "
                                      "WHERE name = ?1 "
                                      "AND (?2 = 0 OR version = ?2) "
                                      "ORDER BY version DESC LIMIT 1"));
  stmt.BindText(1, name);
  stmt.BindInt(2, version);
  ASSIGN_OR_RETURN(std::optional<v1::Model> model,
                   stmt.ParseNext<v1::Model>("models"));
  if (!model.has_value()) return ModelNotFound(name, version);
  return *std::move(model);
}

absl::StatusOr<std::vector<v1::Model>> SqliteStore::ListModels(
    const std::string& name) {
  std::lock_guard<std::mutex> lock(read_mu_);
  ASSIGN_OR_RETURN(Statement stmt,
                   Statement::Prepare(reader_.get(),
                                      "SELECT proto, name, version FROM models "
                                      "WHERE ?1 = '' OR name = ?1 "
                                      "ORDER BY name, version"));
  stmt.BindText(1, name);
  return stmt.ParseAll<v1::Model>("models");
}

absl::Status SqliteStore::DeleteModel(const std::string& name, int version) {
  if (version < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("model version ", version, "; need >= 1"));
  }
  std::string key;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Statement stmt,
                     Statement::Prepare(db_.get(),
                                        "DELETE FROM models WHERE name = ?1 "
                                        "AND version = ?2 RETURNING proto, name"));
    stmt.BindText(1, name);
    stmt.BindInt(2, version);
    ASSIGN_OR_RETURN(std::optional<v1::Model> deleted,
                     stmt.ParseNext<v1::Model>("models"));
    if (!deleted.has_value()) return ModelNotFound(name, version);
    // Step to the end, so the DELETE completes before the statement goes.
    RETURN_IF_ERROR(stmt.Run());
    key = ModelBlobKeyOf(*deleted);
  }
  // Sessions holding the loaded model keep running; the file goes now.
  return blobs_.Delete(key);
}

absl::StatusOr<v1::Model> SqliteStore::InsertModel(ModelToPublish model) {
  RETURN_IF_ERROR(CheckImportable(model));
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db_.get()));
  ASSIGN_OR_RETURN(v1::Model info,
                   PublishModel(db_.get(), blobs_, std::move(model), ""));
  RETURN_IF_ERROR(txn.Commit());
  return info;
}

}  // namespace spinnet::server
