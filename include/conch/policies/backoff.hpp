// conch/policies/backoff.hpp — the backoff policy: how long to wait before retrying.
//
// A backoff is a copyable value made fresh for each operation (a reconnect,
// a restart loop): `next()` gives the delay before the next attempt and
// `reset()` starts the sequence over. Randomness is injected, so tests get
// exact sequences and production gets full jitter.
//
//   conch::exponential_backoff retry{{.initial = 100ms, .cap = 10s}};
//   while (!try_once()) clock.sleep_until(clock.now() + retry.next(), stop);
#pragma once

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <random>
#include <utility>

namespace conch {

/// A backoff policy: a copyable value with `next()` (a chrono duration) and `reset()`.
template <class B>
concept backoff_policy = std::copyable<B> && std::default_initializable<B> && requires(B& b) {
  { b.next() } -> std::convertible_to<std::chrono::nanoseconds>;
  { b.reset() } -> std::same_as<void>;
};

/// Spells out which part of the backoff policy `B` is missing (for a static_assert).
template <class B>
constexpr bool check_backoff_policy() {
  static_assert(
      requires(B & b) {
        { b.next() } -> std::convertible_to<std::chrono::nanoseconds>;
      },
      "conch: a backoff policy needs `next()` returning a std::chrono duration");
  static_assert(
      requires(B & b) { b.reset(); }, "conch: a backoff policy needs `void reset()`");
  static_assert(std::copyable<B> && std::default_initializable<B>,
                "conch: a backoff policy must be a default-constructible, copyable value");
  return backoff_policy<B>;
}

/// A source of uniformly distributed 64-bit values.
using random_source = std::function<std::uint64_t()>;

/// Draws from a per-thread engine seeded once from std::random_device, so
/// copies of one backoff still jitter independently.
inline std::uint64_t default_random() {
  thread_local std::mt19937_64 engine{[] {
    std::random_device device;
    return (std::uint64_t{device()} << 32) ^ device();
  }()};
  return engine();
}

/// Exponential backoff with full jitter: the n-th delay since reset() (n from 0)
/// is uniform in [0, min(cap, initial * multiplier^n)], at millisecond grain.
/// Out-of-range options are clamped: negative durations to 0, initial to cap,
/// a multiplier below 1 to 1.
class exponential_backoff {
 public:
  struct options {
    std::chrono::milliseconds initial{100};
    std::chrono::milliseconds cap{10'000};
    double multiplier = 2.0;
  };

  exponential_backoff() : exponential_backoff(options{}) {}
  explicit exponential_backoff(options o, random_source random = default_random)
      : random_(std::move(random)) {
    cap_ = std::max(o.cap, std::chrono::milliseconds::zero());
    initial_ = std::clamp(o.initial, std::chrono::milliseconds::zero(), cap_);
    multiplier_ = o.multiplier >= 1.0 ? o.multiplier : 1.0;  // also catches NaN
    reset();
  }

  std::chrono::milliseconds next() {
    const std::uint64_t bound = static_cast<std::uint64_t>(ceiling_.count());
    const std::uint64_t draw = bound == 0 ? 0 : random_() % (bound + 1);
    // Grow the ceiling in floating point so huge multipliers cannot overflow.
    const double grown = static_cast<double>(ceiling_.count()) * multiplier_;
    ceiling_ = grown >= static_cast<double>(cap_.count())
                   ? cap_
                   : std::chrono::milliseconds{static_cast<std::int64_t>(grown)};
    return std::chrono::milliseconds{static_cast<std::int64_t>(draw)};
  }

  void reset() { ceiling_ = initial_; }

  /// The upper bound of the next delay.
  std::chrono::milliseconds ceiling() const { return ceiling_; }

 private:
  std::chrono::milliseconds initial_{}, cap_{}, ceiling_{};
  double multiplier_ = 2.0;
  random_source random_;
};

/// The same delay every time.
class constant_backoff {
 public:
  constant_backoff() = default;
  explicit constant_backoff(std::chrono::milliseconds delay)
      : delay_(std::max(delay, std::chrono::milliseconds::zero())) {}
  std::chrono::milliseconds next() const { return delay_; }
  void reset() {}

 private:
  std::chrono::milliseconds delay_{1000};
};

/// Retry at once. Empty, so it costs nothing as a `[[no_unique_address]]` member.
struct no_backoff {
  std::chrono::milliseconds next() const { return std::chrono::milliseconds::zero(); }
  void reset() {}
};

/// How long a child must have run to count as stable (SPEC: `--restart`).
inline constexpr std::chrono::seconds default_stable_after{60};

/// The reset-after-stable rule: a child that ran at least `stable_after`
/// proved the fault is gone, so the next restart starts the backoff over;
/// a child that died sooner continues the sequence.
template <backoff_policy B, class Rep, class Period>
auto next_restart_delay(B& backoff, std::chrono::duration<Rep, Period> ran_for,
                        std::chrono::milliseconds stable_after = default_stable_after) {
  if (ran_for >= stable_after) backoff.reset();
  return backoff.next();
}

}  // namespace conch
