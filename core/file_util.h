// Whole-file reads and crash-safe writes.
#ifndef SPINNET_CORE_FILE_UTIL_H_
#define SPINNET_CORE_FILE_UTIL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace spinnet {

// The status of a failed system call on `path` from errno, by what the
// caller can do: NOT_FOUND (ENOENT), RESOURCE_EXHAUSTED (disk full),
// FAILED_PRECONDITION (permissions, read-only), INTERNAL otherwise. `what`
// says what failed ("cannot write").
absl::Status ErrnoError(absl::string_view what, const std::string& path);

// Reads a whole file; NOT_FOUND if it does not exist.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Reads a file, gunzipping it when it starts with the gzip magic bytes.
absl::StatusOr<std::string> ReadMaybeGzipFile(const std::string& path);

// Gunzips `data` when it starts with the gzip magic bytes, else returns it
// unchanged. Lets a caller checksum the raw bytes before decompressing them
// without reading the file twice. `source` names the data in errors.
absl::StatusOr<std::string> MaybeGunzip(std::string data,
                                        const std::string& source);

// Writes `contents` so that after a crash at any moment `path` holds either
// its old contents or the new ones: temp file, fsync, rename, fsync dir.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents);

// Removes the temp files that WriteFileAtomically left in `dir` (not its
// subdirectories) when its process died in the middle of a write; returns
// how many. Only for a directory that no other process writes to (the
// caller holds its lock): a live writer's temp file would go too.
absl::StatusOr<int> RemoveStaleTemporaries(const std::string& dir);

}  // namespace spinnet

#endif  // SPINNET_CORE_FILE_UTIL_H_
