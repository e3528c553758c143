// The Store contract (server/storage/store.h), run against every backend:
// memory, SQLite and PostgreSQL. Then what only PostgreSQL does: replicas
// opening one database together, schema versions, credentials, outages and
// LISTEN/NOTIFY, and a store URL's parsing (OpenStore).
//
// PostgreSQL comes from tests/pg_cluster.py (`pg_cluster.py run -- THIS`),
// which exports SPINNET_TEST_PG_URL and the password; every test gets a
// fresh database of its own. Without that cluster the PostgreSQL tests are
// skipped, or fail when SPINNET_REQUIRE_PG=1 (as under ctest).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/status_macros.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "tests/status_matchers.h"
#include "server/storage/memory_store.h"
#include "server/storage/open_store.h"
#include "server/storage/pg_connection.h"
#include "server/storage/postgres_store.h"
#include "server/storage/sqlite_store.h"

namespace spinnet::server {
namespace {

using ::google::protobuf::util::TimeUtil;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;
using Code = absl::StatusCode;
using spinnet::status_testing::StatusIs;

// ---------------------------------------------------------------------------
// Records.

v1::TrainingJob MakeJob(const std::string& id, int64_t create_us,
                        const std::string& request_id = "") {
  v1::TrainingJob job;
  job.set_id(id);
  job.set_request_id(request_id);
  job.set_model_name("ecg-net");
  job.set_dataset("ecg");
  job.mutable_spec()->set_neurons(32);
  job.set_state(v1::JOB_STATE_QUEUED);
  job.set_epochs_total(20);
  *job.mutable_create_time() = TimeUtil::MicrosecondsToTimestamp(create_us);
  return job;
}

v1::EpochMetrics MakeEpoch(int epoch, double loss) {
  v1::EpochMetrics m;
  m.set_epoch(epoch);
  m.set_train_loss(loss);
  return m;
}

v1::Dataset MakeDataset(const std::string& name) {
  v1::Dataset d;
  d.set_name(name);
  d.set_input_dim(2);
  d.set_sequences(640);
  d.add_class_labels("normal");
  return d;
}

ModelToPublish MakeModel(const std::string& name, const std::string& bytes) {
  ModelToPublish model;
  model.info.set_name(name);
  model.info.set_dataset("ecg");
  model.info.set_final_test_accuracy(0.9);
  model.bytes = bytes;
  return model;
}

std::vector<std::string> Ids(const std::vector<v1::TrainingJob>& jobs) {
  std::vector<std::string> ids;
  for (const v1::TrainingJob& job : jobs) ids.push_back(job.id());
  return ids;
}

std::vector<std::pair<std::string, int>> Keys(
    const std::vector<v1::Model>& models) {
  std::vector<std::pair<std::string, int>> keys;
  for (const v1::Model& m : models) keys.emplace_back(m.name(), m.version());
  return keys;
}

// postgres_store.cc's newest migration: v1 the scale-out schema, v2 sweeps.
constexpr int kPostgresSchema = 2;

// Long enough never to expire during a test; short enough to expire after
// a sleep of kExpired.
constexpr absl::Duration kLongTtl = absl::Minutes(5);
constexpr absl::Duration kShortTtl = absl::Milliseconds(1);
constexpr absl::Duration kExpired = absl::Milliseconds(20);

std::string RandomHex(int bytes) {
  static std::mt19937_64 rng(std::random_device{}());
  std::string out;
  for (int i = 0; i < bytes; ++i)
    absl::StrAppend(&out, absl::Hex(rng() & 0xff, absl::kZeroPad2));
  return out;
}

// A TCP port on 127.0.0.1 that nobody listens on.
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  close(fd);
  return ntohs(addr.sin_port);
}

// Waits up to `timeout` for `done`.
bool Eventually(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

// ---------------------------------------------------------------------------
// The PostgreSQL under test.

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

// Skips the test without a cluster, or fails it when one is required.
#define REQUIRE_POSTGRES()                                                    \
  do {                                                                        \
    if (Env("SPINNET_TEST_PG_URL").empty()) {                                 \
      if (Env("SPINNET_REQUIRE_PG") == "1") {                                 \
        FAIL() << "SPINNET_TEST_PG_URL is not set: run this test under "      \
                  "tests/pg_cluster.py run -- ...";                           \
      }                                                                       \
      GTEST_SKIP() << "no PostgreSQL: run under tests/pg_cluster.py run -- "; \
    }                                                                         \
  } while (0)

// A fresh database for one test, dropped afterwards.
class PgDatabase {
 public:
  static absl::StatusOr<std::unique_ptr<PgDatabase>> Create() {
    auto db = std::unique_ptr<PgDatabase>(
        new PgDatabase(absl::StrCat("t_", RandomHex(8))));
    RETURN_IF_ERROR(db->Admin(Env("SPINNET_TEST_PG_URL"),
                              absl::StrCat("CREATE DATABASE ", db->name_)));
    return db;
  }
  ~PgDatabase() {
    // FORCE: a store that a failed test left open holds connections.
    const absl::Status dropped =
        Admin(Env("SPINNET_TEST_PG_URL"),
              absl::StrCat("DROP DATABASE IF EXISTS ", name_, " WITH (FORCE)"));
    if (!dropped.ok()) ADD_FAILURE() << dropped;
  }

  // The URL of this database: the cluster's, with its name.
  std::string url() const {
    const std::string base = Env("SPINNET_TEST_PG_URL");
    return absl::StrCat(base.substr(0, base.rfind('/') + 1), name_);
  }
  static std::string password() { return Env("SPINNET_TEST_PG_PASSWORD"); }

  absl::StatusOr<std::unique_ptr<PostgresStore>> Open() const {
    return PostgresStore::Open(url(), password(), PostgresOptions());
  }

  // SQL on this database behind the store's back.
  absl::Status Exec(const std::string& sql) const { return Admin(url(), sql); }
  absl::StatusOr<int64_t> QueryInt(const std::string& sql) const {
    ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> conn,
                     PgConnection::Connect({url(), password()}));
    ASSIGN_OR_RETURN(PgResult rows, conn->Exec(sql));
    return rows.Int(0, 0);
  }

 private:
  explicit PgDatabase(std::string name) : name_(std::move(name)) {}

  static absl::Status Admin(const std::string& url, const std::string& sql) {
    ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> conn,
                     PgConnection::Connect({url, password()}));
    return conn->Exec(sql).status();
  }

  std::string name_;
};

// ---------------------------------------------------------------------------
// Backends.

// Stores over one test's data.
class Backend {
 public:
  virtual ~Backend() = default;
  // A store on this test's data, owned by the backend. A shared backend
  // opens another instance (a replica) on every call; the others return
  // their one store.
  virtual absl::StatusOr<Store*> Open() = 0;
};

class MemoryBackend : public Backend {
 public:
  absl::StatusOr<Store*> Open() override { return &store_; }

 private:
  MemoryStore store_;
};

// One SqliteStore per data directory (it locks the directory).
class SqliteBackend : public Backend {
 public:
  SqliteBackend()
      : dir_(std::filesystem::temp_directory_path() /
             absl::StrCat("spinnet-conformance-", RandomHex(8))) {}
  ~SqliteBackend() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  absl::StatusOr<Store*> Open() override {
    if (store_ == nullptr) {
      ASSIGN_OR_RETURN(store_, SqliteStore::Open(dir_.string()));
    }
    return store_.get();
  }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<SqliteStore> store_;
};

class PostgresBackend : public Backend {
 public:
  explicit PostgresBackend(std::unique_ptr<PgDatabase> db)
      : db_(std::move(db)) {}
  ~PostgresBackend() override { stores_.clear(); }  // before the drop
  absl::StatusOr<Store*> Open() override {
    ASSIGN_OR_RETURN(std::unique_ptr<PostgresStore> store, db_->Open());
    stores_.push_back(std::move(store));
    return stores_.back().get();
  }

 private:
  std::unique_ptr<PgDatabase> db_;
  std::vector<std::unique_ptr<Store>> stores_;
};

class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "memory") {
      backend_ = std::make_unique<MemoryBackend>();
    } else if (GetParam() == "sqlite") {
      backend_ = std::make_unique<SqliteBackend>();
    } else {
      REQUIRE_POSTGRES();
      ASSERT_OK_AND_ASSIGN(std::unique_ptr<PgDatabase> db,
                           PgDatabase::Create());
      backend_ = std::make_unique<PostgresBackend>(std::move(db));
    }
    ASSERT_OK_AND_ASSIGN(store_, backend_->Open());
  }

  // Inserts jobs with these ids, created 1 ms apart in this order.
  void InsertJobs(const std::vector<std::string>& ids) {
    for (const std::string& id : ids) {
      ASSERT_OK(store_->InsertJob(MakeJob(id, ++clock_us_ * 1000), 1000));
    }
  }

  ClaimedJob Claim(absl::Duration ttl = kLongTtl,
                   const std::string& worker = "w1") {
    absl::StatusOr<std::optional<ClaimedJob>> claimed =
        store_->ClaimJob(worker, ttl);
    EXPECT_TRUE(claimed.ok()) << claimed.status();
    EXPECT_TRUE(claimed.ok() && claimed->has_value()) << "nothing to claim";
    return claimed.ok() && claimed->has_value() ? **claimed : ClaimedJob();
  }

  // Inserts, claims and finishes job `id` with a model; the published one.
  v1::Model Publish(const std::string& id, const std::string& name,
                    const std::string& bytes) {
    InsertJobs({id});
    ClaimedJob claimed = Claim();
    EXPECT_EQ(claimed.lease.job_id, id);
    claimed.job.set_state(v1::JOB_STATE_SUCCEEDED);
    absl::StatusOr<v1::TrainingJob> done =
        store_->FinishJob(claimed.lease, claimed.job, MakeModel(name, bytes));
    EXPECT_TRUE(done.ok()) << done.status();
    absl::StatusOr<v1::Model> model =
        store_->GetModel(name, done.ok() ? done->model_version() : 0);
    EXPECT_TRUE(model.ok()) << model.status();
    return model.ok() ? *model : v1::Model();
  }

  // What a change callback saw; declared first, so that it outlives the
  // stores (and their LISTEN threads).
  std::mutex changes_mu_;
  std::multiset<std::string> changes_ ABSL_GUARDED_BY(changes_mu_);
  std::unique_ptr<Backend> backend_;
  Store* store_ = nullptr;
  int64_t clock_us_ = 1'700'000'000'000;
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest,
                         ::testing::Values("memory", "sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

// ---------------------------------------------------------------------------
// Jobs: insert, get, list.

TEST_P(StoreTest, InsertGetAndListNewestFirst) {
  // Two jobs share a create time: the id breaks the tie.
  for (const auto& [id, us] : std::vector<std::pair<std::string, int64_t>>{
           {"a", 100}, {"c", 200}, {"b", 200}, {"d", 300}, {"e", 400}}) {
    ASSERT_OK_AND_ASSIGN(Store::Inserted inserted,
                         store_->InsertJob(MakeJob(id, us), 100));
    EXPECT_TRUE(inserted.created);
    EXPECT_EQ(inserted.job.id(), id);
    EXPECT_GT(inserted.job.revision(), 0);
  }
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob c, store_->GetJob("c"));
  EXPECT_EQ(c.state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(c.model_name(), "ecg-net");
  EXPECT_EQ(TimeUtil::TimestampToMicroseconds(c.create_time()), 200);
  EXPECT_FALSE(c.cancel_requested());
  EXPECT_THAT(store_->GetJob("zz"), StatusIs(Code::kNotFound, "zz"));
  EXPECT_THAT(store_->InsertJob(MakeJob("", 1), 100),
              StatusIs(Code::kInvalidArgument, "empty"));
  EXPECT_THAT(store_->InsertJob(MakeJob("a", 1), 100),
              StatusIs(Code::kAlreadyExists, "\"a\""));

  ASSERT_OK_AND_ASSIGN(auto all,
                       store_->ListJobs(v1::JOB_STATE_UNSPECIFIED, 10, ""));
  EXPECT_THAT(Ids(all), ElementsAre("e", "d", "c", "b", "a"));
  std::vector<std::string> paged;
  std::string token;
  for (;;) {
    ASSERT_OK_AND_ASSIGN(auto page,
                         store_->ListJobs(v1::JOB_STATE_UNSPECIFIED, 2, token));
    EXPECT_LE(page.size(), 2u);
    if (page.empty()) break;
    for (const auto& job : page) paged.push_back(job.id());
    token = page.back().id();
  }
  EXPECT_THAT(paged, ElementsAre("e", "d", "c", "b", "a"));

  EXPECT_EQ(Claim().lease.job_id, "a");  // the oldest
  ASSERT_OK_AND_ASSIGN(auto queued,
                       store_->ListJobs(v1::JOB_STATE_QUEUED, 10, ""));
  EXPECT_THAT(Ids(queued), ElementsAre("e", "d", "c", "b"));
  ASSERT_OK_AND_ASSIGN(auto queued_after_d,
                       store_->ListJobs(v1::JOB_STATE_QUEUED, 10, "d"));
  EXPECT_THAT(Ids(queued_after_d), ElementsAre("c", "b"));
  ASSERT_OK_AND_ASSIGN(auto running,
                       store_->ListJobs(v1::JOB_STATE_RUNNING, 10, ""));
  EXPECT_THAT(Ids(running), ElementsAre("a"));

  EXPECT_THAT(store_->ListJobs(v1::JOB_STATE_UNSPECIFIED, 10, "nope"),
              StatusIs(Code::kInvalidArgument, "bad page token"));
  EXPECT_THAT(store_->ListJobs(v1::JOB_STATE_UNSPECIFIED, 0, ""),
              StatusIs(Code::kInvalidArgument, "page size"));
}

TEST_P(StoreTest, RequestIdMakesInsertIdempotent) {
  ASSERT_OK_AND_ASSIGN(Store::Inserted first,
                       store_->InsertJob(MakeJob("j1", 100, "req-1"), 100));
  EXPECT_TRUE(first.created);
  ASSERT_OK_AND_ASSIGN(Store::Inserted again,
                       store_->InsertJob(MakeJob("j2", 200, "req-1"), 100));
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.job.id(), "j1");
  EXPECT_EQ(again.job.revision(), first.job.revision());
  EXPECT_THAT(store_->GetJob("j2"), StatusIs(Code::kNotFound, "j2"));
  // Jobs without a request id never collide.
  ASSERT_OK_AND_ASSIGN(Store::Inserted j3,
                       store_->InsertJob(MakeJob("j3", 300), 100));
  ASSERT_OK_AND_ASSIGN(Store::Inserted j4,
                       store_->InsertJob(MakeJob("j4", 400), 100));
  EXPECT_TRUE(j3.created && j4.created);
}

TEST_P(StoreTest, QueueLimit) {
  ASSERT_OK(store_->InsertJob(MakeJob("j1", 100, "req-1"), 2));
  ASSERT_OK(store_->InsertJob(MakeJob("j2", 200), 2));
  EXPECT_THAT(store_->InsertJob(MakeJob("j3", 300), 2),
              StatusIs(Code::kResourceExhausted, "queue is full"));
  EXPECT_THAT(store_->GetJob("j3"), StatusIs(Code::kNotFound, "j3"));
  // A retried submission still finds its job.
  ASSERT_OK_AND_ASSIGN(Store::Inserted again,
                       store_->InsertJob(MakeJob("j9", 900, "req-1"), 2));
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.job.id(), "j1");
  // Running jobs do not count.
  Claim();
  ASSERT_OK(store_->InsertJob(MakeJob("j3", 300), 2));
}

TEST_P(StoreTest, CountByDatabase) {
  InsertJobs({"j1", "j2", "j3", "j4", "j5"});
  ClaimedJob j1 = Claim();
  j1.job.set_state(v1::JOB_STATE_SUCCEEDED);
  ASSERT_OK(store_->FinishJob(j1.lease, j1.job, MakeModel("m", "bytes")));
  ClaimedJob j2 = Claim();
  j2.job.set_state(v1::JOB_STATE_FAILED);
  ASSERT_OK(store_->FinishJob(j2.lease, j2.job, std::nullopt));
  Claim();  // j3 runs
  ASSERT_OK(store_->CancelJob("j4"));
  ASSERT_OK(store_->InsertDataset(MakeDataset("d1"), "1,2\n"));
  ASSERT_OK(store_->InsertDataset(MakeDataset("d2"), "3,4\n"));

  ASSERT_OK_AND_ASSIGN(StoreCounts c, store_->Count());
  EXPECT_EQ(c.queued, 1);
  EXPECT_EQ(c.running, 1);
  EXPECT_EQ(c.succeeded, 1);
  EXPECT_EQ(c.failed, 1);
  EXPECT_EQ(c.cancelled, 1);
  EXPECT_EQ(c.models, 1);
  EXPECT_EQ(c.datasets, 2);
}

// ---------------------------------------------------------------------------
// Claims and leases.

TEST_P(StoreTest, ClaimTakesTheOldestQueuedJob) {
  ASSERT_OK_AND_ASSIGN(std::optional<ClaimedJob> none,
                       store_->ClaimJob("w1", kLongTtl));
  EXPECT_FALSE(none.has_value());
  ASSERT_OK(store_->InsertJob(MakeJob("c", 300), 100));
  ASSERT_OK(store_->InsertJob(MakeJob("b", 100), 100));
  ASSERT_OK(store_->InsertJob(MakeJob("a", 100), 100));

  const ClaimedJob a = Claim(kLongTtl, "worker-7");
  EXPECT_EQ(a.lease.job_id, "a");
  EXPECT_EQ(a.job.id(), "a");
  EXPECT_EQ(a.job.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(a.job.attempt(), 1);
  EXPECT_EQ(a.job.worker(), "worker-7");
  EXPECT_TRUE(a.job.has_start_time());
  EXPECT_NE(a.lease.token, 0);
  const ClaimedJob b = Claim();
  const ClaimedJob c = Claim();
  EXPECT_EQ(b.lease.job_id, "b");
  EXPECT_EQ(c.lease.job_id, "c");
  EXPECT_EQ(
      std::set<int64_t>({a.lease.token, b.lease.token, c.lease.token}).size(),
      3u);
  ASSERT_OK_AND_ASSIGN(none, store_->ClaimJob("w1", kLongTtl));
  EXPECT_FALSE(none.has_value());

  ASSERT_OK_AND_ASSIGN(v1::TrainingJob stored, store_->GetJob("a"));
  EXPECT_EQ(stored.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(stored.worker(), "worker-7");
  EXPECT_EQ(stored.revision(), a.job.revision());
}

// Several claimers on several store instances (replicas, where the backend
// has them) drain the queue: every job exactly once, on its first attempt.
TEST_P(StoreTest, ConcurrentClaimsTakeEveryJobOnce) {
  constexpr int kJobs = 200;
  constexpr int kThreads = 8;
  std::vector<std::string> ids;
  for (int i = 0; i < kJobs; ++i) ids.push_back(absl::StrCat("job-", i));
  InsertJobs(ids);
  std::vector<Store*> stores = {store_};
  ASSERT_OK_AND_ASSIGN(Store * second, backend_->Open());
  stores.push_back(second);

  std::mutex mu;
  std::vector<std::string> claimed;
  std::vector<absl::Status> errors;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Store* store = stores[t % stores.size()];
      for (;;) {
        absl::StatusOr<std::optional<ClaimedJob>> job =
            store->ClaimJob(absl::StrCat("w", t), kLongTtl);
        std::lock_guard<std::mutex> lock(mu);
        if (!job.ok()) {
          errors.push_back(job.status());
          return;
        }
        if (!job->has_value()) return;
        EXPECT_EQ((*job)->job.attempt(), 1);
        claimed.push_back((*job)->lease.job_id);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_THAT(errors, IsEmpty());
  EXPECT_THAT(claimed, SizeIs(kJobs));
  EXPECT_EQ(std::set<std::string>(claimed.begin(), claimed.end()).size(),
            static_cast<size_t>(kJobs));
  ASSERT_OK_AND_ASSIGN(StoreCounts c, store_->Count());
  EXPECT_EQ(c.running, kJobs);
  EXPECT_EQ(c.queued, 0);
}

TEST_P(StoreTest, HeartbeatExtendsTheLeaseAndReportsCancel) {
  InsertJobs({"j"});
  ClaimedJob claimed = Claim(kShortTtl);
  claimed.job.set_progress(0.5);
  ASSERT_OK_AND_ASSIGN(bool cancel,
                       store_->Heartbeat(claimed.lease, claimed.job, kLongTtl));
  EXPECT_FALSE(cancel);
  absl::SleepFor(kExpired);
  ASSERT_OK_AND_ASSIGN(ReapResult reaped, store_->ReapExpiredLeases(3));
  EXPECT_EQ(reaped.requeued + reaped.failed + reaped.cancelled, 0);
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob stored, store_->GetJob("j"));
  EXPECT_EQ(stored.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(stored.progress(), 0.5);

  ASSERT_OK_AND_ASSIGN(v1::TrainingJob cancelled, store_->CancelJob("j"));
  EXPECT_EQ(cancelled.state(), v1::JOB_STATE_RUNNING);
  EXPECT_TRUE(cancelled.cancel_requested());
  // The worker's copy knows nothing of the cancel; the store keeps it.
  ASSERT_OK_AND_ASSIGN(cancel,
                       store_->Heartbeat(claimed.lease, claimed.job, kLongTtl));
  EXPECT_TRUE(cancel);
  ASSERT_OK_AND_ASSIGN(stored, store_->GetJob("j"));
  EXPECT_TRUE(stored.cancel_requested());
}

// A worker that stalled past its lease (a zombie) can write nothing once
// the job was reaped and claimed again.
TEST_P(StoreTest, ALostLeaseIsFencedOff) {
  InsertJobs({"j"});
  const ClaimedJob zombie = Claim(kShortTtl, "zombie");
  absl::SleepFor(kExpired);
  ASSERT_OK_AND_ASSIGN(ReapResult reaped, store_->ReapExpiredLeases(3));
  EXPECT_EQ(reaped.requeued, 1);
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob requeued, store_->GetJob("j"));
  EXPECT_EQ(requeued.state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(requeued.restarts(), 1);
  EXPECT_EQ(requeued.attempt(), 1);
  EXPECT_EQ(requeued.worker(), "");
  // The zombie's lease is lost before anyone claims the job again, too.
  EXPECT_THAT(store_->Heartbeat(zombie.lease, zombie.job, kLongTtl),
              StatusIs(Code::kAborted, "lease lost"));

  const ClaimedJob fresh = Claim(kLongTtl, "fresh");
  EXPECT_EQ(fresh.job.attempt(), 2);
  EXPECT_NE(fresh.lease.token, zombie.lease.token);
  ASSERT_OK_AND_ASSIGN(const v1::TrainingJob before, store_->GetJob("j"));

  v1::TrainingJob done = zombie.job;
  done.set_state(v1::JOB_STATE_SUCCEEDED);
  EXPECT_THAT(store_->Heartbeat(zombie.lease, zombie.job, kLongTtl),
              StatusIs(Code::kAborted, "lease lost"));
  EXPECT_THAT(store_->RecordEpoch(zombie.lease, zombie.job, MakeEpoch(1, 1.0),
                                  "zombie-ckpt"),
              StatusIs(Code::kAborted, "lease lost"));
  EXPECT_THAT(store_->FinishJob(zombie.lease, done, MakeModel("m", "zombie")),
              StatusIs(Code::kAborted, "lease lost"));
  EXPECT_THAT(store_->ReleaseJob(zombie.lease, zombie.job),
              StatusIs(Code::kAborted, "lease lost"));
  EXPECT_THAT(store_->Heartbeat(Lease{"nope", zombie.lease.token}, zombie.job,
                                kLongTtl),
              StatusIs(Code::kAborted, "lease lost"));

  ASSERT_OK_AND_ASSIGN(const v1::TrainingJob after, store_->GetJob("j"));
  EXPECT_EQ(after.revision(), before.revision());
  EXPECT_EQ(after.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(after.worker(), "fresh");
  ASSERT_OK_AND_ASSIGN(auto epochs, store_->ListEpochs("j"));
  EXPECT_THAT(epochs, IsEmpty());
  ASSERT_OK_AND_ASSIGN(auto models, store_->ListModels(""));
  EXPECT_THAT(models, IsEmpty());
  ASSERT_OK_AND_ASSIGN(Store::Checkpoints checkpoints,
                       store_->LoadCheckpoints("j"));
  EXPECT_THAT(checkpoints.newest_first, IsEmpty());
  // The new holder is unaffected.
  ASSERT_OK(store_->Heartbeat(fresh.lease, fresh.job, kLongTtl));
}

TEST_P(StoreTest, RecordEpochReplacesEpochsAndRotatesCheckpoints) {
  InsertJobs({"j", "idle"});
  ClaimedJob claimed = Claim();
  // Checkpoints are bytes, NULs included.
  const std::string ckpt1("ckpt\0one", 8);
  for (int epoch = 1; epoch <= 3; ++epoch) {
    claimed.job.set_epochs_done(epoch);
    ASSERT_OK(store_->RecordEpoch(
        claimed.lease, claimed.job, MakeEpoch(epoch, 1.0 / epoch),
        epoch == 1 ? ckpt1 : absl::StrCat("ckpt-", epoch)));
    ASSERT_OK_AND_ASSIGN(Store::Checkpoints checkpoints,
                         store_->LoadCheckpoints("j"));
    EXPECT_THAT(checkpoints.skipped, IsEmpty());
    if (epoch == 1) {
      EXPECT_THAT(checkpoints.newest_first, ElementsAre(ckpt1));
    } else {
      EXPECT_THAT(checkpoints.newest_first,
                  ElementsAre(absl::StrCat("ckpt-", epoch),
                              epoch == 2 ? ckpt1 : "ckpt-2"));
    }
  }
  // An earlier attempt's epoch 2, recorded again.
  claimed.job.set_epochs_done(2);
  ASSERT_OK(store_->RecordEpoch(claimed.lease, claimed.job, MakeEpoch(2, 0.25),
                                "ckpt-2b"));
  ASSERT_OK_AND_ASSIGN(auto epochs, store_->ListEpochs("j"));
  ASSERT_THAT(epochs, SizeIs(3));
  EXPECT_EQ(epochs[0].epoch(), 1);
  EXPECT_EQ(epochs[1].epoch(), 2);
  EXPECT_EQ(epochs[1].train_loss(), 0.25);
  EXPECT_EQ(epochs[2].epoch(), 3);
  ASSERT_OK_AND_ASSIGN(Store::Checkpoints checkpoints,
                       store_->LoadCheckpoints("j"));
  EXPECT_THAT(checkpoints.newest_first, ElementsAre("ckpt-2b", "ckpt-3"));
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob stored, store_->GetJob("j"));
  EXPECT_EQ(stored.epochs_done(), 2);
  // A last epoch comes without a checkpoint: the stored ones stay.
  claimed.job.set_epochs_done(3);
  ASSERT_OK(store_->RecordEpoch(claimed.lease, claimed.job, MakeEpoch(3, 0.1),
                                ""));
  ASSERT_OK_AND_ASSIGN(checkpoints, store_->LoadCheckpoints("j"));
  EXPECT_THAT(checkpoints.newest_first, ElementsAre("ckpt-2b", "ckpt-3"));
  ASSERT_OK_AND_ASSIGN(epochs, store_->ListEpochs("j"));
  EXPECT_EQ(epochs[2].train_loss(), 0.1);

  EXPECT_THAT(
      store_->RecordEpoch(claimed.lease, claimed.job, MakeEpoch(0, 1.0), "x"),
      StatusIs(Code::kInvalidArgument, "epoch 0"));
  EXPECT_THAT(store_->ListEpochs("nope"), StatusIs(Code::kNotFound, "nope"));
  ASSERT_OK_AND_ASSIGN(epochs, store_->ListEpochs("idle"));
  EXPECT_THAT(epochs, IsEmpty());
  ASSERT_OK_AND_ASSIGN(checkpoints, store_->LoadCheckpoints("idle"));
  EXPECT_THAT(checkpoints.newest_first, IsEmpty());
  EXPECT_THAT(checkpoints.skipped, IsEmpty());
}

TEST_P(StoreTest, FinishJobPublishesVersionsThatAreNeverReused) {
  InsertJobs({"j1"});
  ClaimedJob j1 = Claim();
  ASSERT_OK(store_->RecordEpoch(j1.lease, j1.job, MakeEpoch(1, 1.0), "ckpt-1"));
  ASSERT_OK(store_->RecordEpoch(j1.lease, j1.job, MakeEpoch(2, 1.0), "ckpt-2"));
  v1::TrainingJob done = j1.job;
  done.set_state(v1::JOB_STATE_SUCCEEDED);
  ASSERT_OK_AND_ASSIGN(
      v1::TrainingJob finished,
      store_->FinishJob(j1.lease, done, MakeModel("m", "model-1")));
  EXPECT_EQ(finished.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(finished.model_version(), 1);
  EXPECT_EQ(finished.worker(), "");
  EXPECT_GT(finished.revision(), j1.job.revision());
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob stored, store_->GetJob("j1"));
  EXPECT_EQ(stored.revision(), finished.revision());
  EXPECT_EQ(stored.model_version(), 1);

  ASSERT_OK_AND_ASSIGN(v1::Model model, store_->GetModel("m", 1));
  EXPECT_EQ(model.version(), 1);
  EXPECT_EQ(model.source_job_id(), "j1");
  EXPECT_EQ(model.final_test_accuracy(), 0.9);
  ASSERT_OK_AND_ASSIGN(std::string bytes,
                       store_->blobs().Get(ModelBlobKey("j1")));
  EXPECT_EQ(bytes, "model-1");
  ASSERT_OK_AND_ASSIGN(Store::Checkpoints checkpoints,
                       store_->LoadCheckpoints("j1"));
  EXPECT_THAT(checkpoints.newest_first, IsEmpty());
  // The lease ended with the job.
  EXPECT_THAT(store_->Heartbeat(j1.lease, j1.job, kLongTtl),
              StatusIs(Code::kAborted, "lease lost"));

  EXPECT_EQ(Publish("j2", "m", "model-2").version(), 2);
  ASSERT_OK(store_->DeleteModel("m", 2));
  EXPECT_THAT(store_->GetModel("m", 2), StatusIs(Code::kNotFound, "version 2"));
  EXPECT_THAT(store_->blobs().Get(ModelBlobKey("j2")),
              StatusIs(Code::kNotFound, "j2"));
  ASSERT_OK_AND_ASSIGN(model, store_->GetModel("m", 0));
  EXPECT_EQ(model.version(), 1);
  EXPECT_EQ(Publish("j3", "m", "model-3").version(), 3);
  ASSERT_OK_AND_ASSIGN(auto models, store_->ListModels("m"));
  EXPECT_THAT(Keys(models),
              ElementsAre(std::make_pair("m", 1), std::make_pair("m", 3)));

  // The final state and the model go together.
  InsertJobs({"j4"});
  ClaimedJob j4 = Claim();
  EXPECT_THAT(store_->FinishJob(j4.lease, j4.job, std::nullopt),
              StatusIs(Code::kInvalidArgument, "final state"));
  done = j4.job;
  done.set_state(v1::JOB_STATE_SUCCEEDED);
  EXPECT_THAT(store_->FinishJob(j4.lease, done, std::nullopt),
              StatusIs(Code::kInvalidArgument, "model"));
  done.set_state(v1::JOB_STATE_FAILED);
  EXPECT_THAT(store_->FinishJob(j4.lease, done, MakeModel("m", "x")),
              StatusIs(Code::kInvalidArgument, "model"));
  ASSERT_OK_AND_ASSIGN(stored, store_->GetJob("j4"));
  EXPECT_EQ(stored.state(), v1::JOB_STATE_RUNNING);
}

TEST_P(StoreTest, CancelJob) {
  InsertJobs({"a", "b"});
  ClaimedJob a = Claim();
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob b, store_->CancelJob("b"));
  EXPECT_EQ(b.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_TRUE(b.has_end_time());
  EXPECT_FALSE(b.cancel_requested());
  ASSERT_OK_AND_ASSIGN(std::optional<ClaimedJob> none,
                       store_->ClaimJob("w1", kLongTtl));
  EXPECT_FALSE(none.has_value());

  ASSERT_OK_AND_ASSIGN(v1::TrainingJob running, store_->CancelJob("a"));
  EXPECT_EQ(running.state(), v1::JOB_STATE_RUNNING);
  EXPECT_TRUE(running.cancel_requested());
  EXPECT_GT(running.revision(), a.job.revision());
  ASSERT_OK_AND_ASSIGN(running, store_->CancelJob("a"));  // asked twice
  EXPECT_TRUE(running.cancel_requested());

  a.job.set_state(v1::JOB_STATE_CANCELLED);
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob ended,
                       store_->FinishJob(a.lease, a.job, std::nullopt));
  EXPECT_EQ(ended.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_FALSE(ended.cancel_requested());
  EXPECT_THAT(store_->CancelJob("a"),
              StatusIs(Code::kFailedPrecondition, "already ended"));
  EXPECT_THAT(store_->CancelJob("b"),
              StatusIs(Code::kFailedPrecondition, "already ended"));
  EXPECT_THAT(store_->CancelJob("nope"), StatusIs(Code::kNotFound, "nope"));
}

// A cancel accepted while the job ran wins over whatever end its worker
// reports next, so an accepted cancel always ends the job CANCELLED: a
// worker that finished its last epoch (or failed, or is shutting down)
// before a heartbeat told it of the cancel publishes nothing.
TEST_P(StoreTest, AnAcceptedCancelWinsOverTheWorkersEnd) {
  InsertJobs({"done", "failed", "released"});
  for (const std::string id : {"done", "failed", "released"}) {
    const ClaimedJob claimed = Claim();
    ASSERT_EQ(claimed.job.id(), id);
    ASSERT_OK(store_->RecordEpoch(claimed.lease, claimed.job,
                                  MakeEpoch(1, 1.0), "ckpt-1"));
    ASSERT_OK_AND_ASSIGN(v1::TrainingJob asked, store_->CancelJob(id));
    ASSERT_EQ(asked.state(), v1::JOB_STATE_RUNNING);
    ASSERT_TRUE(asked.cancel_requested());
    v1::TrainingJob end = claimed.job;
    end.set_epochs_done(1);
    v1::TrainingJob stored;
    if (id == "released") {
      ASSERT_OK(store_->ReleaseJob(claimed.lease, end));
      ASSERT_OK_AND_ASSIGN(stored, store_->GetJob(id));
      EXPECT_EQ(stored.restarts(), 0);
    } else if (id == "done") {
      end.set_state(v1::JOB_STATE_SUCCEEDED);
      ASSERT_OK_AND_ASSIGN(
          stored, store_->FinishJob(claimed.lease, end, MakeModel("m", "x")));
      EXPECT_EQ(stored.model_version(), 0);
    } else {
      end.set_state(v1::JOB_STATE_FAILED);
      end.set_failure_reason("diverged");
      ASSERT_OK_AND_ASSIGN(
          stored, store_->FinishJob(claimed.lease, end, std::nullopt));
      EXPECT_EQ(stored.failure_reason(), "");
    }
    EXPECT_EQ(stored.state(), v1::JOB_STATE_CANCELLED) << id;
    EXPECT_FALSE(stored.cancel_requested()) << id;
    EXPECT_TRUE(stored.has_end_time()) << id;
    EXPECT_EQ(stored.worker(), "") << id;
    EXPECT_EQ(stored.epochs_done(), 1) << id;
    ASSERT_OK_AND_ASSIGN(v1::TrainingJob read, store_->GetJob(id));
    EXPECT_EQ(read.state(), v1::JOB_STATE_CANCELLED) << id;
    EXPECT_THAT(store_->CancelJob(id),
                StatusIs(Code::kFailedPrecondition, "already ended"));
  }
  // Nothing was published, and nothing is left to claim.
  ASSERT_OK_AND_ASSIGN(auto models, store_->ListModels("m"));
  EXPECT_THAT(models, IsEmpty());
  EXPECT_EQ(store_->blobs().Get(ModelBlobKey("done")).status().code(),
            Code::kNotFound);
  ASSERT_OK_AND_ASSIGN(std::optional<ClaimedJob> none,
                       store_->ClaimJob("w1", kLongTtl));
  EXPECT_FALSE(none.has_value());
}

// ---------------------------------------------------------------------------
// Sweeps.

v1::Sweep MakeSweep(const std::string& id, int64_t create_us,
                    const std::string& request_id = "") {
  v1::Sweep sweep;
  sweep.set_id(id);
  sweep.set_request_id(request_id);
  sweep.set_dataset("ecg");
  sweep.add_seeds(0);
  sweep.add_seeds(1);
  *sweep.mutable_create_time() = TimeUtil::MicrosecondsToTimestamp(create_us);
  return sweep;
}

std::vector<v1::TrainingJob> SweepJobs(const std::string& sweep_id, int n,
                                       int64_t create_us) {
  std::vector<v1::TrainingJob> jobs;
  for (int i = 0; i < n; ++i) {
    jobs.push_back(MakeJob(absl::StrCat(sweep_id, "-", i), create_us + i));
    jobs.back().set_model_name("");
    jobs.back().set_sweep_id(sweep_id);
    jobs.back().set_sweep_point(i / 2);
  }
  return jobs;
}

TEST_P(StoreTest, SweepInsertGetListAndJobs) {
  ASSERT_OK_AND_ASSIGN(Store::InsertedSweep s1,
                       store_->InsertSweep(MakeSweep("s1", 100, "req"),
                                           SweepJobs("s1", 4, 100), 100));
  EXPECT_TRUE(s1.created);
  ASSERT_OK(store_->InsertSweep(MakeSweep("s2", 200), SweepJobs("s2", 2, 200),
                                100));
  ASSERT_OK(store_->InsertSweep(MakeSweep("s3", 300), {}, 100));
  ASSERT_OK_AND_ASSIGN(v1::Sweep got, store_->GetSweep("s1"));
  EXPECT_EQ(got.dataset(), "ecg");
  EXPECT_EQ(got.request_id(), "req");
  EXPECT_FALSE(got.cancel_requested());
  EXPECT_THAT(store_->GetSweep("nope"), StatusIs(Code::kNotFound, "nope"));

  ASSERT_OK_AND_ASSIGN(std::vector<v1::TrainingJob> jobs,
                       store_->ListSweepJobs("s1"));
  std::set<std::string> ids;
  for (const v1::TrainingJob& job : jobs) {
    ids.insert(job.id());
    EXPECT_EQ(job.sweep_id(), "s1");
    EXPECT_EQ(job.state(), v1::JOB_STATE_QUEUED);
    EXPECT_GT(job.revision(), 0);
  }
  EXPECT_THAT(ids, ElementsAre("s1-0", "s1-1", "s1-2", "s1-3"));
  EXPECT_THAT(store_->ListSweepJobs("nope"), StatusIs(Code::kNotFound, ""));
  ASSERT_OK_AND_ASSIGN(jobs, store_->ListSweepJobs("s3"));
  EXPECT_THAT(jobs, IsEmpty());
  // A sweep's jobs are jobs like any other: listed, claimed oldest first.
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob one, store_->GetJob("s1-1"));
  EXPECT_EQ(one.sweep_point(), 0);
  EXPECT_EQ(Claim().lease.job_id, "s1-0");

  std::vector<std::string> paged;
  std::string token;
  for (;;) {
    ASSERT_OK_AND_ASSIGN(std::vector<v1::Sweep> page,
                         store_->ListSweeps(2, token));
    if (page.empty()) break;
    for (const v1::Sweep& s : page) paged.push_back(s.id());
    token = page.back().id();
  }
  EXPECT_THAT(paged, ElementsAre("s3", "s2", "s1"));
  EXPECT_THAT(store_->ListSweeps(10, "nope"),
              StatusIs(Code::kInvalidArgument, "bad page token"));
  EXPECT_THAT(store_->ListSweeps(0, ""),
              StatusIs(Code::kInvalidArgument, "page size"));
}

TEST_P(StoreTest, SweepRequestIdAndLimitsInsertAllOrNothing) {
  ASSERT_OK(store_->InsertSweep(MakeSweep("s1", 100, "req"),
                                SweepJobs("s1", 2, 100), 100));
  ASSERT_OK_AND_ASSIGN(Store::InsertedSweep again,
                       store_->InsertSweep(MakeSweep("s2", 200, "req"),
                                           SweepJobs("s2", 2, 200), 100));
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.sweep.id(), "s1");
  EXPECT_THAT(store_->GetSweep("s2"), StatusIs(Code::kNotFound, ""));
  EXPECT_THAT(store_->GetJob("s2-0"), StatusIs(Code::kNotFound, ""));

  // 2 queued + 3 > 4: refused, nothing written.
  EXPECT_THAT(store_->InsertSweep(MakeSweep("s3", 300), SweepJobs("s3", 3, 300),
                                  4),
              StatusIs(Code::kResourceExhausted, "sweep queue is full"));
  EXPECT_THAT(store_->GetSweep("s3"), StatusIs(Code::kNotFound, ""));
  EXPECT_THAT(store_->GetJob("s3-0"), StatusIs(Code::kNotFound, ""));
  // Single jobs and sweep jobs have separate limits.
  ASSERT_OK(store_->InsertJob(MakeJob("j1", 400), 1));
  ASSERT_OK(store_->InsertSweep(MakeSweep("s4", 500), SweepJobs("s4", 2, 500),
                                4));
  // A job id that exists already: refused, nothing written.
  std::vector<v1::TrainingJob> clash = SweepJobs("s5", 2, 600);
  clash[1].set_id("j1");
  EXPECT_THAT(store_->InsertSweep(MakeSweep("s5", 600), clash, 100),
              StatusIs(Code::kAlreadyExists, "j1"));
  EXPECT_THAT(store_->GetSweep("s5"), StatusIs(Code::kNotFound, ""));
  EXPECT_THAT(store_->GetJob("s5-0"), StatusIs(Code::kNotFound, ""));
  // Malformed: a job of another sweep, or a sweep job through InsertJob.
  EXPECT_THAT(store_->InsertSweep(MakeSweep("s6", 700), SweepJobs("s1", 1, 700),
                                  100),
              StatusIs(Code::kInvalidArgument, ""));
  EXPECT_THAT(store_->InsertJob(SweepJobs("s7", 1, 800)[0], 100),
              StatusIs(Code::kInvalidArgument, ""));
}

// A job's checkpoints are deleted however it ends: finished by its worker,
// released or reaped with a cancel pending, reaped out of attempts, or
// cancelled in the queue (alone or with its sweep) after an earlier attempt
// left checkpoints. A job going back to the queue keeps them.
TEST_P(StoreTest, EveryWayAJobEndsDeletesItsCheckpoints) {
  const auto checkpoints = [&](const std::string& id) {
    absl::StatusOr<Store::Checkpoints> c = store_->LoadCheckpoints(id);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? c->newest_first.size() + c->skipped.size() : 0;
  };
  // Claims job `id`, the oldest queued, and records two epochs with
  // checkpoints.
  const auto run_two_epochs = [&](const std::string& id, absl::Duration ttl) {
    ClaimedJob claimed = Claim(ttl);
    EXPECT_EQ(claimed.lease.job_id, id);
    for (int epoch = 1; epoch <= 2; ++epoch) {
      claimed.job.set_epochs_done(epoch);
      const absl::Status s = store_->RecordEpoch(
          claimed.lease, claimed.job, MakeEpoch(epoch, 1.0),
          absl::StrCat("ckpt-", epoch));
      EXPECT_TRUE(s.ok()) << s;
    }
    EXPECT_EQ(checkpoints(claimed.lease.job_id), 2u);
    return claimed;
  };
  InsertJobs({"finished", "released", "requeued", "reaped", "failed"});
  // The sweep's job after those (InsertJobs' clock is in ms).
  const int64_t later_us = 2'000'000'000'000'000;
  ASSERT_OK(store_->InsertSweep(MakeSweep("s", later_us),
                                SweepJobs("s", 1, later_us), 100));

  ClaimedJob c = run_two_epochs("finished", kLongTtl);
  c.job.set_state(v1::JOB_STATE_FAILED);
  c.job.set_failure_reason("diverged");
  ASSERT_OK(store_->FinishJob(c.lease, c.job, std::nullopt));
  EXPECT_EQ(checkpoints("finished"), 0u);

  c = run_two_epochs("released", kLongTtl);  // with a cancel pending
  ASSERT_OK(store_->CancelJob("released"));
  ASSERT_OK(store_->ReleaseJob(c.lease, c.job));
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob j, store_->GetJob("released"));
  EXPECT_EQ(j.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(checkpoints("released"), 0u);

  c = run_two_epochs("requeued", kLongTtl);  // to resume later, then cancelled
  ASSERT_OK(store_->ReleaseJob(c.lease, c.job));
  ASSERT_OK_AND_ASSIGN(j, store_->GetJob("requeued"));
  EXPECT_EQ(j.state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(checkpoints("requeued"), 2u);
  ASSERT_OK_AND_ASSIGN(j, store_->CancelJob("requeued"));
  EXPECT_EQ(j.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(checkpoints("requeued"), 0u);

  run_two_epochs("reaped", kShortTtl);  // with a cancel pending
  ASSERT_OK(store_->CancelJob("reaped"));
  run_two_epochs("failed", kShortTtl);  // reaped out of attempts
  absl::SleepFor(kExpired);
  ASSERT_OK_AND_ASSIGN(ReapResult reaped, store_->ReapExpiredLeases(1));
  EXPECT_EQ(reaped.cancelled, 1);
  EXPECT_EQ(reaped.failed, 1);
  EXPECT_EQ(checkpoints("reaped"), 0u);
  EXPECT_EQ(checkpoints("failed"), 0u);

  c = run_two_epochs("s-0", kLongTtl);  // the sweep's, queued again
  ASSERT_OK(store_->ReleaseJob(c.lease, c.job));
  ASSERT_OK(store_->CancelSweep("s"));
  ASSERT_OK_AND_ASSIGN(j, store_->GetJob("s-0"));
  EXPECT_EQ(j.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(checkpoints("s-0"), 0u);
}

TEST_P(StoreTest, CancelSweepCancelsItsOpenJobs) {
  ASSERT_OK(store_->InsertSweep(MakeSweep("s1", 100), SweepJobs("s1", 4, 100),
                                100));
  ASSERT_OK(store_->InsertSweep(MakeSweep("s2", 200), SweepJobs("s2", 1, 200),
                                100));
  ClaimedJob done = Claim();  // s1-0 succeeds
  done.job.set_state(v1::JOB_STATE_SUCCEEDED);
  ASSERT_OK(store_->FinishJob(done.lease, done.job, std::nullopt));
  ClaimedJob running = Claim();  // s1-1 runs
  EXPECT_EQ(running.lease.job_id, "s1-1");

  ASSERT_OK_AND_ASSIGN(v1::Sweep cancelled, store_->CancelSweep("s1"));
  EXPECT_TRUE(cancelled.cancel_requested());
  ASSERT_OK_AND_ASSIGN(v1::Sweep got, store_->GetSweep("s1"));
  EXPECT_TRUE(got.cancel_requested());
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob j0, store_->GetJob("s1-0"));
  EXPECT_EQ(j0.state(), v1::JOB_STATE_SUCCEEDED);
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob j1, store_->GetJob("s1-1"));
  EXPECT_EQ(j1.state(), v1::JOB_STATE_RUNNING);
  EXPECT_TRUE(j1.cancel_requested());
  for (const char* id : {"s1-2", "s1-3"}) {
    ASSERT_OK_AND_ASSIGN(v1::TrainingJob j, store_->GetJob(id));
    EXPECT_EQ(j.state(), v1::JOB_STATE_CANCELLED) << id;
  }
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob other, store_->GetJob("s2-0"));
  EXPECT_EQ(other.state(), v1::JOB_STATE_QUEUED);
  ASSERT_OK_AND_ASSIGN(bool cancel,
                       store_->Heartbeat(running.lease, running.job, kLongTtl));
  EXPECT_TRUE(cancel);
  ASSERT_OK(store_->CancelSweep("s1"));  // idempotent
  EXPECT_THAT(store_->CancelSweep("nope"), StatusIs(Code::kNotFound, ""));
}

TEST_P(StoreTest, ReapExpiredLeases) {
  InsertJobs({"a", "b", "c", "d"});
  Claim(kShortTtl);                      // a: dies
  Claim(kShortTtl);                      // b: dies with a cancel
  Claim(kShortTtl);                      // c: dies
  const ClaimedJob d = Claim(kLongTtl);  // d: alive
  ASSERT_OK(store_->CancelJob("b"));
  absl::SleepFor(kExpired);

  ASSERT_OK_AND_ASSIGN(ReapResult reaped, store_->ReapExpiredLeases(2));
  EXPECT_EQ(reaped.requeued, 2);
  EXPECT_EQ(reaped.cancelled, 1);
  EXPECT_EQ(reaped.failed, 0);
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob a, store_->GetJob("a"));
  EXPECT_EQ(a.state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(a.restarts(), 1);
  EXPECT_EQ(a.worker(), "");
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob b, store_->GetJob("b"));
  EXPECT_EQ(b.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_TRUE(b.has_end_time());
  EXPECT_FALSE(b.cancel_requested());
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob stored_d, store_->GetJob("d"));
  EXPECT_EQ(stored_d.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(stored_d.revision(), d.job.revision());
  // Idempotent.
  ASSERT_OK_AND_ASSIGN(reaped, store_->ReapExpiredLeases(2));
  EXPECT_EQ(reaped.requeued + reaped.cancelled + reaped.failed, 0);

  // Out of attempts: a dies a second time.
  const ClaimedJob a2 = Claim(kShortTtl);
  EXPECT_EQ(a2.lease.job_id, "a");
  EXPECT_EQ(a2.job.attempt(), 2);
  EXPECT_EQ(Claim(kLongTtl).lease.job_id, "c");
  absl::SleepFor(kExpired);
  ASSERT_OK_AND_ASSIGN(reaped, store_->ReapExpiredLeases(2));
  EXPECT_EQ(reaped.failed, 1);
  EXPECT_EQ(reaped.requeued + reaped.cancelled, 0);
  ASSERT_OK_AND_ASSIGN(a, store_->GetJob("a"));
  EXPECT_EQ(a.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(a.failure_reason(), HasSubstr("attempt 2 of 2"));
  EXPECT_TRUE(a.has_end_time());
  ASSERT_OK(store_->Heartbeat(d.lease, d.job, kLongTtl));
}

TEST_P(StoreTest, ReleaseJobGivesTheAttemptBack) {
  InsertJobs({"j"});
  ClaimedJob claimed = Claim();
  EXPECT_EQ(claimed.job.attempt(), 1);
  claimed.job.set_progress(0.4);
  claimed.job.set_epochs_done(1);
  ASSERT_OK(store_->ReleaseJob(claimed.lease, claimed.job));
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob stored, store_->GetJob("j"));
  EXPECT_EQ(stored.state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(stored.attempt(), 0);
  EXPECT_EQ(stored.restarts(), 1);
  EXPECT_EQ(stored.worker(), "");
  EXPECT_EQ(stored.progress(), 0.4);
  EXPECT_EQ(stored.epochs_done(), 1);
  EXPECT_THAT(store_->Heartbeat(claimed.lease, claimed.job, kLongTtl),
              StatusIs(Code::kAborted, "lease lost"));
  EXPECT_THAT(store_->ReleaseJob(claimed.lease, claimed.job),
              StatusIs(Code::kAborted, "lease lost"));
  const ClaimedJob again = Claim();
  EXPECT_EQ(again.job.attempt(), 1);
  EXPECT_NE(again.lease.token, claimed.lease.token);
}

TEST_P(StoreTest, RevisionIncreasesWithEveryWrite) {
  std::vector<int64_t> revisions;
  auto stored_revision = [&] {
    absl::StatusOr<v1::TrainingJob> job = store_->GetJob("j");
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? job->revision() : -1;
  };
  ASSERT_OK_AND_ASSIGN(Store::Inserted inserted,
                       store_->InsertJob(MakeJob("j", 100), 10));
  revisions.push_back(inserted.job.revision());
  ClaimedJob claimed = Claim();
  revisions.push_back(claimed.job.revision());
  ASSERT_OK(store_->Heartbeat(claimed.lease, claimed.job, kLongTtl));
  revisions.push_back(stored_revision());
  ASSERT_OK(store_->RecordEpoch(claimed.lease, claimed.job, MakeEpoch(1, 1.0),
                                "ckpt"));
  revisions.push_back(stored_revision());
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob cancelled, store_->CancelJob("j"));
  revisions.push_back(cancelled.revision());
  claimed.job.set_state(v1::JOB_STATE_CANCELLED);
  ASSERT_OK_AND_ASSIGN(
      v1::TrainingJob finished,
      store_->FinishJob(claimed.lease, claimed.job, std::nullopt));
  revisions.push_back(finished.revision());
  EXPECT_EQ(stored_revision(), finished.revision());
  for (size_t i = 1; i < revisions.size(); ++i) {
    EXPECT_GT(revisions[i], revisions[i - 1]) << "write " << i;
  }
}

TEST_P(StoreTest, ChangeCallbackFollowsEveryJobWrite) {
  store_->SetChangeCallback([this](const std::string& id) {
    std::lock_guard<std::mutex> lock(changes_mu_);
    changes_.insert(id);
  });
  size_t seen = 0;
  // Each write calls back at once (LISTEN may add more, later).
  auto changed = [&](const std::string& id) {
    std::lock_guard<std::mutex> lock(changes_mu_);
    const size_t now = changes_.count(id);
    const bool more = now > seen;
    seen = now;
    return more;
  };
  InsertJobs({"j"});
  EXPECT_TRUE(changed("j")) << "insert";
  ClaimedJob claimed = Claim(kShortTtl);
  EXPECT_TRUE(changed("j")) << "claim";
  ASSERT_OK(store_->Heartbeat(claimed.lease, claimed.job, kShortTtl));
  EXPECT_TRUE(changed("j")) << "heartbeat";
  ASSERT_OK(store_->RecordEpoch(claimed.lease, claimed.job, MakeEpoch(1, 1.0),
                                "ckpt"));
  EXPECT_TRUE(changed("j")) << "epoch";
  ASSERT_OK(store_->ReleaseJob(claimed.lease, claimed.job));
  EXPECT_TRUE(changed("j")) << "release";
  claimed = Claim(kShortTtl);
  EXPECT_TRUE(changed("j")) << "claim";
  ASSERT_OK(store_->CancelJob("j"));
  EXPECT_TRUE(changed("j")) << "cancel";
  absl::SleepFor(kExpired);
  ASSERT_OK(store_->ReapExpiredLeases(3));
  EXPECT_TRUE(changed("j")) << "reap";
  ASSERT_OK_AND_ASSIGN(v1::TrainingJob job, store_->GetJob("j"));
  EXPECT_EQ(job.state(), v1::JOB_STATE_CANCELLED);

  InsertJobs({"k"});
  seen = 0;
  EXPECT_TRUE(changed("k")) << "insert";
  claimed = Claim();
  EXPECT_TRUE(changed("k")) << "claim";
  claimed.job.set_state(v1::JOB_STATE_FAILED);
  ASSERT_OK(store_->FinishJob(claimed.lease, claimed.job, std::nullopt));
  EXPECT_TRUE(changed("k")) << "finish";
}

// ---------------------------------------------------------------------------
// Datasets, models, blobs.

TEST_P(StoreTest, Datasets) {
  const v1::Dataset b = MakeDataset("b-set");
  ASSERT_OK(store_->InsertDataset(b, "1,2\n"));
  ASSERT_OK(store_->InsertDataset(MakeDataset("a-set"), "3,4\n"));
  EXPECT_THAT(store_->InsertDataset(b, "other"),
              StatusIs(Code::kAlreadyExists, "b-set"));
  EXPECT_THAT(store_->InsertDataset(MakeDataset(""), "x"),
              StatusIs(Code::kInvalidArgument, "empty"));
  ASSERT_OK_AND_ASSIGN(std::string bytes,
                       store_->blobs().Get(DatasetBlobKey("b-set")));
  EXPECT_EQ(bytes, "1,2\n");

  ASSERT_OK_AND_ASSIGN(v1::Dataset got, store_->GetDataset("b-set"));
  EXPECT_EQ(got.SerializeAsString(), b.SerializeAsString());
  EXPECT_THAT(store_->GetDataset("none"), StatusIs(Code::kNotFound, "none"));
  ASSERT_OK_AND_ASSIGN(auto all, store_->ListDatasets());
  ASSERT_THAT(all, SizeIs(2));
  EXPECT_EQ(all[0].name(), "a-set");
  EXPECT_EQ(all[1].name(), "b-set");

  ASSERT_OK(store_->DeleteDataset("b-set"));
  EXPECT_THAT(store_->GetDataset("b-set"), StatusIs(Code::kNotFound, "b-set"));
  EXPECT_THAT(store_->blobs().Get(DatasetBlobKey("b-set")),
              StatusIs(Code::kNotFound, "b-set"));
  EXPECT_THAT(store_->DeleteDataset("b-set"),
              StatusIs(Code::kNotFound, "b-set"));
  ASSERT_OK_AND_ASSIGN(StoreCounts c, store_->Count());
  EXPECT_EQ(c.datasets, 1);
}

TEST_P(StoreTest, Models) {
  EXPECT_EQ(Publish("j1", "zeta", "z1").version(), 1);
  EXPECT_EQ(Publish("j2", "alpha", "a1").version(), 1);
  EXPECT_EQ(Publish("j3", "alpha", "a2").version(), 2);

  ASSERT_OK_AND_ASSIGN(auto all, store_->ListModels(""));
  EXPECT_THAT(Keys(all), ElementsAre(std::make_pair("alpha", 1),
                                     std::make_pair("alpha", 2),
                                     std::make_pair("zeta", 1)));
  ASSERT_OK_AND_ASSIGN(auto alpha, store_->ListModels("alpha"));
  EXPECT_THAT(alpha, SizeIs(2));
  ASSERT_OK_AND_ASSIGN(auto none, store_->ListModels("none"));
  EXPECT_THAT(none, IsEmpty());

  ASSERT_OK_AND_ASSIGN(v1::Model latest, store_->GetModel("alpha", 0));
  EXPECT_EQ(latest.version(), 2);
  EXPECT_EQ(latest.source_job_id(), "j3");
  ASSERT_OK_AND_ASSIGN(v1::Model first, store_->GetModel("alpha", 1));
  EXPECT_EQ(first.source_job_id(), "j2");
  EXPECT_THAT(store_->GetModel("alpha", 3),
              StatusIs(Code::kNotFound, "version 3"));
  EXPECT_THAT(store_->GetModel("none", 0), StatusIs(Code::kNotFound, "none"));
  EXPECT_THAT(store_->GetModel("alpha", -1),
              StatusIs(Code::kInvalidArgument, "-1"));

  EXPECT_THAT(store_->DeleteModel("alpha", 0),
              StatusIs(Code::kInvalidArgument, "version 0"));
  EXPECT_THAT(store_->DeleteModel("alpha", 7),
              StatusIs(Code::kNotFound, "version 7"));
  ASSERT_OK(store_->DeleteModel("alpha", 1));
  EXPECT_THAT(store_->blobs().Get(ModelBlobKey("j2")),
              StatusIs(Code::kNotFound, "j2"));
  ASSERT_OK_AND_ASSIGN(std::string bytes,
                       store_->blobs().Get(ModelBlobKey("j3")));
  EXPECT_EQ(bytes, "a2");
  ASSERT_OK_AND_ASSIGN(StoreCounts c, store_->Count());
  EXPECT_EQ(c.models, 2);
}

TEST_P(StoreTest, InsertModelNumbersImportsWithJobsVersions) {
  EXPECT_EQ(Publish("j1", "m", "job-1").version(), 1);
  ASSERT_OK_AND_ASSIGN(v1::Model imported,
                       store_->InsertModel(MakeModel("m", "imported-2")));
  EXPECT_EQ(imported.name(), "m");
  EXPECT_EQ(imported.version(), 2);
  EXPECT_EQ(imported.source_job_id(), "");
  EXPECT_EQ(imported.final_test_accuracy(), 0.9);
  EXPECT_EQ(ModelBlobKeyOf(imported), ImportedModelBlobKey("m", 2));
  ASSERT_OK_AND_ASSIGN(v1::Model stored, store_->GetModel("m", 2));
  EXPECT_EQ(stored.source_job_id(), "");
  ASSERT_OK_AND_ASSIGN(std::string bytes,
                       store_->blobs().Get(ModelBlobKeyOf(stored)));
  EXPECT_EQ(bytes, "imported-2");
  EXPECT_EQ(Publish("j2", "m", "job-3").version(), 3);
  ASSERT_OK_AND_ASSIGN(stored, store_->GetModel("m", 0));
  EXPECT_EQ(stored.source_job_id(), "j2");
  ASSERT_OK_AND_ASSIGN(imported,
                       store_->InsertModel(MakeModel("m", "imported-4")));
  EXPECT_EQ(imported.version(), 4);

  // Deleting an import removes its own file only (not another import's of
  // the same name, nor a job's); its version is not reused, neither by an
  // import nor by a job.
  ASSERT_OK(store_->DeleteModel("m", 2));
  EXPECT_THAT(store_->GetModel("m", 2), StatusIs(Code::kNotFound, "version 2"));
  EXPECT_THAT(store_->blobs().Get(ImportedModelBlobKey("m", 2)),
              StatusIs(Code::kNotFound, "imported-models"));
  ASSERT_OK_AND_ASSIGN(bytes,
                       store_->blobs().Get(ImportedModelBlobKey("m", 4)));
  EXPECT_EQ(bytes, "imported-4");
  ASSERT_OK_AND_ASSIGN(bytes, store_->blobs().Get(ModelBlobKey("j1")));
  EXPECT_EQ(bytes, "job-1");
  ASSERT_OK(store_->DeleteModel("m", 4));  // the latest
  EXPECT_EQ(Publish("j3", "m", "job-5").version(), 5);
  ASSERT_OK_AND_ASSIGN(imported,
                       store_->InsertModel(MakeModel("m", "imported-6")));
  EXPECT_EQ(imported.version(), 6);
  ASSERT_OK_AND_ASSIGN(stored, store_->GetModel("m", 0));
  EXPECT_EQ(stored.version(), 6);
  ASSERT_OK_AND_ASSIGN(auto models, store_->ListModels("m"));
  EXPECT_THAT(Keys(models),
              ElementsAre(std::make_pair("m", 1), std::make_pair("m", 3),
                          std::make_pair("m", 5), std::make_pair("m", 6)));
  for (const v1::Model& m : models) {
    ASSERT_OK_AND_ASSIGN(bytes, store_->blobs().Get(ModelBlobKeyOf(m)));
    EXPECT_EQ(bytes,
              absl::StrCat(m.source_job_id().empty() ? "imported-" : "job-",
                           m.version()));
  }

  // A name of its own starts at 1; a binary file of several MB (larger than
  // gRPC's default message) comes back byte for byte.
  std::string big(5 << 20, '\0');
  std::mt19937 rng(7);
  for (char& c : big) c = static_cast<char>(rng());
  ASSERT_OK_AND_ASSIGN(imported, store_->InsertModel(MakeModel("big", big)));
  EXPECT_EQ(imported.version(), 1);
  ASSERT_OK_AND_ASSIGN(bytes, store_->blobs().Get(ModelBlobKeyOf(imported)));
  EXPECT_TRUE(bytes == big) << "the stored file differs";
  ASSERT_OK_AND_ASSIGN(StoreCounts c, store_->Count());
  EXPECT_EQ(c.models, 5);
}

TEST_P(StoreTest, InsertModelRefusesWhatCannotBeStored) {
  EXPECT_THAT(store_->InsertModel(MakeModel("", "bytes")),
              StatusIs(Code::kInvalidArgument, "name"));
  EXPECT_THAT(store_->InsertModel(MakeModel("../escape", "bytes")),
              StatusIs(Code::kInvalidArgument, "'/'"));
  EXPECT_THAT(store_->InsertModel(MakeModel("a@1", "bytes")),
              StatusIs(Code::kInvalidArgument, "'@'"));
  EXPECT_THAT(store_->InsertModel(MakeModel("m", "")),
              StatusIs(Code::kInvalidArgument, "empty"));
  // Nothing written, no version used.
  ASSERT_OK_AND_ASSIGN(auto all, store_->ListModels(""));
  EXPECT_THAT(all, IsEmpty());
  ASSERT_OK_AND_ASSIGN(v1::Model m, store_->InsertModel(MakeModel("m", "b")));
  EXPECT_EQ(m.version(), 1);
}

TEST_P(StoreTest, ConcurrentImportsAndJobsTakeDistinctVersions) {
  constexpr int kThreads = 4, kEach = 10;
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<int> versions;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        absl::StatusOr<v1::Model> m = store_->InsertModel(MakeModel("m", "b"));
        ASSERT_TRUE(m.ok()) << m.status();
        std::lock_guard<std::mutex> lock(mu);
        versions.insert(m->version());
      }
    });
  }
  // Jobs publishing meanwhile, on this thread.
  for (int i = 0; i < 3; ++i) {
    const int version = Publish(absl::StrCat("j", i), "m", "job").version();
    std::lock_guard<std::mutex> lock(mu);
    versions.insert(version);
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(versions.size(), kThreads * kEach + 3u);
  EXPECT_EQ(*versions.begin(), 1);
  EXPECT_EQ(*versions.rbegin(), kThreads * kEach + 3);
}

TEST_P(StoreTest, Blobs) {
  BlobStore& blobs = store_->blobs();
  EXPECT_THAT(blobs.Get("models/x.spnm"), StatusIs(Code::kNotFound, "x"));
  const std::string binary("\0\x01\xff zero\0", 9);
  ASSERT_OK(blobs.Put("models/x.spnm", binary));
  ASSERT_OK_AND_ASSIGN(std::string got, blobs.Get("models/x.spnm"));
  EXPECT_EQ(got, binary);
  ASSERT_OK(blobs.Put("models/x.spnm", "replaced"));
  ASSERT_OK_AND_ASSIGN(got, blobs.Get("models/x.spnm"));
  EXPECT_EQ(got, "replaced");
  ASSERT_OK(blobs.Put("models/x.spnm", ""));
  ASSERT_OK_AND_ASSIGN(got, blobs.Get("models/x.spnm"));
  EXPECT_EQ(got, "");

  std::string big(1 << 20, '\0');
  std::mt19937 rng(7);
  for (char& c : big) c = static_cast<char>(rng());
  ASSERT_OK(blobs.Put("datasets/big.csv", big));
  ASSERT_OK_AND_ASSIGN(got, blobs.Get("datasets/big.csv"));
  EXPECT_TRUE(got == big);

  ASSERT_OK(blobs.Delete("models/x.spnm"));
  EXPECT_THAT(blobs.Get("models/x.spnm"), StatusIs(Code::kNotFound, "x"));
  ASSERT_OK(blobs.Delete("models/x.spnm"));  // already gone
}

// ---------------------------------------------------------------------------
// PostgreSQL only.

class PostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_POSTGRES();
    ASSERT_OK_AND_ASSIGN(db_, PgDatabase::Create());
  }

  std::unique_ptr<PgDatabase> db_;
};

TEST_F(PostgresTest, ReplicasOpeningTogetherMigrateOnce) {
  std::vector<absl::StatusOr<std::unique_ptr<PostgresStore>>> stores(3);
  std::vector<std::thread> threads;
  for (auto& store : stores) {
    threads.emplace_back([&] { store = db_->Open(); });
  }
  for (std::thread& t : threads) t.join();
  for (auto& store : stores) {
    ASSERT_OK(store);
    ASSERT_OK((*store)->Ping());
  }
  ASSERT_OK_AND_ASSIGN(int64_t migrations,
                       db_->QueryInt("SELECT count(*) FROM schema_migrations"));
  EXPECT_EQ(migrations, kPostgresSchema);  // one row per migration
  ASSERT_OK_AND_ASSIGN(
      int64_t version,
      db_->QueryInt("SELECT max(version) FROM schema_migrations"));
  EXPECT_EQ(version, kPostgresSchema);
}

TEST_F(PostgresTest, NewerSchemaIsRefused) {
  ASSERT_OK(db_->Open());
  ASSERT_OK(
      db_->Exec("INSERT INTO schema_migrations (version, applied_at) VALUES "
                "(999, now())"));
  EXPECT_THAT(db_->Open(),
              StatusIs(Code::kFailedPrecondition,
                       "database schema version 999 is newer than this "
                       "spinnet-server knows (2); upgrade the server"));
}

TEST_F(PostgresTest, WrongPasswordIsRefused) {
  EXPECT_THAT(
      PostgresStore::Open(db_->url(), "wrong-password", PostgresOptions()),
      StatusIs(Code::kFailedPrecondition, "password authentication failed"));
}

// Without a database.
TEST(PostgresOpenTest, PasswordInTheUrlIsRefused) {
  for (const std::string& url :
       {std::string("postgresql://spinnet:secret@127.0.0.1:1/db"),
        std::string("postgresql://spinnet@127.0.0.1:1/db?password=secret")}) {
    const absl::StatusOr<std::unique_ptr<PostgresStore>> store =
        PostgresStore::Open(url, "", PostgresOptions());
    EXPECT_THAT(store, StatusIs(Code::kInvalidArgument, "must not carry"));
    EXPECT_THAT(store.status().message(), Not(HasSubstr("secret")));
  }
}

TEST(PostgresOpenTest, UnreachableDatabaseIsUnavailableAtOnce) {
  const std::string url =
      absl::StrCat("postgresql://spinnet@127.0.0.1:", FreePort(), "/spinnet");
  const absl::Time start = absl::Now();
  const absl::StatusOr<std::unique_ptr<PostgresStore>> store =
      PostgresStore::Open(url, "secret-pw", PostgresOptions());
  EXPECT_LT(absl::Now() - start, absl::Seconds(6));
  EXPECT_THAT(store, StatusIs(Code::kUnavailable, url));
  EXPECT_THAT(store.status().message(), HasSubstr("refused"));
  EXPECT_THAT(store.status().message(), Not(HasSubstr("secret-pw")));
}

TEST_F(PostgresTest, CorruptBlobsAreDataLoss) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<PostgresStore> store, db_->Open());
  ASSERT_OK(store->blobs().Put("datasets/d.csv", "hello"));
  ASSERT_OK(
      db_->Exec("UPDATE blobs SET bytes = 'jello' "
                "WHERE key = 'datasets/d.csv'"));
  EXPECT_THAT(store->blobs().Get("datasets/d.csv"),
              StatusIs(Code::kDataLoss, "datasets/d.csv"));

  // A corrupt newest checkpoint: the previous one is still there.
  ASSERT_OK(store->InsertJob(MakeJob("j", 100), 10));
  ASSERT_OK_AND_ASSIGN(std::optional<ClaimedJob> claimed,
                       store->ClaimJob("w", kLongTtl));
  ASSERT_TRUE(claimed.has_value());
  ASSERT_OK(store->RecordEpoch(claimed->lease, claimed->job, MakeEpoch(1, 1.0),
                               "ckpt-1"));
  ASSERT_OK(store->RecordEpoch(claimed->lease, claimed->job, MakeEpoch(2, 1.0),
                               "ckpt-2"));
  ASSERT_OK(
      db_->Exec(absl::StrCat("UPDATE blobs SET bytes = 'bitrot' "
                             "WHERE key = '",
                             CheckpointBlobKey("j"), "'")));
  ASSERT_OK_AND_ASSIGN(Store::Checkpoints checkpoints,
                       store->LoadCheckpoints("j"));
  EXPECT_THAT(checkpoints.newest_first, ElementsAre("ckpt-1"));
  ASSERT_THAT(checkpoints.skipped, SizeIs(1));
  EXPECT_THAT(checkpoints.skipped[0], StatusIs(Code::kDataLoss, "corrupt"));
}

// Waits until a write of `writer` reaches `seen` through LISTEN/NOTIFY. The
// first writes may come before the listener has connected; each write is a
// new job, so that a late notification of an old one does not count.
absl::Duration NotifyLatency(Store& writer, const std::function<size_t()>& seen,
                             absl::Duration timeout) {
  static int next = 0;
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    const size_t before = seen();
    const absl::Time start = absl::Now();
    ++next;
    const absl::Status inserted =
        writer.InsertJob(MakeJob(absl::StrCat("n", next), next), 1000).status();
    if (inserted.ok() &&
        Eventually([&] { return seen() > before; }, absl::Milliseconds(500))) {
      return absl::Now() - start;
    }
  }
  return absl::InfiniteDuration();
}

TEST_F(PostgresTest, ListenNotifyWakesOtherReplicas) {
  std::atomic<size_t> seen_by_a{0};  // outlives A's LISTEN thread
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<PostgresStore> a, db_->Open());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<PostgresStore> b, db_->Open());
  a->SetChangeCallback([&](const std::string&) { ++seen_by_a; });
  // Once listening, a change wakes A within a second.
  EXPECT_LT(NotifyLatency(
                *b, [&] { return seen_by_a.load(); }, absl::Seconds(5)),
            absl::Seconds(1));
  EXPECT_LT(NotifyLatency(
                *b, [&] { return seen_by_a.load(); }, absl::Seconds(1)),
            absl::Seconds(1));
}

// The database crashes and comes back: calls fail UNAVAILABLE quickly
// meanwhile and succeed afterwards on the same store, LISTEN included.
TEST_F(PostgresTest, RecoversAfterADatabaseRestart) {
  const std::string stop = Env("SPINNET_TEST_PG_STOP_CMD");
  const std::string start = Env("SPINNET_TEST_PG_START_CMD");
  ASSERT_FALSE(stop.empty() || start.empty())
      << "SPINNET_TEST_PG_STOP_CMD and _START_CMD come from pg_cluster.py";
  std::atomic<size_t> seen_by_a{0};  // outlives A's LISTEN thread
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<PostgresStore> a, db_->Open());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<PostgresStore> b, db_->Open());
  a->SetChangeCallback([&](const std::string&) { ++seen_by_a; });
  ASSERT_OK(a->InsertJob(MakeJob("j", 100), 10));
  // Every pooled connection open and idle.
  auto get_in_parallel = [&] {
    std::vector<absl::Status> results(4);
    std::vector<std::thread> threads;
    for (absl::Status& result : results) {
      threads.emplace_back([&] { result = a->GetJob("j").status(); });
    }
    for (std::thread& t : threads) t.join();
    return results;
  };
  for (const absl::Status& status : get_in_parallel()) ASSERT_OK(status);
  ASSERT_LT(NotifyLatency(
                *b, [&] { return seen_by_a.load(); }, absl::Seconds(5)),
            absl::Seconds(1));

  ASSERT_EQ(std::system((stop + " >/dev/null").c_str()), 0) << stop;
  const absl::Time down = absl::Now();
  EXPECT_THAT(a->GetJob("j"), StatusIs(Code::kUnavailable, "127.0.0.1"));
  EXPECT_THAT(a->Ping(), StatusIs(Code::kUnavailable, "127.0.0.1"));
  EXPECT_LT(absl::Now() - down, absl::Seconds(5));
  ASSERT_EQ(std::system((start + " >/dev/null").c_str()), 0) << start;

  // No call fails once the database is back: dead connections are replaced.
  for (const absl::Status& status : get_in_parallel()) ASSERT_OK(status);
  ASSERT_OK(a->InsertJob(MakeJob("k", 200), 10));
  // The listener reconnects (backoff up to 10 s).
  EXPECT_LT(NotifyLatency(
                *b, [&] { return seen_by_a.load(); }, absl::Seconds(15)),
            absl::Seconds(1));
}

// ---------------------------------------------------------------------------
// Store URLs.

class OpenStoreTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const std::string& path : cleanup_) std::filesystem::remove_all(path);
  }
  std::string TempPath(const std::string& name) {
    cleanup_.push_back((std::filesystem::temp_directory_path() /
                        absl::StrCat("spinnet-", name, "-", RandomHex(6)))
                           .string());
    return cleanup_.back();
  }
  std::string PasswordFile(const std::string& contents) {
    const std::string path = TempPath("pw");
    std::ofstream(path) << contents;
    return path;
  }

  std::vector<std::string> cleanup_;
};

TEST_F(OpenStoreTest, SqliteDataDirectory) {
  const std::string dir = TempPath("data");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store,
                       OpenStore({absl::StrCat("sqlite://", dir), ""}));
  EXPECT_EQ(store->Describe(), absl::StrCat("sqlite://", dir));
  ASSERT_OK(store->Ping());
  EXPECT_THAT(OpenStore({"sqlite://", ""}),
              StatusIs(Code::kInvalidArgument, "data directory"));
  EXPECT_THAT(OpenStore({"sqlite:///tmp/x", PasswordFile("pw\n")}),
              StatusIs(Code::kInvalidArgument, "password file"));
}

TEST_F(OpenStoreTest, UnknownUrl) {
  EXPECT_THAT(OpenStore({"mysql://db/x", ""}),
              StatusIs(Code::kInvalidArgument,
                       "unknown store URL \"mysql://db/x\"; use sqlite://DIR "
                       "or postgresql://USER@HOST:PORT/DB"));
  EXPECT_THAT(OpenStore({"/var/lib/spinnet", ""}),
              StatusIs(Code::kInvalidArgument, "unknown store URL"));
}

TEST_F(OpenStoreTest, PostgresPasswordFile) {
  EXPECT_THAT(OpenStore({"postgresql://u:secret@127.0.0.1:1/db", ""}),
              StatusIs(Code::kInvalidArgument, "must not carry a password"));
  const std::string empty = PasswordFile(" \n");
  EXPECT_THAT(OpenStore({"postgresql://u@127.0.0.1:1/db", empty}),
              StatusIs(Code::kInvalidArgument, empty));
  EXPECT_THAT(OpenStore({"postgres://u@127.0.0.1:1/db", "/nonexistent/pw"}),
              StatusIs(Code::kNotFound, "/nonexistent/pw"));

  REQUIRE_POSTGRES();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<PgDatabase> db, PgDatabase::Create());
  const std::string password_file =
      PasswordFile(absl::StrCat(PgDatabase::password(), "\n"));
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store,
                         OpenStore({db->url(), password_file}));
    EXPECT_EQ(store->Describe(), db->url());
    ASSERT_OK(store->Ping());
  }
  EXPECT_THAT(OpenStore({db->url(), PasswordFile("wrong\n")}),
              StatusIs(Code::kFailedPrecondition, "authentication failed"));
}

}  // namespace
}  // namespace spinnet::server
