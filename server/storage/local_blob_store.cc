#include "server/storage/local_blob_store.h"

#include <stdio.h>
#include <unistd.h>

#include <cerrno>

#include "core/file_util.h"

namespace spinnet::server {

absl::Status LocalBlobStore::Put(const std::string& key,
                                 absl::string_view bytes) {
  return WriteFileAtomically(Path(key), bytes);
}

absl::StatusOr<std::string> LocalBlobStore::Get(const std::string& key) {
  return ReadFile(Path(key));
}

absl::Status LocalBlobStore::Delete(const std::string& key) {
  const std::string path = Path(key);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoError("cannot delete", path);
  }
  return absl::OkStatus();
}

absl::Status LocalBlobStore::Rename(const std::string& from,
                                    const std::string& to) {
  const std::string src = Path(from);
  if (rename(src.c_str(), Path(to).c_str()) != 0 && errno != ENOENT) {
    return ErrnoError("cannot rename", src);
  }
  return absl::OkStatus();
}

}  // namespace spinnet::server
