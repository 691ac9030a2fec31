// conch/etcd/duplex.hpp — one bidirectional gRPC stream driven
// through its own CompletionQueue, so waiting for the next message is a timed
// wait on the caller's thread: no thread of ours runs in the background.
//
// One call at a time: open() starts it, wait() hands out messages and
// finally `finished` with the status, reset() makes room for the next call.
// write() may come from any thread; wait() from one thread at a time.
// cancel() (any thread) fails whatever is pending and makes the stream
// refuse new calls; the destructor cancels and drains the queue, which
// cancellation makes prompt, so it never hangs.
#pragma once

#include "conch/etcd/deadline.hpp"

#include <cstdint>
#include <deque>
#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>
#include <memory>
#include <mutex>

namespace conch::detail {

template <class Request, class Response>
class grpc_duplex {
 public:
  using call_type = grpc::ClientAsyncReaderWriter<Request, Response>;
  enum class event {
    timeout,   ///< the deadline passed
    message,   ///< message() holds the next message
    finished,  ///< the call is over; status() says why; reset() before reopening
    alarm,     ///< the alarm set by set_alarm() went off (or was cancelled)
    idle,      ///< nothing pending: no call, no alarm
  };

  grpc_duplex() = default;
  grpc_duplex(const grpc_duplex&) = delete;
  grpc_duplex& operator=(const grpc_duplex&) = delete;
  ~grpc_duplex() {
    cancel();
    drain();
  }

  /// Starts a call: `prepare(ctx, cq)` returns it un-started (a stub's
  /// PrepareAsync...). False, and nothing started, once cancelled.
  template <class Prepare>
  bool open(Prepare&& prepare, const std::string& token) {
    std::lock_guard lock(m_);
    if (cancelled_ || phase_ != phase::idle) return false;
    ctx_ = std::make_unique<grpc::ClientContext>();
    if (!token.empty()) ctx_->AddMetadata("token", token);
    call_ = prepare(ctx_.get(), &cq_);
    call_->StartCall(tag(op::start));
    ++pending_;
    phase_ = phase::starting;
    return true;
  }

  /// Queues a message; sent once the call is up, in order.
  void write(Request r) {
    std::lock_guard lock(m_);
    if (phase_ == phase::idle) return;
    queued_.push_back(std::move(r));
    flush_locked();
  }

  /// Ends the current call (not the stream): wait() then reports `finished`.
  void abort() {
    std::lock_guard lock(m_);
    if (ctx_) ctx_->TryCancel();
  }

  /// Makes wait() report `alarm` at `at` (a cancellable timed pause).
  bool set_alarm(deadline at) {
    std::lock_guard lock(m_);
    if (cancelled_ || alarm_pending_) return false;
    alarm_ = std::make_unique<grpc::Alarm>();
    alarm_->Set(&cq_, to_grpc_deadline(at), tag(op::alarm));
    alarm_pending_ = true;
    return true;
  }

  /// Makes wait() report `alarm` now: a pending alarm goes off at once
  /// (cancelled), or one is set for now. Any thread.
  void ring() {
    std::lock_guard lock(m_);
    if (cancelled_) return;
    if (alarm_pending_) {
      alarm_->Cancel();
      return;
    }
    alarm_ = std::make_unique<grpc::Alarm>();
    alarm_->Set(&cq_, to_grpc_deadline(std::chrono::steady_clock::now()), tag(op::alarm));
    alarm_pending_ = true;
  }

  event wait(deadline d) {
    for (;;) {
      {
        std::lock_guard lock(m_);
        if (finish_wanted_) finish_locked();
        if (phase_ == phase::open && !reading_) {
          call_->Read(&incoming_, tag(op::read));
          reading_ = true;
          ++pending_;
        }
        if (phase_ == phase::finished && pending_ == 0) return event::finished;
        if (phase_ == phase::idle && !alarm_pending_) return event::idle;
        ++waiting_;
      }
      void* t = nullptr;
      bool ok = false;
      const auto got = cq_.AsyncNext(&t, &ok, to_grpc_deadline(d));
      std::lock_guard lock(m_);
      --waiting_;
      if (got != grpc::CompletionQueue::GOT_EVENT) return event::timeout;
      switch (static_cast<op>(reinterpret_cast<std::uintptr_t>(t))) {
        case op::start:
          --pending_;
          if (ok) {
            phase_ = phase::open;
            flush_locked();
          } else {
            finish_locked();
          }
          break;
        case op::read:
          --pending_;
          reading_ = false;
          if (ok) return event::message;
          finish_locked();
          break;
        case op::write:
          --pending_;
          writing_ = false;
          if (ok)
            flush_locked();
          else
            finish_locked();
          break;
        case op::finish:
          --pending_;
          phase_ = phase::finished;
          break;
        case op::alarm:
          alarm_pending_ = false;
          return event::alarm;
      }
    }
  }

  Response& message() { return incoming_; }
  const grpc::Status& status() const { return status_; }

  /// After `finished`: forget the call.
  void reset() {
    std::lock_guard lock(m_);
    call_.reset();
    ctx_.reset();
    queued_.clear();
    status_ = grpc::Status();
    phase_ = phase::idle;
    finish_wanted_ = false;
  }

  bool idle() const {
    std::lock_guard lock(m_);
    return phase_ == phase::idle;
  }
  bool cancelled() const {
    std::lock_guard lock(m_);
    return cancelled_;
  }
  /// How many threads wait() on the queue right now.
  int waiting() const {
    std::lock_guard lock(m_);
    return waiting_;
  }

  void cancel() noexcept {
    std::lock_guard lock(m_);
    cancelled_ = true;
    if (ctx_) ctx_->TryCancel();
    if (alarm_pending_) alarm_->Cancel();
  }

 private:
  enum class op : std::uintptr_t { start = 1, read, write, finish, alarm };
  enum class phase { idle, starting, open, finishing, finished };
  static void* tag(op o) { return reinterpret_cast<void*>(static_cast<std::uintptr_t>(o)); }

  void flush_locked() {
    if (phase_ != phase::open || writing_ || queued_.empty()) return;
    outgoing_ = std::move(queued_.front());
    queued_.pop_front();
    call_->Write(outgoing_, tag(op::write));
    writing_ = true;
    ++pending_;
  }

  // The call is over (a read or write failed, or it never started): collect
  // its status once no write is in flight.
  void finish_locked() {
    if (phase_ == phase::starting || phase_ == phase::open) {
      phase_ = phase::finishing;
      finish_wanted_ = true;
    }
    if (finish_wanted_ && !writing_ && !reading_) {
      finish_wanted_ = false;
      call_->Finish(&status_, tag(op::finish));
      ++pending_;
    }
  }

  // Destruction: every tag must come back before the queue goes away.
  void drain() {
    for (;;) {
      {
        std::lock_guard lock(m_);
        if (pending_ == 0 && !alarm_pending_) break;
      }
      void* t = nullptr;
      bool ok = false;
      if (!cq_.Next(&t, &ok)) break;
      std::lock_guard lock(m_);
      if (static_cast<op>(reinterpret_cast<std::uintptr_t>(t)) == op::alarm)
        alarm_pending_ = false;
      else
        --pending_;
    }
    call_.reset();
    ctx_.reset();
    cq_.Shutdown();
    void* t = nullptr;
    bool ok = false;
    while (cq_.Next(&t, &ok)) {
    }
  }

  mutable std::mutex m_;
  grpc::CompletionQueue cq_;
  std::unique_ptr<grpc::ClientContext> ctx_;
  std::unique_ptr<call_type> call_;
  std::unique_ptr<grpc::Alarm> alarm_;
  std::deque<Request> queued_;
  Request outgoing_;
  Response incoming_;
  grpc::Status status_;
  phase phase_ = phase::idle;
  int pending_ = 0;  // call operations whose tag has not come back
  bool reading_ = false;
  bool writing_ = false;
  bool finish_wanted_ = false;
  bool alarm_pending_ = false;
  bool cancelled_ = false;
  int waiting_ = 0;  // threads blocked in wait() on the queue
};

}  // namespace conch::detail
