// conch/detail/cron_pool.hpp — the fixed set of threads that claim and run
// due ticks: however many jobs and ticks there are, the thread count stays.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
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

  /// Starts up to `n` (at least one) workers running `work` on each task; a
  /// thread that cannot be made is passed to `failed`, never fatal.
  void start(std::size_t n, std::function<void(Task&)> work,
             const std::function<void(const std::string&)>& failed) {
    work_ = std::move(work);
    for (std::size_t i = workers_.size(); i < std::max<std::size_t>(1, n); ++i) {
      try {
        workers_.emplace_back([this] { serve(); });
      } catch (const std::system_error& e) {
        failed(e.what());
        break;
      }
    }
  }

  void push(Task task) {
    {
      std::lock_guard lock{mutex_};
      queue_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

  /// Lets the workers take what is queued, then joins them.
  void finish() {
    {
      std::lock_guard lock{mutex_};
      done_ = true;
    }
    cv_.notify_all();
    workers_.clear();  // joins
  }

 private:
  void serve() {
    for (;;) {
      Task task;
      {
        std::unique_lock lock{mutex_};
        cv_.wait(lock, [&] { return !queue_.empty() || done_; });
        if (queue_.empty()) return;
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      work_(task);
    }
  }

  std::function<void(Task&)> work_;
  std::mutex mutex_;  // guards the queue and done_
  std::condition_variable cv_;
  std::deque<Task> queue_;
  bool done_ = false;
  std::vector<std::jthread> workers_;  // last: joined first
};

}  // namespace conch::detail
