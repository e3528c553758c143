// The command line of `spinnet`, on CLI11 (core/cli_flags.h says why):
// a tree of CLI::App built from the command table (client/cli.h), so
// parsing, --help and shell completion cannot disagree with it.
#include <functional>
#include <deque>
#include <map>
#include <string>
#include <vector>
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_format.h"
#include "core/status_macros.h"

#include "client/cli.h"
#include "core/cli_flags.h"

namespace spinnet::client {
namespace {

int RunCompletion(const Invocation& inv) {
  const std::string script = CompletionScript(inv.args[0]);
  if (script.empty()) {
    return UsageFail(absl::StrCat("no completion for shell '", inv.args[0],
                                  "'; bash or zsh"));
  }
  absl::PrintF("%s", script);
  return 0;
}

// The `completion` command: runs without a server.
const Command kCompletion = {
    "completion",
    "bash|zsh",
    "Prints a shell completion script generated from the command table.\n"
    "bash: source <(spinnet completion bash)   (or save it in\n"
    "/etc/bash_completion.d/spinnet); zsh: source <(spinnet completion zsh).",
    {},
    false,
    1,
    1,
    nullptr,
    RunCompletion};

struct Node {
  CLI::App* app = nullptr;
  const Command* command = nullptr;  // nullptr: the root
  std::vector<std::string> path;     // command words
  CLI::Option* args = nullptr;       // positional arguments
  std::vector<std::string> arg_values;
};

void AddFlags(CLI::App* app, const FlagSpec* begin, const FlagSpec* end,
              const std::string& group) {
  for (const FlagSpec* f = begin; f != end; ++f) {
    if (std::string(f->name) == "help") continue;  // CLI11's own
    const std::string name = absl::StrCat("--", f->name);
    CLI::Option* o =
        f->kind == Kind::kSwitch
            ? app->add_flag(name, f->help)->disable_flag_override()
            : app->add_option(name, f->help)->type_name(f->value);
    o->group(group);
  }
}

// The tree of commands, built once.
class Tree {
 public:
  Tree() : root_("", "spinnet") {
    root_.description(
        "Talks to a spinnet server: trains spintronic recurrent networks on\n"
        "its datasets and classifies time series with the models they\n"
        "publish. 'spinnet COMMAND --help' shows one command.\n"
        "Exit status: 0 success; 1 error (RPC, file, a watched job failed or\n"
        "was cancelled); 2 bad usage.");
    cli::Setup(&root_, /*root=*/true);
    root_.require_subcommand(0, 1);
    AddFlags(&root_, std::begin(kGlobalFlags), std::end(kGlobalFlags),
             "Global flags (before or after the command)");
    nodes_.emplace_back();
    nodes_.back().app = &root_;
    for (const Command* c : AllCommands()) Add(c);
  }

  CLI::App& root() { return root_; }
  const std::deque<Node>& nodes() const { return nodes_; }

 private:
  // The node of `words`, made if new.
  Node& NodeOf(const std::vector<std::string>& words) {
    for (Node& n : nodes_) {
      if (n.path == words) return n;
    }
    std::vector<std::string> parent_words(words.begin(), words.end() - 1);
    CLI::App* parent = NodeOf(parent_words).app;
    CLI::App* app = parent->add_subcommand(words.back());
    cli::Setup(app, /*root=*/false);
    app->require_subcommand(0, 1);
    app->allow_extras();  // reported by cli::Parse, in spinnet's words
    nodes_.emplace_back();
    nodes_.back().app = app;
    nodes_.back().path = words;
    return nodes_.back();
  }

  void Add(const Command* c) {
    const std::vector<std::string> words = absl::StrSplit(c->name, ' ');
    Node& node = NodeOf(words);
    node.command = c;
    CLI::App* app = node.app;
    app->description(absl::StrCat("usage: spinnet ", c->name, " ", c->usage,
                                  "\n", c->help));
    AddFlags(app, c->flags.data(), c->flags.data() + c->flags.size(),
             "Flags");
    if (c->training_flags) {
      cli::AddTrainingFlags(
          app, "Training flags (as spinnet-train's; unset ones take the "
               "cell's default)");
    }
    AddFlags(app, std::begin(kGlobalFlags), std::end(kGlobalFlags),
             "Global flags");
    if (c->max_args > 0) {
      // Any number: too many or too few is a usage error after parsing.
      node.args = app->add_option("args", node.arg_values, c->usage)
                      ->type_name("");
    }
  }

  CLI::App root_;
  std::deque<Node> nodes_;  // stable addresses
};

Tree& TheTree() {
  static Tree* tree = new Tree;
  return *tree;
}

const FlagSpec* FindFlagSpec(const Command* c, const std::string& name) {
  for (const FlagSpec& f : kGlobalFlags) {
    if (name == f.name) return &f;
  }
  if (c != nullptr) {
    for (const FlagSpec& f : c->flags) {
      if (name == f.name) return &f;
    }
  }
  return nullptr;
}

absl::Status CheckValue(const std::string& name, Kind kind,
                        const std::string& value) {
  int i;
  double d;
  if (kind == Kind::kInt && !absl::SimpleAtoi(value, &i)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": '", value, "' is not an integer"));
  }
  if (kind == Kind::kSeconds && !(absl::SimpleAtod(value, &d) && d > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", name, ": '", value, "' is not a positive number of seconds"));
  }
  return absl::OkStatus();
}

// The flags given on the parsed path, into `inv`.
absl::Status Collect(const Node& node, Invocation* inv) {
  for (const CLI::Option* o : node.app->get_options()) {
    if (o == node.args || o->count() == 0 || o->get_lnames().empty()) {
      continue;
    }
    const std::string name = o->get_lnames()[0];
    const FlagSpec* spec = FindFlagSpec(node.command, name);
    // The program's --help and --version, not a command's --version V.
    if (name == "help" || (name == "version" && spec == nullptr)) continue;
    const std::string value =
        spec != nullptr && spec->kind == Kind::kSwitch ? ""
                                                       : o->results().back();
    if (spec != nullptr) RETURN_IF_ERROR(CheckValue(name, spec->kind, value));
    if (!inv->flags.emplace(name, value).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " is given twice"));
    }
  }
  for (const Setting& s : cli::TrainingSettings(*node.app)) {
    inv->training.push_back(s);
  }
  if (node.args != nullptr) inv->args = node.arg_values;
  return absl::OkStatus();
}

}  // namespace

const std::vector<const Command*>& AllCommands() {
  static const auto* all = [] {
    auto* v = new std::vector<const Command*>;
    for (const auto* group :
         {&JobCommands(), &SweepCommands(), &DatasetCommands(), &ModelCommands(),
          &InferenceCommands(), &StatusCommands(), &TokenCommands()}) {
      for (const Command& c : *group) v->push_back(&c);
    }
    v->push_back(&kCompletion);
    return v;
  }();
  return *all;
}

std::optional<int> ParseCommandLine(int argc, char** argv, Invocation* inv) {
  Tree& tree = TheTree();
  if (auto exit = cli::Parse(&tree.root(), argc, argv, "spinnet")) {
    return exit;
  }
  // The parsed path: the root, then one subcommand per level.
  const Node* last = nullptr;
  for (const Node& n : tree.nodes()) {
    if (n.command != nullptr && !n.app->parsed()) continue;
    if (n.command == nullptr && n.app != &tree.root()) continue;
    const absl::Status s = Collect(n, inv);
    if (!s.ok()) return UsageFail(s.message());
    if (n.command != nullptr &&
        (last == nullptr || n.path.size() > last->path.size())) {
      last = &n;
    }
  }
  if (last == nullptr) return UsageFail("no command given");
  const Command& c = *last->command;
  inv->command = &c;
  const int args = static_cast<int>(inv->args.size());
  if (args < c.min_args || args > c.max_args) {
    return UsageFail(absl::StrCat("usage: spinnet ", c.name, " ", c.usage));
  }
  for (const FlagSpec& f : c.flags) {
    if (f.required && !inv->Has(f.name)) {
      return UsageFail(absl::StrCat(c.name, " needs --", f.name, " ", f.value));
    }
  }
  return std::nullopt;
}

std::string CompletionScript(const std::string& shell) {
  if (shell != "bash" && shell != "zsh") return "";
  // Per command path: the words that may follow, and the flags.
  std::string words, flags;
  for (const Node& n : TheTree().nodes()) {
    const std::string path = absl::StrJoin(n.path, " ");
    std::vector<std::string> next;
    for (const CLI::App* sub : n.app->get_subcommands({})) {
      next.push_back(sub->get_name());
    }
    if (n.command == &kCompletion) next = {"bash", "zsh"};
    std::vector<std::string> names = {"--help"};
    for (const CLI::Option* o : n.app->get_options()) {
      for (const std::string& l : o->get_lnames()) {
        if (l != "help") names.push_back("--" + l);
      }
    }
    absl::StrAppend(&words, "    \"", path, "\") echo \"",
                    absl::StrJoin(next, " "), "\" ;;\n");
    absl::StrAppend(&flags, "    \"", path, "\") echo \"",
                    absl::StrJoin(names, " "), "\" ;;\n");
  }
  std::string script = absl::StrCat(
      "# spinnet ", shell, " completion, generated from the command table by\n",
      "# 'spinnet completion ", shell, "'.\n");
  if (shell == "zsh") {
    absl::StrAppend(&script,
                    "autoload -U +X compinit && compinit\n"
                    "autoload -U +X bashcompinit && bashcompinit\n");
  }
  absl::StrAppend(
      &script, "_spinnet_words() {\n  case \"$1\" in\n", words,
      "  esac\n}\n_spinnet_flags() {\n  case \"$1\" in\n", flags,
      "  esac\n}\n",
      R"SH(_spinnet() {
  local cur="${COMP_WORDS[COMP_CWORD]}" path="" i w
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${COMP_WORDS[i]}"
    [[ $w == -* ]] && continue
    if [[ " $(_spinnet_words "$path") " == *" $w "* ]]; then
      path="${path:+$path }$w"
    fi
  done
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(_spinnet_flags "$path")" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(_spinnet_words "$path")" -- "$cur"))
  fi
}
complete -o default -F _spinnet spinnet
)SH");
  return script;
}

}  // namespace spinnet::client
