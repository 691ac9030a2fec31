// conch/detail/txn_batcher.hpp — group commit: concurrent txns share one write.
//
// Callers of txn() on several threads are answered as if each had sent its
// txn alone, but while one batch is in flight the next callers queue, and
// when it returns everything queued goes as the next batch (one etcd write,
// conch::txn_batching). No timer and no thread of its own: the first caller
// to find no batch in flight sends (leads), the others wait, and a leader
// whose own answer came hands the lead to the first still waiting. A lone
// caller's txn goes out at once, alone. Which txns may share a batch is
// logic/txn_batch.hpp's rule (within etcd's --max-txn-ops, none touching a
// key another writes).
//
// Outcomes, per caller: its own inner answer. A batch that failed in
// transit (timed out, unavailable: applied or not, no one knows) gives every
// caller that error, in doubt just as for a txn sent alone. A batch etcd
// refused as a whole for what one txn in it holds (a bad argument, a lease
// not found, a permission) is applied to none: each caller then sends its
// own txn alone and gets its own true answer. A batch's deadline is the
// earliest of its callers'; a caller whose deadline passes while it waits
// unsent gets errc::timed_out.
//
//   detail::txn_batcher<etcd_transport> writes{etcd};
//   auto r = writes.txn(claim, writes.default_deadline());  // from any thread
#pragma once

#include "conch/logic/txn_batch.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"

#include <algorithm>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace conch::detail {

/// What sends txns: a transport, or a batcher over one.
template <class T>
concept txn_sender = requires(T& t, const txn_request& r, deadline d) {
  { t.txn(r, d) } -> std::same_as<result<txn_response>>;
  { t.default_deadline() } -> std::same_as<deadline>;
};

/// Whether a failed batch was refused whole, unapplied, for what some txn in
/// it holds, so each txn sent alone gets its own answer; otherwise (lost in
/// transit, overloaded, unauthenticated) every txn would fare alike.
inline bool refused_for_one(const error& e) {
  return e.code == errc::invalid_argument || e.code == errc::lease_not_found ||
         e.code == errc::permission_denied || e.code == errc::failed_precondition ||
         e.code == errc::compacted;
}

template <class T>
class txn_batcher {
 public:
  explicit txn_batcher(T& t, batch_limits limits = {}) : t_(t), limits_(limits) {}
  txn_batcher(const txn_batcher&) = delete;
  txn_batcher& operator=(const txn_batcher&) = delete;

  deadline default_deadline() { return t_.default_deadline(); }
  /// How many callers wait for a batch (not yet sent): for tests that wait
  /// until callers are queued rather than sleep.
  std::size_t waiting() const {
    std::lock_guard lock{mutex_};
    return waiting_.size();
  }
  T& transport() noexcept { return t_; }

  /// `req`'s answer, as if sent alone (see above). Blocks the calling thread.
  result<txn_response> txn(const txn_request& req, deadline d) {
    if constexpr (!txn_batching<T>) {
      return t_.txn(req, d);
    } else {
      auto shared = std::make_shared<caller>(&req, d);
      caller& me = *shared;
      std::unique_lock lock{mutex_};
      waiting_.push_back(shared);
      for (;;) {
        if (me.answer) return std::move(*me.answer);
        if (me.alone) {
          lock.unlock();
          return t_.txn(req, d);
        }
        if (!leading_) {
          lead(lock, me);
          continue;
        }
        if (me.sent) {
          me.wake.wait(lock);
        } else if (me.wake.wait_until(lock, d) == std::cv_status::timeout && !me.sent &&
                   !me.answer && !me.alone) {
          leave(me);
          return error{errc::timed_out, "deadline passed while waiting for a txn batch"};
        }
      }
    }
  }

 private:
  struct caller {
    caller(const txn_request* r, deadline d) : req(r), due(d) {}
    const txn_request* req;
    deadline due;
    std::optional<result<txn_response>> answer{};
    bool sent = false;   // in the batch in flight
    bool alone = false;  // the batch was refused whole: send it alone
    std::condition_variable wake{};
  };

  // Sends batches until `me` is answered (or must go alone), then hands the
  // lead to the first caller still waiting. Under `lock`, released while sending.
  void lead(std::unique_lock<std::mutex>& lock, caller& me) requires txn_batching<T> {
    leading_ = true;
    while (!me.answer && !me.alone) {
      std::vector<std::shared_ptr<caller>> batch = take_batch();
      if (batch.empty()) continue;  // all expired; `me` among them is answered
      lock.unlock();
      auto answers = send_caught(batch);
      lock.lock();
      deliver(batch, std::move(answers));
      // Woken once we let go, so that none wakes only to wait for our lock;
      // each is kept alive by its share until told.
      lock.unlock();
      for (const auto& c : batch) c->wake.notify_one();
      lock.lock();
    }
    leading_ = false;
    if (!waiting_.empty()) waiting_.front()->wake.notify_one();
  }

  // Under the lock: answers callers whose deadline passed, takes the next batch.
  std::vector<std::shared_ptr<caller>> take_batch() {
    const auto now = std::chrono::steady_clock::now();
    std::erase_if(waiting_, [&](const std::shared_ptr<caller>& c) {
      if (c->due > now) return false;
      c->answer = error{errc::timed_out, "deadline passed while waiting for a txn batch"};
      c->wake.notify_one();
      return true;
    });
    std::vector<const txn_request*> reqs;
    reqs.reserve(waiting_.size());
    for (const auto& c : waiting_) reqs.push_back(c->req);
    std::vector<std::shared_ptr<caller>> batch;
    for (std::size_t i : compose_batch(reqs, limits_)) {
      batch.push_back(waiting_[i]);
      waiting_[i]->sent = true;
    }
    std::erase_if(waiting_, [](const std::shared_ptr<caller>& c) { return c->sent; });
    return batch;
  }

  // Not under the lock. A failure to send (out of memory) is every caller's
  // error, in doubt: the lead must never be left stuck with callers waiting.
  result<std::vector<txn_response>> send_caught(
      const std::vector<std::shared_ptr<caller>>& batch) requires txn_batching<T> {
    try {
      return send(batch);
    } catch (const std::exception& e) {
      return error{errc::internal, std::string("txn batch not sent: ") + e.what()};
    }
  }

  // Not under the lock: the callers in `batch` only wait.
  result<std::vector<txn_response>> send(const std::vector<std::shared_ptr<caller>>& batch) requires
      txn_batching<T> {
    deadline d = batch.front()->due;
    for (const auto& c : batch) d = std::min(d, c->due);
    if (batch.size() == 1) {
      auto r = t_.txn(*batch.front()->req, d);
      if (!r) return std::move(r).error();
      return std::vector<txn_response>{std::move(*r)};
    }
    std::vector<txn_request> reqs;
    reqs.reserve(batch.size());
    for (const auto& c : batch) reqs.push_back(*c->req);
    return t_.txn_batch(reqs, d);
  }

  // Under the lock; the caller wakes them once it let go.
  static void deliver(const std::vector<std::shared_ptr<caller>>& batch,
                      result<std::vector<txn_response>> r) {
    for (std::size_t i = 0; i < batch.size(); ++i) {
      caller& c = *batch[i];
      if (r)
        c.answer = std::move((*r)[i]);
      else if (batch.size() > 1 && refused_for_one(r.error()))
        c.alone = true;
      else
        c.answer = r.error();
    }
  }

  // A caller that gave up unsent: the lead, if free, goes to the next in line.
  void leave(caller& me) {
    std::erase_if(waiting_, [&](const std::shared_ptr<caller>& c) { return c.get() == &me; });
    if (!leading_ && !waiting_.empty()) waiting_.front()->wake.notify_one();
  }

  T& t_;
  batch_limits limits_;
  mutable std::mutex mutex_;  // guards the callers waiting and who leads
  std::deque<std::shared_ptr<caller>> waiting_;
  bool leading_ = false;
};

}  // namespace conch::detail
