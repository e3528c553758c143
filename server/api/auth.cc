#include "server/api/auth.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <atomic>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/file_util.h"
#include "core/logging.h"
#include "core/status_macros.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/security/auth_context.h"
#include "grpcpp/security/server_credentials.h"

namespace spinnet::server {
namespace {

constexpr absl::string_view kBearerPrefix = "bearer ";

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

// The client the metadata's token, or else the certificate of `ctx` (if
// given), belongs to; `status` says why none.
const TokenClient* Identify(
    const TokenTable& table,
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
    const grpc::ServerContextBase* ctx, absl::Status* status) {
  const auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    // The TLS layer verified the certificate against --tls-client-ca
    // before the call could start; with insecure credentials there is no
    // property.
    std::vector<grpc::string_ref> subjects;
    if (ctx != nullptr && table.has_subjects()) {
      const std::shared_ptr<const grpc::AuthContext> auth = ctx->auth_context();
      if (auth != nullptr) {
        subjects = auth->FindPropertyValues(GRPC_X509_SUBJECT_PROPERTY_NAME);
      }
    }
    for (const grpc::string_ref& subject : subjects) {
      const TokenClient* client =
          table.FindSubject(absl::string_view(subject.data(), subject.size()));
      if (client != nullptr) return client;
    }
    *status = absl::UnauthenticatedError(
        subjects.empty()
            ? "missing bearer token"
            : absl::StrCat("missing bearer token, and client certificate ",
                           absl::string_view(subjects[0].data(),
                                             subjects[0].size()),
                           " names no client"));
    return nullptr;
  }
  const absl::string_view value(it->second.data(), it->second.size());
  const TokenClient* client =
      absl::StartsWithIgnoreCase(value, kBearerPrefix)
          ? table.Find(value.substr(kBearerPrefix.size()))
          : nullptr;
  if (client == nullptr) {
    *status = absl::UnauthenticatedError("invalid bearer token");
  }
  return client;
}

}  // namespace

TokenAuthorizer::TokenAuthorizer(TokenTable table)
    : table_(std::make_shared<const TokenTable>(std::move(table))) {}

absl::StatusOr<std::unique_ptr<TokenAuthorizer>> TokenAuthorizer::Open(
    TokenFiles files) {
  auto auth = std::make_unique<TokenAuthorizer>();
  auth->files_ = std::move(files);
  if (!auth->files_.tokens_file.empty() || !auth->files_.token_file.empty()) {
    ASSIGN_OR_RETURN(TokenTable table, LoadTokenTable(auth->files_));
    auth->table_ = std::make_shared<const TokenTable>(std::move(table));
  }
  return auth;
}

absl::StatusOr<size_t> TokenAuthorizer::Reload() {
  if (files_.tokens_file.empty() && files_.token_file.empty()) {
    return absl::FailedPreconditionError(
        "auth is off (no --auth-tokens-file or --auth-token-file): nothing "
        "to reload");
  }
  ASSIGN_OR_RETURN(TokenTable table, LoadTokenTable(files_));
  const size_t clients = table.clients().size();
  std::shared_ptr<const TokenTable> next =
      std::make_shared<const TokenTable>(std::move(table));
  std::atomic_store(&table_, std::move(next));
  return clients;
}

absl::Status TokenAuthorizer::Authorize(const grpc::ServerContextBase& ctx,
                                        absl::string_view rpc) const {
  const std::optional<Role> needed = RequiredRole(rpc);
  if (!needed.has_value()) {
    return absl::InternalError(
        absl::StrCat(rpc, " has no row in the authorization table"));
  }
  const std::shared_ptr<const TokenTable> current = table();
  if (current == nullptr) {
    if (*needed != Role::kReader) {
      SPINNET_LOG(Info, "client anonymous calls ", rpc);
    }
    return absl::OkStatus();
  }
  absl::Status status;
  const TokenClient* client =
      Identify(*current, ctx.client_metadata(), &ctx, &status);
  if (client == nullptr) {
    SPINNET_LOG_LIMITED(Warning, "refused ", rpc, " from ", ctx.peer(), ": ",
                        status.message());
    return status;
  }
  if (client->role < *needed) {
    status = absl::PermissionDeniedError(absl::StrCat(
        "client '", client->name, "' has role ", RoleName(client->role),
        "; ", rpc, " needs role ", RoleName(*needed)));
    SPINNET_LOG_LIMITED(Warning, "denied: ", status.message());
    return status;
  }
  if (*needed != Role::kReader) {
    SPINNET_LOG(Info, "client ", client->name, " calls ", rpc);
  }
  return absl::OkStatus();
}

std::string TokenAuthorizer::ClientOf(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
    const grpc::ServerContextBase* ctx) const {
  const std::shared_ptr<const TokenTable> current = table();
  if (current == nullptr) return "anonymous";
  absl::Status status;
  const TokenClient* client = Identify(*current, metadata, ctx, &status);
  return client == nullptr ? "unauthenticated" : client->name;
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
