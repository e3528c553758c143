// Who may call the service: a bearer token checked by the handlers, TLS or
// mutual TLS server credentials, and the listen-address test behind the rule
// that a server without auth listens on loopback only.
//
// The token is checked in the handlers rather than by a gRPC
// AuthMetadataProcessor because gRPC 1.51 aborts the process when one is set
// on insecure credentials, and the plaintext loopback mode needs the check
// too.
#ifndef SPINNET_SERVER_AUTH_H_
#define SPINNET_SERVER_AUTH_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_context.h"

namespace spinnet::server {

// The token in file `path`, without surrounding whitespace. NOT_FOUND if the
// file does not exist, INVALID_ARGUMENT if it is empty or the token contains
// whitespace (a header value cannot carry it intact), other errors as
// ReadFile gives them. Messages name the file, never the token.
absl::StatusOr<std::string> LoadToken(const std::string& path);

class TokenAuthorizer {
 public:
  // An empty token turns auth off.
  explicit TokenAuthorizer(std::string token);

  bool enabled() const { return !token_.empty(); }

  // OK if auth is off or the call carries metadata
  // "authorization: Bearer <token>" (scheme case-insensitive; compared in
  // time independent of where a wrong token differs). Otherwise
  // UNAUTHENTICATED "missing bearer token" when there is no authorization
  // metadata, "invalid bearer token" when it does not match.
  absl::Status Authorize(const grpc::ServerContextBase& ctx) const;

 private:
  std::string token_;  // empty: auth off
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
