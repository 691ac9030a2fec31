// conch/logic/key_reader.hpp — a cursor over a key, for strict decoding.
//
// Each step consumes one part of the layout or reports false and leaves the
// caller to say which layout the key failed to match. Nothing here throws or
// reads out of bounds, whatever the key holds.
#pragma once

#include "conch/logic/hex.hpp"
#include "conch/logic/name_codec.hpp"
#include "conch/logic/time_format.hpp"
#include "conch/result.hpp"

#include <string>
#include <string_view>

namespace conch::detail {

class key_reader {
 public:
  explicit key_reader(std::string_view key) : key_(key) {}

  bool literal(std::string_view s) {
    if (!rest().starts_with(s)) return false;
    at_ += s.size();
    return true;
  }

  /// One encoded name segment (up to the next '/').
  bool name(std::string& out) {
    auto n = decode_name(segment());
    if (n) out = std::move(*n);
    return n.ok();
  }

  bool lease(std::int64_t& out) {
    auto l = parse_lease_hex(segment());
    if (l) out = *l;
    return l.ok();
  }

  bool tick(tick_time& out) {
    auto t = parse_tick(segment());
    if (t) out = *t;
    return t.ok();
  }

  /// A canonical decimal (no sign, no leading zero) within [lo, hi].
  bool number(int& out, int lo, int hi) {
    const std::string_view s = segment();
    if (s.empty() || s.size() > 9 || (s.size() > 1 && s.front() == '0')) return false;
    int v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    if (v < lo || v > hi) return false;
    out = v;
    return true;
  }

  bool at_end() const { return at_ == key_.size(); }

  error fail(const std::string& why) const {
    return error{errc::invalid_argument, "key \"" + printable(key_) + "\": " + why};
  }

 private:
  std::string_view rest() const { return key_.substr(at_); }

  /// Consumes up to (not including) the next '/'.
  std::string_view segment() {
    const std::string_view r = rest();
    const std::string_view s = r.substr(0, r.find('/'));
    at_ += s.size();
    return s;
  }

  std::string_view key_;
  std::size_t at_ = 0;
};

}  // namespace conch::detail
