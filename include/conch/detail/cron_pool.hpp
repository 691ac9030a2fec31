// conch/detail/cron_pool.hpp — the fixed set of threads that claim and run
// due ticks: however many jobs and ticks there are, the thread count stays.
#pragma once

#include "conch/logic/cron_turns.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace conch::detail {

/// A queue of tasks and the workers that take them, first in, first out.
template <class Task>
class cron_pool {
 public:
  cron_pool() = default;
  cron_pool(const cron_pool&) = delete;
  cron_pool& operator=(const cron_pool&) = delete;
  ~cron_pool() { finish(); }

  /// Starts workers up to `n` (at least one) running `work` on each task; a
  /// thread that cannot be made is passed to `failed`, never fatal, and the
  /// last few workers are let go again: the system is at its limit, and the
  /// runs' processes and the transport's own threads need room too. Returns
  /// how many workers there are; called again, it adds the missing ones.
  std::size_t start(std::size_t n, std::function<void(Task&)> work,
                    const std::function<void(const std::string&)>& failed) {
    if (workers_.empty()) work_ = std::move(work);
    for (std::size_t i = workers_.size(); i < std::max<std::size_t>(1, n); ++i) {
      try {
        workers_.emplace_back([this](std::stop_token own) { serve(std::move(own)); });
      } catch (const std::system_error& e) {
        failed(e.what());
        for (std::size_t k = 0; k < headroom && workers_.size() > 1; ++k)
          workers_.pop_back();  // stops and joins
        break;
      }
    }
    return workers_.size();
  }

  void push(Task task) {
    {
      std::lock_guard lock{mutex_};
      queue_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

  /// How many tasks wait for a worker.
  std::size_t queued() const {
    std::lock_guard lock{mutex_};
    return queue_.size();
  }
  /// The measured time between takes while tasks waited (cron_pace).
  std::chrono::nanoseconds per_task() const {
    std::lock_guard lock{mutex_};
    return pace_.per_tick();
  }

  /// Lets the workers take what is queued, then joins them.
  void finish() {
    {
      std::lock_guard lock{mutex_};
      done_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();  // not stopped: they drain the queue first
    workers_.clear();
  }

 private:
  // Threads left to the rest of the process when the system refuses more.
  static constexpr std::size_t headroom = 4;

  void serve(std::stop_token own) {
    for (;;) {
      Task task;
      {
        std::unique_lock lock{mutex_};
        cv_.wait(lock, own, [&] { return !queue_.empty() || done_; });
        if (queue_.empty() || own.stop_requested()) return;
        task = std::move(queue_.front());
        queue_.pop_front();
        pace_.took(std::chrono::steady_clock::now(), queue_.size());
      }
      work_(task);
    }
  }

  std::function<void(Task&)> work_;
  mutable std::mutex mutex_;  // guards the queue, its pace and done_
  std::condition_variable_any cv_;
  std::deque<Task> queue_;
  bool done_ = false;
  cron_pace<std::chrono::steady_clock::time_point> pace_;
  std::vector<std::jthread> workers_;  // last: joined first
};

}  // namespace conch::detail
