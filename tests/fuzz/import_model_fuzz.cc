// ImportModel on arbitrary bytes parsed as its client stream: ReadUpload
// (catalog/upload.h) assembles the messages, ModelRegistry::Import checks
// and publishes the file (on a fresh in-memory store); a published model
// is served by Get and exported byte for byte.
#include <cstddef>
#include <cstdint>

#include "server/catalog/registry.h"
#include "server/catalog/upload.h"
#include "server/storage/memory_store.h"
#include "tests/fuzz/fuzz_fixture.h"
#include "tests/fuzz/fuzz_inputs.pb.h"

namespace {
constexpr int64_t kMaxImportBytes = 1 << 16;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  spinnet::fuzz::ImportModelStream stream;
  if (!spinnet::fuzz::ParseInput(data, size, &stream)) return 0;
  int next = 0;
  spinnet::v1::ImportModelHeader header;
  absl::StatusOr<std::string> bytes =
      spinnet::server::ReadUpload<spinnet::v1::ImportModelRequest>(
          [&](spinnet::v1::ImportModelRequest* msg) {
            if (next == stream.messages_size()) return false;
            *msg = stream.messages(next++);
            return true;
          },
          [] { return false; }, kMaxImportBytes, "model import", &header);
  if (!bytes.ok()) {
    FUZZ_CHECK(bytes.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  const std::string file = *bytes;

  spinnet::server::MemoryStore store;
  spinnet::server::ModelRegistry models(&store, kMaxImportBytes);
  absl::StatusOr<spinnet::v1::Model> imported =
      models.Import(header.name(), *std::move(bytes));
  if (!imported.ok()) {
    const absl::StatusCode code = imported.status().code();
    FUZZ_CHECK(code == absl::StatusCode::kInvalidArgument ||
               code == absl::StatusCode::kDataLoss);
    FUZZ_CHECK(store.ListModels("")->empty());  // nothing stored on error
    return 0;
  }
  FUZZ_CHECK(imported->version() == 1);
  absl::StatusOr<spinnet::server::LoadedModel> loaded =
      models.Get(header.name(), 0);
  FUZZ_CHECK(loaded.ok());
  FUZZ_CHECK(loaded->info.input_dim() == loaded->model->network.input_dim);
  absl::StatusOr<spinnet::server::ModelFile> exported =
      models.Export(header.name(), 1);
  FUZZ_CHECK(exported.ok());
  FUZZ_CHECK(exported->bytes == file);
  return 0;
}
