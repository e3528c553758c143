#include "server/sqlite_store.h"

#include <errno.h>
#include <sqlite3.h>

#include <cstdint>
#include <cstring>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "core/logging.h"
#include "core/status_macros.h"
#include "google/protobuf/message_lite.h"
#include "google/protobuf/util/time_util.h"

namespace spinnet::server {
namespace {

constexpr int kSchemaVersion = 1;

// How long a statement waits for another process's lock before failing
// with UNAVAILABLE.
constexpr int kBusyTimeoutMs = 5000;

// Every record is its API message serialized in `proto`; the other columns
// are keys and indexes derived from it. request_id is NULL when the job has
// none, so that jobs without one never collide. model_versions remembers
// the last version of each name so that a deleted version is never reused.
constexpr char kSchema[] = R"sql(
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
)sql";

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

absl::StatusOr<std::string> Serialize(const google::protobuf::MessageLite& m) {
  std::string out;
  if (!m.SerializeToString(&out)) {
    return absl::InvalidArgumentError(absl::StrCat(
        m.GetTypeName(), " does not serialize (", m.ByteSizeLong(), " bytes)"));
  }
  return out;
}

absl::Status JobNotFound(absl::string_view id) {
  return absl::NotFoundError(absl::StrCat("job ", Quoted(id), " not found"));
}

absl::Status ModelNotFound(absl::string_view name, int version) {
  if (version == 0) {
    return absl::NotFoundError(
        absl::StrCat("model ", Quoted(name), " not found"));
  }
  return absl::NotFoundError(
      absl::StrCat("model ", Quoted(name), " version ", version, " not found"));
}

// Insert and update share the parameters: ?1 is the id, the rest derive
// from the message.
absl::Status WriteJob(sqlite3* db, const std::string& sql,
                      const v1::TrainingJob& job) {
  ASSIGN_OR_RETURN(const std::string blob, Serialize(job));
  ASSIGN_OR_RETURN(Statement stmt, Statement::Prepare(db, sql));
  stmt.BindText(1, job.id());
  stmt.BindTextOrNull(2, job.request_id());
  stmt.BindInt(3, job.state());
  stmt.BindInt(4, google::protobuf::util::TimeUtil::TimestampToMicroseconds(
                      job.create_time()));
  stmt.BindBlob(5, blob);
  const absl::Status status = stmt.Run();
  switch (stmt.result_code()) {
    case SQLITE_CONSTRAINT_PRIMARYKEY:
      return absl::AlreadyExistsError(
          absl::StrCat("job ", Quoted(job.id()), " already exists"));
    case SQLITE_CONSTRAINT_UNIQUE:  // the only other unique column
      return absl::AlreadyExistsError(absl::StrCat(
          "request id ", Quoted(job.request_id()), " already has a job"));
    default:
      return status;
  }
}

absl::StatusOr<bool> JobExists(sqlite3* db, const std::string& id) {
  ASSIGN_OR_RETURN(Statement stmt,
                   Statement::Prepare(db, "SELECT 1 FROM jobs WHERE id = ?1"));
  stmt.BindText(1, id);
  return stmt.Step();
}

// Bumps and returns the last version of model `name` (1 for a new name);
// the caller's transaction makes it atomic with the insert.
absl::StatusOr<int> NextModelVersion(sqlite3* db, const std::string& name) {
  ASSIGN_OR_RETURN(
      Statement stmt,
      Statement::Prepare(db,
                         "INSERT INTO model_versions (name, last_version) "
                         "VALUES (?1, 1) ON CONFLICT (name) DO UPDATE SET "
                         "last_version = last_version + 1 "
                         "RETURNING last_version"));
  stmt.BindText(1, name);
  ASSIGN_OR_RETURN(const bool row, stmt.Step());
  SPINNET_CHECK(row);  // RETURNING yields the one row written
  return static_cast<int>(stmt.ColumnInt(0));
}

// Sets the connection's pragmas, then creates the schema in a new file or
// checks the version of an existing one.
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
  {
    ASSIGN_OR_RETURN(Statement stmt,
                     Statement::Prepare(db, "PRAGMA user_version"));
    ASSIGN_OR_RETURN(const bool row, stmt.Step());
    SPINNET_CHECK(row);  // the pragma always yields one row
    const int64_t version = stmt.ColumnInt(0);
    if (version == 0) {
      RETURN_IF_ERROR(Exec(db, kSchema));
      RETURN_IF_ERROR(
          Exec(db, absl::StrCat("PRAGMA user_version = ", kSchemaVersion)));
    } else if (version != kSchemaVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "schema version ", version, "; this build reads ", kSchemaVersion));
    }
  }
  return txn.Commit();
}

}  // namespace

void SqliteStore::CloseDb::operator()(sqlite3* db) const {
  // Every statement is finalized by its owner before this runs.
  sqlite3_close(db);
}

SqliteStore::SqliteStore(std::unique_ptr<sqlite3, CloseDb> db, std::string path)
    : path_(std::move(path)), db_(std::move(db)) {}

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(
    const std::string& path) {
  sqlite3* raw = nullptr;
  // NOMUTEX: the store's own mutex serializes use of the connection.
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                          SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
                      nullptr);
  // sqlite3_open_v2 returns a handle to close even when it fails.
  std::unique_ptr<sqlite3, CloseDb> db(raw);
  const std::string what = absl::StrCat("open store ", Quoted(path));
  if (rc != SQLITE_OK) return SqliteError(db.get(), rc, what);
  if (const absl::Status status = SetUp(db.get()); !status.ok()) {
    return absl::Status(status.code(),
                        absl::StrCat(what, ": ", status.message()));
  }
  return absl::WrapUnique(new SqliteStore(std::move(db), path));
}

absl::Status SqliteStore::IntegrityCheck() {
  absl::MutexLock lock(&mu_);
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
      absl::StrCat("store ", Quoted(path_),
                   " integrity check: ", absl::StrJoin(problems, "; ")));
}

absl::Status SqliteStore::InsertJob(const v1::TrainingJob& job) {
  if (job.id().empty()) return absl::InvalidArgumentError("job id is empty");
  absl::MutexLock lock(&mu_);
  return WriteJob(db_.get(),
                  "INSERT INTO jobs (id, request_id, state, create_us, proto) "
                  "VALUES (?1, ?2, ?3, ?4, ?5)",
                  job);
}

absl::Status SqliteStore::UpdateJob(const v1::TrainingJob& job) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(WriteJob(db_.get(),
                           "UPDATE jobs SET request_id = ?2, state = ?3, "
                           "create_us = ?4, proto = ?5 WHERE id = ?1",
                           job));
  if (sqlite3_changes(db_.get()) == 0) return JobNotFound(job.id());
  return absl::OkStatus();
}

absl::StatusOr<v1::TrainingJob> SqliteStore::GetJob(const std::string& id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Statement stmt,
                   Statement::Prepare(
                       db_.get(), "SELECT proto, id FROM jobs WHERE id = ?1"));
  stmt.BindText(1, id);
  ASSIGN_OR_RETURN(std::optional<v1::TrainingJob> job,
                   stmt.ParseNext<v1::TrainingJob>("jobs"));
  if (!job.has_value()) return JobNotFound(id);
  return *std::move(job);
}

absl::StatusOr<std::optional<v1::TrainingJob>> SqliteStore::FindJobByRequestId(
    const std::string& request_id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(
      Statement stmt,
      Statement::Prepare(db_.get(),
                         "SELECT proto, id FROM jobs WHERE request_id = ?1"));
  // An empty id is stored as NULL, which equals nothing: no job is found.
  stmt.BindText(1, request_id);
  return stmt.ParseNext<v1::TrainingJob>("jobs");
}

absl::StatusOr<std::vector<v1::TrainingJob>> SqliteStore::ListJobs(
    v1::JobState state, int limit, const std::string& after_id) {
  if (limit < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("page size ", limit, "; need >= 1"));
  }
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(
      Statement stmt,
      Statement::Prepare(db_.get(),
                         "SELECT proto, id FROM jobs "
                         "WHERE (?1 = 0 OR state = ?1) "
                         "AND (?2 IS NULL OR (create_us, id) < (?2, ?3)) "
                         "ORDER BY create_us DESC, id DESC LIMIT ?4"));
  stmt.BindInt(1, state);
  if (!after_id.empty()) {
    ASSIGN_OR_RETURN(
        Statement after,
        Statement::Prepare(db_.get(),
                           "SELECT create_us FROM jobs WHERE id = ?1"));
    after.BindText(1, after_id);
    ASSIGN_OR_RETURN(const bool found, after.Step());
    if (!found) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad page token: no job ", Quoted(after_id)));
    }
    stmt.BindInt(2, after.ColumnInt(0));
    stmt.BindText(3, after_id);
  }
  stmt.BindInt(4, limit);
  return stmt.ParseAll<v1::TrainingJob>("jobs");
}

absl::StatusOr<std::vector<v1::TrainingJob>> SqliteStore::JobsInStates(
    const std::vector<v1::JobState>& states) {
  if (states.empty()) return std::vector<v1::TrainingJob>();
  // One placeholder per state; the values themselves are bound.
  const std::string sql = absl::StrCat(
      "SELECT proto, id FROM jobs WHERE state IN (",
      absl::StrJoin(std::vector<absl::string_view>(states.size(), "?"), ", "),
      ") ORDER BY create_us, id");
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Statement stmt, Statement::Prepare(db_.get(), sql));
  for (size_t i = 0; i < states.size(); ++i) {
    stmt.BindInt(static_cast<int>(i) + 1, states[i]);
  }
  return stmt.ParseAll<v1::TrainingJob>("jobs");
}

absl::Status SqliteStore::PutEpoch(const std::string& job_id,
                                   const v1::EpochMetrics& epoch) {
  if (epoch.epoch() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("epoch ", epoch.epoch(), "; need >= 1"));
  }
  ASSIGN_OR_RETURN(const std::string blob, Serialize(epoch));
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(
      Statement stmt,
      Statement::Prepare(db_.get(),
                         "INSERT INTO epochs (job_id, epoch, proto) "
                         "VALUES (?1, ?2, ?3) ON CONFLICT (job_id, epoch) "
                         "DO UPDATE SET proto = excluded.proto"));
  stmt.BindText(1, job_id);
  stmt.BindInt(2, epoch.epoch());
  stmt.BindBlob(3, blob);
  const absl::Status status = stmt.Run();
  if (stmt.result_code() == SQLITE_CONSTRAINT_FOREIGNKEY) {
    return JobNotFound(job_id);
  }
  return status;
}

absl::StatusOr<std::vector<v1::EpochMetrics>> SqliteStore::ListEpochs(
    const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Statement stmt,
                   Statement::Prepare(db_.get(),
                                      "SELECT proto, job_id, epoch FROM epochs "
                                      "WHERE job_id = ?1 ORDER BY epoch"));
  stmt.BindText(1, job_id);
  ASSIGN_OR_RETURN(std::vector<v1::EpochMetrics> epochs,
                   stmt.ParseAll<v1::EpochMetrics>("epochs"));
  // No rows: a job before its first epoch, or no such job.
  if (epochs.empty()) {
    ASSIGN_OR_RETURN(const bool exists, JobExists(db_.get(), job_id));
    if (!exists) return JobNotFound(job_id);
  }
  return epochs;
}

absl::Status SqliteStore::InsertDataset(const v1::Dataset& dataset) {
  if (dataset.name().empty()) {
    return absl::InvalidArgumentError("dataset name is empty");
  }
  ASSIGN_OR_RETURN(const std::string blob, Serialize(dataset));
  absl::MutexLock lock(&mu_);
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
  return status;
}

absl::StatusOr<v1::Dataset> SqliteStore::GetDataset(const std::string& name) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(
      Statement stmt,
      Statement::Prepare(db_.get(),
                         "SELECT proto, name FROM datasets WHERE name = ?1"));
  stmt.BindText(1, name);
  ASSIGN_OR_RETURN(std::optional<v1::Dataset> dataset,
                   stmt.ParseNext<v1::Dataset>("datasets"));
  if (!dataset.has_value()) {
    return absl::NotFoundError(
        absl::StrCat("dataset ", Quoted(name), " not found"));
  }
  return *std::move(dataset);
}

absl::StatusOr<std::vector<v1::Dataset>> SqliteStore::ListDatasets() {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(
      Statement stmt,
      Statement::Prepare(db_.get(),
                         "SELECT proto, name FROM datasets ORDER BY name"));
  return stmt.ParseAll<v1::Dataset>("datasets");
}

absl::Status SqliteStore::DeleteDataset(const std::string& name) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(
      Statement stmt,
      Statement::Prepare(db_.get(), "DELETE FROM datasets WHERE name = ?1"));
  stmt.BindText(1, name);
  RETURN_IF_ERROR(stmt.Run());
  if (sqlite3_changes(db_.get()) == 0) {
    return absl::NotFoundError(
        absl::StrCat("dataset ", Quoted(name), " not found"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> SqliteStore::InsertModel(v1::Model model) {
  if (model.name().empty()) {
    return absl::InvalidArgumentError("model name is empty");
  }
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db_.get()));
  ASSIGN_OR_RETURN(const int version,
                   NextModelVersion(db_.get(), model.name()));
  model.set_version(version);
  ASSIGN_OR_RETURN(const std::string blob, Serialize(model));
  ASSIGN_OR_RETURN(Statement stmt,
                   Statement::Prepare(db_.get(),
                                      "INSERT INTO models (name, version, "
                                      "proto) VALUES (?1, ?2, ?3)"));
  stmt.BindText(1, model.name());
  stmt.BindInt(2, version);
  stmt.BindBlob(3, blob);
  RETURN_IF_ERROR(stmt.Run());
  RETURN_IF_ERROR(txn.Commit());
  return version;
}

absl::StatusOr<v1::Model> SqliteStore::GetModel(const std::string& name,
                                                int version) {
  if (version < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model version ", version, "; need >= 0"));
  }
  absl::MutexLock lock(&mu_);
  // Version 0 matches every version, and the latest comes first.
  ASSIGN_OR_RETURN(Statement stmt,
                   Statement::Prepare(db_.get(),
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
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Statement stmt,
                   Statement::Prepare(db_.get(),
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
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Statement stmt,
                   Statement::Prepare(db_.get(),
                                      "DELETE FROM models "
                                      "WHERE name = ?1 AND version = ?2"));
  stmt.BindText(1, name);
  stmt.BindInt(2, version);
  RETURN_IF_ERROR(stmt.Run());
  if (sqlite3_changes(db_.get()) == 0) return ModelNotFound(name, version);
  return absl::OkStatus();
}

}  // namespace spinnet::server
