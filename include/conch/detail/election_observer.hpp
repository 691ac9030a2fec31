// conch/detail/election_observer.hpp — following who leads an office.
//
// The I/O half of observing an election (detail/election_office.hpp is the
// pure half): read the office's candidates once, then follow one watch on the
// office prefix from the revision after that read. A stream break, an etcd
// restart or a compaction only means "read again and keep going"; the caller
// sees a change only when the leader, its key or its value differs from what
// it saw last.
#pragma once

#include "conch/detail/waiting.hpp"
#include "conch/logic/election_office.hpp"
#include "conch/logic/keys.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>

namespace conch::detail {

/// The first-created candidate of `office` (nullopt: vacant), read once.
template <class Transport>
result<std::optional<key_value>> read_leader(Transport& t, std::string office) {
  auto r = t.range(first_created(std::move(office)), t.default_deadline());
  if (!r) return std::move(r).error();
  if (r->kvs.empty()) return std::optional<key_value>{};
  return std::optional<key_value>{std::move(r->kvs.front())};
}

/// Follows who leads an office, one change per `next()`: the current leader
/// first, then each new leader, new value or vacancy. Reads the candidates
/// once and then follows a watch on the office; after a stream break or a
/// compaction it re-reads and keeps going.
template <class P>
class leader_observer {
 public:
  using transport_type = typename P::transport;
  using clock_type = typename P::clock;
  using backoff_type = typename P::backoff;

  struct options {
    backoff_type backoff{};  ///< paces re-reads after a failure (copied, reset on progress)
  };

  /// An invalid name makes next() fail with errc::invalid_argument. Pauses
  /// wait on `c` (share the session's clock: `session.clock()`).
  leader_observer(transport_type& t, std::string_view prefix, std::string_view name,
                  clock_type c = {}, options o = {})
      : transport_(t),
        office_(election_office(prefix, name)),
        clock_(std::move(c)),
        retry_(std::move(o.backoff)) {}
  leader_observer(const leader_observer&) = delete;
  leader_observer& operator=(const leader_observer&) = delete;

  /// The leader (nullopt: vacant) once it differs from the last one returned;
  /// errc::timed_out at `d`, errc::cancelled after cancel(); errors retrying
  /// cannot fix (permission denied, bad credentials) as they are.
  result<std::optional<key_value>> next(deadline d) {
    for (;;) {
      if (cancelled_.stop_requested()) return error{errc::cancelled, "observer cancelled"};
      if (!office_) return office_.error();
      if (!stream_) {
        auto r = transport_.range(range_request::prefix(*office_),
                                  std::min(d, transport_.default_deadline()));
        if (!r) {
          if (!retryable(r.error().code)) return std::move(r).error();
          if (!pause(d))
            return error{cancelled_.stop_requested() ? errc::cancelled : errc::timed_out,
                         r.error().message};
          continue;
        }
        view_.reset(r->kvs);
        std::lock_guard lock{mutex_};
        if (cancelled_.stop_requested()) continue;
        stream_ = std::make_unique<stream_type>(
            transport_.watch(watch_request::prefix(*office_, r->header_revision + 1)));
      }
      auto now = view_.leader();
      if (!reported_ || leader_changed(*reported_, now)) {
        reported_ = now;
        retry_.reset();
        return now;
      }
      auto batch = stream_->next(d);
      if (batch) {
        for (const auto& e : batch->events) view_.apply(e);
        continue;
      }
      const errc why = batch.error().code;
      if (why == errc::timed_out) return std::move(batch).error();
      if (why != errc::cancelled && why != errc::compacted && !retryable(why))
        return std::move(batch).error();
      {
        std::lock_guard lock{mutex_};
        stream_.reset();
      }
      if (why != errc::compacted && !pause(d))
        return error{cancelled_.stop_requested() ? errc::cancelled : errc::timed_out,
                     batch.error().message};
    }
  }

  /// Calls `on_change(const std::optional<key_value>&)` with each change
  /// until `stop` is requested (ok) or an error retrying cannot fix.
  template <class F>
  result<void> follow(std::stop_token stop, F&& on_change) {
    std::stop_callback on_stop{stop, [this] { cancel(); }};
    for (;;) {
      auto r = next(std::chrono::steady_clock::now() + std::chrono::minutes{10});
      if (r) {
        on_change(static_cast<const std::optional<key_value>&>(*r));
        continue;
      }
      if (r.error().code == errc::timed_out) continue;
      if (r.error().code == errc::cancelled) return {};
      return std::move(r).error();
    }
  }

  /// Makes a blocked or later next() return errc::cancelled. Any thread.
  void cancel() noexcept {
    cancelled_.request_stop();
    std::lock_guard lock{mutex_};
    if (stream_) stream_->cancel();
  }

 private:
  using stream_type = decltype(std::declval<transport_type&>().watch(watch_request{}));

  bool pause(deadline d) { return detail::pause(clock_, retry_, cancelled_.get_token(), d); }

  transport_type& transport_;
  result<std::string> office_;
  [[no_unique_address]] clock_type clock_;
  backoff_type retry_;
  office_view view_;
  std::optional<std::optional<key_value>> reported_;  // outer empty: nothing reported yet
  std::mutex mutex_;
  std::stop_source cancelled_;
  std::unique_ptr<stream_type> stream_;
};

}  // namespace conch::detail
