#include "server/storage/postgres_store.h"

#include <cstring>
#include <iterator>
#include <map>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/logging.h"
#include "core/sha256.h"
#include "core/status_macros.h"
#include "google/protobuf/message_lite.h"
#include "server/storage/job_records.h"

namespace spinnet::server {
namespace {

// Every replica's job changes, as the job id (see the jobs trigger).
constexpr char kJobsChannel[] = "spinnet_jobs";

// pg_advisory_lock keys ("spinnet" and a number): schema migrations, and
// submissions (the queue limit and request ids hold until commit).
constexpr int64_t kMigrationLock = 0x7370696e6e657401;
constexpr int64_t kSubmitLock = 0x7370696e6e657402;

struct Migration {
  int version;
  const char* sql;
};

// Applied in order, each in a transaction, recorded in schema_migrations.
// Released migrations never change: a new schema is a new entry.
//
// v1. Every record is its API message serialized in `proto`; the other
// columns are keys, indexes and what the message does not hold (the lease).
// revision and cancel_requested are columns laid over the message on every
// read: the revision comes from a sequence on every write, and a cancel
// request must survive the worker's next write of its own copy. request_id
// is NULL when a job has none, so that those never collide. Names and ids
// compare bytewise (COLLATE "C") to order like the other backends.
// model_versions keeps the last version of each name so that a deleted
// version is never reused. Blobs carry their SHA-256, checked on read.
constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE SEQUENCE job_revisions;
CREATE SEQUENCE lease_tokens;
CREATE TABLE jobs (
  id text COLLATE "C" PRIMARY KEY,
  request_id text UNIQUE,
  state int NOT NULL,
  create_us bigint NOT NULL,
  lease_owner text,
  lease_token bigint,
  lease_expires timestamptz,
  cancel_requested boolean NOT NULL DEFAULT false,
  revision bigint NOT NULL,
  proto bytea NOT NULL
);
CREATE INDEX jobs_by_state_time ON jobs (state, create_us, id);
CREATE INDEX jobs_by_time ON jobs (create_us, id);
CREATE TABLE epochs (
  job_id text COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  epoch int NOT NULL,
  proto bytea NOT NULL,
  PRIMARY KEY (job_id, epoch)
);
CREATE TABLE datasets (
  name text COLLATE "C" PRIMARY KEY,
  proto bytea NOT NULL
);
CREATE TABLE models (
  name text COLLATE "C" NOT NULL,
  version int NOT NULL,
  proto bytea NOT NULL,
  PRIMARY KEY (name, version)
);
CREATE TABLE model_versions (
  name text COLLATE "C" PRIMARY KEY,
  last_version int NOT NULL
);
CREATE TABLE blobs (
  key text COLLATE "C" PRIMARY KEY,
  sha256 text NOT NULL,
  bytes bytea NOT NULL
);
-- Delivered at commit to every replica that LISTENs.
CREATE FUNCTION notify_job_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('spinnet_jobs', NEW.id);
  RETURN NULL;
END $$;
CREATE TRIGGER jobs_changed AFTER INSERT OR UPDATE ON jobs
  FOR EACH ROW EXECUTE FUNCTION notify_job_change();
)sql"},
    // v2. Sweeps, and their jobs. cancel_requested lives in the record.
    {2, R"sql(
ALTER TABLE jobs ADD COLUMN sweep_id text COLLATE "C";
CREATE INDEX jobs_by_sweep ON jobs (sweep_id) WHERE sweep_id IS NOT NULL;
CREATE TABLE sweeps (
  id text COLLATE "C" PRIMARY KEY,
  request_id text UNIQUE,
  create_us bigint NOT NULL,
  proto bytea NOT NULL
);
CREATE INDEX sweeps_by_time ON sweeps (create_us, id);
)sql"},
};

// What a store reads of a job row, in this order (see JobAt).
constexpr char kJobColumns[] = "id, proto, revision, cancel_requested";

// ... of a sweep row (see ParseAll) ...
constexpr char kSweepColumns[] = "proto, id";

// ... and of a blob row (see VerifiedBlob).
constexpr char kBlobColumns[] = "key, sha256, bytes";

template <typename M>
absl::StatusOr<M> Parse(absl::string_view bytes, absl::string_view table,
                        absl::string_view key) {
  M message;
  if (!message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError(
        absl::StrCat(table, " row \"", key, "\": stored ",
                     message.GetTypeName(), " does not parse"));
  }
  return message;
}

// Rows of (proto, key) in order.
template <typename M>
absl::StatusOr<std::vector<M>> ParseAll(const PgResult& rows,
                                        absl::string_view table) {
  std::vector<M> out;
  for (int row = 0; row < rows.rows(); ++row) {
    ASSIGN_OR_RETURN(M message,
                     Parse<M>(rows.Bytes(row, 0), table, rows.Bytes(row, 1)));
    out.push_back(std::move(message));
  }
  return out;
}

// A row of kJobColumns.
absl::StatusOr<v1::TrainingJob> JobAt(const PgResult& rows, int row) {
  ASSIGN_OR_RETURN(
      v1::TrainingJob job,
      Parse<v1::TrainingJob>(rows.Bytes(row, 1), "jobs", rows.Bytes(row, 0)));
  job.set_revision(rows.Int(row, 2));
  job.set_cancel_requested(rows.Bool(row, 3));
  return job;
}

// A row of kBlobColumns, checked against its SHA-256.
absl::StatusOr<std::string> VerifiedBlob(const PgResult& rows, int row) {
  const absl::string_view bytes = rows.Bytes(row, 2);
  const std::string actual = Sha256Hex(bytes);
  if (actual != rows.Bytes(row, 1)) {
    return absl::DataLossError(
        absl::StrCat("blob \"", rows.Bytes(row, 0), "\" is corrupt: SHA-256 ",
                     actual, ", stored with ", rows.Bytes(row, 1)));
  }
  return std::string(bytes);
}

absl::Status PutBlob(PgConnection& conn, const std::string& key,
                     absl::string_view bytes) {
  return conn
      .Exec(
          "INSERT INTO blobs (key, sha256, bytes) VALUES ($1, $2, $3) "
          "ON CONFLICT (key) DO UPDATE "
          "SET sha256 = EXCLUDED.sha256, bytes = EXCLUDED.bytes",
          {key, Sha256Hex(bytes), PgParam::Bytes(bytes)})
      .status();
}

absl::StatusOr<std::string> GetBlob(PgConnection& conn,
                                    const std::string& key) {
  ASSIGN_OR_RETURN(PgResult rows,
                   conn.Exec(absl::StrCat("SELECT ", kBlobColumns,
                                          " FROM blobs WHERE key = $1"),
                             {key}));
  if (rows.rows() == 0) {
    return absl::NotFoundError(absl::StrCat("blob \"", key, "\" not found"));
  }
  return VerifiedBlob(rows, 0);
}

absl::Status DeleteBlob(PgConnection& conn, const std::string& key) {
  return conn.Exec("DELETE FROM blobs WHERE key = $1", {key}).status();
}

// How a job write changes the lease columns.
enum class LeaseChange { kKeep, kNew, kExtend, kClear };

struct JobUpdate {
  static JobUpdate Keep() { return {}; }
  static JobUpdate Claim(absl::Duration ttl) {
    JobUpdate u;
    u.lease = LeaseChange::kNew;
    u.ttl = ttl;
    return u;
  }
  static JobUpdate Extend(const Lease& lease, absl::Duration ttl) {
    JobUpdate u;
    u.lease = LeaseChange::kExtend;
    u.ttl = ttl;
    u.fence = lease.token;
    return u;
  }
  static JobUpdate ClearLease(std::optional<int64_t> fence = std::nullopt) {
    JobUpdate u;
    u.lease = LeaseChange::kClear;
    u.fence = fence;
    return u;
  }
  static JobUpdate RequestCancel() {
    JobUpdate u;
    u.request_cancel = true;
    return u;
  }

  LeaseChange lease = LeaseChange::kKeep;
  absl::Duration ttl;  // kNew, kExtend: the lease runs this long from now
  bool request_cancel = false;
  // Set: only while the row holds this lease token (ABORTED otherwise).
  std::optional<int64_t> fence;
};

struct StoredJob {
  v1::TrainingJob job;  // revision and cancel_requested as stored
  int64_t token = 0;    // the lease's, 0 for none
};

// Stores `job` as row `id` with the next revision. A cancel request is kept
// until the job ends, and so are its checkpoints, however it ends. Lease
// times are the database's.
absl::StatusOr<StoredJob> UpdateJob(PgConnection& conn, const std::string& id,
                                    const v1::TrainingJob& job,
                                    const JobUpdate& update) {
  ASSIGN_OR_RETURN(const std::string proto, Serialize(job));
  std::string sql =
      "UPDATE jobs SET state = $2, proto = $3, "
      "revision = nextval('job_revisions'), "
      "cancel_requested = (cancel_requested OR $4) AND NOT $5";
  constexpr char kExpires[] =
      "lease_expires = now() + $7 * interval '1 microsecond'";
  switch (update.lease) {
    case LeaseChange::kKeep:
      break;
    case LeaseChange::kNew:
      absl::StrAppend(&sql, ", lease_owner = $6, ",
                      "lease_token = nextval('lease_tokens'), ", kExpires);
      break;
    case LeaseChange::kExtend:
      absl::StrAppend(&sql, ", ", kExpires);
      break;
    case LeaseChange::kClear:
      absl::StrAppend(&sql, ", lease_owner = NULL, lease_token = NULL, ",
                      "lease_expires = NULL");
      break;
  }
  absl::StrAppend(&sql, " WHERE id = $1");
  if (update.fence.has_value()) {
    absl::StrAppend(&sql, " AND lease_token = $8 AND state = $9");
  }
  absl::StrAppend(&sql, " RETURNING revision, cancel_requested, lease_token");
  ASSIGN_OR_RETURN(
      PgResult rows,
      conn.Exec(sql, {id, job.state(), PgParam::Bytes(proto),
                      update.request_cancel, IsTerminal(job.state()),
                      job.worker(), absl::ToInt64Microseconds(update.ttl),
                      update.fence.value_or(0), v1::JOB_STATE_RUNNING}));
  if (rows.rows() == 0) {
    return update.fence.has_value() ? LeaseLost(id) : JobNotFound(id);
  }
  StoredJob stored{job, rows.Int(0, 2)};
  stored.job.set_revision(rows.Int(0, 0));
  stored.job.set_cancel_requested(rows.Bool(0, 1));
  if (IsTerminal(job.state())) {
    RETURN_IF_ERROR(conn.Exec("DELETE FROM blobs WHERE key IN ($1, $2)",
                              {CheckpointBlobKey(id),
                               PreviousCheckpointBlobKey(id)})
                        .status());
  }
  return stored;
}

// Cancels `job`, which has not ended, as CancelJob does: a QUEUED job ends
// now, a RUNNING one gets cancel_requested.
absl::StatusOr<StoredJob> CancelRow(PgConnection& conn, v1::TrainingJob job) {
  const std::string id = job.id();
  if (job.state() == v1::JOB_STATE_QUEUED) {
    ApplyCancel(&job);
    return UpdateJob(conn, id, job, JobUpdate::ClearLease());
  }
  return UpdateJob(conn, id, job, JobUpdate::RequestCancel());
}

// Locks the row that `lease` still holds until the transaction ends and
// returns whether it has a pending cancel; ABORTED when the lease is lost.
absl::StatusOr<bool> LockLeased(PgConnection& conn, const Lease& lease) {
  ASSIGN_OR_RETURN(
      PgResult rows,
      conn.Exec("SELECT cancel_requested FROM jobs WHERE id = $1 AND "
                "lease_token = $2 AND state = $3 FOR UPDATE",
                {lease.job_id, lease.token, v1::JOB_STATE_RUNNING}));
  if (rows.rows() == 0) return LeaseLost(lease.job_id);
  return rows.Bool(0, 0);
}

// The URL shows in logs and Describe(); libpq would accept a password in
// it (user:pw@host or ?password=).
absl::Status CheckNoPassword(const std::string& url) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  if (options == nullptr) {
    const std::string message =
        error == nullptr
            ? "out of memory"
            : std::string(absl::StripTrailingAsciiWhitespace(error));
    PQfreemem(error);
    return absl::InvalidArgumentError(
        absl::StrCat("bad PostgreSQL URL: ", message));
  }
  bool password = false;
  for (const PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    password |= std::strcmp(o->keyword, "password") == 0 && o->val != nullptr &&
                o->val[0] != '\0';
  }
  PQconninfoFree(options);
  if (password) {
    return absl::InvalidArgumentError(
        "the store URL must not carry a password (it would show in the "
        "process list); use --store-password-file or PGPASSWORD");
  }
  return absl::OkStatus();
}

// Brings the schema up to date. The caller holds kMigrationLock, so that
// replicas starting together migrate once.
absl::Status Migrate(PgConnection& conn, const std::string& url) {
  RETURN_IF_ERROR(conn.ExecScript(
      "CREATE TABLE IF NOT EXISTS schema_migrations ("
      "version int PRIMARY KEY, applied_at timestamptz NOT NULL)"));
  ASSIGN_OR_RETURN(
      PgResult rows,
      conn.Exec("SELECT coalesce(max(version), 0) FROM schema_migrations"));
  const int64_t version = rows.Int(0, 0);
  const int newest = std::prev(std::end(kMigrations))->version;
  if (version > newest) {
    return absl::FailedPreconditionError(
        absl::StrCat("database schema version ", version,
                     " is newer than this spinnet-server knows (", newest,
                     "); upgrade the server"));
  }
  for (const Migration& migration : kMigrations) {
    if (migration.version <= version) continue;
    RETURN_IF_ERROR(conn.Transact([&] {
      RETURN_IF_ERROR(conn.ExecScript(migration.sql));
      return conn
          .Exec(
              "INSERT INTO schema_migrations (version, applied_at) "
              "VALUES ($1, now())",
              {migration.version})
          .status();
    }));
    SPINNET_LOG(Info, url, ": database schema migrated to version ",
                migration.version);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status PostgresBlobStore::Put(const std::string& key,
                                    absl::string_view bytes) {
  ASSIGN_OR_RETURN(PgPool::Handle conn, pool_->Acquire());
  return PutBlob(*conn, key, bytes);
}

absl::StatusOr<std::string> PostgresBlobStore::Get(const std::string& key) {
  ASSIGN_OR_RETURN(PgPool::Handle conn, pool_->Acquire());
  return GetBlob(*conn, key);
}

absl::Status PostgresBlobStore::Delete(const std::string& key) {
  ASSIGN_OR_RETURN(PgPool::Handle conn, pool_->Acquire());
  return DeleteBlob(*conn, key);
}

PostgresStore::PostgresStore(PgConnectParams params,
                             const PostgresOptions& options)
    : options_(options),
      pool_(std::move(params), options.pool_size),
      blobs_(&pool_) {}

absl::StatusOr<std::unique_ptr<PostgresStore>> PostgresStore::Open(
    const std::string& url, const std::string& password,
    const PostgresOptions& options) {
  RETURN_IF_ERROR(CheckNoPassword(url));
  auto store = absl::WrapUnique(new PostgresStore(
      PgConnectParams{url, password, options.connect_timeout}, options));
  ASSIGN_OR_RETURN(PgPool::Handle conn, store->pool_.Acquire());
  RETURN_IF_ERROR(
      conn->Exec("SELECT pg_advisory_lock($1)", {kMigrationLock}).status());
  const absl::Status migrated = Migrate(*conn, url);
  // A lost connection has released the lock already.
  conn->Exec("SELECT pg_advisory_unlock($1)", {kMigrationLock}).IgnoreError();
  RETURN_IF_ERROR(migrated);
  return store;
}

absl::Status PostgresStore::Ping() { return Query("SELECT 1").status(); }

void PostgresStore::SetChangeCallback(
    std::function<void(const std::string&)> callback) {
  changed_ = std::move(callback);
  if (options_.listen && listener_ == nullptr) {
    listener_ =
        std::make_unique<PgListener>(pool_.params(), kJobsChannel, changed_);
  }
}

absl::Status PostgresStore::Transact(
    const std::function<absl::Status(PgConnection&)>& body) {
  ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  return conn->Transact([&] { return body(*conn); });
}

absl::StatusOr<PgResult> PostgresStore::Query(
    const std::string& sql, absl::Span<const PgParam> params) {
  ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  return conn->Exec(sql, params);
}

void PostgresStore::Notify(const std::string& job_id) {
  if (changed_) changed_(job_id);
}

absl::StatusOr<Store::Inserted> PostgresStore::InsertJob(
    const v1::TrainingJob& job, int max_queued) {
  RETURN_IF_ERROR(CheckSingleJob(job));
  ASSIGN_OR_RETURN(const std::string proto, Serialize(job));
  Inserted out;
  RETURN_IF_ERROR(Transact([&](PgConnection& conn) -> absl::Status {
    RETURN_IF_ERROR(
        conn.Exec("SELECT pg_advisory_xact_lock($1)", {kSubmitLock}).status());
    if (!job.request_id().empty()) {
      ASSIGN_OR_RETURN(
          PgResult rows,
          conn.Exec(absl::StrCat("SELECT ", kJobColumns,
                                 " FROM jobs WHERE request_id = $1"),
                    {job.request_id()}));
      if (rows.rows() > 0) {
        ASSIGN_OR_RETURN(out.job, JobAt(rows, 0));
        return absl::OkStatus();
      }
    }
    ASSIGN_OR_RETURN(
        PgResult inserted,
        conn.Exec("INSERT INTO jobs (id, request_id, state, create_us, "
                  "revision, proto) VALUES ($1, $2, $3, $4, "
                  "nextval('job_revisions'), $5) "
                  "ON CONFLICT (id) DO NOTHING RETURNING revision",
                  {job.id(), PgParam::TextOrNull(job.request_id()), job.state(),
                   ToMicros(job.create_time()), PgParam::Bytes(proto)}));
    if (inserted.rows() == 0) {
      return absl::AlreadyExistsError(
          absl::StrCat("job \"", job.id(), "\" already exists"));
    }
    ASSIGN_OR_RETURN(PgResult queued,
                     conn.Exec("SELECT count(*) FROM jobs WHERE state = $1 "
                               "AND id <> $2 AND sweep_id IS NULL",
                               {v1::JOB_STATE_QUEUED, job.id()}));
    if (queued.Int(0, 0) >= max_queued) return QueueFull(max_queued);
    out.job = job;
    out.job.set_revision(inserted.Int(0, 0));
    out.job.set_cancel_requested(false);
    out.created = true;
    return absl::OkStatus();
  }));
  if (out.created) Notify(job.id());
  return out;
}

absl::StatusOr<v1::TrainingJob> PostgresStore::GetJob(const std::string& id) {
  ASSIGN_OR_RETURN(
      PgResult rows,
      Query(absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE id = $1"),
            {id}));
  if (rows.rows() == 0) return JobNotFound(id);
  return JobAt(rows, 0);
}

absl::StatusOr<std::vector<v1::TrainingJob>> PostgresStore::ListJobs(
    v1::JobState state, int limit, const std::string& after_id) {
  if (limit < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("page size ", limit, "; need >= 1"));
  }
  std::vector<PgParam> params = {limit};
  std::string sql =
      absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE TRUE");
  if (state != v1::JOB_STATE_UNSPECIFIED) {
    params.push_back(state);
    absl::StrAppend(&sql, " AND state = $", params.size());
  }
  if (!after_id.empty()) {
    ASSIGN_OR_RETURN(
        PgResult after,
        Query("SELECT create_us FROM jobs WHERE id = $1", {after_id}));
    if (after.rows() == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad page token: no job \"", after_id, "\""));
    }
    params.push_back(after.Int(0, 0));
    params.push_back(after_id);
    absl::StrAppend(&sql, " AND (create_us, id) < ($", params.size() - 1, ", $",
                    params.size(), ")");
  }
  absl::StrAppend(&sql, " ORDER BY create_us DESC, id DESC LIMIT $1");
  ASSIGN_OR_RETURN(PgResult rows, Query(sql, params));
  std::vector<v1::TrainingJob> page;
  for (int row = 0; row < rows.rows(); ++row) {
    ASSIGN_OR_RETURN(v1::TrainingJob job, JobAt(rows, row));
    page.push_back(std::move(job));
  }
  return page;
}

absl::StatusOr<StoreCounts> PostgresStore::Count() {
  ASSIGN_OR_RETURN(PgResult jobs,
                   Query("SELECT state, count(*) FROM jobs GROUP BY state"));
  StoreCounts c;
  for (int row = 0; row < jobs.rows(); ++row) {
    const int64_t n = jobs.Int(row, 1);
    switch (jobs.Int(row, 0)) {
      case v1::JOB_STATE_QUEUED:
        c.queued = n;
        break;
      case v1::JOB_STATE_RUNNING:
        c.running = n;
        break;
      case v1::JOB_STATE_SUCCEEDED:
        c.succeeded = n;
        break;
      case v1::JOB_STATE_FAILED:
        c.failed = n;
        break;
      case v1::JOB_STATE_CANCELLED:
        c.cancelled = n;
        break;
      default:
        break;
    }
  }
  ASSIGN_OR_RETURN(PgResult others,
                   Query("SELECT (SELECT count(*) FROM models), "
                         "(SELECT count(*) FROM datasets)"));
  c.models = others.Int(0, 0);
  c.datasets = others.Int(0, 1);
  return c;
}

absl::StatusOr<std::optional<ClaimedJob>> PostgresStore::ClaimJob(
    const std::string& worker, absl::Duration ttl) {
  std::optional<ClaimedJob> claimed;
  RETURN_IF_ERROR(Transact([&](PgConnection& conn) -> absl::Status {
    // SKIP LOCKED: concurrent claimers take the next job instead of waiting
    // for this one.
    ASSIGN_OR_RETURN(
        PgResult rows,
        conn.Exec(absl::StrCat("SELECT ", kJobColumns,
                               " FROM jobs WHERE state = $1 ORDER BY "
                               "create_us, id LIMIT 1 FOR UPDATE SKIP LOCKED"),
                  {v1::JOB_STATE_QUEUED}));
    if (rows.rows() == 0) return absl::OkStatus();
    ASSIGN_OR_RETURN(v1::TrainingJob job, JobAt(rows, 0));
    ApplyClaim(worker, &job);
    ASSIGN_OR_RETURN(StoredJob stored,
                     UpdateJob(conn, job.id(), job, JobUpdate::Claim(ttl)));
    claimed = ClaimedJob{stored.job, Lease{job.id(), stored.token}};
    return absl::OkStatus();
  }));
  if (claimed.has_value()) Notify(claimed->lease.job_id);
  return claimed;
}

absl::StatusOr<bool> PostgresStore::Heartbeat(const Lease& lease,
                                              const v1::TrainingJob& job,
                                              absl::Duration ttl) {
  ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  ASSIGN_OR_RETURN(StoredJob stored, UpdateJob(*conn, lease.job_id, job,
                                               JobUpdate::Extend(lease, ttl)));
  Notify(lease.job_id);
  return stored.job.cancel_requested();
}

absl::Status PostgresStore::RecordEpoch(const Lease& lease,
                                        const v1::TrainingJob& job,
                                        const v1::EpochMetrics& epoch,
                                        absl::string_view checkpoint) {
  RETURN_IF_ERROR(CheckEpochNumber(epoch));
  ASSIGN_OR_RETURN(const std::string epoch_proto, Serialize(epoch));
  RETURN_IF_ERROR(Transact([&](PgConnection& conn) -> absl::Status {
    RETURN_IF_ERROR(LockLeased(conn, lease).status());
    if (!checkpoint.empty()) {
      // The newest checkpoint becomes the previous one, by renaming its row.
      const std::string previous = PreviousCheckpointBlobKey(lease.job_id);
      RETURN_IF_ERROR(DeleteBlob(conn, previous));
      RETURN_IF_ERROR(conn.Exec("UPDATE blobs SET key = $2 WHERE key = $1",
                                {CheckpointBlobKey(lease.job_id), previous})
                          .status());
      RETURN_IF_ERROR(
          PutBlob(conn, CheckpointBlobKey(lease.job_id), checkpoint));
    }
    RETURN_IF_ERROR(
        conn.Exec("INSERT INTO epochs (job_id, epoch, proto) "
                  "VALUES ($1, $2, $3) ON CONFLICT (job_id, epoch) "
                  "DO UPDATE SET proto = EXCLUDED.proto",
                  {lease.job_id, epoch.epoch(), PgParam::Bytes(epoch_proto)})
            .status());
    return UpdateJob(conn, lease.job_id, job, JobUpdate::Keep()).status();
  }));
  Notify(lease.job_id);
  return absl::OkStatus();
}

absl::StatusOr<Store::Checkpoints> PostgresStore::LoadCheckpoints(
    const std::string& job_id) {
  const std::string newest = CheckpointBlobKey(job_id);
  const std::string previous = PreviousCheckpointBlobKey(job_id);
  // One query: both as of one moment, even while a worker rotates them.
  ASSIGN_OR_RETURN(PgResult rows,
                   Query(absl::StrCat("SELECT ", kBlobColumns,
                                      " FROM blobs WHERE key IN ($1, $2)"),
                         {newest, previous}));
  std::map<std::string, int> row_of;
  for (int row = 0; row < rows.rows(); ++row) {
    row_of[std::string(rows.Bytes(row, 0))] = row;
  }
  Checkpoints out;
  for (const std::string& key : {newest, previous}) {
    auto it = row_of.find(key);
    if (it == row_of.end()) continue;
    absl::StatusOr<std::string> bytes = VerifiedBlob(rows, it->second);
    if (bytes.ok()) {
      out.newest_first.push_back(*std::move(bytes));
    } else {
      out.skipped.push_back(bytes.status());
    }
  }
  return out;
}

namespace {

// Publishes `model` as the next version of its name, inside the caller's
// transaction: the record and its file. `job_id` is the source job, empty
// for an import. Returns the record.
absl::StatusOr<v1::Model> PublishModel(PgConnection& conn, ModelToPublish model,
                                       const std::string& job_id) {
  v1::Model& info = model.info;
  ASSIGN_OR_RETURN(PgResult version,
                   conn.Exec("INSERT INTO model_versions (name, last_version) "
                             "VALUES ($1, 1) ON CONFLICT (name) DO UPDATE SET "
                             "last_version = model_versions.last_version + 1 "
                             "RETURNING last_version",
                             {info.name()}));
  info.set_version(static_cast<int>(version.Int(0, 0)));
  info.set_source_job_id(job_id);
  ASSIGN_OR_RETURN(const std::string proto, Serialize(info));
  RETURN_IF_ERROR(PutBlob(conn, ModelBlobKeyOf(info), model.bytes));
  RETURN_IF_ERROR(
      conn.Exec("INSERT INTO models (name, version, proto) "
                "VALUES ($1, $2, $3)",
                {info.name(), info.version(), PgParam::Bytes(proto)})
          .status());
  return std::move(info);
}

}  // namespace

absl::StatusOr<v1::TrainingJob> PostgresStore::FinishJob(
    const Lease& lease, v1::TrainingJob job,
    std::optional<ModelToPublish> model) {
  RETURN_IF_ERROR(CheckFinishable(job, model.has_value()));
  StoredJob stored;
  RETURN_IF_ERROR(Transact([&](PgConnection& conn) -> absl::Status {
    ASSIGN_OR_RETURN(const bool cancel, LockLeased(conn, lease));
    if (!ApplyFinish(cancel, &job)) model.reset();
    if (model.has_value()) {
      ASSIGN_OR_RETURN(const v1::Model info,
                       PublishModel(conn, *std::move(model), job.id()));
      job.set_model_version(info.version());
    }
    ASSIGN_OR_RETURN(
        stored, UpdateJob(conn, lease.job_id, job, JobUpdate::ClearLease()));
    return absl::OkStatus();
  }));
  Notify(lease.job_id);
  return stored.job;
}

absl::Status PostgresStore::ReleaseJob(const Lease& lease,
                                       const v1::TrainingJob& job) {
  RETURN_IF_ERROR(Transact([&](PgConnection& conn) -> absl::Status {
    ASSIGN_OR_RETURN(const bool cancel, LockLeased(conn, lease));
    v1::TrainingJob released = job;
    ApplyRelease(cancel, &released);
    return UpdateJob(conn, lease.job_id, released,
                     JobUpdate::ClearLease(lease.token))
        .status();
  }));
  Notify(lease.job_id);
  return absl::OkStatus();
}

absl::StatusOr<v1::TrainingJob> PostgresStore::CancelJob(
    const std::string& id) {
  StoredJob stored;
  RETURN_IF_ERROR(Transact([&](PgConnection& conn) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult rows,
                     conn.Exec(absl::StrCat("SELECT ", kJobColumns,
                                            " FROM jobs WHERE id = $1 "
                                            "FOR UPDATE"),
                               {id}));
    if (rows.rows() == 0) return JobNotFound(id);
    ASSIGN_OR_RETURN(v1::TrainingJob job, JobAt(rows, 0));
    if (IsTerminal(job.state())) return AlreadyEnded(job);
    ASSIGN_OR_RETURN(stored, CancelRow(conn, std::move(job)));
    return absl::OkStatus();
  }));
  Notify(id);
  return stored.job;
}

absl::StatusOr<Store::InsertedSweep> PostgresStore::InsertSweep(
    const v1::Sweep& sweep, const std::vector<v1::TrainingJob>& jobs,
    int max_queued) {
  RETURN_IF_ERROR(CheckSweepJobs(sweep, jobs));
  ASSIGN_OR_RETURN(const std::string proto, Serialize(sweep));
  InsertedSweep out;
  RETURN_IF_ERROR(Transact([&](PgConnection& conn) -> absl::Status {
    RETURN_IF_ERROR(
        conn.Exec("SELECT pg_advisory_xact_lock($1)", {kSubmitLock}).status());
    if (!sweep.request_id().empty()) {
      ASSIGN_OR_RETURN(
          PgResult rows,
          conn.Exec(absl::StrCat("SELECT ", kSweepColumns,
                                 " FROM sweeps WHERE request_id = $1"),
                    {sweep.request_id()}));
      if (rows.rows() > 0) {
        ASSIGN_OR_RETURN(std::vector<v1::Sweep> found,
                         ParseAll<v1::Sweep>(rows, "sweeps"));
        out.sweep = std::move(found[0]);
        return absl::OkStatus();
      }
    }
    ASSIGN_OR_RETURN(PgResult queued,
                     conn.Exec("SELECT count(*) FROM jobs WHERE state = $1 "
                               "AND sweep_id IS NOT NULL",
                               {v1::JOB_STATE_QUEUED}));
    if (queued.Int(0, 0) + static_cast<int64_t>(jobs.size()) > max_queued) {
      return SweepQueueFull(max_queued, queued.Int(0, 0), jobs.size());
    }
    ASSIGN_OR_RETURN(
        PgResult inserted,
        conn.Exec("INSERT INTO sweeps (id, request_id, create_us, proto) "
                  "VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING "
                  "RETURNING id",
                  {sweep.id(), PgParam::TextOrNull(sweep.request_id()),
                   ToMicros(sweep.create_time()), PgParam::Bytes(proto)}));
    if (inserted.rows() == 0) {
      return absl::AlreadyExistsError(
          absl::StrCat("sweep \"", sweep.id(), "\" already exists"));
    }
    for (const v1::TrainingJob& job : jobs) {
      ASSIGN_OR_RETURN(const std::string job_proto, Serialize(job));
      ASSIGN_OR_RETURN(
          PgResult row,
          conn.Exec("INSERT INTO jobs (id, state, create_us, revision, proto, "
                    "sweep_id) VALUES ($1, $2, $3, nextval('job_revisions'), "
                    "$4, $5) ON CONFLICT (id) DO NOTHING RETURNING id",
                    {job.id(), job.state(), ToMicros(job.create_time()),
                     PgParam::Bytes(job_proto), sweep.id()}));
      if (row.rows() == 0) {
        return absl::AlreadyExistsError(
            absl::StrCat("job \"", job.id(), "\" already exists"));
      }
    }
    out = InsertedSweep{sweep, true};
    return absl::OkStatus();
  }));
  if (out.created) {
    for (const v1::TrainingJob& job : jobs) Notify(job.id());
  }
  return out;
}

absl::StatusOr<v1::Sweep> PostgresStore::GetSweep(const std::string& id) {
  ASSIGN_OR_RETURN(
      PgResult rows,
      Query(absl::StrCat("SELECT ", kSweepColumns, " FROM sweeps WHERE id = $1"),
            {id}));
  if (rows.rows() == 0) return SweepNotFound(id);
  ASSIGN_OR_RETURN(std::vector<v1::Sweep> found,
                   ParseAll<v1::Sweep>(rows, "sweeps"));
  return std::move(found[0]);
}

absl::StatusOr<std::vector<v1::Sweep>> PostgresStore::ListSweeps(
    int limit, const std::string& after_id) {
  if (limit < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("page size ", limit, "; need >= 1"));
  }
  std::vector<PgParam> params = {limit};
  std::string sql =
      absl::StrCat("SELECT ", kSweepColumns, " FROM sweeps WHERE TRUE");
  if (!after_id.empty()) {
    ASSIGN_OR_RETURN(
        PgResult after,
        Query("SELECT create_us FROM sweeps WHERE id = $1", {after_id}));
    if (after.rows() == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad page token: no sweep \"", after_id, "\""));
    }
    params.push_back(after.Int(0, 0));
    params.push_back(after_id);
    absl::StrAppend(&sql, " AND (create_us, id) < ($2, $3)");
  }
  absl::StrAppend(&sql, " ORDER BY create_us DESC, id DESC LIMIT $1");
  ASSIGN_OR_RETURN(PgResult rows, Query(sql, params));
  return ParseAll<v1::Sweep>(rows, "sweeps");
}

absl::StatusOr<std::vector<v1::TrainingJob>> PostgresStore::ListSweepJobs(
    const std::string& sweep_id) {
  std::vector<v1::TrainingJob> jobs;
  RETURN_IF_ERROR(Transact([&](PgConnection& conn) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult sweep,
                     conn.Exec("SELECT 1 FROM sweeps WHERE id = $1", {sweep_id}));
    if (sweep.rows() == 0) return SweepNotFound(sweep_id);
    ASSIGN_OR_RETURN(PgResult rows,
                     conn.Exec(absl::StrCat("SELECT ", kJobColumns,
                                            " FROM jobs WHERE sweep_id = $1"),
                               {sweep_id}));
    for (int row = 0; row < rows.rows(); ++row) {
      ASSIGN_OR_RETURN(v1::TrainingJob job, JobAt(rows, row));
      jobs.push_back(std::move(job));
    }
    return absl::OkStatus();
  }));
  return jobs;
}

absl::StatusOr<v1::Sweep> PostgresStore::CancelSweep(const std::string& id) {
  v1::Sweep out;
  std::vector<std::string> changed;
  RETURN_IF_ERROR(Transact([&](PgConnection& conn) -> absl::Status {
    changed.clear();
    ASSIGN_OR_RETURN(PgResult rows,
                     conn.Exec(absl::StrCat("SELECT ", kSweepColumns,
                                            " FROM sweeps WHERE id = $1 "
                                            "FOR UPDATE"),
                               {id}));
    if (rows.rows() == 0) return SweepNotFound(id);
    ASSIGN_OR_RETURN(std::vector<v1::Sweep> found,
                     ParseAll<v1::Sweep>(rows, "sweeps"));
    out = std::move(found[0]);
    out.set_cancel_requested(true);
    ASSIGN_OR_RETURN(const std::string proto, Serialize(out));
    RETURN_IF_ERROR(conn.Exec("UPDATE sweeps SET proto = $2 WHERE id = $1",
                              {id, PgParam::Bytes(proto)})
                        .status());
    ASSIGN_OR_RETURN(
        PgResult open,
        conn.Exec(absl::StrCat("SELECT ", kJobColumns,
                               " FROM jobs WHERE sweep_id = $1 AND state IN "
                               "($2, $3) ORDER BY id FOR UPDATE"),
                  {id, v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING}));
    for (int row = 0; row < open.rows(); ++row) {
      ASSIGN_OR_RETURN(v1::TrainingJob job, JobAt(open, row));
      changed.push_back(job.id());
      RETURN_IF_ERROR(CancelRow(conn, std::move(job)).status());
    }
    return absl::OkStatus();
  }));
  for (const std::string& job_id : changed) Notify(job_id);
  return out;
}

absl::StatusOr<ReapResult> PostgresStore::ReapExpiredLeases(int max_attempts) {
  ReapResult result;
  std::vector<std::string> changed;
  RETURN_IF_ERROR(Transact([&](PgConnection& conn) -> absl::Status {
    // SKIP LOCKED: a row locked by its worker's heartbeat (or another
    // reaper) is left for the next round.
    ASSIGN_OR_RETURN(PgResult rows,
                     conn.Exec(absl::StrCat("SELECT ", kJobColumns,
                                            " FROM jobs WHERE state = $1 AND "
                                            "lease_expires < now() "
                                            "FOR UPDATE SKIP LOCKED"),
                               {v1::JOB_STATE_RUNNING}));
    for (int row = 0; row < rows.rows(); ++row) {
      ASSIGN_OR_RETURN(v1::TrainingJob job, JobAt(rows, row));
      switch (ApplyExpiry(max_attempts, job.cancel_requested(), &job)) {
        case v1::JOB_STATE_QUEUED:
          ++result.requeued;
          break;
        case v1::JOB_STATE_FAILED:
          ++result.failed;
          break;
        default:
          ++result.cancelled;
          break;
      }
      RETURN_IF_ERROR(
          UpdateJob(conn, job.id(), job, JobUpdate::ClearLease()).status());
      changed.push_back(job.id());
    }
    return absl::OkStatus();
  }));
  for (const std::string& id : changed) Notify(id);
  return result;
}

absl::StatusOr<std::vector<v1::EpochMetrics>> PostgresStore::ListEpochs(
    const std::string& job_id) {
  ASSIGN_OR_RETURN(PgResult rows, Query("SELECT proto, job_id FROM epochs "
                                        "WHERE job_id = $1 ORDER BY epoch",
                                        {job_id}));
  if (rows.rows() == 0) {
    RETURN_IF_ERROR(GetJob(job_id).status());  // NOT_FOUND for no job
  }
  return ParseAll<v1::EpochMetrics>(rows, "epochs");
}

absl::Status PostgresStore::InsertDataset(const v1::Dataset& dataset,
                                          absl::string_view bytes) {
  if (dataset.name().empty()) {
    return absl::InvalidArgumentError("dataset name is empty");
  }
  ASSIGN_OR_RETURN(const std::string proto, Serialize(dataset));
  return Transact([&](PgConnection& conn) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult rows,
                     conn.Exec("INSERT INTO datasets (name, proto) "
                               "VALUES ($1, $2) ON CONFLICT (name) "
                               "DO NOTHING RETURNING 1",
                               {dataset.name(), PgParam::Bytes(proto)}));
    if (rows.rows() == 0) {
      return absl::AlreadyExistsError(
          absl::StrCat("dataset \"", dataset.name(), "\" already exists"));
    }
    return PutBlob(conn, DatasetBlobKey(dataset.name()), bytes);
  });
}

absl::StatusOr<v1::Dataset> PostgresStore::GetDataset(const std::string& name) {
  ASSIGN_OR_RETURN(
      PgResult rows,
      Query("SELECT proto, name FROM datasets WHERE name = $1", {name}));
  if (rows.rows() == 0) return DatasetNotFound(name);
  return Parse<v1::Dataset>(rows.Bytes(0, 0), "datasets", name);
}

absl::StatusOr<std::vector<v1::Dataset>> PostgresStore::ListDatasets() {
  ASSIGN_OR_RETURN(PgResult rows,
                   Query("SELECT proto, name FROM datasets ORDER BY name"));
  return ParseAll<v1::Dataset>(rows, "datasets");
}

absl::Status PostgresStore::DeleteDataset(const std::string& name) {
  return Transact([&](PgConnection& conn) -> absl::Status {
    ASSIGN_OR_RETURN(
        PgResult rows,
        conn.Exec("DELETE FROM datasets WHERE name = $1 RETURNING 1", {name}));
    if (rows.rows() == 0) return DatasetNotFound(name);
    return DeleteBlob(conn, DatasetBlobKey(name));
  });
}

absl::StatusOr<v1::Model> PostgresStore::GetModel(const std::string& name,
                                                  int version) {
  if (version < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model version ", version, "; need >= 0"));
  }
  ASSIGN_OR_RETURN(PgResult rows,
                   Query("SELECT proto, name FROM models WHERE name = $1 AND "
                         "($2 = 0 OR version = $2) "
                         "ORDER BY version DESC LIMIT 1",
                         {name, version}));
  if (rows.rows() == 0) return ModelNotFound(name, version);
  return Parse<v1::Model>(rows.Bytes(0, 0), "models", name);
}

absl::StatusOr<std::vector<v1::Model>> PostgresStore::ListModels(
    const std::string& name) {
  ASSIGN_OR_RETURN(PgResult rows,
                   Query("SELECT proto, name FROM models "
                         "WHERE $1 = '' OR name = $1 ORDER BY name, version",
                         {name}));
  return ParseAll<v1::Model>(rows, "models");
}

absl::Status PostgresStore::DeleteModel(const std::string& name, int version) {
  if (version < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("model version ", version, "; need >= 1"));
  }
  return Transact([&](PgConnection& conn) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult rows,
                     conn.Exec("DELETE FROM models WHERE name = $1 AND "
                               "version = $2 RETURNING proto, name",
                               {name, version}));
    if (rows.rows() == 0) return ModelNotFound(name, version);
    ASSIGN_OR_RETURN(const v1::Model model,
                     Parse<v1::Model>(rows.Bytes(0, 0), "models", name));
    return DeleteBlob(conn, ModelBlobKeyOf(model));
  });
}

absl::StatusOr<v1::Model> PostgresStore::InsertModel(ModelToPublish model) {
  RETURN_IF_ERROR(CheckImportable(model));
  v1::Model info;
  RETURN_IF_ERROR(Transact([&](PgConnection& conn) -> absl::Status {
    ASSIGN_OR_RETURN(info, PublishModel(conn, std::move(model), ""));
    return absl::OkStatus();
  }));
  return info;
}

}  // namespace spinnet::server
