#include "core/cli_flags.h"

#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

#ifndef SPINNET_VERSION
#error "SPINNET_VERSION must be defined (CMake's PROJECT_VERSION)"
#endif

namespace spinnet::cli {

std::string VersionText() { return absl::StrCat("spinnet ", SPINNET_VERSION); }

void Setup(CLI::App* app, bool root) {
  app->get_formatter()->column_width(36);
  if (root) app->set_version_flag("--version", VersionText(), "print the version and exit");
}

namespace {

// "--lr: 1 required VALUE missing" -> "--lr".
std::string FlagOf(const std::string& what) {
  const size_t colon = what.find(':');
  return colon == std::string::npos ? what : what.substr(0, colon);
}

}  // namespace

std::string Message(const CLI::Error& e) {
  const std::string what = e.what();
  const std::string name = e.get_name();
  if (name == "ArgumentMismatch") {
    if (absl::StrContains(what, "received")) {
      return absl::StrCat("flag ", FlagOf(what), " given twice");
    }
    if (absl::StrContains(what, "missing")) {
      return absl::StrCat("flag ", FlagOf(what), " needs a value");
    }
  }
  if (absl::StrContains(what, "disallowed flag override")) {
    return absl::StrCat("flag --", what.substr(0, what.find(' ')),
                        " takes no value");
  }
  std::string line = what;
  for (char& c : line) {
    if (c == '\n') c = ' ';
  }
  return line;
}

int UsageError(const std::string& program, const std::string& message) {
  std::fprintf(stderr, "%s: %s\n", program.c_str(), message.c_str());
  std::fflush(stderr);
  return 2;
}

std::optional<int> Parse(CLI::App* app, int argc, char** argv,
                         const std::string& program) {
  const bool allow_extras = app->get_allow_extras();
  app->allow_extras();
  try {
    app->parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app->exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app->exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app->exit(e);
  } catch (const CLI::ParseError& e) {
    return UsageError(program, Message(e));
  }
  if (!allow_extras) {
    for (const std::string& arg : app->remaining(/*recurse=*/true)) {
      if (absl::StartsWith(arg, "-") && arg.size() > 1) {
        return UsageError(program, absl::StrCat("unknown flag ",
                                                arg.substr(0, arg.find('=')),
                                                " (see --help)"));
      }
      return UsageError(program, absl::StrCat("unexpected argument '", arg,
                                              "' (see --help)"));
    }
  }
  return std::nullopt;
}

void AddTrainingFlags(CLI::App* app, const std::string& group) {
  for (const TrainingFlag& f : TrainingFlags()) {
    const std::string help =
        absl::StrCat(f.help, " (default ", DefaultsText(f), ")");
    CLI::Option* o = f.is_bool ? app->add_flag("--" + f.name, help)
                               : app->add_option("--" + f.name, help)
                                     ->type_name("VALUE");
    o->group(group);
  }
}

std::vector<Setting> TrainingSettings(const CLI::App& app) {
  std::vector<Setting> settings;
  for (const CLI::Option* o :
       const_cast<CLI::App&>(app).parse_order()) {
    const std::string name = o->get_name(false, true).substr(2);
    if (FindTrainingFlag(name) == nullptr || o->results().empty()) continue;
    bool seen = false;
    for (const Setting& s : settings) seen |= s.first == name;
    if (!seen) settings.emplace_back(name, o->results().back());
  }
  return settings;
}

std::optional<std::string> Value(const CLI::App& app,
                                 const std::string& name) {
  const CLI::Option* o = app.get_option_no_throw("--" + name);
  if (o == nullptr || o->count() == 0 || o->results().empty()) {
    return std::nullopt;
  }
  return o->results().back();
}

}  // namespace spinnet::cli
