// conch/tool/flags.hpp — the tools' command lines, on CLI11.
//
// The tools' command lines are `PROGRAM [SUBCOMMAND...] [flags] -- CMD ARGS...`:
// flags and positionals before `--`, the child's argv untouched after it (the
// words are split at the first `--` before CLI11 sees them). Each flag is
// `--name value` or `--name=value`; a bad one yields a single line naming the
// flag and the problem (`--ttl: duration "abc": ...`), which the tool prints
// after its own name and exits 64. `--help` prints the command's help (its
// description, every flag with its default, the exit codes) and exits 0.
// This directory is the only place that includes CLI11.
//
//   bool who = false;
//   std::string name;
//   conch::tool::command_line p{"conch elect", "NAME [flags] -- CMD ARGS..."};
//   p.positional("NAME", name, "the office").flag("--who", who, "print the leader");
//   auto r = p.parse(args);   // result<parsed>: run, help or version
//
// A tool is a tree of these: `conch` with subcommands `elect`, `sema` and
// `cron` (itself with `add`, `ls`, `rm`); each leaf says what running it
// does (on_run), and run_command_line() parses, reports and runs.
#pragma once

#include "conch/logic/duration.hpp"
#include "conch/result.hpp"
#include "conch/version.hpp"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace conch::tool {

/// What a successful parse asks the tool to do.
enum class parsed { run, help, version };

/// The exit codes every tool documents in its --help footer.
inline constexpr std::string_view exit_codes_footer =
    "exit codes:\n"
    "  0        success, or CMD's own code     1    vacant office / nobody holds / no such job\n"
    "  64       usage error                    69   etcd unavailable\n"
    "  70       lease lost                     75   busy (--nonblock) or --timeout expired\n"
    "  126/127  CMD cannot be executed / not found\n"
    "  128+n    stop signal n arrived before any child ran\n";

namespace detail_flags {

/// Help in the house's shape: `usage: PROGRAM SYNOPSIS`, the description
/// (its first line is the summary a parent lists), then CLI11's sections.
class formatter : public CLI::Formatter {
 public:
  formatter(std::string program, std::string synopsis)
      : program_(std::move(program)), synopsis_(std::move(synopsis)) {
    column_width(30);
    label("Positionals", "arguments");
  }
  /// `--ttl DURATION`: the value's kind only; default and variable go in the description.
  std::string make_option_opts(const CLI::Option* o) const override {
    return o->get_type_size() != 0 && !o->get_type_name().empty() ? " " + o->get_type_name() : "";
  }
  std::string make_option_desc(const CLI::Option* o) const override {
    std::string extra = o->get_default_str().empty() ? "" : "default " + o->get_default_str();
    if (!o->get_envname().empty()) extra += (extra.empty() ? "env " : "; env ") + o->get_envname();
    return o->get_description() + (extra.empty() ? "" : " (" + extra + ")");
  }
  std::string make_description(const CLI::App*) const override { return {}; }
  std::string make_usage(const CLI::App* app, std::string) const override {
    std::string out = "usage: " + program_ + " " + synopsis_ + "\n";
    if (!app->get_description().empty()) out += "\n" + app->get_description() + "\n";
    return out;
  }
  std::string make_subcommand(const CLI::App* sub) const override {
    const std::string& d = sub->get_description();
    std::stringstream out;
    CLI::detail::format_help(out, sub->get_name(), d.substr(0, d.find('\n')), column_width_);
    return out.str();
  }

 private:
  std::string program_, synopsis_;
};

/// The words before the first `--`, and (if there is one) the words after it.
struct split_words {
  std::vector<std::string> flags;
  std::optional<std::vector<std::string>> command;
};
inline split_words split_at_dashdash(const std::vector<std::string>& args) {
  split_words out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] != "--") continue;
    out.flags.assign(args.begin(), args.begin() + static_cast<std::ptrdiff_t>(i));
    out.command.emplace(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
    return out;
  }
  out.flags = args;
  return out;
}

/// CLI11's wording of a missing or refused value, in the house's one line.
inline std::string reword(const CLI::ParseError& e) {
  std::string m = e.what();
  if (auto at = m.find(" was given a disallowed flag override"); at != std::string::npos)
    return (at == 1 ? "-" : m.starts_with("-") ? "" : "--") + m.substr(0, at) + " takes no value";
  if (auto at = m.find(": 1 required "); at != std::string::npos && m.ends_with(" missing"))
    return m.substr(0, at) + " needs a value";
  for (auto& c : m)
    if (c == '\n') c = ' ';
  return m;
}

}  // namespace detail_flags

/// One command or subcommand: a CLI::App with the house's conventions.
class command_line {
 public:
  /// `program` prefixes every message ("conch elect"); `synopsis` follows it in the usage line.
  command_line(std::string program, std::string synopsis, std::string description = {},
               std::string footer = std::string(exit_codes_footer))
      : owned_(std::make_unique<CLI::App>(description, program)),
        app_(owned_.get()),
        program_(program) {
    configure(synopsis, std::move(footer));
  }
  command_line(const command_line&) = delete;
  command_line& operator=(const command_line&) = delete;

  const std::string& program() const noexcept { return program_; }
  CLI::App& app() noexcept { return *app_; }

  /// A subcommand (`conch` -> `conch elect`); its flags are its own. The
  /// description's first line is what the parent's --help lists.
  command_line& subcommand(const std::string& name, std::string synopsis, std::string description,
                           std::string footer = std::string(exit_codes_footer)) {
    CLI::App* sub = app_->add_subcommand(name, description)->group("commands");
    children_.push_back(
        std::unique_ptr<command_line>(new command_line(sub, program_ + " " + name)));
    children_.back()->configure(std::move(synopsis), std::move(footer));
    return *children_.back();
  }

  /// A flag without a value: present means true.
  command_line& flag(const std::string& name, bool& out, std::string help) {
    last_ = app_->add_flag(name, out, std::move(help))->disable_flag_override();
    return *this;
  }

  /// A flag with a text value; `env` names a variable read when the flag is absent.
  command_line& text(const std::string& name, std::string& out, std::string metavar,
                     std::string help, std::string env = {}) {
    last_ = app_->add_option(name, out, std::move(help))->type_name(std::move(metavar));
    if (!env.empty()) last_->envname(std::move(env));
    if (!out.empty()) last_->default_str(out);
    return *this;
  }

  /// A flag with a duration value (`500ms`, `10s`, `2m`, `1h30m`, bare = seconds).
  command_line& duration(const std::string& name, std::chrono::milliseconds& out, std::string help,
                         std::string default_text = {}) {
    last_ = app_->add_option_function<std::string>(
                    name, [&out](const std::string& v) { out = *conch::detail::parse_duration(v); },
                    std::move(help))
                ->type_name("DURATION")
                ->check(CLI::Validator(
                    [](std::string& v) {
                      auto d = conch::detail::parse_duration(v);
                      return d ? std::string() : d.error().message;
                    },
                    "", "duration"));
    if (!default_text.empty()) last_->default_str(std::move(default_text));
    return *this;
  }

  /// A flag with a whole number in [min, max].
  command_line& integer(const std::string& name, std::int64_t& out, std::int64_t min,
                        std::int64_t max, std::string help) {
    last_ =
        app_->add_option(name, out, std::move(help))->type_name("N")->check(whole_number(min, max));
    return *this;
  }

  /// Adds `text` to the help line of the flag added last (e.g. its default).
  command_line& default_text(std::string text) {
    if (last_) last_->default_str(std::move(text));
    return *this;
  }

  /// Leaves the flag added last out of --help (tuning knobs for tests and drills).
  command_line& hidden() {
    if (last_) last_->group("");
    return *this;
  }

  /// An optional-to-CLI11 positional argument, in order of declaration; missing
  /// is reported by parse() as `missing NAME (see --help)`.
  command_line& positional(const std::string& name, std::string& out, std::string help) {
    app_->add_option(name, out, std::move(help))->type_name("");
    positionals_.push_back({name, &out});
    return *this;
  }

  /// The child's argv: everything after `--`, untouched. A missing command is
  /// a usage error unless `needed` (asked after the parse) says otherwise,
  /// e.g. not with --who.
  command_line& command(
      std::vector<std::string>& out, std::function<bool()> needed = [] { return true; }) {
    command_ = &out;
    command_needed_ = std::move(needed);
    return *this;
  }

  /// What running this command does, once its command line parsed (see run_command_line).
  command_line& on_run(std::function<int()> run) {
    run_ = std::move(run);
    return *this;
  }
  int run() const { return run_ ? run_() : 64; }

  /// Parses `args` (the words after the program name) down to the subcommand
  /// they choose. Errors are `errc::invalid_argument` with a one-line message.
  result<parsed> parse(const std::vector<std::string>& args) {
    auto words = detail_flags::split_at_dashdash(args);
    std::vector<std::string> reversed(words.flags.rbegin(), words.flags.rend());
    try {
      app_->parse(reversed);
    } catch (const CLI::CallForHelp&) {
      return parsed::help;
    } catch (const CLI::CallForAllHelp&) {
      return parsed::help;
    } catch (const CLI::CallForVersion&) {
      return parsed::version;
    } catch (const CLI::ParseError& e) {
      return bad(detail_flags::reword(e));
    }
    return chosen().finish(app_->remaining(true), words.command);
  }

  /// The subcommand the last parse chose (this one if none).
  command_line& chosen() {
    for (auto& c : children_)
      if (c->app_->parsed()) return c->chosen();
    return *this;
  }

  /// The --help text.
  std::string help() const { return app_->help(); }

 private:
  command_line(CLI::App* app, std::string program) : app_(app), program_(std::move(program)) {}

  void configure(std::string synopsis, std::string footer) {
    app_->formatter(std::make_shared<detail_flags::formatter>(program_, std::move(synopsis)));
    app_->allow_extras();
    app_->option_defaults()->group("flags")->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    app_->set_help_flag("-h,--help", "show this help and exit");
    app_->set_version_flag("--version", program_ + " " + std::string(conch::version_string),
                           "print the version and exit");
    if (!footer.empty()) app_->footer(std::move(footer));
  }

  static CLI::Validator whole_number(std::int64_t min, std::int64_t max) {
    return CLI::Validator(
        [min, max](std::string& v) {
          bool ok = !v.empty() && v.size() <= 18;
          std::int64_t n = 0;
          for (char c : v) ok = ok && c >= '0' && c <= '9';
          if (ok)
            for (char c : v) n = n * 10 + (c - '0');
          if (ok && n >= min && n <= max) return std::string();
          return "\"" + v + "\" is not a whole number from " + std::to_string(min) + " to " +
                 std::to_string(max);
        },
        "", "whole number");
  }

  /// After CLI11: unexpected words, missing positionals, the command after `--`.
  result<parsed> finish(const std::vector<std::string>& extra,
                        const std::optional<std::vector<std::string>>& after) {
    if (!extra.empty()) {
      if (!children_.empty() && !extra.front().starts_with("-"))
        return bad("unknown command \"" + extra.front() + "\" (see " + program_ + " --help)");
      if (extra.front().size() > 1 && extra.front().starts_with("-"))
        return bad("unknown flag " + extra.front().substr(0, extra.front().find('=')) +
                   " (see --help)");
      return bad("unexpected argument \"" + extra.front() + "\"" +
                 (command_ ? " (the command to run goes after --)" : ""));
    }
    if (!children_.empty()) return bad("missing command (see " + program_ + " --help)");
    for (const auto& p : positionals_)
      if (app_->count(p.name) == 0) return bad("missing " + p.name + " (see --help)");
    if (after && !command_) return bad("unexpected \"--\": this command runs no child");
    if (after) *command_ = *after;
    if (command_ && command_needed_() && command_->empty())
      return bad(after ? "missing the command to run after --"
                       : "missing -- CMD ARGS...: the command to run");
    return parsed::run;
  }

  static error bad(std::string message) { return {errc::invalid_argument, std::move(message)}; }

  struct positional_arg {
    std::string name;
    std::string* out = nullptr;
  };

  std::unique_ptr<CLI::App> owned_;
  CLI::App* app_ = nullptr;
  std::string program_;
  CLI::Option* last_ = nullptr;
  std::vector<positional_arg> positionals_;
  std::vector<std::string>* command_ = nullptr;
  std::function<bool()> command_needed_;
  std::function<int()> run_;
  std::vector<std::unique_ptr<command_line>> children_;
};

/// Prints `<program>: <message>` to stderr; returns the usage exit code (64).
inline int usage_error(const command_line& p, const std::string& message) {
  std::cerr << p.program() << ": " << message << std::endl;
  return 64;
}

/// What to do after a parse: empty to go on and run; otherwise the exit code
/// (0 after printing --help or --version, 64 after printing the usage error).
/// Messages come from the subcommand the parse chose.
inline std::optional<int> finish_parse(command_line& p, const result<parsed>& r) {
  command_line& c = p.chosen();
  if (!r) return usage_error(c, r.error().message);
  if (*r == parsed::help) {
    std::cout << c.help();
    return 0;
  }
  if (*r == parsed::version) {
    std::cout << c.program() << " " << conch::version_string << std::endl;
    return 0;
  }
  return std::nullopt;
}

/// Parses `args` against `root` and its subcommands and runs the one chosen:
/// its exit code, or 0 after --help/--version, 64 after a usage error.
inline int run_command_line(command_line& root, const std::vector<std::string>& args) {
  auto r = root.parse(args);
  if (auto code = finish_parse(root, r)) return *code;
  return root.chosen().run();
}

}  // namespace conch::tool
