// The command-line rules shared by spinnet-server, spinnet and
// spinnet-train, on CLI11.
//
// Why CLI11 (Debian 12: libcli11-dev 2.1, header-only) and not Abseil
// flags: the training flags are added at run time from the table in
// core/training_flags.h, the `spinnet` client is a tree of subcommands with
// their own flags and positional arguments, and its shell completion is
// generated from that same tree. CLI11 builds options from a table and
// nests subcommands, each with its own --help; Abseil flags are global,
// defined at compile time with ABSL_FLAG, and have no subcommands.
//
// The rules: "--flag=value" and "--flag value" are the same; a bad command
// line is one line "PROGRAM: message" on stderr and exit status 2; --help
// (and -h) lists every flag with its units and default; --version prints
// "spinnet X.Y.Z".
#ifndef SPINNET_CORE_CLI_FLAGS_H_
#define SPINNET_CORE_CLI_FLAGS_H_

#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/training_flags.h"

namespace spinnet::cli {

// "spinnet 0.1.0": PROJECT_VERSION from CMake.
std::string VersionText();

// Sets up `app` (a root or a subcommand) the common way: --help, -h, a
// wider help layout; on a root, --version too.
void Setup(CLI::App* app, bool root);

// Parses; nullopt to go on, else the exit status to return: 0 after --help
// or --version was printed, 2 after an error line "PROGRAM: message".
// Arguments CLI11 could not place are errors ("unknown flag --x",
// "unexpected argument 'x'") unless `allow_extras`; then they are left in
// app->remaining().
std::optional<int> Parse(CLI::App* app, int argc, char** argv,
                         const std::string& program);

// A CLI11 parse error as one line in spinnet's words.
std::string Message(const CLI::Error& e);

// Prints "PROGRAM: message" on stderr; returns 2.
int UsageError(const std::string& program, const std::string& message);

// Adds every TrainingSpec flag of core's table to `app`, in help group
// `group`, with units and per-cell defaults in their help.
void AddTrainingFlags(CLI::App* app, const std::string& group);

// The training flags given to `app`, in command-line order, as settings.
std::vector<Setting> TrainingSettings(const CLI::App& app);

// The value given for --name (the last one), or nullopt.
std::optional<std::string> Value(const CLI::App& app, const std::string& name);

}  // namespace spinnet::cli

#endif  // SPINNET_CORE_CLI_FLAGS_H_
