// UploadDataset on arbitrary bytes parsed as its client stream: the
// server's ReadUpload (catalog/upload.h) assembles the messages, then
// DatasetRegistry::Add validates and stores them (on a fresh in-memory
// store), and a stored dataset is loaded back as a training job would.
#include <cstddef>
#include <cstdint>

#include "core/sha256.h"
#include "server/catalog/registry.h"
#include "server/catalog/upload.h"
#include "server/storage/memory_store.h"
#include "tests/fuzz/fuzz_fixture.h"
#include "tests/fuzz/fuzz_inputs.pb.h"

namespace {
constexpr int64_t kMaxUploadBytes = 1 << 16;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  spinnet::fuzz::UploadDatasetStream stream;
  if (!spinnet::fuzz::ParseInput(data, size, &stream)) return 0;
  if (stream.fix_sha256()) {
    std::string all;
    for (const auto& msg : stream.messages()) all += msg.chunk();
    for (auto& msg : *stream.mutable_messages()) {
      if (msg.has_header()) {
        msg.mutable_header()->set_sha256(spinnet::Sha256Hex(all));
      }
    }
  }
  int next = 0;
  spinnet::v1::UploadDatasetHeader header;
  absl::StatusOr<std::string> bytes =
      spinnet::server::ReadUpload<spinnet::v1::UploadDatasetRequest>(
          [&](spinnet::v1::UploadDatasetRequest* msg) {
            if (next == stream.messages_size()) return false;
            *msg = stream.messages(next++);
            return true;
          },
          [] { return false; }, kMaxUploadBytes, "upload", &header);
  if (!bytes.ok()) {
    FUZZ_CHECK(bytes.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(static_cast<int64_t>(bytes->size()) == header.size_bytes());
  FUZZ_CHECK(header.size_bytes() <= kMaxUploadBytes);

  spinnet::server::MemoryStore store;
  spinnet::server::DatasetRegistry datasets(&store, kMaxUploadBytes);
  absl::StatusOr<spinnet::v1::Dataset> added =
      datasets.Add(header, *std::move(bytes));
  if (!added.ok()) {
    const absl::StatusCode code = added.status().code();
    FUZZ_CHECK(code == absl::StatusCode::kInvalidArgument ||
               code == absl::StatusCode::kDataLoss ||
               code == absl::StatusCode::kAlreadyExists);
    FUZZ_CHECK(store.ListDatasets()->empty());  // nothing stored on error
    return 0;
  }
  FUZZ_CHECK(added->name() == header.name());
  FUZZ_CHECK(added->class_labels_size() >= 2);
  for (const std::string suffix : {"", ":validation", ":partition-2"}) {
    absl::StatusOr<spinnet::server::LoadedDataset> loaded =
        datasets.Get(header.name() + suffix);
    FUZZ_CHECK(loaded.ok());
    FUZZ_CHECK(loaded->info.sha256() == added->sha256());
    FUZZ_CHECK(loaded->split->train.input_dim == added->input_dim());
  }
  return 0;
}
