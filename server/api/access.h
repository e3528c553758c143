// Who may do what: the roles, the one table of the role each RPC needs, and
// the token file that names the clients. gRPC-free, so that the `spinnet`
// CLI links it to make token-file lines; auth.h applies it to calls.
//
// A token file holds one client a line, "CLIENT ROLE sha256:HEX", where HEX
// is the SHA-256 of the client's bearer token, or "CLIENT ROLE x509:SUBJECT"
// for a mutual-TLS client known by its verified certificate's subject (as
// gRPC's x509_subject property gives it: RFC 2253, "CN=ci,O=lab"); '#'
// starts a comment, blank lines are allowed. Only hashes are stored: tokens
// are 256-bit random secrets (NewToken), so an unsalted SHA-256 is enough;
// there is no dictionary to try, and a salt or a slow hash only protects
// guessable secrets such as passwords.
#ifndef SPINNET_SERVER_API_ACCESS_H_
#define SPINNET_SERVER_API_ACCESS_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace spinnet::server {

// Each role has the rights of the roles before it.
enum class Role {
  kReader,   // list, get, watch, classify, stream, trace, metrics, export
  kTrainer,  // + submit and cancel jobs and sweeps, upload datasets, import
  kAdmin,    // + delete datasets and models
};

absl::string_view RoleName(Role role);  // "reader", "trainer", "admin"
std::optional<Role> RoleNamed(absl::string_view name);

// The full names of the RPCs (without gRPC's leading '/'), as the handlers
// name them to TokenAuthorizer::Authorize.
namespace rpc {
inline constexpr char kUploadDataset[] =
    "spinnet.v1.DatasetService/UploadDataset";
inline constexpr char kListDatasets[] =
    "spinnet.v1.DatasetService/ListDatasets";
inline constexpr char kGetDataset[] = "spinnet.v1.DatasetService/GetDataset";
inline constexpr char kDeleteDataset[] =
    "spinnet.v1.DatasetService/DeleteDataset";
inline constexpr char kClassify[] = "spinnet.v1.InferenceService/Classify";
inline constexpr char kStreamClassify[] =
    "spinnet.v1.InferenceService/StreamClassify";
inline constexpr char kTraceNeurons[] =
    "spinnet.v1.InferenceService/TraceNeurons";
inline constexpr char kGetTrainingMetrics[] =
    "spinnet.v1.MetricsService/GetTrainingMetrics";
inline constexpr char kGetServerStats[] =
    "spinnet.v1.MetricsService/GetServerStats";
inline constexpr char kListModels[] = "spinnet.v1.ModelService/ListModels";
inline constexpr char kGetModel[] = "spinnet.v1.ModelService/GetModel";
inline constexpr char kDeleteModel[] = "spinnet.v1.ModelService/DeleteModel";
inline constexpr char kExportModel[] = "spinnet.v1.ModelService/ExportModel";
inline constexpr char kImportModel[] = "spinnet.v1.ModelService/ImportModel";
inline constexpr char kSubmitSweep[] = "spinnet.v1.SweepService/SubmitSweep";
inline constexpr char kGetSweep[] = "spinnet.v1.SweepService/GetSweep";
inline constexpr char kListSweeps[] = "spinnet.v1.SweepService/ListSweeps";
inline constexpr char kCancelSweep[] = "spinnet.v1.SweepService/CancelSweep";
inline constexpr char kWatchSweep[] = "spinnet.v1.SweepService/WatchSweep";
inline constexpr char kSubmitTrainingJob[] =
    "spinnet.v1.TrainingService/SubmitTrainingJob";
inline constexpr char kGetTrainingJob[] =
    "spinnet.v1.TrainingService/GetTrainingJob";
inline constexpr char kListTrainingJobs[] =
    "spinnet.v1.TrainingService/ListTrainingJobs";
inline constexpr char kCancelTrainingJob[] =
    "spinnet.v1.TrainingService/CancelTrainingJob";
inline constexpr char kWatchTrainingJob[] =
    "spinnet.v1.TrainingService/WatchTrainingJob";
}  // namespace rpc

// One row of the authorization table.
struct RpcRole {
  const char* rpc;  // "spinnet.v1.TrainingService/SubmitTrainingJob"
  Role role;        // the least role that may call it
};

// Every RPC of every spinnet.v1 service and the role it needs, in the order
// of the proto files. A test checks it against the services' descriptors,
// so an RPC cannot be added without a row.
const std::vector<RpcRole>& RpcRoles();

// The role `rpc` (full name without the leading '/') needs; nullopt for a
// name not in RpcRoles().
std::optional<Role> RequiredRole(absl::string_view rpc);

using TokenDigest = std::array<uint8_t, 32>;  // SHA-256 of a token

struct TokenClient {
  std::string name;
  Role role;
  TokenDigest digest;  // of its token, unless x509_subject is set
  std::string where;   // "FILE:LINE" or the flag it came from, for errors
  std::string x509_subject = {};  // set: known by its certificate, no token
};

// Clients and the digests of their tokens (or their certificate
// subjects). Immutable once built: a reload
// builds a new table and swaps it in (auth.h).
class TokenTable {
 public:
  // Parses a token file's text; `path` names it in errors, which also give
  // the line: a line that is not three fields, an unknown role, a hash that
  // is not "sha256:" and 64 hex digits, an empty "x509:" subject, a client
  // name that is malformed (1-64 of [A-Za-z0-9._@-], starting alphanumeric)
  // or reserved ("anonymous", "unauthenticated", "token-file"), a name,
  // token or subject given twice, a file without clients. All
  // INVALID_ARGUMENT; no message repeats a token or hash field.
  static absl::StatusOr<TokenTable> Parse(absl::string_view text,
                                          const std::string& path);

  // Adds client `name` whose bearer token is `token`. INVALID_ARGUMENT for
  // an empty token, a name or token already in the table; `where` names the
  // source in errors.
  absl::Status Add(std::string name, Role role, absl::string_view token,
                   std::string where);

  // The client whose token this is, or nullptr. The token is hashed once
  // and every entry's digest compared in full, so the time taken depends on
  // the table's size only, not on which entry or how much of one matched.
  const TokenClient* Find(absl::string_view token) const;

  // The client known by certificate subject `subject`, or nullptr (the
  // subject is no secret: an ordinary search).
  const TokenClient* FindSubject(absl::string_view subject) const;
  bool has_subjects() const { return has_subjects_; }

  const std::vector<TokenClient>& clients() const { return clients_; }

 private:
  absl::Status AddClient(TokenClient client);

  std::vector<TokenClient> clients_;
  bool has_subjects_ = false;
};

// The files the clients come from; both may be given.
struct TokenFiles {
  std::string tokens_file;  // --auth-tokens-file: the format above
  std::string token_file;   // --auth-token-file: one raw token, an admin
                            // client named "token-file"
};

// The client name the --auth-token-file token stands for.
inline constexpr char kTokenFileClient[] = "token-file";

// Reads both files into one table. Errors as Parse and LoadToken give them.
absl::StatusOr<TokenTable> LoadTokenTable(const TokenFiles& files);

// The token in file `path`, without surrounding whitespace. NOT_FOUND if the
// file does not exist, INVALID_ARGUMENT if it is empty or the token contains
// whitespace (a header value cannot carry it intact), other errors as
// ReadFile gives them. Messages name the file, never the token.
absl::StatusOr<std::string> LoadToken(const std::string& path);

// INVALID_ARGUMENT unless `name` may name a client (see Parse).
absl::Status CheckClientName(absl::string_view name);

// A new token: 32 bytes from /dev/urandom as 43 characters of unpadded
// base64url. INTERNAL if /dev/urandom cannot be read.
absl::StatusOr<std::string> NewToken();

// The token-file line of client `name` with `role` and `token`:
// "NAME ROLE sha256:HEX".
std::string TokenFileLine(absl::string_view name, Role role,
                          absl::string_view token);

}  // namespace spinnet::server

#endif  // SPINNET_SERVER_API_ACCESS_H_
