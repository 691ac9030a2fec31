// conch/detail/guard_set.hpp — a session's guarded keys, all on one watch set.
//
// A session guards each key it holds (a semaphore slot, a queue key, an
// election candidate key): its DELETE loses the session. Where the transport
// carries several watches on one stream (conch::watch_sets), every guarded
// key of the session is one watch of one set, read by one thread. A key's
// watch is one create message on the set's stream, sent `delay` after the
// key was guarded, and its cancel goes out `delay` after it was unguarded: a
// key held for less than that costs etcd no watch, and a session that only
// ever held keys that briefly (a short `conch sema -- CMD`) no stream either,
// as the set opens its stream with its first watch. The set's thread starts
// with the session's first guarded key. (basic_session keeps a thread and a
// stream per key for other transports.)
#pragma once

#include "conch/detail/start_thread.hpp"
#include "conch/detail/waiting.hpp"
#include "conch/logic/stop_union.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace conch::detail {

template <class Transport, class Clock, class Backoff>
class guard_set {
 public:
  using set_type = decltype(std::declval<Transport&>().watch_set());
  using time_point = typename Clock::time_point;

  /// `lose(reason)` is called (on the set's thread, under no lock of ours)
  /// when a guarded key is deleted, or found gone or re-created. A key's
  /// watch is created `delay` after it was guarded (see
  /// basic_session::options::guard_delay).
  guard_set(Transport& t, const Clock& clock, Backoff backoff, std::chrono::milliseconds delay,
            std::stop_token halt, std::function<void(std::string)> lose)
      : transport_(t),
        clock_(clock),
        backoff_(std::move(backoff)),
        delay_(delay),
        halt_(std::move(halt)),
        lose_(std::move(lose)) {}
  guard_set(const guard_set&) = delete;
  guard_set& operator=(const guard_set&) = delete;
  ~guard_set() { stop(); }

  /// Guards `key` (see basic_session::guard_key). An error if the thread
  /// that reads the set could not be started.
  result<void> add(const std::string& key, revision create_revision, revision seen_at) {
    std::lock_guard lock{m_};
    if (stopped_ || keys_.contains(key)) return {};
    if (!set_) {
      set_.emplace(transport_.watch_set());
      auto t = start_thread([this](std::stop_token own) { run(std::move(own)); });
      if (!t) {
        set_.reset();
        return std::move(t).error();
      }
      thread_ = std::move(*t);
    }
    guarded& g = keys_[key];
    g.create_revision = create_revision;
    g.seen_at = create_revision == 0 ? 0 : seen_at;
    if (g.seen_at > 0 && delay_.count() == 0) {
      watch(key, g);
      return {};
    }
    g.due = clock_.now() + (g.seen_at > 0 ? cast(delay_) : typename Clock::duration{});
    if (waiting_until_ && g.due < *waiting_until_) set_->wake();
    return {};
  }

  /// Stops guarding `key`: from now on its delete is nobody's loss. Its
  /// watch, if created, is cancelled a delay later, by the set's thread: not
  /// now, beside the release whose delete usually follows (the next holder's
  /// claim waits on that delete, not on our teardown). That delete's event
  /// wakes the thread, which then schedules the cancel; a key unguarded and
  /// never deleted keeps its (ignored) watch until the thread next wakes.
  void remove(const std::string& key) {
    std::lock_guard lock{m_};
    auto it = keys_.find(key);
    if (it == keys_.end()) return;
    if (const std::int64_t id = it->second.id; id != 0) {
      ids_.erase(id);
      if (delay_.count() == 0)
        set_->remove(id);
      else
        cancels_.emplace_back(id, clock_.now() + cast(delay_));
    }
    keys_.erase(it);
  }

  /// Ends the thread (joined here); nothing is guarded after.
  void stop() {
    std::jthread t;
    {
      std::lock_guard lock{m_};
      stopped_ = true;
      keys_.clear();
      ids_.clear();
      cancels_.clear();
      t = std::move(thread_);
      if (set_) set_->cancel();
    }
    if (t.joinable()) {
      t.request_stop();
      t.join();
    }
  }

 private:
  struct guarded {
    revision create_revision = 0;  // 0 until known
    revision seen_at = 0;          // alive (with create_revision) here; 0: read it first
    std::int64_t id = 0;           // its watch in the set; 0: none yet, due at `due`
    time_point due{};
  };

  // Under m_: `key`, seen alive at g.seen_at, is watched from just after for
  // its delete.
  void watch(const std::string& key, guarded& g) {
    watch_request w;
    w.key = key;
    w.start_revision = g.seen_at + 1;
    w.no_put = true;
    g.id = ++last_id_;
    ids_.emplace(g.id, key);
    set_->add(g.id, w);
  }

  void run(std::stop_token own) {
    stop_union stop{std::move(own), halt_};
    std::stop_callback cancel{stop.token(), [this] { set_->cancel(); }};
    Backoff retry = backoff_;
    while (!stop.stop_requested()) {
      auto got = set_->next(real_deadline(clock_, start_due(retry)));
      {
        std::lock_guard lock{m_};
        waiting_until_.reset();  // looks again before the next wait
      }
      if (!got) {
        if (got.error().code == errc::cancelled) return;
        continue;  // timed out, or woken: something may be due
      }
      heard(*got);
    }
  }

  // Starts every watch that is due, reading first each key not known alive
  // (gone or re-created is a loss); a failed read is tried again after a
  // pause. When to look again (in 10 minutes if nothing is due): the set's
  // wait lasts until then at the latest.
  time_point start_due(Backoff& retry) {
    for (;;) {
      std::string key;
      revision create_revision = 0;
      {
        std::lock_guard lock{m_};
        const time_point now = clock_.now();
        std::optional<time_point> next = cancel_due(now);
        for (auto& [k, g] : keys_) {
          if (g.id != 0) continue;
          if (g.due > now) {
            if (!next || g.due < *next) next = g.due;
          } else if (g.seen_at > 0) {
            watch(k, g);
          } else if (key.empty()) {
            key = k;
            create_revision = g.create_revision;
          }
        }
        if (key.empty()) {
          // At most one wake per delay: a key guarded for a short while
          // (the common case) wakes no one; a watch starts at most 2 × delay late.
          waiting_until_ =
              next ? std::max(*next, now + cast(delay_)) : now + cast(std::chrono::minutes{10});
          return *waiting_until_;
        }
      }
      range_request read;
      read.key = key;
      auto r = transport_.range(read, transport_.default_deadline());
      std::string loss;
      {
        std::lock_guard lock{m_};
        auto it = keys_.find(key);
        if (it == keys_.end() || it->second.id != 0 || it->second.seen_at != 0 ||
            it->second.create_revision != create_revision)
          continue;  // unguarded (or guarded anew) meanwhile
        guarded& g = it->second;
        if (!r) {
          g.due = clock_.now() + cast(retry.next());
          continue;
        }
        retry.reset();
        if (r->kvs.empty())
          loss = "guarded key " + key + " is gone";
        else if (create_revision != 0 && r->kvs.front().create_revision != create_revision)
          loss = "guarded key " + key + " was deleted and re-created";
        if (!loss.empty()) {
          keys_.erase(it);
        } else {
          g.create_revision = r->kvs.front().create_revision;
          g.seen_at = r->header_revision;
          watch(key, g);
        }
      }
      if (!loss.empty()) lose_(std::move(loss));
    }
  }

  // Under m_: cancels the watches of unguarded keys whose time has come;
  // when the next one is due, if any is.
  std::optional<time_point> cancel_due(time_point now) {
    std::optional<time_point> next;
    std::erase_if(cancels_, [&](const std::pair<std::int64_t, time_point>& c) {
      if (c.second <= now) {
        set_->remove(c.first);
        return true;
      }
      if (!next || c.second < *next) next = c.second;
      return false;
    });
    return next;
  }

  // One delivery of the set: a delete loses the session; a watch that ended
  // (compacted, refused) has its key read again and watched anew.
  void heard(const watch_set_batch& b) {
    std::string loss;
    {
      std::lock_guard lock{m_};
      auto id = ids_.find(b.id);
      if (id == ids_.end()) return;  // unguarded
      const std::string key = id->second;
      guarded& g = keys_.at(key);
      if (b.ended) {  // the set dropped it
        ids_.erase(id);
        g.id = 0;
        g.seen_at = 0;  // read it again: the gap may be unreadable
        g.due = clock_.now();
        return;
      }
      for (const auto& e : b.batch.events)
        if (e.type == watch_event::kind::del) {
          loss = "guarded key " + key + " was deleted at revision " +
                 std::to_string(e.kv.mod_revision) + " (lease revoked or key removed)";
          set_->remove(b.id);
          ids_.erase(id);
          keys_.erase(key);
          break;
        }
    }
    if (!loss.empty()) lose_(std::move(loss));
  }

  template <class D>
  static typename Clock::duration cast(D d) {
    return std::chrono::duration_cast<typename Clock::duration>(d);
  }

  Transport& transport_;
  const Clock& clock_;
  const Backoff backoff_;
  const std::chrono::milliseconds delay_;
  const std::stop_token halt_;
  const std::function<void(std::string)> lose_;

  std::mutex m_;
  bool stopped_ = false;
  std::optional<set_type> set_;  // made with the thread, at the first key
  std::map<std::string, guarded> keys_;
  std::map<std::int64_t, std::string> ids_;
  std::vector<std::pair<std::int64_t, time_point>> cancels_;  // unguarded: cancel then
  std::int64_t last_id_ = 0;
  std::optional<time_point> waiting_until_;  // the thread's wait ends by then; none: not waiting
  std::jthread thread_;                      // last: joined before the rest goes
};

}  // namespace conch::detail
