// What the fuzz targets and the seed generator share: small networks made
// by the core's own code, and the server pieces (on the in-memory store)
// that requests are checked and answered with.
#ifndef SPINNET_TESTS_FUZZ_FUZZ_FIXTURE_H_
#define SPINNET_TESTS_FUZZ_FUZZ_FIXTURE_H_

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "core/dataset.h"
#include "core/model_io.h"
#include "google/protobuf/message.h"
#include "server/catalog/registry.h"
#include "server/storage/memory_store.h"

// An invariant of a successful parse or answer; a violation is a bug the
// fuzzer reports (abort is its crash).
#define FUZZ_CHECK(cond)                                               \
  do {                                                                 \
    if (!(cond)) {                                                     \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, \
                   __LINE__, #cond);                                   \
      std::abort();                                                    \
    }                                                                  \
  } while (0)

namespace spinnet::fuzz {

// `message` parsed from the fuzz input, with protobuf's log (which reports
// every string of invalid UTF-8) silenced: false for bytes that are not
// the message, which the server would refuse before any handler runs.
bool ParseInput(const uint8_t* data, size_t size,
                google::protobuf::Message* message);

// A small labelled CSV (classes "a", "b", "c"; 12 sequences of 6 steps of
// `input_dim` values), deterministic.
std::string TinyCsv(int input_dim);

// A 2-layer network of 4 neurons of `cell` trained for one epoch on
// TinyCsv(input_dim): the checkpoint after that epoch.
Checkpoint TinyCheckpoint(CellType cell, int input_dim);

// The models and datasets requests name, on a MemoryStore, built once per
// process: models "stno" (d = 1, versions 1 and 2) and "ctrnn" (d = 2),
// datasets "digits" (built in), "tiny" (d = 1) and "tiny2" (d = 2).
struct Service {
  Service();
  server::MemoryStore store;
  server::ModelRegistry models;
  server::DatasetRegistry datasets;
};
Service& SharedService();

// The model a request names, looked up in SharedService() as the handlers
// do; nullopt when there is none (after checking that the lookup failed
// with INVALID_ARGUMENT or NOT_FOUND, as documented).
std::optional<server::LoadedModel> FindModel(const std::string& name,
                                             int version);

}  // namespace spinnet::fuzz

#endif  // SPINNET_TESTS_FUZZ_FUZZ_FIXTURE_H_
