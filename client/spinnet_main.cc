// spinnet: the command-line client of a spinnet server. Run with --help.
//
// This file only dispatches. The commands are in one file per group
// (jobs.cc, datasets.cc, models.cc, inference.cc, status.cc, tokens.cc),
// each with its table of commands (client/cli.h); the parser is
// client/cli.cc and the shared output formatting client/output.cc.
#include "client/cli.h"
#include <string>
#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "core/file_util.h"
#include "core/status_macros.h"

namespace spinnet::client {
namespace {

absl::StatusOr<ClientOptions> MakeClientOptions(const Invocation& inv) {
  ClientOptions options;
  const char* env = std::getenv("SPINNET_SERVER");
  options.target =
      inv.Get("server", env != nullptr && *env != '\0' ? env : kDefaultServer);
  options.tls_ca_file = inv.Get("tls-ca");
  options.tls_cert_file = inv.Get("tls-cert");
  options.tls_key_file = inv.Get("tls-key");
  options.deadline = absl::Seconds(inv.Seconds("timeout", 30));
  if (inv.Has("token-file")) {
    const std::string path = inv.Get("token-file");
    ASSIGN_OR_RETURN(const std::string text, ReadFile(path));
    options.token = std::string(absl::StripAsciiWhitespace(text));
    if (options.token.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("token file ", path, " is empty"));
    }
  }
  return options;
}

int Main(int argc, char** argv) {
  Invocation inv;
  if (auto exit = ParseCommandLine(argc, argv, &inv)) return *exit;
  if (inv.command->run_local != nullptr) return inv.command->run_local(inv);
  const absl::StatusOr<ClientOptions> options = MakeClientOptions(inv);
  if (!options.ok()) return Fail(options.status());
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(*options);
  // Connect rejects only inconsistent TLS flags, or PEM files it cannot read.
  if (absl::IsInvalidArgument(client.status())) {
    return UsageFail(client.status().message());
  }
  if (!client.ok()) return Fail(client.status());
  return inv.command->run(inv, **client);
}

}  // namespace
}  // namespace spinnet::client

int main(int argc, char** argv) { return spinnet::client::Main(argc, argv); }
