// The ModelRegistry's imports and exports on a shared MemoryStore, without
// gRPC: two registries on one store stand for two replicas, so what one
// imports or deletes the other must see at once, whatever it has cached.
#include "server/catalog/registry.h"

#include <memory>
#include <string>

#include "core/model_io.h"
#include "core/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/jobs/job_queue.h"
#include "server/storage/job_records.h"
#include "server/storage/memory_store.h"
#include "tests/status_matchers.h"

namespace spinnet::server {
namespace {

using Code = absl::StatusCode;
using spinnet::status_testing::StatusIs;
using ::testing::IsEmpty;

constexpr int64_t kMaxImportBytes = 1 << 20;

// A small untrained network on a two-class dataset of 3 steps; `seed`
// draws different weights.
std::string ModelFileBytes(int seed) {
  Dataset data;
  data.name = "waves";
  data.steps = 3;
  data.input_dim = 1;
  data.class_labels = {"down", "up"};
  data.values = Matrix::Constant(3, 4, 0.5);
  data.labels = {0, 1, 0, 1};
  v1::TrainingSpec request;
  request.set_neurons(4);
  request.set_layers(1);
  request.set_seed(seed);
  absl::StatusOr<TrainingSpec> spec = ResolveSpec(request, data);
  EXPECT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<Checkpoint> start =
      StartTraining(spec->network, spec->device, spec->train, data);
  EXPECT_TRUE(start.ok()) << start.status();
  return start.ok() ? SerializeModel(start->model) : std::string();
}

class RegistryTest : public ::testing::Test {
 protected:
  MemoryStore store_;
  ModelRegistry replica_a_{&store_, kMaxImportBytes};
  ModelRegistry replica_b_{&store_, kMaxImportBytes};
};

TEST_F(RegistryTest, AnImportIsServedEverywhereAtOnceAndDeletedEverywhere) {
  const std::string first = ModelFileBytes(1), second = ModelFileBytes(2);
  ASSERT_NE(first, second);
  ASSERT_OK_AND_ASSIGN(const v1::Model v1, replica_a_.Import("m", first));
  EXPECT_EQ(v1.version(), 1);
  EXPECT_EQ(v1.dataset(), "waves");
  EXPECT_EQ(v1.class_labels_size(), 2);
  // B loads and caches version 1 as the latest.
  ASSERT_OK_AND_ASSIGN(const LoadedModel b1, replica_b_.Get("m", 0));
  EXPECT_EQ(b1.info.version(), 1);
  ASSERT_OK_AND_ASSIGN(const Model parsed_first, ParseModel(first));
  EXPECT_EQ(b1.model->params, parsed_first.params);

  // A imports version 2: B's latest is version 2 at once, not its cache.
  ASSERT_OK_AND_ASSIGN(const v1::Model v2, replica_a_.Import("m", second));
  EXPECT_EQ(v2.version(), 2);
  ASSERT_OK_AND_ASSIGN(const LoadedModel b2, replica_b_.Get("m", 0));
  EXPECT_EQ(b2.info.version(), 2);
  ASSERT_OK_AND_ASSIGN(const Model parsed_second, ParseModel(second));
  EXPECT_EQ(b2.model->params, parsed_second.params);
  ASSERT_OK_AND_ASSIGN(const LoadedModel a2, replica_a_.Get("m", 2));
  EXPECT_EQ(a2.model->params, parsed_second.params);

  // Exports from either replica are the imported bytes.
  ASSERT_OK_AND_ASSIGN(const ModelFile e1, replica_b_.Export("m", 1));
  EXPECT_TRUE(e1.bytes == first);
  ASSERT_OK_AND_ASSIGN(const ModelFile e2, replica_a_.Export("m", 0));
  EXPECT_TRUE(e2.bytes == second);
  EXPECT_EQ(e2.info.version(), 2);

  // A deletes version 2: B stops serving it at once, its cache
  // notwithstanding, and falls back to version 1 as the latest.
  ASSERT_OK(replica_a_.Delete("m", 2));
  EXPECT_THAT(replica_b_.Get("m", 2), StatusIs(Code::kNotFound, "version 2"));
  EXPECT_THAT(replica_b_.Export("m", 2),
              StatusIs(Code::kNotFound, "version 2"));
  ASSERT_OK_AND_ASSIGN(const LoadedModel latest, replica_b_.Get("m", 0));
  EXPECT_EQ(latest.info.version(), 1);
}

TEST_F(RegistryTest, ExportRefusesAStoredFileThatNoLongerParses) {
  ASSERT_OK_AND_ASSIGN(const v1::Model m,
                       replica_a_.Import("m", ModelFileBytes(1)));
  std::string bytes = ModelFileBytes(1);
  bytes[bytes.size() / 2] ^= 1;
  ASSERT_OK(store_.blobs().Put(ModelBlobKeyOf(m), bytes));
  EXPECT_THAT(replica_b_.Export("m", 1),
              StatusIs(Code::kDataLoss, "model m version 1: checksum"));
}

TEST_F(RegistryTest, BadImportsStoreNothing) {
  const std::string good = ModelFileBytes(1);
  std::string flipped = good;
  flipped[10] ^= 1;
  EXPECT_THAT(replica_a_.Import("m", flipped),
              StatusIs(Code::kDataLoss, "model file for m: checksum"));
  EXPECT_THAT(replica_a_.Import("m", good.substr(0, good.size() / 2)),
              StatusIs(Code::kDataLoss, "checksum"));
  EXPECT_THAT(replica_a_.Import("m", ""),
              StatusIs(Code::kInvalidArgument, "empty"));
  EXPECT_THAT(replica_a_.Import("m", std::string(kMaxImportBytes + 1, 'x')),
              StatusIs(Code::kInvalidArgument, "limit"));
  EXPECT_THAT(replica_a_.Import("m/1", good),
              StatusIs(Code::kInvalidArgument, "name"));
  ASSERT_OK_AND_ASSIGN(const std::vector<v1::Model> all, store_.ListModels(""));
  EXPECT_THAT(all, IsEmpty());
}

}  // namespace
}  // namespace spinnet::server
