// Blobs as files under a directory (the SQLite store's data dir): a key is a
// relative path. Writes are atomic and durable (temp file, fsync, rename,
// fsync of the directory); every system call's result is checked.
#ifndef SPINNET_SERVER_STORAGE_LOCAL_BLOB_STORE_H_
#define SPINNET_SERVER_STORAGE_LOCAL_BLOB_STORE_H_

#include <string>

#include "server/storage/store.h"

namespace spinnet::server {

class LocalBlobStore : public BlobStore {
 public:
  explicit LocalBlobStore(std::string root) : root_(std::move(root)) {}

  // Model and checkpoint files check their own SHA-256 when parsed, and a
  // dataset's bytes are checked against its record's, so Get returns the
  // file's bytes as they are.
  absl::Status Put(const std::string& key, absl::string_view bytes) override;
  absl::StatusOr<std::string> Get(const std::string& key) override;
  absl::Status Delete(const std::string& key) override;
  // Renames `from` to `to` (replacing it); OK when `from` does not exist.
  absl::Status Rename(const std::string& from, const std::string& to);

  std::string Path(const std::string& key) const { return root_ + "/" + key; }

 private:
  std::string root_;
};

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_STORAGE_LOCAL_BLOB_STORE_H_
