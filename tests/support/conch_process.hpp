// tests/support/conch_process.hpp — the `conch` binary as a real process in a test.
//
// A `conch_run` spawns build/bin/conch (CONCH_BIN_DIR, or CONCH_TEST_BIN to
// test another build) with stdout and stderr in files of a temp dir, and
// always ends it by pid: SIGTERM on scope exit (the wrapper stops its child
// and releases), SIGKILL if that does not end it within 10 s.
//
//   conch::test::temp_dir dir;
//   conch::test::conch_run who(dir, "who", {"sema", "pool", "--max", "2", "--who"},
//   env_for(prefix)); CHECK(who.wait() == 1);
#pragma once

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <spawn.h>
#include <sstream>
#include <string>
#include <string_view>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace conch::test {

inline std::string conch_bin() {
  if (const char* e = std::getenv("CONCH_TEST_BIN")) return e;
  return std::string(CONCH_BIN_DIR) + "/conch";
}

inline std::string conchd_bin() {
  if (const char* e = std::getenv("CONCHD_TEST_BIN")) return e;
  return std::string(CONCH_BIN_DIR) + "/conchd";
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
inline bool await(const std::function<bool()>& cond,
                  std::chrono::milliseconds limit = std::chrono::seconds(15)) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

inline std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream s(text);
  for (std::string l; std::getline(s, l);) out.push_back(l);
  return out;
}

struct temp_dir {
  std::string path;
  temp_dir() {
    std::string t = (std::filesystem::temp_directory_path() / "conch-tool-XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    path = t;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

/// The first complete line a child wrote to `path` (waits for it).
inline std::string line_from(const std::string& path,
                             std::chrono::milliseconds limit = std::chrono::seconds(15)) {
  std::string s;
  REQUIRE(await(
      [&] {
        s = slurp(path);
        return !s.empty() && s.back() == '\n';
      },
      limit));
  return s.substr(0, s.find('\n'));
}

/// One `conch` process; stopped by pid on scope exit.
class conch_run {
 public:
  /// `binary` defaults to conch_bin() (e.g. conchd_bin() for the daemon).
  conch_run(const temp_dir& dir, const std::string& tag, std::vector<std::string> args,
            std::vector<std::string> env = {}, std::string binary = {})
      : out_(dir / (tag + ".out")), err_(dir / (tag + ".err")) {
    std::vector<std::string> argv{binary.empty() ? conch_bin() : binary};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<std::string> envs;
    for (char** e = environ; *e; ++e)
      if (!std::string_view(*e).starts_with("CONCH_")) envs.emplace_back(*e);
    envs.insert(envs.end(), env.begin(), env.end());
    std::vector<char*> a, e;
    for (auto& s : argv) a.push_back(s.data());
    a.push_back(nullptr);
    for (auto& s : envs) e.push_back(s.data());
    e.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    const int rc = ::posix_spawn(&pid_, a[0], &fa, &at, a.data(), e.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    REQUIRE(rc == 0);
  }
  conch_run(const conch_run&) = delete;
  conch_run& operator=(const conch_run&) = delete;
  ~conch_run() {
    if (done_) return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGTERM);
    if (!wait(std::chrono::seconds(10))) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  pid_t pid() const { return pid_; }
  /// The exit code (128 + n if signal n ended it) once the process ended within `limit`.
  std::optional<int> wait(std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    if (done_) return code_;
    int status = 0;
    if (!await([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, limit))
      return std::nullopt;
    done_ = true;
    code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return code_;
  }
  bool running() {
    if (done_) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return true;
    done_ = true;
    code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
  }
  void signal(int sig) const { ::kill(pid_, sig); }
  std::string out() const { return slurp(out_); }
  std::string err() const { return slurp(err_); }

 private:
  std::string out_, err_;
  pid_t pid_ = -1;
  bool done_ = false;
  int code_ = -1;
};

}  // namespace conch::test
