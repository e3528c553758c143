// The embedded store: every method, its error codes, paging, model version
// numbering, durability across reopening and a kill -9, concurrency, and
// damaged data refused with DATA_LOSS instead of a crash.
#include "server/sqlite_store.h"

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

namespace spinnet::server {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::google::protobuf::util::TimeUtil;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

MATCHER_P(EqualsProto, expected, "") {
  return MessageDifferencer::Equals(arg, expected);
}

absl::Status StatusOf(const absl::Status& status) { return status; }
template <typename T>
absl::Status StatusOf(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

MATCHER_P2(StatusIs, code, message_part, "") {
  const absl::Status status = StatusOf(arg);
  *result_listener << "status is " << status;
  return status.code() == code &&
         absl::StrContains(status.message(), message_part);
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

std::vector<std::string> Ids(const std::vector<v1::TrainingJob>& jobs) {
  std::vector<std::string> ids;
  for (const v1::TrainingJob& job : jobs) ids.push_back(job.id());
  return ids;
}

std::vector<int> Versions(const std::vector<v1::Model>& models) {
  std::vector<int> versions;
  for (const v1::Model& m : models) versions.push_back(m.version());
  return versions;
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
    path_ = dir_ + "/store.db";
    ASSERT_NO_FATAL_FAILURE(Reopen());
  }

  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Reopen() {
    store_.reset();  // closed before the new connection opens
    absl::StatusOr<std::unique_ptr<SqliteStore>> store =
        SqliteStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  std::string dir_;
  std::string path_;
  std::unique_ptr<SqliteStore> store_;
};

TEST_F(SqliteStoreTest, CreatesWalDatabaseWithSchemaVersion) {
  EXPECT_EQ(RawQuery(path_, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(RawQuery(path_, "PRAGMA user_version"), "1");
  EXPECT_TRUE(store_->IntegrityCheck().ok());
}

TEST_F(SqliteStoreTest, JobRoundTripAndUpdate) {
  const v1::TrainingJob job = MakeJob("j-1", 1000, v1::JOB_STATE_QUEUED, "r-1");
  ASSERT_TRUE(store_->InsertJob(job).ok());

  absl::StatusOr<v1::TrainingJob> got = store_->GetJob("j-1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, EqualsProto(job));

  absl::StatusOr<std::optional<v1::TrainingJob>> found =
      store_->FindJobByRequestId("r-1");
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_TRUE(found->has_value());
  EXPECT_THAT(**found, EqualsProto(job));

  v1::TrainingJob running = job;
  running.set_state(v1::JOB_STATE_RUNNING);
  running.set_epochs_done(3);
  *running.mutable_latest_epoch() = MakeEpoch(3, 0.4);
  ASSERT_TRUE(store_->UpdateJob(running).ok());
  got = store_->GetJob("j-1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, EqualsProto(running));
  // The indexed state column follows the message.
  absl::StatusOr<std::vector<v1::TrainingJob>> by_state =
      store_->JobsInStates({v1::JOB_STATE_RUNNING});
  ASSERT_TRUE(by_state.ok()) << by_state.status();
  EXPECT_THAT(Ids(*by_state), ElementsAre("j-1"));
}

TEST_F(SqliteStoreTest, UnknownJobIsNotFound) {
  EXPECT_THAT(store_->GetJob("j-12"),
              StatusIs(absl::StatusCode::kNotFound, "job \"j-12\" not found"));
  EXPECT_THAT(store_->UpdateJob(MakeJob("j-12", 1)),
              StatusIs(absl::StatusCode::kNotFound, "job \"j-12\" not found"));
  absl::StatusOr<std::optional<v1::TrainingJob>> found =
      store_->FindJobByRequestId("r-unknown");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_FALSE(found->has_value());
}

TEST_F(SqliteStoreTest, DuplicateJobIdOrRequestIdAlreadyExists) {
  ASSERT_TRUE(
      store_->InsertJob(MakeJob("j-1", 1, v1::JOB_STATE_QUEUED, "r-1")).ok());
  EXPECT_THAT(
      store_->InsertJob(MakeJob("j-1", 2)),
      StatusIs(absl::StatusCode::kAlreadyExists, "job \"j-1\" already exists"));
  EXPECT_THAT(store_->InsertJob(MakeJob("j-2", 2, v1::JOB_STATE_QUEUED, "r-1")),
              StatusIs(absl::StatusCode::kAlreadyExists, "request id \"r-1\""));
  // An update may not take another job's request id either.
  ASSERT_TRUE(store_->InsertJob(MakeJob("j-3", 3)).ok());
  EXPECT_THAT(store_->UpdateJob(MakeJob("j-3", 3, v1::JOB_STATE_QUEUED, "r-1")),
              StatusIs(absl::StatusCode::kAlreadyExists, "request id \"r-1\""));
  // Jobs without a request id never collide with each other.
  ASSERT_TRUE(store_->InsertJob(MakeJob("j-4", 4)).ok());
  absl::StatusOr<std::optional<v1::TrainingJob>> found =
      store_->FindJobByRequestId("");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_FALSE(found->has_value());
  // The failed writes changed nothing.
  absl::StatusOr<v1::TrainingJob> j1 = store_->GetJob("j-1");
  ASSERT_TRUE(j1.ok()) << j1.status();
  EXPECT_THAT(*j1, EqualsProto(MakeJob("j-1", 1, v1::JOB_STATE_QUEUED, "r-1")));
  EXPECT_THAT(store_->GetJob("j-2"), StatusIs(absl::StatusCode::kNotFound, ""));
}

TEST_F(SqliteStoreTest, JobWithoutIdIsInvalid) {
  EXPECT_THAT(store_->InsertJob(MakeJob("", 1)),
              StatusIs(absl::StatusCode::kInvalidArgument, "job id is empty"));
}

class ListJobsTest : public SqliteStoreTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(SqliteStoreTest::SetUp());
    const v1::JobState states[] = {v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING,
                                   v1::JOB_STATE_SUCCEEDED};
    // Pairs of jobs share a create time, so that the id breaks ties; ids
    // are inserted in a shuffled order so that rowid order proves nothing.
    std::vector<int> order(25);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937(7));
    for (const int i : order) {
      const v1::TrainingJob job =
          MakeJob(absl::StrCat("j-", 10 + i), 1000 * (i / 2), states[i % 3]);
      ASSERT_TRUE(store_->InsertJob(job).ok());
      all_.push_back(job);
    }
    // Newest first, then the larger id first.
    std::sort(
        all_.begin(), all_.end(),
        [](const v1::TrainingJob& a, const v1::TrainingJob& b) {
          const int64_t ta = TimeUtil::TimestampToMicroseconds(a.create_time());
          const int64_t tb = TimeUtil::TimestampToMicroseconds(b.create_time());
          return ta != tb ? ta > tb : a.id() > b.id();
        });
  }

  // Every page of `limit` jobs in `state`, following the last id of each.
  std::vector<std::vector<std::string>> Pages(v1::JobState state, int limit) {
    std::vector<std::vector<std::string>> pages;
    std::string after;
    for (;;) {
      absl::StatusOr<std::vector<v1::TrainingJob>> page =
          store_->ListJobs(state, limit, after);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok() || page->empty() || pages.size() > 100) return pages;
      pages.push_back(Ids(*page));
      after = page->back().id();
    }
  }

  std::vector<std::string> ExpectedIds(v1::JobState state) {
    std::vector<std::string> ids;
    for (const v1::TrainingJob& job : all_) {
      if (state == v1::JOB_STATE_UNSPECIFIED || job.state() == state) {
        ids.push_back(job.id());
      }
    }
    return ids;
  }

  std::vector<v1::TrainingJob> all_;  // in list order
};

TEST_F(ListJobsTest, PagesReturnEveryJobOnceNewestFirst) {
  const std::vector<std::vector<std::string>> pages =
      Pages(v1::JOB_STATE_UNSPECIFIED, 10);
  ASSERT_THAT(pages, SizeIs(3));
  EXPECT_THAT(pages[0], SizeIs(10));
  EXPECT_THAT(pages[1], SizeIs(10));
  EXPECT_THAT(pages[2], SizeIs(5));
  std::vector<std::string> listed;
  for (const auto& page : pages) {
    listed.insert(listed.end(), page.begin(), page.end());
  }
  EXPECT_EQ(listed, ExpectedIds(v1::JOB_STATE_UNSPECIFIED));
  // j-34 is the newest; j-32 and j-33 share the next time, the larger id
  // first.
  ASSERT_THAT(listed, SizeIs(25));
  EXPECT_THAT(std::vector<std::string>(listed.begin(), listed.begin() + 3),
              ElementsAre("j-34", "j-33", "j-32"));
}

TEST_F(ListJobsTest, StateFilterPages) {
  const std::vector<std::string> expected = ExpectedIds(v1::JOB_STATE_RUNNING);
  ASSERT_THAT(expected, SizeIs(8));
  const std::vector<std::vector<std::string>> pages =
      Pages(v1::JOB_STATE_RUNNING, 3);
  ASSERT_THAT(pages, SizeIs(3));
  std::vector<std::string> listed;
  for (const auto& page : pages) {
    listed.insert(listed.end(), page.begin(), page.end());
  }
  EXPECT_EQ(listed, expected);
}

TEST_F(ListJobsTest, PageAfterAJobOfAnotherStateStartsBehindIt) {
  // all_[0] is in some state; the RUNNING jobs after it are the rest.
  absl::StatusOr<std::vector<v1::TrainingJob>> page =
      store_->ListJobs(v1::JOB_STATE_RUNNING, 100, all_[0].id());
  ASSERT_TRUE(page.ok()) << page.status();
  std::vector<std::string> expected;
  for (size_t i = 1; i < all_.size(); ++i) {
    if (all_[i].state() == v1::JOB_STATE_RUNNING) {
      expected.push_back(all_[i].id());
    }
  }
  EXPECT_EQ(Ids(*page), expected);
}

TEST_F(ListJobsTest, UnknownPageTokenAndBadLimitAreInvalid) {
  EXPECT_THAT(store_->ListJobs(v1::JOB_STATE_UNSPECIFIED, 10, "j-999"),
              StatusIs(absl::StatusCode::kInvalidArgument, "bad page token"));
  EXPECT_THAT(store_->ListJobs(v1::JOB_STATE_UNSPECIFIED, 0, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, "page size 0"));
}

TEST_F(ListJobsTest, JobsInStatesOldestFirst) {
  absl::StatusOr<std::vector<v1::TrainingJob>> jobs =
      store_->JobsInStates({v1::JOB_STATE_QUEUED, v1::JOB_STATE_SUCCEEDED});
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  std::vector<std::string> expected;
  for (auto it = all_.rbegin(); it != all_.rend(); ++it) {
    if (it->state() != v1::JOB_STATE_RUNNING) expected.push_back(it->id());
  }
  EXPECT_EQ(Ids(*jobs), expected);

  jobs = store_->JobsInStates({});
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_THAT(*jobs, IsEmpty());
  jobs = store_->JobsInStates({v1::JOB_STATE_FAILED});
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_THAT(*jobs, IsEmpty());
}

TEST_F(SqliteStoreTest, PutEpochAppendsAndReplaces) {
  ASSERT_TRUE(store_->InsertJob(MakeJob("j-1", 1)).ok());
  absl::StatusOr<std::vector<v1::EpochMetrics>> epochs =
      store_->ListEpochs("j-1");
  ASSERT_TRUE(epochs.ok()) << epochs.status();
  EXPECT_THAT(*epochs, IsEmpty());

  ASSERT_TRUE(store_->PutEpoch("j-1", MakeEpoch(2, 0.7)).ok());
  ASSERT_TRUE(store_->PutEpoch("j-1", MakeEpoch(1, 0.9)).ok());
  ASSERT_TRUE(store_->PutEpoch("j-1", MakeEpoch(3, 0.5)).ok());
  // Resumed from the checkpoint of epoch 1: epoch 2 runs again.
  ASSERT_TRUE(store_->PutEpoch("j-1", MakeEpoch(2, 0.6)).ok());
  epochs = store_->ListEpochs("j-1");
  ASSERT_TRUE(epochs.ok()) << epochs.status();
  EXPECT_THAT(*epochs, ElementsAre(EqualsProto(MakeEpoch(1, 0.9)),
                                   EqualsProto(MakeEpoch(2, 0.6)),
                                   EqualsProto(MakeEpoch(3, 0.5))));
}

TEST_F(SqliteStoreTest, EpochsOfUnknownJobAreNotFound) {
  EXPECT_THAT(store_->PutEpoch("j-12", MakeEpoch(1, 0.9)),
              StatusIs(absl::StatusCode::kNotFound, "job \"j-12\" not found"));
  EXPECT_THAT(store_->ListEpochs("j-12"),
              StatusIs(absl::StatusCode::kNotFound, "job \"j-12\" not found"));
  ASSERT_TRUE(store_->InsertJob(MakeJob("j-1", 1)).ok());
  EXPECT_THAT(store_->PutEpoch("j-1", MakeEpoch(0, 0.9)),
              StatusIs(absl::StatusCode::kInvalidArgument, "epoch 0"));
}

TEST_F(SqliteStoreTest, Datasets) {
  ASSERT_TRUE(store_->InsertDataset(MakeDataset("ecg")).ok());
  ASSERT_TRUE(store_->InsertDataset(MakeDataset("audio")).ok());
  EXPECT_THAT(store_->InsertDataset(MakeDataset("ecg")),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       "dataset \"ecg\" already exists"));
  EXPECT_THAT(
      store_->InsertDataset(MakeDataset("")),
      StatusIs(absl::StatusCode::kInvalidArgument, "dataset name is empty"));

  absl::StatusOr<v1::Dataset> got = store_->GetDataset("ecg");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, EqualsProto(MakeDataset("ecg")));
  absl::StatusOr<std::vector<v1::Dataset>> all = store_->ListDatasets();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(*all, ElementsAre(EqualsProto(MakeDataset("audio")),
                                EqualsProto(MakeDataset("ecg"))));

  ASSERT_TRUE(store_->DeleteDataset("ecg").ok());
  EXPECT_THAT(store_->GetDataset("ecg"), StatusIs(absl::StatusCode::kNotFound,
                                                  "dataset \"ecg\" not found"));
  EXPECT_THAT(
      store_->DeleteDataset("ecg"),
      StatusIs(absl::StatusCode::kNotFound, "dataset \"ecg\" not found"));
  // A deleted name is free again.
  EXPECT_TRUE(store_->InsertDataset(MakeDataset("ecg")).ok());
}

TEST_F(SqliteStoreTest, ModelVersionsAreNeverReused) {
  for (int expected = 1; expected <= 3; ++expected) {
    absl::StatusOr<int> version = store_->InsertModel(MakeModel("m"));
    ASSERT_TRUE(version.ok()) << version.status();
    EXPECT_EQ(*version, expected);
  }
  absl::StatusOr<v1::Model> latest = store_->GetModel("m", 0);
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->version(), 3);
  v1::Model expected = MakeModel("m");
  expected.set_version(2);
  absl::StatusOr<v1::Model> second = store_->GetModel("m", 2);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_THAT(*second, EqualsProto(expected));

  ASSERT_TRUE(store_->DeleteModel("m", 3).ok());
  EXPECT_THAT(
      store_->GetModel("m", 3),
      StatusIs(absl::StatusCode::kNotFound, "model \"m\" version 3 not found"));
  EXPECT_THAT(
      store_->DeleteModel("m", 3),
      StatusIs(absl::StatusCode::kNotFound, "model \"m\" version 3 not found"));
  latest = store_->GetModel("m", 0);
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->version(), 2);

  absl::StatusOr<int> version = store_->InsertModel(MakeModel("m"));
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, 4);
  latest = store_->GetModel("m", 0);
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->version(), 4);
  // Each name counts on its own.
  version = store_->InsertModel(MakeModel("a"));
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, 1);

  absl::StatusOr<std::vector<v1::Model>> all = store_->ListModels("");
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_THAT(*all, SizeIs(4));
  EXPECT_EQ((*all)[0].name(), "a");
  EXPECT_THAT(Versions(*all), ElementsAre(1, 1, 2, 4));
  absl::StatusOr<std::vector<v1::Model>> m = store_->ListModels("m");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_THAT(Versions(*m), ElementsAre(1, 2, 4));

  // Deleting every version keeps the count going.
  for (const int v : {1, 2, 4}) ASSERT_TRUE(store_->DeleteModel("m", v).ok());
  EXPECT_THAT(store_->GetModel("m", 0),
              StatusIs(absl::StatusCode::kNotFound, "model \"m\" not found"));
  version = store_->InsertModel(MakeModel("m"));
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, 5);
}

TEST_F(SqliteStoreTest, BadModelArgumentsAreInvalid) {
  EXPECT_THAT(
      store_->InsertModel(MakeModel("")),
      StatusIs(absl::StatusCode::kInvalidArgument, "model name is empty"));
  EXPECT_THAT(store_->GetModel("m", -1),
              StatusIs(absl::StatusCode::kInvalidArgument, "version -1"));
  EXPECT_THAT(store_->DeleteModel("m", 0),
              StatusIs(absl::StatusCode::kInvalidArgument, "version 0"));
  EXPECT_THAT(
      store_->GetModel("nope", 0),
      StatusIs(absl::StatusCode::kNotFound, "model \"nope\" not found"));
  absl::StatusOr<std::vector<v1::Model>> none = store_->ListModels("nope");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_THAT(*none, IsEmpty());
}

TEST_F(SqliteStoreTest, DataSurvivesReopening) {
  const v1::TrainingJob job = MakeJob("j-1", 5, v1::JOB_STATE_RUNNING, "r-1");
  ASSERT_TRUE(store_->InsertJob(job).ok());
  ASSERT_TRUE(store_->PutEpoch("j-1", MakeEpoch(1, 0.9)).ok());
  ASSERT_TRUE(store_->InsertDataset(MakeDataset("ecg")).ok());
  ASSERT_TRUE(store_->InsertModel(MakeModel("m")).ok());
  ASSERT_TRUE(store_->InsertModel(MakeModel("m")).ok());
  ASSERT_TRUE(store_->DeleteModel("m", 2).ok());

  ASSERT_NO_FATAL_FAILURE(Reopen());
  absl::StatusOr<v1::TrainingJob> got = store_->GetJob("j-1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, EqualsProto(job));
  absl::StatusOr<std::optional<v1::TrainingJob>> found =
      store_->FindJobByRequestId("r-1");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_TRUE(found->has_value());
  absl::StatusOr<std::vector<v1::EpochMetrics>> epochs =
      store_->ListEpochs("j-1");
  ASSERT_TRUE(epochs.ok()) << epochs.status();
  EXPECT_THAT(*epochs, ElementsAre(EqualsProto(MakeEpoch(1, 0.9))));
  absl::StatusOr<v1::Dataset> dataset = store_->GetDataset("ecg");
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_THAT(*dataset, EqualsProto(MakeDataset("ecg")));
  absl::StatusOr<v1::Model> model = store_->GetModel("m", 0);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->version(), 1);
  // The deleted version 2 stays used across the restart.
  absl::StatusOr<int> version = store_->InsertModel(MakeModel("m"));
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, 3);
  EXPECT_TRUE(store_->IntegrityCheck().ok());
}

TEST_F(SqliteStoreTest, ConcurrentInsertsGetDistinctVersions) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 10;
  std::vector<std::vector<int>> versions(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &versions] {
      for (int i = 0; i < kPerThread; ++i) {
        absl::StatusOr<int> version = store_->InsertModel(MakeModel("m"));
        EXPECT_TRUE(version.ok()) << version.status();
        if (version.ok()) versions[t].push_back(*version);
        // Readers run between the writers.
        EXPECT_TRUE(store_->GetModel("m", 0).ok());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  std::vector<int> all;
  for (const std::vector<int>& v : versions) {
    all.insert(all.end(), v.begin(), v.end());
  }
  std::sort(all.begin(), all.end());
  std::vector<int> expected(kThreads * kPerThread);
  std::iota(expected.begin(), expected.end(), 1);
  EXPECT_EQ(all, expected);
  absl::StatusOr<std::vector<v1::Model>> stored = store_->ListModels("m");
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(Versions(*stored), expected);
}

// A kill -9 in the middle of a stream of commits loses none that returned
// OK and leaves a sound file.
TEST_F(SqliteStoreTest, CommitsSurviveKill) {
  const std::string path = dir_ + "/killed.db";
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0) << strerror(errno);
  const pid_t child = fork();
  ASSERT_GE(child, 0) << strerror(errno);
  if (child == 0) {
    close(pipe_fds[0]);
    absl::StatusOr<std::unique_ptr<SqliteStore>> store =
        SqliteStore::Open(path);
    if (!store.ok()) _exit(1);
    for (;;) {
      absl::StatusOr<int> version = (*store)->InsertModel(MakeModel("m"));
      if (!version.ok()) _exit(2);
      const int32_t v = *version;
      if (write(pipe_fds[1], &v, sizeof(v)) != sizeof(v)) _exit(3);
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

  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE((*store)->IntegrityCheck().ok());
  absl::StatusOr<std::vector<v1::Model>> models = (*store)->ListModels("m");
  ASSERT_TRUE(models.ok()) << models.status();
  const std::vector<int> versions = Versions(*models);
  ASSERT_GE(versions.size(), static_cast<size_t>(last));
  // Versions 1..n without a gap: every transaction is all or nothing.
  for (size_t i = 0; i < versions.size(); ++i) {
    EXPECT_EQ(versions[i], static_cast<int>(i) + 1);
  }
}

TEST_F(SqliteStoreTest, CorruptBlobsAreDataLoss) {
  ASSERT_TRUE(store_->InsertJob(MakeJob("j-1", 1)).ok());
  ASSERT_TRUE(store_->PutEpoch("j-1", MakeEpoch(2, 0.5)).ok());
  ASSERT_TRUE(store_->InsertDataset(MakeDataset("ecg")).ok());
  ASSERT_TRUE(store_->InsertModel(MakeModel("m")).ok());
  // 0xff bytes: a field tag whose varint never ends.
  ASSERT_NO_FATAL_FAILURE(RawExec(path_,
                                  "UPDATE jobs SET proto = x'ffffffff';"
                                  "UPDATE epochs SET proto = x'ffffffff';"
                                  "UPDATE datasets SET proto = x'ffffffff';"
                                  "UPDATE models SET proto = x'ffffffff';"));

  EXPECT_THAT(store_->GetJob("j-1"),
              StatusIs(absl::StatusCode::kDataLoss, "jobs row \"j-1\""));
  EXPECT_THAT(store_->ListJobs(v1::JOB_STATE_UNSPECIFIED, 10, ""),
              StatusIs(absl::StatusCode::kDataLoss, "jobs row \"j-1\""));
  EXPECT_THAT(store_->JobsInStates({v1::JOB_STATE_QUEUED}),
              StatusIs(absl::StatusCode::kDataLoss, "jobs row \"j-1\""));
  EXPECT_THAT(store_->ListEpochs("j-1"),
              StatusIs(absl::StatusCode::kDataLoss, "epochs row (\"j-1\", 2)"));
  EXPECT_THAT(store_->GetDataset("ecg"),
              StatusIs(absl::StatusCode::kDataLoss, "datasets row \"ecg\""));
  EXPECT_THAT(store_->ListDatasets(),
              StatusIs(absl::StatusCode::kDataLoss, "datasets row \"ecg\""));
  EXPECT_THAT(store_->GetModel("m", 1),
              StatusIs(absl::StatusCode::kDataLoss, "models row (\"m\", 1)"));
  EXPECT_THAT(store_->ListModels(""),
              StatusIs(absl::StatusCode::kDataLoss, "models row (\"m\", 1)"));
  // The file itself is sound; a rewrite repairs the record.
  EXPECT_TRUE(store_->IntegrityCheck().ok());
  ASSERT_TRUE(store_->UpdateJob(MakeJob("j-1", 1)).ok());
  EXPECT_TRUE(store_->GetJob("j-1").ok());
}

TEST(SqliteStoreOpenTest, MissingDirectoryIsNotFound) {
  const std::string path =
      ::testing::TempDir() + "/sqlite_store_test_no_such_dir/store.db";
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path);
  EXPECT_THAT(store, StatusIs(absl::StatusCode::kNotFound, path));
  EXPECT_THAT(store.status().message(), HasSubstr("No such file or directory"));
}

TEST_F(SqliteStoreTest, NonDatabaseFileIsDataLoss) {
  const std::string path = dir_ + "/not_a.db";
  std::ofstream(path) << std::string(4096, 'x');
  EXPECT_THAT(SqliteStore::Open(path),
              StatusIs(absl::StatusCode::kDataLoss, path));
}

TEST_F(SqliteStoreTest, NewerSchemaIsRefused) {
  store_.reset();
  ASSERT_NO_FATAL_FAILURE(RawExec(path_, "PRAGMA user_version = 2"));
  EXPECT_THAT(SqliteStore::Open(path_),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "schema version 2; this build reads 1"));
}

}  // namespace
}  // namespace spinnet::server
