// Who may call the service: bearer tokens and their roles checked by the
// handlers, TLS or mutual TLS server credentials, and the listen-address
// test behind the rule that a server without auth listens on loopback only.
//
// Tokens are checked in the handlers rather than by a gRPC
// AuthMetadataProcessor because gRPC 1.51 aborts the process when one is set
// on insecure credentials, and the plaintext loopback mode needs the check
// too.
#ifndef SPINNET_SERVER_AUTH_H_
#define SPINNET_SERVER_AUTH_H_

#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/string_ref.h"
#include "server/api/access.h"

namespace spinnet::server {

// Authorizes each call by its bearer token: who the caller is (the token
// table, access.h) and whether its role may call the RPC (RpcRoles()).
// Thread-safe. The table is immutable and swapped whole by Reload, so a call
// sees either the old or the new table; calls already authorized (open
// streams and watches) go on.
class TokenAuthorizer {
 public:
  // Auth off: every call is allowed, as client "anonymous".
  TokenAuthorizer() = default;
  // Auth on with a fixed table (Reload then has no files to read).
  explicit TokenAuthorizer(TokenTable table);
  // Auth on with the tables `files` give (LoadTokenTable's errors); off
  // when both files are empty.
  static absl::StatusOr<std::unique_ptr<TokenAuthorizer>> Open(
      TokenFiles files);

  bool enabled() const { return table() != nullptr; }

  // Reads the files again and swaps the new table in. On any error the old
  // table stays and the error is returned; FAILED_PRECONDITION when there
  // are no files (auth off, or a fixed table). Returns the clients loaded.
  absl::StatusOr<size_t> Reload();

  // Whether the call may run `rpc` (RpcRoles()'s name, no leading '/').
  // OK if auth is off or the call carries "authorization: Bearer <token>"
  // (scheme case-insensitive) of a client whose role may call `rpc`, or,
  // without that metadata, comes over mutual TLS with a verified client
  // certificate whose subject the table names (a token wins over a
  // certificate). UNAUTHENTICATED "missing bearer token" without either,
  // "invalid bearer token" for a token of no client; PERMISSION_DENIED
  // naming the client, its role and the role `rpc` needs; INTERNAL for an
  // `rpc` with no row (a bug). Denials, and allowed calls that change state
  // (those needing more than reader), are logged with the client's name
  // (never the token) or, unauthenticated, the peer address.
  absl::Status Authorize(const grpc::ServerContextBase& ctx,
                         absl::string_view rpc) const;

  // The client a call's metadata (and, given `ctx`, its certificate) names,
  // for metrics: its name, "anonymous" with auth off, "unauthenticated" for
  // a missing or unknown token. Only names in the token files, so the
  // label's values are bounded.
  std::string ClientOf(
      const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
      const grpc::ServerContextBase* ctx = nullptr) const;

 private:
  std::shared_ptr<const TokenTable> table() const {
    return std::atomic_load(&table_);
  }
  TokenFiles files_;
  std::shared_ptr<const TokenTable> table_;  // null: auth off; atomic_load
};

struct TlsOptions {
  std::string cert_file;       // PEM server certificate chain
  std::string key_file;        // PEM private key of cert_file
  std::string client_ca_file;  // PEM CAs; set: clients must present a cert
};

// Insecure credentials when every field is empty; TLS with cert and key;
// mutual TLS (GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY)
// when client_ca_file is set as well. INVALID_ARGUMENT when only one of
// cert and key, or a client CA without them, is given; a file that cannot
// be read gives ReadFile's error, naming the file, and one without a PEM
// block INVALID_ARGUMENT. (A key that does not match the certificate shows
// only when the server starts: BuildAndStart returns null.)
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsOptions& options);

// A listen address split into its parts.
struct HostPort {
  std::string host;  // without the brackets of an IPv6 literal
  int port = 0;
};

// Splits "host:port" or "[ipv6]:port" (port 0-65535). INVALID_ARGUMENT for
// anything else, including unbracketed IPv6 and characters that no host name
// or IP literal has (so that nothing else, such as civetweb's list syntax,
// gets through).
absl::StatusOr<HostPort> SplitHostPort(absl::string_view listen);

// True for "127.x.x.x:port", "localhost:port" and "[::1]:port"; false for
// wildcard addresses ("0.0.0.0", "[::]"), other hosts and anything that is
// not host:port, so that a doubtful address counts as exposed.
bool IsLoopbackAddress(const std::string& listen);

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_AUTH_H_
