#include "server/api/access.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/file_util.h"
#include "core/sha256.h"
#include "core/status_macros.h"

namespace spinnet::server {
namespace {

constexpr absl::string_view kDigestPrefix = "sha256:";
constexpr absl::string_view kSubjectPrefix = "x509:";
constexpr size_t kMaxNameLength = 64;
constexpr size_t kTokenBytes = 32;

std::string DigestHex(const TokenDigest& digest) {
  return absl::BytesToHexString(absl::string_view(
      reinterpret_cast<const char*>(digest.data()), digest.size()));
}

// "sha256:" and 64 hex digits (either case) into *digest.
bool ParseDigest(absl::string_view field, TokenDigest* digest) {
  if (!absl::ConsumePrefix(&field, kDigestPrefix) ||
      field.size() != 2 * digest->size()) {
    return false;
  }
  for (char c : field) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  const std::string bytes = absl::HexStringToBytes(field);
  std::copy(bytes.begin(), bytes.end(), digest->begin());
  return true;
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kReader:
      return "reader";
    case Role::kTrainer:
      return "trainer";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

std::optional<Role> RoleNamed(absl::string_view name) {
  for (Role role : {Role::kReader, Role::kTrainer, Role::kAdmin}) {
    if (name == RoleName(role)) return role;
  }
  return std::nullopt;
}

const std::vector<RpcRole>& RpcRoles() {
  static const auto* table = new std::vector<RpcRole>{
      {rpc::kUploadDataset, Role::kTrainer},
      {rpc::kListDatasets, Role::kReader},
      {rpc::kGetDataset, Role::kReader},
      {rpc::kDeleteDataset, Role::kAdmin},
      {rpc::kClassify, Role::kReader},
      {rpc::kStreamClassify, Role::kReader},
      {rpc::kTraceNeurons, Role::kReader},
      {rpc::kGetTrainingMetrics, Role::kReader},
      {rpc::kGetServerStats, Role::kReader},
      {rpc::kListModels, Role::kReader},
      {rpc::kGetModel, Role::kReader},
      {rpc::kDeleteModel, Role::kAdmin},
      {rpc::kExportModel, Role::kReader},
      {rpc::kImportModel, Role::kTrainer},
      {rpc::kSubmitSweep, Role::kTrainer},
      {rpc::kGetSweep, Role::kReader},
      {rpc::kListSweeps, Role::kReader},
      {rpc::kCancelSweep, Role::kTrainer},
      {rpc::kWatchSweep, Role::kReader},
      {rpc::kSubmitTrainingJob, Role::kTrainer},
      {rpc::kGetTrainingJob, Role::kReader},
      {rpc::kListTrainingJobs, Role::kReader},
      {rpc::kCancelTrainingJob, Role::kTrainer},
      {rpc::kWatchTrainingJob, Role::kReader},
  };
  return *table;
}

std::optional<Role> RequiredRole(absl::string_view rpc) {
  for (const RpcRole& row : RpcRoles()) {
    if (rpc == row.rpc) return row.role;
  }
  return std::nullopt;
}

absl::Status CheckClientName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength ||
      !absl::ascii_isalnum(static_cast<unsigned char>(name[0]))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "client name '", absl::CHexEscape(name.substr(0, kMaxNameLength + 1)),
        "' must be 1-64 of A-Z a-z 0-9 . _ @ -, starting with a letter or "
        "digit"));
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' &&
        c != '_' && c != '@' && c != '-') {
      return absl::InvalidArgumentError(absl::StrCat(
          "client name '", absl::CHexEscape(name),
          "' must be 1-64 of A-Z a-z 0-9 . _ @ -, starting with a letter or "
          "digit"));
    }
  }
  for (absl::string_view reserved :
       {"anonymous", "unauthenticated", kTokenFileClient}) {
    if (name == reserved) {
      return absl::InvalidArgumentError(absl::StrCat(
          "client name '", name, "' is reserved (metrics and logs use it)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<TokenTable> TokenTable::Parse(absl::string_view text,
                                             const std::string& path) {
  TokenTable table;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    const std::string where = absl::StrCat(path, ":", line_number);
    line = line.substr(0, line.find('#'));
    const std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (fields.empty()) continue;
    // A subject may hold spaces ("O=My Lab"): the rest of the line.
    const bool by_subject =
        fields.size() >= 3 && absl::StartsWith(fields[2], kSubjectPrefix);
    // No field is echoed in full: a raw token pasted by mistake must not
    // reach a log.
    if (fields.size() != 3 && !by_subject) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", fields.size(),
                       " fields; expected 'CLIENT ROLE sha256:HEX'"));
    }
    const absl::Status name_ok = CheckClientName(fields[0]);
    if (!name_ok.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", name_ok.message()));
    }
    const std::optional<Role> role = RoleNamed(fields[1]);
    if (!role.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": unknown role '", absl::CHexEscape(fields[1].substr(0, 16)),
          "'; the roles are reader, trainer and admin"));
    }
    TokenClient client{std::string(fields[0]), *role, {}, where};
    if (by_subject) {
      client.x509_subject = std::string(absl::StripAsciiWhitespace(
          line.substr(fields[2].data() + kSubjectPrefix.size() - line.data())));
      if (client.x509_subject.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": 'x509:' without a certificate subject"));
      }
    } else if (!ParseDigest(fields[2], &client.digest)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where,
          ": the third field must be 'sha256:' and 64 hex digits, the "
          "token's hash (spinnet token new makes lines), not the token, or "
          "'x509:' and a certificate subject"));
    }
    RETURN_IF_ERROR(table.AddClient(std::move(client)));
  }
  if (table.clients_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path,
                     ": no clients; expected lines "
                     "'CLIENT ROLE sha256:HEX'"));
  }
  return table;
}

absl::Status TokenTable::Add(std::string name, Role role,
                             absl::string_view token, std::string where) {
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": empty token"));
  }
  return AddClient({std::move(name), role, Sha256(token), std::move(where)});
}

absl::Status TokenTable::AddClient(TokenClient client) {
  for (const TokenClient& other : clients_) {
    if (other.name == client.name) {
      return absl::InvalidArgumentError(
          absl::StrCat(client.where, ": client '", client.name,
                       "' is already defined at ", other.where));
    }
    if (!client.x509_subject.empty()) {
      if (other.x509_subject == client.x509_subject) {
        return absl::InvalidArgumentError(
            absl::StrCat(client.where, ": client '", client.name,
                         "' has the same certificate subject as '", other.name,
                         "' at ", other.where));
      }
    } else if (other.x509_subject.empty() && other.digest == client.digest) {
      return absl::InvalidArgumentError(absl::StrCat(
          client.where, ": client '", client.name, "' has the same token as '",
          other.name, "' at ", other.where, "; give each client its own"));
    }
  }
  has_subjects_ = has_subjects_ || !client.x509_subject.empty();
  clients_.push_back(std::move(client));
  return absl::OkStatus();
}

const TokenClient* TokenTable::Find(absl::string_view token) const {
  const TokenDigest digest = Sha256(token);
  uint64_t want[4];
  std::memcpy(want, digest.data(), sizeof(want));
  const TokenClient* found = nullptr;
  for (const TokenClient& client : clients_) {
    // Every word of every entry, whatever matched before; the volatile
    // store keeps the compiler from turning the OR into an early exit.
    uint64_t have[4];
    std::memcpy(have, client.digest.data(), sizeof(have));
    volatile uint64_t diff = (want[0] ^ have[0]) | (want[1] ^ have[1]) |
                             (want[2] ^ have[2]) | (want[3] ^ have[3]);
    // Which entries are certificates is no secret of the caller's.
    if (diff == 0 && client.x509_subject.empty()) found = &client;
  }
  return found;
}

const TokenClient* TokenTable::FindSubject(absl::string_view subject) const {
  for (const TokenClient& client : clients_) {
    if (!client.x509_subject.empty() && client.x509_subject == subject) {
      return &client;
    }
  }
  return nullptr;
}

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

absl::StatusOr<TokenTable> LoadTokenTable(const TokenFiles& files) {
  TokenTable table;
  if (!files.tokens_file.empty()) {
    ASSIGN_OR_RETURN(const std::string text, ReadFile(files.tokens_file));
    ASSIGN_OR_RETURN(table, TokenTable::Parse(text, files.tokens_file));
  }
  if (!files.token_file.empty()) {
    ASSIGN_OR_RETURN(const std::string token, LoadToken(files.token_file));
    RETURN_IF_ERROR(
        table.Add(kTokenFileClient, Role::kAdmin, token,
                  absl::StrCat("--auth-token-file ", files.token_file)));
  }
  return table;
}

absl::StatusOr<std::string> NewToken() {
  std::string bytes(kTokenBytes, '\0');
  const int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", "/dev/urandom");
  size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const absl::Status error = ErrnoError("cannot read", "/dev/urandom");
      close(fd);
      return n == 0 ? absl::InternalError("/dev/urandom ended") : error;
    }
    got += static_cast<size_t>(n);
  }
  close(fd);
  return absl::WebSafeBase64Escape(bytes);
}

std::string TokenFileLine(absl::string_view name, Role role,
                          absl::string_view token) {
  return absl::StrCat(name, " ", RoleName(role), " ", kDigestPrefix,
                      DigestHex(Sha256(token)));
}

}  // namespace spinnet::server
