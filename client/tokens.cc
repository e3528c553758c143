// Commands that make the server's auth tokens, without a server: token new.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli.h"
#include "core/file_util.h"
#include "core/status_macros.h"
#include "server/api/access.h"

namespace spinnet::client {
namespace {

using server::Role;

// Appends `line` to the token file `path` (made if missing) once the whole
// new file parses: a duplicate name, say, leaves the file as it was.
absl::Status AddToTokenFile(const std::string& path, const std::string& line) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (absl::IsNotFound(text.status())) text = std::string();
  if (!text.ok()) return text.status();
  if (!text->empty() && text->back() != '\n') *text += '\n';
  absl::StrAppend(&*text, line, "\n");
  RETURN_IF_ERROR(server::TokenTable::Parse(*text, path).status());
  return WriteFileAtomically(path, *text);
}

int RunTokenNew(const Invocation& inv) {
  const std::string& name = inv.args[0];
  const absl::Status name_ok = server::CheckClientName(name);
  if (!name_ok.ok()) return UsageFail(name_ok.message());
  const std::optional<Role> role = server::RoleNamed(inv.args[1]);
  if (!role.has_value()) {
    return UsageFail(absl::StrCat("unknown role '", inv.args[1],
                                  "'; the roles are reader, trainer, admin"));
  }
  const absl::StatusOr<std::string> token = server::NewToken();
  if (!token.ok()) return Fail(token.status());
  const std::string line = server::TokenFileLine(name, *role, *token);
  if (inv.Has("add-to")) {
    const std::string path = inv.Get("add-to");
    const absl::Status added = AddToTokenFile(path, line);
    if (!added.ok()) return Fail(added);
    absl::FPrintF(stderr,
                  "added client %s (%s) to %s; SIGHUP the server to load it\n",
                  name, inv.args[1], path);
  } else {
    absl::FPrintF(stderr, "%s\n", line);
  }
  absl::PrintF("%s\n", *token);
  return 0;
}

}  // namespace

const std::vector<Command>& TokenCommands() {
  static const std::vector<Command>* commands = new std::vector<Command>{
      {"token new",
       "CLIENT reader|trainer|admin",
       "Makes a client's bearer token (256 random bits from /dev/urandom)\n"
       "without a server. The token goes to stdout, and its line for the\n"
       "server's --auth-tokens-file ('CLIENT ROLE sha256:HEX': only the\n"
       "hash) to stderr, or with --add-to FILE into FILE (checked whole,\n"
       "written atomically). Then SIGHUP the server.\n"
       "  spinnet token new alice reader --add-to tokens > alice.token",
       {{"add-to", Kind::kText, "FILE",
         "append the line to this token file (made if missing)"}},
       false,
       2,
       2,
       nullptr,
       RunTokenNew},
  };
  return *commands;
}

}  // namespace spinnet::client
