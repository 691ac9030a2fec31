// conch/logic/cron_turns.hpp — when a daemon that is not first for a tick
// takes its turn (detail/cron_peers.hpp ranks the daemons). Pure: times are
// passed in, so any clock (a test's fake one) drives it.
//
// The daemon ranked first for a tick claims it when its workers reach it in
// their queue. In a burst (many jobs ticking at once) that queue is long,
// and a fixed wait would let the next daemon claim first, a failed write for
// one of the two. The daemons share a burst's ticks evenly and fire them in
// the same order, so the first one's queue ahead of a tick is about as long
// as this daemon's own when it fires that tick: the next daemon waits a step
// plus the time its own workers take to go through that many ticks. Capped,
// so a dead daemon's ticks still run within a bounded lag.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>

namespace conch::detail {

/// The wait before each next daemon, on top of the first one's queue.
inline constexpr std::chrono::milliseconds cron_turn_step{150};
/// The longest a tick waits for the daemons ranked before this one.
inline constexpr std::chrono::milliseconds cron_turn_max{10'000};

/// How long after its tick a daemon ranked `rank` (0: first) claims it:
/// `rank` times a step plus the time to go through `queued` ticks at
/// `per_tick` each, at most `cap`.
inline std::chrono::milliseconds cron_turn(std::size_t rank, std::size_t queued,
                                           std::chrono::nanoseconds per_tick,
                                           std::chrono::milliseconds cap,
                                           std::chrono::milliseconds step = cron_turn_step) {
  if (rank == 0) return std::chrono::milliseconds{0};
  const auto queue = std::chrono::ceil<std::chrono::milliseconds>(
      per_tick * static_cast<std::chrono::nanoseconds::rep>(queued));
  if (step.count() > 0 && rank > static_cast<std::size_t>(cap / step)) return cap;
  const auto one = step + std::min(queue, cap);  // small enough to multiply
  return std::min(cap, one * static_cast<std::chrono::milliseconds::rep>(rank));
}

/// The cap for a job whose ticks come `period` apart: half of it (a tick is
/// shed once the next one is due), at most cron_turn_max, at least a step.
inline std::chrono::milliseconds cron_turn_cap(std::chrono::milliseconds period) {
  return std::max(cron_turn_step, std::min(cron_turn_max, period / 2));
}

/// The pace at which a pool's workers take queued ticks: a moving average of
/// the intervals between takes while a backlog waited (the takes of an idle
/// pool tell when ticks arrived, not how fast they are worked through).
/// Before any such interval it reads `initial`. Not thread-safe.
template <class TimePoint>
class cron_pace {
 public:
  using duration = typename TimePoint::duration;

  explicit cron_pace(std::chrono::nanoseconds initial = std::chrono::milliseconds{1})
      : per_tick_(initial) {}

  /// A worker took a tick at `at`, leaving `left` queued.
  void took(TimePoint at, std::size_t left) {
    if (last_) {
      const auto interval = std::chrono::duration_cast<std::chrono::nanoseconds>(at - *last_);
      per_tick_ = seen_ ? per_tick_ + (interval - per_tick_) / 8 : interval;
      seen_ = true;
    }
    if (left > 0)
      last_ = at;
    else
      last_.reset();
  }

  std::chrono::nanoseconds per_tick() const noexcept { return per_tick_; }

 private:
  std::chrono::nanoseconds per_tick_;
  bool seen_ = false;
  std::optional<TimePoint> last_;  // the last take that left a backlog
};

}  // namespace conch::detail
