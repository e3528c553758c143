#include "server/api/auth.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/file_util.h"
#include "core/status_macros.h"
#include "grpcpp/security/server_credentials.h"

namespace spinnet::server {
namespace {

constexpr absl::string_view kBearerPrefix = "bearer ";

// No early exit, so the time taken does not tell how much of a guessed token
// was right. (The length is not secret.)
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  volatile unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = diff | static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

// A PEM file's contents; INVALID_ARGUMENT if it has no PEM block, so that an
// empty or DER file fails here with its name rather than when the server
// starts.
absl::StatusOr<std::string> ReadPem(const std::string& path) {
  ASSIGN_OR_RETURN(std::string pem, ReadFile(path));
  if (!absl::StrContains(pem, "-----BEGIN ")) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a PEM file (no \"-----BEGIN\" line)"));
  }
  return pem;
}

bool IsHostChar(char c, bool ipv6_literal) {
  if (absl::ascii_isalnum(static_cast<unsigned char>(c))) return true;
  // '%' starts an IPv6 zone ("fe80::1%eth0").
  return ipv6_literal ? (c == ':' || c == '.' || c == '%')
                      : (c == '.' || c == '-' || c == '_');
}

}  // namespace

absl::StatusOr<std::string> LoadToken(const std::string& path) {
  ASSIGN_OR_RETURN(std::string contents, ReadFile(path));
  const absl::string_view token = absl::StripAsciiWhitespace(contents);
  if (token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("token file ", path, " is empty"));
  }
  for (char c : token) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token file ", path, " has whitespace inside the token"));
    }
  }
  return std::string(token);
}

TokenAuthorizer::TokenAuthorizer(std::string token)
    : token_(std::move(token)) {}

absl::Status TokenAuthorizer::Authorize(
    const grpc::ServerContextBase& ctx) const {
  if (!enabled()) return absl::OkStatus();
  const auto& metadata = ctx.client_metadata();
  const auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return absl::UnauthenticatedError("missing bearer token");
  }
  const absl::string_view value(it->second.data(), it->second.size());
  if (!absl::StartsWithIgnoreCase(value, kBearerPrefix) ||
      !ConstantTimeEquals(value.substr(kBearerPrefix.size()), token_)) {
    return absl::UnauthenticatedError("invalid bearer token");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsOptions& options) {
  const bool has_cert = !options.cert_file.empty();
  const bool has_key = !options.key_file.empty();
  const bool has_ca = !options.client_ca_file.empty();
  if (!has_cert && !has_key && !has_ca) {
    return grpc::InsecureServerCredentials();
  }
  if (has_cert != has_key) {
    return absl::InvalidArgumentError(
        has_cert ? "TLS certificate given without its key file"
                 : "TLS key given without its certificate file");
  }
  if (!has_cert) {
    return absl::InvalidArgumentError(
        "client CA file given without a server certificate and key");
  }
  grpc::SslServerCredentialsOptions ssl(
      has_ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
             : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  ASSIGN_OR_RETURN(pair.cert_chain, ReadPem(options.cert_file));
  ASSIGN_OR_RETURN(pair.private_key, ReadPem(options.key_file));
  ssl.pem_key_cert_pairs.push_back(std::move(pair));
  if (has_ca) {
    ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadPem(options.client_ca_file));
  }
  return grpc::SslServerCredentials(ssl);
}

absl::StatusOr<HostPort> SplitHostPort(absl::string_view listen) {
  const auto malformed = [listen] {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address \"", listen,
                     "\" is not host:port or [ipv6]:port, port 0-65535"));
  };
  const size_t colon = listen.rfind(':');
  if (colon == absl::string_view::npos) return malformed();
  absl::string_view host = listen.substr(0, colon);
  const absl::string_view port = listen.substr(colon + 1);
  const bool ipv6_literal = absl::ConsumePrefix(&host, "[");
  if (ipv6_literal && !absl::ConsumeSuffix(&host, "]")) return malformed();
  // An IPv6 literal has a ':'; "[127.0.0.1]" is no address.
  if (host.empty() || (ipv6_literal && !absl::StrContains(host, ':'))) {
    return malformed();
  }
  for (char c : host) {
    if (!IsHostChar(c, ipv6_literal)) return malformed();
  }
  if (port.empty() || port.size() > 5) return malformed();
  HostPort out;
  for (char c : port) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return malformed();
    out.port = out.port * 10 + (c - '0');
  }
  if (out.port > 65535) return malformed();
  out.host = std::string(host);
  return out;
}

bool IsLoopbackAddress(const std::string& listen) {
  const absl::StatusOr<HostPort> address = SplitHostPort(listen);
  if (!address.ok()) return false;
  const std::string& host = address->host;
  if (absl::EqualsIgnoreCase(host, "localhost")) return true;
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  return inet_pton(AF_INET6, host.c_str(), &v6) == 1 &&
         IN6_IS_ADDR_LOOPBACK(&v6);
}

}  // namespace spinnet::server
