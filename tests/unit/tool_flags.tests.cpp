// The tools' command-line parsing: flags before `--`, argv after it, one-line
// errors naming the flag, common flags with environment defaults.
#include "conch/tool/common.hpp"
#include "conch/tool/flags.hpp"
#include "conch/tool/hold.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using conch::tool::command_line;
using conch::tool::parsed;

namespace {

struct elect_like {
  std::string name;
  bool who = false;
  std::chrono::milliseconds timeout{-1};
  std::int64_t max = 0;
  std::vector<std::string> argv;
  command_line p{"conch test", "NAME [flags] -- CMD ARGS..."};
  elect_like() {
    p.positional("NAME", name, "the office")
        .flag("--who", who, "print")
        .duration("--timeout", timeout, "give up")
        .integer("--max", max, 1, 1000, "slots")
        .command(argv, [this] { return !who; });
  }
  conch::result<parsed> parse(std::vector<std::string> args) { return p.parse(args); }
};

}  // namespace

TEST_CASE("flags: NAME, flags in any order, argv after -- untouched", "[tool][flags]") {
  elect_like t;
  auto r = t.parse({"--timeout", "1h30m", "office", "--max=3", "--", "cmd", "--who", "--", "-x"});
  REQUIRE(r);
  CHECK(*r == parsed::run);
  CHECK(t.name == "office");
  CHECK(t.timeout == 90min);
  CHECK(t.max == 3);
  CHECK_FALSE(t.who);
  CHECK(t.argv == std::vector<std::string>{"cmd", "--who", "--", "-x"});
}

TEST_CASE("flags: a flag given twice takes the last value", "[tool][flags]") {
  elect_like t;
  REQUIRE(t.parse({"x", "--timeout", "1s", "--timeout=2s", "--who", "--who"}));
  CHECK(t.timeout == 2s);
  CHECK(t.who);
}

TEST_CASE("flags: durations take ms, s, m, h and bare seconds", "[tool][flags]") {
  for (auto [text, want] : std::vector<std::pair<std::string, std::chrono::milliseconds>>{
           {"500ms", 500ms}, {"10s", 10s}, {"2m", 2min}, {"1h30m", 90min}, {"7", 7s}}) {
    elect_like t;
    REQUIRE(t.parse({"x", "--timeout", text, "--", "true"}));
    CHECK(t.timeout == want);
  }
}

TEST_CASE("flags: --help and --version win; a command is optional when not needed",
          "[tool][flags]") {
  elect_like t;
  CHECK(t.parse({"--help"}).value() == parsed::help);
  CHECK(t.parse({"x", "--version"}).value() == parsed::version);
  elect_like who;
  CHECK(who.parse({"x", "--who"}).value() == parsed::run);
  CHECK(t.p.help().find("usage: conch test NAME [flags] -- CMD ARGS...") == 0);
  CHECK(t.p.help().find("--timeout DURATION") != std::string::npos);
}

TEST_CASE("flags: every mistake is one line naming the problem", "[tool][flags]") {
  struct bad_case {
    std::vector<std::string> args;
    std::string message;
  };
  for (const auto& c : std::vector<bad_case>{
           {{"x", "--bogus", "--", "true"}, "unknown flag --bogus (see --help)"},
           {{"x", "--timeout"}, "--timeout needs a value"},
           {{"x", "--timeout", "--", "true"}, "--timeout needs a value"},
           {{"x", "--who=yes"}, "--who takes no value"},
           {{"x", "--max", "0", "--", "true"}, "--max: \"0\" is not a whole number from 1 to 1000"},
           {{"x", "--max", "-3", "--", "true"},
            "--max: \"-3\" is not a whole number from 1 to 1000"},
           {{"x", "y", "--", "true"},
            "unexpected argument \"y\" (the command to run goes after --)"},
           {{"--", "true"}, "missing NAME (see --help)"},
           {{"x"}, "missing -- CMD ARGS...: the command to run"},
           {{"x", "--"}, "missing the command to run after --"},
       }) {
    elect_like t;
    auto r = t.parse(c.args);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == conch::errc::invalid_argument);
    CHECK(r.error().message == c.message);
    CHECK(r.error().message.find('\n') == std::string::npos);
  }
  elect_like t;
  auto r = t.parse({"x", "--timeout", "abc", "--", "true"});
  REQUIRE_FALSE(r);
  CHECK(r.error().message.starts_with("--timeout: duration \"abc\""));
}

TEST_CASE("common flags: defaults, environment, flags over environment", "[tool][flags]") {
  ::unsetenv("CONCH_ENDPOINTS");
  ::unsetenv("CONCH_PREFIX");
  ::unsetenv("CONCH_PASSWORD");
  {
    command_line p{"conch test", "[flags]"};
    conch::tool::common_flags common{p};
    REQUIRE(p.parse({}));
    auto o = common.finish();
    REQUIRE(o);
    CHECK(o->endpoints == std::vector<std::string>{"127.0.0.1:2379"});
    CHECK(o->prefix == "conch/");
    CHECK(o->ttl == 10s);
    CHECK(o->kill_after == 5s);
    CHECK_FALSE(o->json);
  }
  ::setenv("CONCH_ENDPOINTS", "10.0.0.1:2379, 10.0.0.2:2379", 1);
  ::setenv("CONCH_PREFIX", "team", 1);
  ::setenv("CONCH_PASSWORD", "s3cret", 1);
  {
    command_line p{"conch test", "[flags]"};
    conch::tool::common_flags common{p};
    REQUIRE(p.parse({"--user", "root", "--ttl", "3", "--kill-after", "500ms", "--json"}));
    auto o = common.finish();
    REQUIRE(o);
    CHECK(o->endpoints == std::vector<std::string>{"10.0.0.1:2379", "10.0.0.2:2379"});
    CHECK(o->prefix == "team/");
    CHECK(o->user == "root");
    CHECK(o->password == "s3cret");
    CHECK(o->ttl == 3s);
    CHECK(o->kill_after == 500ms);
    CHECK(o->json);
    CHECK(o->transport().endpoints.size() == 2);
  }
  {
    command_line p{"conch test", "[flags]"};
    conch::tool::common_flags common{p};
    REQUIRE(p.parse({"--endpoints", "127.0.0.1:1", "--prefix", "p/"}));
    auto o = common.finish();
    REQUIRE(o);
    CHECK(o->endpoints == std::vector<std::string>{"127.0.0.1:1"});
    CHECK(o->prefix == "p/");
  }
  ::unsetenv("CONCH_ENDPOINTS");
  ::unsetenv("CONCH_PREFIX");
  ::unsetenv("CONCH_PASSWORD");
}

TEST_CASE("common flags: bad values name the flag", "[tool][flags]") {
  for (auto [args, message] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--ttl", "1500ms"}, "--ttl: 1s500ms is not a whole number of seconds (at least 1s)"},
           {{"--ttl", "0"}, "--ttl: 0s is not a whole number of seconds (at least 1s)"},
           {{"--endpoints", "a,,b"}, "--endpoints: empty endpoint in \"a,,b\""},
           {{"--cert", "c.pem"}, "--cert needs --key"},
       }) {
    command_line p{"conch test", "[flags]"};
    conch::tool::common_flags common{p};
    REQUIRE(p.parse(args));
    auto o = common.finish();
    REQUIRE_FALSE(o);
    CHECK(o.error().message == message);
  }
}

TEST_CASE("--lock-delay: auto is --ttl + --kill-after, 0 is none, else a duration",
          "[tool][flags]") {
  for (auto [args, want] : std::vector<std::pair<std::vector<std::string>, std::int64_t>>{
           {{}, 15'000},
           {{"--lock-delay", "auto"}, 15'000},
           {{"--lock-delay", "0"}, 0},
           {{"--lock-delay", "2s500ms"}, 2'500},
       }) {
    command_line p{"conch test", "[flags]"};
    conch::tool::lock_delay_flag flag{p};
    REQUIRE(p.parse(args));
    auto d = flag.finish(10s, 5s);
    REQUIRE(d);
    CHECK(d->count() == want);
  }
  command_line p{"conch test", "[flags]"};
  conch::tool::lock_delay_flag flag{p};
  REQUIRE(p.parse({"--lock-delay", "soon"}));
  auto d = flag.finish(10s, 5s);
  REQUIRE_FALSE(d);
  CHECK(d.error().message.starts_with("--lock-delay: "));
}

TEST_CASE("common flags: a bad CONCH_ENDPOINTS is named as the variable", "[tool][flags]") {
  ::setenv("CONCH_ENDPOINTS", "a,,b", 1);
  command_line p{"conch test", "[flags]"};
  conch::tool::common_flags common{p};
  REQUIRE(p.parse({}));
  auto o = common.finish();
  ::unsetenv("CONCH_ENDPOINTS");
  REQUIRE_FALSE(o);
  CHECK(o.error().message == "CONCH_ENDPOINTS: empty endpoint in \"a,,b\"");
}

TEST_CASE("subcommands: the chosen one parses, runs and names itself in errors", "[tool][flags]") {
  command_line root{"conch", "COMMAND"};
  std::string name;
  std::vector<std::string> argv;
  bool json = false;
  auto& run = root.subcommand("run", "NAME -- CMD", "Run a thing.\n\nThe long story.");
  run.positional("NAME", name, "the thing").command(argv).on_run([] { return 7; });
  auto& ls = root.subcommand("ls", "[--json]", "List things.");
  ls.flag("--json", json, "as JSON").on_run([] { return 3; });

  CHECK(conch::tool::run_command_line(root, {"run", "x", "--", "ls", "--json"}) == 7);
  CHECK(name == "x");
  CHECK(argv == std::vector<std::string>{"ls", "--json"});
  CHECK_FALSE(json);  // words after -- belong to the child, never to a sibling subcommand

  command_line again{"conch", "COMMAND"};
  again.subcommand("ls", "[--json]", "List things.").flag("--json", json, "as JSON");
  auto r = again.parse({"ls", "--bogus"});
  REQUIRE_FALSE(r);
  CHECK(r.error().message == "unknown flag --bogus (see --help)");
  CHECK(again.chosen().program() == "conch ls");
  auto unknown = again.parse({"nope"});
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().message == "unknown command \"nope\" (see conch --help)");
}

TEST_CASE("help: usage line, description, every flag with its default, exit codes",
          "[tool][flags]") {
  ::unsetenv("CONCH_ENDPOINTS");
  command_line root{"conch", "COMMAND"};
  auto& sub = root.subcommand("sub", "NAME [flags]", "Do the thing.\n\nAt length.");
  conch::tool::common_flags common{sub};
  const std::string top = root.help();
  CHECK(top.find("usage: conch COMMAND") == 0);
  CHECK(top.find("Do the thing.") != std::string::npos);
  CHECK(top.find("At length.") == std::string::npos);  // a parent lists summaries only
  const std::string help = sub.help();
  CHECK(help.find("usage: conch sub NAME [flags]") == 0);
  CHECK(help.find("At length.") != std::string::npos);
  CHECK(help.find("--ttl DURATION") != std::string::npos);
  CHECK(help.find("(default 10s)") != std::string::npos);
  CHECK(help.find("(default 127.0.0.1:2379; env CONCH_ENDPOINTS)") != std::string::npos);
  CHECK(help.find("exit codes:") != std::string::npos);
  CHECK(help.find("usage error") != std::string::npos);
}
