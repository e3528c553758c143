// What the SQLite backend adds to the Store contract (which
// store_conformance_test checks for every backend): one server per data
// directory, files as blobs, durability across reopening and a kill -9,
// migration of a schema-1 database, leases of a dead process expired at
// open, and damaged data refused with DATA_LOSS instead of a crash.
#include "server/storage/sqlite_store.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "tests/status_matchers.h"

namespace spinnet::server {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::google::protobuf::util::TimeUtil;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using spinnet::status_testing::StatusIs;

MATCHER_P(EqualsProto, expected, "") {
  return MessageDifferencer::Equals(arg, expected);
}

v1::TrainingJob MakeJob(const std::string& id, int64_t create_us,
                        v1::JobState state = v1::JOB_STATE_QUEUED,
                        const std::string& request_id = "") {
  v1::TrainingJob job;
  job.set_id(id);
  job.set_request_id(request_id);
  job.set_model_name("ecg-net");
  job.set_dataset("ecg");
  job.mutable_spec()->set_neurons(32);
  job.mutable_spec()->set_lr(3e-3);
  job.set_state(state);
  job.set_epochs_total(20);
  *job.mutable_create_time() = TimeUtil::MicrosecondsToTimestamp(create_us);
  return job;
}

v1::EpochMetrics MakeEpoch(int epoch, double loss) {
  v1::EpochMetrics m;
  m.set_epoch(epoch);
  m.set_train_loss(loss);
  m.set_test_accuracy(0.5 + 0.01 * epoch);
  return m;
}

v1::Dataset MakeDataset(const std::string& name) {
  v1::Dataset d;
  d.set_name(name);
  d.set_input_dim(2);
  d.set_steps(100);
  d.set_sequences(640);
  d.add_class_labels("normal");
  d.add_class_labels("arrhythmia");
  d.set_sha256("ab12");
  return d;
}

v1::Model MakeModel(const std::string& name, double accuracy = 0.9) {
  v1::Model m;
  m.set_name(name);
  m.set_dataset("ecg");
  m.set_input_dim(2);
  m.set_final_test_accuracy(accuracy);
  m.add_class_labels("normal");
  m.mutable_spec()->set_layers(2);
  return m;
}

// Runs SQL on the file through a second connection, as a tool or a bit rot
// would, bypassing the store.
void RawExec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (error ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
}

// The single value a query yields through a second connection, as text.
std::string RawQuery(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  std::string value;
  if (sqlite3_open(path.c_str(), &db) == SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return value;
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "/sqlite_store_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr) << strerror(errno);
    dir_ = pattern;
    db_ = dir_ + "/spinnet.db";
    ASSERT_NO_FATAL_FAILURE(Reopen());
  }

  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Reopen() {
    store_.reset();  // closed (and unlocked) before the next open
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(dir_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  // Inserts a queued job and claims it.
  ClaimedJob Claim(const std::string& id, int64_t create_us) {
    EXPECT_TRUE(store_->InsertJob(MakeJob(id, create_us), 100).ok());
    absl::StatusOr<std::optional<ClaimedJob>> claimed =
        store_->ClaimJob("w1", absl::Seconds(30));
    EXPECT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status();
    return **claimed;
  }

  // Claims and finishes job `id`, publishing a version of model `name`.
  int Publish(const std::string& id, const std::string& name) {
    ClaimedJob c = Claim(id, 1);
    v1::TrainingJob job = c.job;
    job.set_state(v1::JOB_STATE_SUCCEEDED);
    absl::StatusOr<v1::TrainingJob> done =
        store_->FinishJob(c.lease, job, ModelToPublish{MakeModel(name), "bytes"});
    EXPECT_TRUE(done.ok()) << done.status();
    return done.ok() ? done->model_version() : -1;
  }

  std::string dir_;
  std::string db_;
  std::unique_ptr<SqliteStore> store_;
};

TEST_F(SqliteStoreTest, CreatesWalDatabaseWithTheNewestSchema) {
  EXPECT_EQ(RawQuery(db_, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(RawQuery(db_, "PRAGMA user_version"), "3");
  EXPECT_EQ(store_->Describe(), "sqlite://" + dir_);
  EXPECT_TRUE(store_->Ping().ok());
}

TEST_F(SqliteStoreTest, OneServerPerDataDirectory) {
  EXPECT_THAT(SqliteStore::Open(dir_),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "another spinnet-server is already running"));
  store_.reset();
  EXPECT_TRUE(SqliteStore::Open(dir_).ok());  // the lock went with the store
}

TEST_F(SqliteStoreTest, BlobsAreFilesInTheDataDirectory) {
  ClaimedJob c = Claim("j-1", 1);
  const std::string ckpt = dir_ + "/checkpoints/j-1.ckpt";
  ASSERT_TRUE(store_->RecordEpoch(c.lease, c.job, MakeEpoch(1, 0.9), "one").ok());
  ASSERT_TRUE(store_->RecordEpoch(c.lease, c.job, MakeEpoch(2, 0.8), "two").ok());
  std::ifstream newest(ckpt), previous(ckpt + ".prev");
  std::string a, b;
  newest >> a;
  previous >> b;
  EXPECT_EQ(a, "two");
  EXPECT_EQ(b, "one");
  v1::TrainingJob job = c.job;
  job.set_state(v1::JOB_STATE_SUCCEEDED);
  ASSERT_TRUE(
      store_->FinishJob(c.lease, job, ModelToPublish{MakeModel("m"), "model"})
          .ok());
  EXPECT_FALSE(std::filesystem::exists(ckpt));
  EXPECT_FALSE(std::filesystem::exists(ckpt + ".prev"));
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/models/j-1.spnm"));
  ASSERT_TRUE(store_->InsertDataset(MakeDataset("ecg"), "1,2\n").ok());
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/datasets/ecg.csv"));
  ASSERT_TRUE(store_->DeleteDataset("ecg").ok());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/datasets/ecg.csv"));
  ASSERT_TRUE(store_->DeleteModel("m", 1).ok());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/models/j-1.spnm"));
}

TEST_F(SqliteStoreTest, DataSurvivesReopening) {
  ASSERT_EQ(Publish("j-1", "m"), 1);
  ASSERT_EQ(Publish("j-2", "m"), 2);
  ASSERT_TRUE(store_->DeleteModel("m", 2).ok());
  ASSERT_TRUE(store_->InsertDataset(MakeDataset("ecg"), "x").ok());

  ASSERT_NO_FATAL_FAILURE(Reopen());
  absl::StatusOr<v1::TrainingJob> got = store_->GetJob("j-1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(got->model_version(), 1);
  absl::StatusOr<v1::Dataset> dataset = store_->GetDataset("ecg");
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_THAT(*dataset, EqualsProto(MakeDataset("ecg")));
  // The deleted version 2 stays used across the restart.
  EXPECT_EQ(Publish("j-3", "m"), 3);
  EXPECT_TRUE(store_->IntegrityCheck().ok());
}

// A blob write cut short by a crash leaves a temp file (NAME.tmp.N); the
// next Open removes those and nothing else.
TEST_F(SqliteStoreTest, OpenRemovesBlobWritesCutShortByACrash) {
  store_.reset();
  const std::vector<std::string> stale = {
      "/checkpoints/j-1.ckpt.tmp.7", "/checkpoints/j-1.ckpt.tmp.7.tmp.4242",
      "/models/j-1.spnm.tmp.1", "/datasets/d.csv.tmp.99"};
  const std::vector<std::string> kept = {
      "/checkpoints/j-1.ckpt", "/datasets/d.tmp.csv", "/datasets/e.csv.tmp.",
      "/imported-models/m@1.spnm"};
  for (const std::string& name : stale) std::ofstream(dir_ + name) << "torn";
  for (const std::string& name : kept) std::ofstream(dir_ + name) << "whole";
  ASSERT_NO_FATAL_FAILURE(Reopen());
  for (const std::string& name : stale) {
    EXPECT_FALSE(std::filesystem::exists(dir_ + name)) << name;
  }
  for (const std::string& name : kept) {
    EXPECT_TRUE(std::filesystem::exists(dir_ + name)) << name;
  }
}

// A worker whose lease was taken writes no checkpoint: the new holder's
// files stay as they were.
TEST_F(SqliteStoreTest, ALostLeaseLeavesTheCheckpointsAsTheyWere) {
  ClaimedJob first = Claim("j-1", 1);
  ASSERT_TRUE(
      store_->RecordEpoch(first.lease, first.job, MakeEpoch(1, 0.9), "one")
          .ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());  // the lease expires
  ASSERT_TRUE(store_->ReapExpiredLeases(3).ok());
  absl::StatusOr<std::optional<ClaimedJob>> second =
      store_->ClaimJob("w2", absl::Seconds(30));
  ASSERT_TRUE(second.ok() && second->has_value()) << second.status();
  ASSERT_TRUE(store_
                  ->RecordEpoch((*second)->lease, (*second)->job,
                                MakeEpoch(2, 0.8), "two")
                  .ok());
  EXPECT_THAT(
      store_->RecordEpoch(first.lease, first.job, MakeEpoch(2, 0.5), "zombie"),
      StatusIs(absl::StatusCode::kAborted, "lease lost"));
  absl::StatusOr<Store::Checkpoints> checkpoints =
      store_->LoadCheckpoints("j-1");
  ASSERT_TRUE(checkpoints.ok()) << checkpoints.status();
  EXPECT_THAT(checkpoints->newest_first, ElementsAre("two", "one"));
  std::vector<std::string> files;
  for (const auto& entry :
       std::filesystem::directory_iterator(dir_ + "/checkpoints")) {
    files.push_back(entry.path().filename().string());
  }
  EXPECT_THAT(files,
              ::testing::UnorderedElementsAre("j-1.ckpt", "j-1.ckpt.prev"));
}

// The data dir lock proves the previous process is gone, so its leases need
// not run out: the first reap requeues the job.
TEST_F(SqliteStoreTest, OpenExpiresTheLeasesOfADeadProcess) {
  ClaimedJob c = Claim("j-1", 1);
  ASSERT_TRUE(store_->RecordEpoch(c.lease, c.job, MakeEpoch(1, 0.9), "ck").ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  absl::StatusOr<ReapResult> reaped = store_->ReapExpiredLeases(3);
  ASSERT_TRUE(reaped.ok()) << reaped.status();
  EXPECT_EQ(reaped->requeued, 1);
  absl::StatusOr<v1::TrainingJob> job = store_->GetJob("j-1");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(job->restarts(), 1);
  absl::StatusOr<Store::Checkpoints> checkpoints = store_->LoadCheckpoints("j-1");
  ASSERT_TRUE(checkpoints.ok()) << checkpoints.status();
  EXPECT_THAT(checkpoints->newest_first, ElementsAre("ck"));
  // The old token is fenced off.
  EXPECT_THAT(store_->Heartbeat(c.lease, c.job, absl::Seconds(1)),
              StatusIs(absl::StatusCode::kAborted, "lease lost"));
}

// A data dir written by the single-server release (schema 1, no leases):
// its queued job runs, its interrupted one resumes.
TEST_F(SqliteStoreTest, MigratesASchemaOneDatabase) {
  store_.reset();
  std::filesystem::remove(db_);
  std::filesystem::remove(db_ + "-wal");
  std::filesystem::remove(db_ + "-shm");
  std::string queued, running;
  ASSERT_TRUE(MakeJob("j-q", 2).SerializeToString(&queued));
  ASSERT_TRUE(MakeJob("j-r", 1, v1::JOB_STATE_RUNNING).SerializeToString(&running));
  auto hex = [](const std::string& bytes) {
    std::string out;
    for (unsigned char c : bytes) absl::StrAppend(&out, absl::Hex(c, absl::kZeroPad2));
    return out;
  };
  ASSERT_NO_FATAL_FAILURE(RawExec(
      db_, absl::StrCat(
               "CREATE TABLE jobs (id TEXT PRIMARY KEY NOT NULL, request_id "
               "TEXT UNIQUE, state INTEGER NOT NULL, create_us INTEGER NOT "
               "NULL, proto BLOB NOT NULL);"
               "CREATE INDEX jobs_by_time ON jobs (create_us, id);"
               "CREATE INDEX jobs_by_state_time ON jobs (state, create_us, id);"
               "CREATE TABLE epochs (job_id TEXT NOT NULL REFERENCES jobs (id) "
               "ON DELETE CASCADE, epoch INTEGER NOT NULL, proto BLOB NOT NULL, "
               "PRIMARY KEY (job_id, epoch));"
               "CREATE TABLE datasets (name TEXT PRIMARY KEY NOT NULL, proto "
               "BLOB NOT NULL);"
               "CREATE TABLE models (name TEXT NOT NULL, version INTEGER NOT "
               "NULL, proto BLOB NOT NULL, PRIMARY KEY (name, version));"
               "CREATE TABLE model_versions (name TEXT PRIMARY KEY NOT NULL, "
               "last_version INTEGER NOT NULL);"
               "INSERT INTO jobs VALUES ('j-q', NULL, 1, 2, x'", hex(queued),
               "');INSERT INTO jobs VALUES ('j-r', NULL, 2, 1, x'", hex(running),
               "');PRAGMA user_version = 1;")));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_EQ(RawQuery(db_, "PRAGMA user_version"), "3");
  absl::StatusOr<ReapResult> reaped = store_->ReapExpiredLeases(3);
  ASSERT_TRUE(reaped.ok()) << reaped.status();
  EXPECT_EQ(reaped->requeued, 1);
  // Oldest first: the interrupted job, then the queued one.
  for (const char* id : {"j-r", "j-q"}) {
    absl::StatusOr<std::optional<ClaimedJob>> c =
        store_->ClaimJob("w", absl::Seconds(30));
    ASSERT_TRUE(c.ok() && c->has_value()) << c.status();
    EXPECT_EQ((*c)->job.id(), id);
    EXPECT_EQ((*c)->job.attempt(), 1);
  }
}

// A kill -9 in the middle of a stream of commits loses none that returned
// OK and leaves a sound file.
TEST_F(SqliteStoreTest, CommitsSurviveKill) {
  store_.reset();
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0) << strerror(errno);
  const pid_t child = fork();
  ASSERT_GE(child, 0) << strerror(errno);
  if (child == 0) {
    close(pipe_fds[0]);
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(dir_);
    if (!store.ok()) _exit(1);
    for (int32_t i = 1;; ++i) {
      if (!(*store)->InsertJob(MakeJob(absl::StrCat("j-", i), i), 1 << 30).ok()) {
        _exit(2);
      }
      if (write(pipe_fds[1], &i, sizeof(i)) != sizeof(i)) _exit(3);
    }
  }
  close(pipe_fds[1]);
  int32_t last = 0;
  while (last < 50 && read(pipe_fds[0], &last, sizeof(last)) == sizeof(last)) {
  }
  kill(child, SIGKILL);
  int wait_status = 0;
  ASSERT_EQ(waitpid(child, &wait_status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(wait_status)) << "child exited " << wait_status;
  close(pipe_fds[0]);
  ASSERT_GE(last, 50);

  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_TRUE(store_->IntegrityCheck().ok());
  for (int32_t i = 1; i <= last; ++i) {
    EXPECT_TRUE(store_->GetJob(absl::StrCat("j-", i)).ok()) << i;
  }
}

TEST_F(SqliteStoreTest, CorruptRecordsAreDataLoss) {
  ClaimedJob c = Claim("j-1", 1);
  ASSERT_TRUE(store_->RecordEpoch(c.lease, c.job, MakeEpoch(2, 0.5), "ck").ok());
  ASSERT_TRUE(store_->InsertDataset(MakeDataset("ecg"), "x").ok());
  ASSERT_EQ(Publish("j-2", "m"), 1);
  // 0xff bytes: a field tag whose varint never ends.
  ASSERT_NO_FATAL_FAILURE(RawExec(db_,
                                  "UPDATE jobs SET proto = x'ffffffff';"
                                  "UPDATE epochs SET proto = x'ffffffff';"
                                  "UPDATE datasets SET proto = x'ffffffff';"
                                  "UPDATE models SET proto = x'ffffffff';"));
  EXPECT_THAT(store_->GetJob("j-1"),
              StatusIs(absl::StatusCode::kDataLoss, "jobs row"));
  EXPECT_THAT(store_->ListJobs(v1::JOB_STATE_UNSPECIFIED, 10, ""),
              StatusIs(absl::StatusCode::kDataLoss, "jobs row"));
  EXPECT_THAT(store_->ListEpochs("j-1"),
              StatusIs(absl::StatusCode::kDataLoss, "epochs row (\"j-1\", 2)"));
  EXPECT_THAT(store_->GetDataset("ecg"),
              StatusIs(absl::StatusCode::kDataLoss, "datasets row \"ecg\""));
  EXPECT_THAT(store_->GetModel("m", 1),
              StatusIs(absl::StatusCode::kDataLoss, "models row (\"m\", 1)"));
  // The file itself is sound.
  EXPECT_TRUE(store_->IntegrityCheck().ok());
}

TEST_F(SqliteStoreTest, NonDatabaseFileIsDataLoss) {
  store_.reset();
  std::ofstream(db_, std::ios::trunc) << std::string(4096, 'x');
  std::filesystem::remove(db_ + "-wal");
  std::filesystem::remove(db_ + "-shm");
  EXPECT_THAT(SqliteStore::Open(dir_),
              StatusIs(absl::StatusCode::kDataLoss, db_));
}

TEST_F(SqliteStoreTest, NewerSchemaIsRefused) {
  store_.reset();
  ASSERT_NO_FATAL_FAILURE(RawExec(db_, "PRAGMA user_version = 9"));
  EXPECT_THAT(SqliteStore::Open(dir_),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "schema version 9 is newer than this spinnet-server "
                       "knows (3)"));
}

TEST(SqliteStoreOpenTest, AFileWhereTheDirectoryShouldBeIsAnError) {
  const std::string path = ::testing::TempDir() + "/sqlite_store_test_file";
  std::ofstream(path) << "x";
  EXPECT_FALSE(SqliteStore::Open(path).ok());
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace spinnet::server
