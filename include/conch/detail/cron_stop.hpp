// conch/detail/cron_stop.hpp — stopping a job's run for a replacing tick:
// the runs in flight on this daemon, and the request another daemon sends.
//
// A tick of a `replace` job that finds the job's running key held by a run
// on another daemon puts `<prefix>cron/stop/<name>` = the running key's
// create revision (bound to its own lease, so a dead asker leaves nothing
// behind) and waits for the running key's deletion. Every daemon watches
// `<prefix>cron/stop/`; the one whose run holds that revision stops its
// group (SIGTERM, SIGKILL after kill-after), and that run deletes its
// running key once the group is gone. A request missed (a watch broken
// across it) only makes the asker wait out its bound and skip its tick.
#pragma once

#include "conch/detail/cron_tick.hpp"
#include "conch/logic/cron_event.hpp"
#include "conch/logic/name_codec.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

namespace conch::detail {

/// The runs in flight on this daemon, by job, each with the revision of the
/// running key it holds (0: none, `allow`): what a replacing tick stops.
class cron_local_runs {
 public:
  struct run {
    std::stop_source stop;
    revision gate = 0;
  };
  using entry = std::shared_ptr<run>;

  entry enter(const std::string& job, revision gate) {
    auto e = std::make_shared<run>();
    e->gate = gate;
    std::lock_guard lock{mutex_};
    runs_[job].push_back(e);
    return e;
  }
  void leave(const std::string& job, const entry& e) {
    {
      std::lock_guard lock{mutex_};
      auto& v = runs_[job];
      std::erase(v, e);
      if (v.empty()) runs_.erase(job);
    }
    left_.notify_all();
  }
  /// Asks the run of `job` holding the running key created at `gate` to
  /// terminate; false when no such run is here.
  bool stop_held(const std::string& job, revision gate) {
    std::lock_guard lock{mutex_};
    auto it = runs_.find(job);
    if (gate == 0 || it == runs_.end()) return false;
    bool found = false;
    for (auto& e : it->second)
      if (e->gate == gate) {
        e->stop.request_stop();
        found = true;
      }
    return found;
  }
  /// Waits until that run has left, at most `bound`.
  bool wait_gone(const std::string& job, revision gate, std::chrono::milliseconds bound) {
    std::unique_lock lock{mutex_};
    return left_.wait_for(lock, bound, [&] {
      auto it = runs_.find(job);
      return it == runs_.end() || std::none_of(it->second.begin(), it->second.end(),
                                               [&](const entry& e) { return e->gate == gate; });
    });
  }

 private:
  std::mutex mutex_;
  std::condition_variable left_;
  std::map<std::string, std::vector<entry>> runs_;
};

/// True once `key` is deleted after revision `seen_at`, within `bound`.
template <transport T>
bool await_deleted(T& t, const std::string& key, revision seen_at, std::chrono::milliseconds bound,
                   std::stop_token stop) {
  watch_request w;
  w.key = key;
  w.start_revision = seen_at + 1;
  w.no_put = true;
  auto stream = t.watch(w);
  std::stop_callback cancel{stop, [&] { stream.cancel(); }};
  const auto until = std::chrono::steady_clock::now() + bound;
  while (!stop.stop_requested() && std::chrono::steady_clock::now() < until) {
    auto batch = stream.next(until);
    if (!batch) {
      if (batch.error().code == errc::timed_out) return false;
      break;  // the watch broke: the key's state tells
    }
    for (const auto& e : batch->events)
      if (e.type == watch_event::kind::del) return true;
  }
  range_request get;
  get.key = key;
  auto now = t.range(get, t.default_deadline());
  return now && now->kvs.empty();
}

/// Asks the daemon whose run holds `running_key` (created at `holder`) to
/// stop it, and waits (at most `bound`) for the key to go; the request is
/// withdrawn either way. True when the key went.
template <transport T>
bool ask_stop(T& t, const std::string& stop_key, const std::string& running_key, revision holder,
              revision seen_at, lease_id lease, std::chrono::milliseconds bound,
              std::stop_token stop) {
  put_request put;
  put.key = stop_key;
  put.value = std::to_string(holder);
  put.lease = lease;
  auto asked = t.put(put, t.default_deadline());
  if (!asked) return false;
  const bool gone = await_deleted(t, running_key, seen_at, bound, std::move(stop));
  txn_request withdraw;  // only our own request: a later asker's stays
  withdraw.compares.push_back(compare::mod_revision(stop_key) == asked->header_revision);
  delete_request del;
  del.key = stop_key;
  withdraw.success.emplace_back(std::move(del));
  (void)t.txn(withdraw, t.default_deadline());
  return gone;
}

/// Until `stop`: watches `stop_dir` for stop requests and stops the local
/// run each names, saying so. Retries paced by `retry`.
template <transport T, class Backoff>
void watch_stop_requests(T& t, const std::string& stop_dir, cron_local_runs& local, Backoff retry,
                         const std::function<void(cron_event)>& say, std::stop_token stop) {
  revision from = 0;  // 0: from now
  while (!stop.stop_requested()) {
    auto w = watch_request::prefix(stop_dir, from);
    w.no_delete = true;
    auto stream = t.watch(w);
    std::stop_callback cancel{stop, [&] { stream.cancel(); }};
    for (;;) {
      auto batch = stream.next(std::chrono::steady_clock::now() + std::chrono::minutes{10});
      if (!batch) {
        if (batch.error().code == errc::timed_out) continue;
        if (batch.error().code == errc::compacted) from = 0;
        break;
      }
      retry.reset();
      from = batch->header_revision + 1;
      for (const auto& e : batch->events) {
        auto name = decode_name(std::string_view(e.kv.key).substr(stop_dir.size()));
        revision gate = 0;
        try {
          gate = std::stoll(e.kv.value);
        } catch (const std::exception&) {
          continue;  // not a request of ours
        }
        if (name && local.stop_held(*name, gate))
          say({.what = cron_event::kind::replaced,
               .job = *name,
               .message = "a newer tick on another daemon replaces this run: stopping its group"});
      }
    }
    if (stop.stop_requested() || !cron_pause(retry.next(), stop)) return;
  }
}

}  // namespace conch::detail
