// The command table of the `spinnet` CLI: what a command is, the parsed
// command line it runs with, and the command groups (one file each:
// jobs.cc, sweeps.cc, datasets.cc, models.cc, inference.cc, status.cc,
// tokens.cc). A new command
// is one Run function and one table entry in its group's file; the parser
// (cli.cc, on CLI11), --help and shell completion all come from the table.
#ifndef SPINNET_CLIENT_CLI_H_
#define SPINNET_CLIENT_CLI_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"
#include "client/client.h"
#include "core/training_flags.h"

namespace spinnet::client {

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
constexpr int kClassifyBatch = 256;  // sequences per Classify call
constexpr char kDefaultServer[] = "127.0.0.1:50051";

// ---- Errors: every one is printed as "spinnet: <what>".
int Fail(absl::string_view what, int exit_status = kExitError);
int Fail(const absl::Status& status);
// A usage error: exit status 2.
int UsageFail(absl::string_view what);

enum class Kind { kSwitch, kText, kInt, kSeconds };

struct FlagSpec {
  const char* name;
  Kind kind;
  const char* value;  // the value's name in help; "" for switches
  const char* help;
  bool required = false;
};

inline const FlagSpec kGlobalFlags[] = {
    {"server", Kind::kText, "TARGET",
     "server: HOST:PORT, dns:///HOST:PORT (every replica it resolves to) or "
     "ipv4:IP:PORT,IP:PORT; calls are balanced round-robin (default "
     "$SPINNET_SERVER, else 127.0.0.1:50051)"},
    {"token-file", Kind::kText, "PATH",
     "file holding the bearer token to send"},
    {"tls-ca", Kind::kText, "PATH",
     "CA certificate (PEM) that signed the server's: use TLS"},
    {"tls-cert", Kind::kText, "PATH",
     "client certificate (PEM) for mutual TLS; needs --tls-key, --tls-ca"},
    {"tls-key", Kind::kText, "PATH", "the client certificate's key (PEM)"},
    {"timeout", Kind::kSeconds, "SECONDS",
     "deadline of each call (default 30; watching and streaming have none)"},
    {"json", Kind::kSwitch, "",
     "print the server's response messages as JSON, one per line"},
    {"help", Kind::kSwitch, "", "show help (after a command: its help)"},
};

// Parsed command line.
struct Command;
struct Invocation {
  const Command* command = nullptr;
  std::vector<std::string> args;             // after the command's name
  std::map<std::string, std::string> flags;  // name -> value as given
  std::vector<Setting> training;             // training flags, in order

  bool Has(const std::string& name) const { return flags.count(name) > 0; }
  std::string Get(const std::string& name,
                  const std::string& fallback = "") const {
    auto it = flags.find(name);
    return it == flags.end() ? fallback : it->second;
  }
  // Values were checked when parsed.
  int Int(const std::string& name, int fallback) const {
    int value = fallback;
    if (Has(name)) (void)absl::SimpleAtoi(Get(name), &value);
    return value;
  }
  double Seconds(const std::string& name, double fallback) const {
    double value = fallback;
    if (Has(name)) (void)absl::SimpleAtod(Get(name), &value);
    return value;
  }
  bool json() const { return Has("json"); }
};

struct Command {
  const char* name;   // one or two words, e.g. "datasets upload"
  const char* usage;  // what follows the name
  const char* help;
  std::vector<FlagSpec> flags;
  bool training_flags;     // takes spinnet-train's training flags
  int min_args, max_args;  // positional arguments after the name
  int (*run)(const Invocation&, Client&);
  // Set instead of `run` by commands that need no server (completion,
  // token new).
  int (*run_local)(const Invocation&) = nullptr;
};

// The command groups, in help order.
const std::vector<Command>& JobCommands();
const std::vector<Command>& SweepCommands();
const std::vector<Command>& DatasetCommands();
const std::vector<Command>& ModelCommands();
const std::vector<Command>& InferenceCommands();
const std::vector<Command>& StatusCommands();
const std::vector<Command>& TokenCommands();

// Every command, in help order (the groups above, then `completion`).
const std::vector<const Command*>& AllCommands();

// Parses the command line (client/cli.cc, on CLI11) into `inv`. Returns
// nullopt to go on, else the exit status: 0 after --help or --version, 2
// after a usage error (printed).
std::optional<int> ParseCommandLine(int argc, char** argv, Invocation* inv);

// The completion script for `shell` (bash or zsh) generated from the
// command table, or "" for another shell.
std::string CompletionScript(const std::string& shell);

}  // namespace spinnet::client

#endif  // SPINNET_CLIENT_CLI_H_
