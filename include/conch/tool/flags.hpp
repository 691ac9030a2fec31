// conch/tool/flags.hpp — a small command-line parser with one-line errors.
//
// The tools' command lines are `NAME [flags] -- CMD ARGS...`: flags and
// positionals before `--`, the child's argv untouched after it. Each flag is
// `--name value` or `--name=value`; a bad one yields a single line naming the
// flag and the problem (`--ttl: duration "abc": unknown unit "abc" at
// position 1`), which the tool prints after its own name and exits 64.
// No exceptions, no global state: cheap to fuzz.
//
//   bool who = false;
//   std::string name;
//   conch::tool::flag_parser p{"conch elect", "NAME [flags] -- CMD ARGS..."};
//   p.positional("NAME", name, "the office").flag("--who", who, "print the leader");
//   auto r = p.parse(args);   // result<parsed>: run, help or version
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conch/logic/duration.hpp"
#include "conch/result.hpp"

namespace conch::tool {

/// What a successful parse asks the tool to do.
enum class parsed { run, help, version };

class flag_parser {
 public:
  /// `program` prefixes every message ("conch elect"); `synopsis` follows it in the usage line.
  flag_parser(std::string program, std::string synopsis, std::string description = {})
      : program_(std::move(program)), synopsis_(std::move(synopsis)), description_(std::move(description)) {}

  const std::string& program() const noexcept { return program_; }

  /// A flag without a value: present means true.
  flag_parser& flag(std::string name, bool& out, std::string help) {
    options_.push_back({std::move(name), {}, std::move(help), false, false,
                        [&out](std::string_view) -> std::optional<std::string> {
                          out = true;
                          return std::nullopt;
                        }});
    return *this;
  }

  /// A flag with a text value.
  flag_parser& text(std::string name, std::string& out, std::string metavar, std::string help) {
    options_.push_back({std::move(name), std::move(metavar), std::move(help), true, false,
                        [&out](std::string_view v) -> std::optional<std::string> {
                          out = std::string(v);
                          return std::nullopt;
                        }});
    return *this;
  }

  /// A flag with a duration value (`500ms`, `10s`, `2m`, `1h30m`, bare = seconds).
  flag_parser& duration(std::string name, std::chrono::milliseconds& out, std::string help) {
    options_.push_back({std::move(name), "DURATION", std::move(help), true, false,
                        [&out](std::string_view v) -> std::optional<std::string> {
                          auto d = conch::detail::parse_duration(v);
                          if (!d) return d.error().message;
                          out = *d;
                          return std::nullopt;
                        }});
    return *this;
  }

  /// A flag with a whole number in [min, max].
  flag_parser& integer(std::string name, std::int64_t& out, std::int64_t min, std::int64_t max,
                       std::string help) {
    options_.push_back({std::move(name), "N", std::move(help), true, false,
                        [&out, min, max](std::string_view v) -> std::optional<std::string> {
                          std::int64_t n = 0;
                          bool ok = !v.empty() && v.size() <= 18;
                          for (char c : v) ok = ok && c >= '0' && c <= '9';
                          if (ok)
                            for (char c : v) n = n * 10 + (c - '0');
                          if (!ok || n < min || n > max)
                            return "\"" + std::string(v) + "\" is not a whole number from " +
                                   std::to_string(min) + " to " + std::to_string(max);
                          out = n;
                          return std::nullopt;
                        }});
    return *this;
  }

  /// Leaves the flag added last out of --help (tuning knobs for tests and drills).
  flag_parser& hidden() {
    if (!options_.empty()) options_.back().hidden = true;
    return *this;
  }

  /// A required positional argument, in order of declaration.
  flag_parser& positional(std::string name, std::string& out, std::string help) {
    positionals_.push_back({std::move(name), std::move(help), &out});
    return *this;
  }

  /// The child's argv: everything after `--`, untouched. A missing command is
  /// a usage error unless parse() is told it is not needed.
  flag_parser& command(std::vector<std::string>& out) {
    command_ = &out;
    return *this;
  }

  /// Parses `args` (the words after the subcommand). `need_command` says
  /// whether a command after `--` is required for this invocation (e.g. not
  /// with --who). Errors are `errc::invalid_argument` with a one-line message.
  result<parsed> parse(const std::vector<std::string>& args,
                       const std::function<bool()>& need_command = [] { return true; }) const {
    std::size_t next_positional = 0;
    bool saw_dashdash = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      if (a == "--") {
        saw_dashdash = true;
        if (!command_) return bad("unexpected \"--\": this command runs no child");
        command_->assign(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
        break;
      }
      if (a == "--help" || a == "-h") return parsed::help;
      if (a == "--version") return parsed::version;
      if (a.size() > 1 && a[0] == '-') {
        std::string name = a;
        std::optional<std::string> inline_value;
        if (auto eq = a.find('='); eq != std::string::npos && a.starts_with("--")) {
          name = a.substr(0, eq);
          inline_value = a.substr(eq + 1);
        }
        const option* o = find(name);
        if (!o) return bad("unknown flag " + name + " (see --help)");
        std::string value;
        if (o->takes_value) {
          if (inline_value) value = *inline_value;
          else if (i + 1 < args.size() && args[i + 1] != "--") value = args[++i];
          else return bad(name + " needs a value");
        } else if (inline_value) {
          return bad(name + " takes no value");
        }
        if (auto problem = o->set(value)) return bad(name + ": " + *problem);
        continue;
      }
      if (next_positional < positionals_.size()) {
        *positionals_[next_positional++].out = a;
        continue;
      }
      return bad("unexpected argument \"" + a + "\"" +
                 (command_ ? " (the command to run goes after --)" : ""));
    }
    if (next_positional < positionals_.size())
      return bad("missing " + positionals_[next_positional].name + " (see --help)");
    if (command_ && need_command() && command_->empty())
      return bad(saw_dashdash ? "missing the command to run after --"
                              : "missing -- CMD ARGS...: the command to run");
    return parsed::run;
  }

  /// The --help text.
  std::string help() const {
    std::string out = "usage: " + program_ + " " + synopsis_ + "\n";
    if (!description_.empty()) out += "\n" + description_ + "\n";
    if (!positionals_.empty()) {
      out += "\narguments:\n";
      for (const auto& p : positionals_) out += line(p.name, p.help);
    }
    out += "\nflags:\n";
    for (const auto& o : options_)
      if (!o.hidden) out += line(o.name + (o.metavar.empty() ? "" : " " + o.metavar), o.help);
    out += line("--help", "show this help");
    out += line("--version", "print the version");
    return out;
  }

 private:
  struct option {
    std::string name, metavar, help;
    bool takes_value = false;
    bool hidden = false;
    std::function<std::optional<std::string>(std::string_view)> set;
  };
  struct positional_arg {
    std::string name, help;
    std::string* out = nullptr;
  };

  const option* find(const std::string& name) const {
    for (const auto& o : options_)
      if (o.name == name) return &o;
    return nullptr;
  }
  static error bad(std::string message) { return {errc::invalid_argument, std::move(message)}; }
  static std::string line(const std::string& left, const std::string& help) {
    std::string l = "  " + left;
    l += l.size() < 24 ? std::string(24 - l.size(), ' ') : "  ";
    return l + help + "\n";
  }

  std::string program_, synopsis_, description_;
  std::vector<option> options_;
  std::vector<positional_arg> positionals_;
  std::vector<std::string>* command_ = nullptr;
};

/// Prints `<program>: <message>` to stderr; returns the usage exit code (64).
inline int usage_error(const flag_parser& p, const std::string& message) {
  std::cerr << p.program() << ": " << message << std::endl;
  return 64;
}

/// What to do after a parse: empty to go on and run; otherwise the exit code
/// (0 after printing --help or --version, 64 after printing the usage error).
inline std::optional<int> finish_parse(const flag_parser& p, const result<parsed>& r,
                                       std::string_view version = "0.1.0") {
  if (!r) return usage_error(p, r.error().message);
  if (*r == parsed::help) {
    std::cout << p.help();
    return 0;
  }
  if (*r == parsed::version) {
    std::cout << p.program() << " " << version << std::endl;
    return 0;
  }
  return std::nullopt;
}

}  // namespace conch::tool
