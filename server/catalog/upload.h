// A client-streamed file (UploadDataset, ImportModel) assembled from its
// messages, without gRPC: a header announcing size_bytes (at most a
// limit), then chunks adding up to exactly that. The handlers
// (api/services.cc) pass their reader; the fuzz targets (tests/fuzz/) pass
// messages parsed from arbitrary bytes.
#ifndef SPINNET_SERVER_CATALOG_UPLOAD_H_
#define SPINNET_SERVER_CATALOG_UPLOAD_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace spinnet::server {

// Reads messages with `next(&msg)` (false at the end of the stream) into
// *header and the bytes it returns. INVALID_ARGUMENT, naming the file as
// `what`, when the first message is not the header, the size is negative or
// over `limit`, a second header comes, or the chunks add up to more or less
// than the header said; CANCELLED when `cancelled()` holds at the end (the
// stream ended because the call did). Never holds more than the announced
// size.
template <typename Request, typename Header, typename Next, typename Cancelled>
absl::StatusOr<std::string> ReadUpload(Next next, Cancelled cancelled,
                                       int64_t limit, absl::string_view what,
                                       Header* header) {
  Request msg;
  if (!next(&msg) || !msg.has_header()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the first message of a ", what, " must be the header"));
  }
  *header = msg.header();
  if (header->size_bytes() < 0 || header->size_bytes() > limit) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " of ", header->size_bytes(), " bytes; the limit is ", limit));
  }
  std::string bytes;
  bytes.reserve(header->size_bytes());
  while (next(&msg)) {
    if (msg.has_header()) {
      return absl::InvalidArgumentError(
          absl::StrCat("a second header in one ", what));
    }
    if (static_cast<int64_t>(bytes.size() + msg.chunk().size()) >
        header->size_bytes()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " is longer than the ", header->size_bytes(),
                       " bytes its header announced"));
    }
    bytes += msg.chunk();
  }
  if (cancelled()) {
    return absl::CancelledError(absl::StrCat(what, " cancelled"));
  }
  if (static_cast<int64_t>(bytes.size()) != header->size_bytes()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has ", bytes.size(),
                                                   " bytes; the header said ",
                                                   header->size_bytes()));
  }
  return bytes;
}

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_CATALOG_UPLOAD_H_
