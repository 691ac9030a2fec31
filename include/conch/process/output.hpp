// conch/process/output.hpp — pass a child's output through, keeping its tail.
//
// cron records the last 4 KiB of a run's output in etcd, while the output still
// reaches the daemon's own stdout/stderr as it is produced. `output_tail` keeps
// the last `capacity` bytes; `pump` moves whatever is readable now from a
// child's pipe to our own descriptor and into the tail.
#pragma once

#include <cerrno>
#include <cstddef>
#include <string>
#include <string_view>
#include <unistd.h>

namespace conch::process {

/// The last `capacity` bytes of a stream.
class output_tail {
 public:
  explicit output_tail(std::size_t capacity = 4096) : capacity_(capacity) {}

  void append(std::string_view bytes) {
    if (bytes.size() >= capacity_) {
      buf_.assign(bytes.substr(bytes.size() - capacity_));
      return;
    }
    buf_.append(bytes);
    // Trim lazily so appending many small chunks stays linear.
    if (buf_.size() > 2 * capacity_) buf_.erase(0, buf_.size() - capacity_);
  }
  std::string str() const {
    return buf_.size() <= capacity_ ? buf_ : buf_.substr(buf_.size() - capacity_);
  }
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  std::size_t capacity_;
  std::string buf_;
};

/// Reads what `from` (non-blocking) holds now, writes it to `to` (if >= 0)
/// and into `tail`. Returns false once `from` reached end of file.
inline bool pump(int from, int to, output_tail& tail) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(from, buf, sizeof buf);
    if (n > 0) {
      tail.append({buf, static_cast<std::size_t>(n)});
      for (ssize_t off = 0; to >= 0 && off < n;) {
        ssize_t w = ::write(to, buf + off, static_cast<std::size_t>(n - off));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;  // our own output is gone; keep the tail anyway
        off += w;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n != 0;  // 0: EOF; <0 with EAGAIN: nothing more for now
  }
}

}  // namespace conch::process
