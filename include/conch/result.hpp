// conch/result.hpp — the error value every fallible conch call returns.
//
// conch reports failure by value: a `result<T>` holds either a T or an `error`
// naming what went wrong. Nothing in conch throws across its API for an
// expected failure (etcd unreachable, compacted revision, lost lease, bad
// input); exceptions are left to programming errors and std::bad_alloc.
//
//   conch::result<int> r = parse_port("2379");
//   if (!r) std::cerr << r.error().message << '\n';
//   else use(*r);
#pragma once

#include <cstdint>
#include <string>
#include <system_error>
#include <utility>
#include <variant>

namespace conch {

/// What kind of failure an `error` is. Recipes branch on these, never on text.
enum class errc {
  unavailable = 1,      ///< no endpoint answered (connection refused, no quorum)
  timed_out,            ///< the caller's deadline passed
  cancelled,            ///< the operation was cancelled by its owner
  compacted,            ///< a watch start revision has been compacted away
  lease_not_found,      ///< the lease expired or was revoked
  permission_denied,    ///< auth: the user's role does not cover the key
  unauthenticated,      ///< auth: bad user/password or expired token
  invalid_argument,     ///< the request (or user input) is malformed
  failed_precondition,  ///< the state in etcd does not allow the operation
  corrupt,              ///< a value in etcd is not what conch wrote
  busy,                 ///< the office/slots are held (non-blocking acquire)
  lost,                 ///< the session was lost while holding
  internal,             ///< anything else the server reported
};

inline const char* to_string(errc e) noexcept {
  switch (e) {
    case errc::unavailable:
      return "unavailable";
    case errc::timed_out:
      return "timed out";
    case errc::cancelled:
      return "cancelled";
    case errc::compacted:
      return "compacted";
    case errc::lease_not_found:
      return "lease not found";
    case errc::permission_denied:
      return "permission denied";
    case errc::unauthenticated:
      return "unauthenticated";
    case errc::invalid_argument:
      return "invalid argument";
    case errc::failed_precondition:
      return "failed precondition";
    case errc::corrupt:
      return "corrupt value";
    case errc::busy:
      return "busy";
    case errc::lost:
      return "lost";
    case errc::internal:
      return "internal error";
  }
  return "unknown error";
}

inline const std::error_category& conch_category() noexcept {
  struct category final : std::error_category {
    const char* name() const noexcept override { return "conch"; }
    std::string message(int v) const override { return to_string(static_cast<errc>(v)); }
  };
  static const category instance;
  return instance;
}

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), conch_category()};
}

/// A failure: its kind, a one-line human message, and for `errc::compacted`
/// the server's compact revision (the oldest revision still readable).
struct error {
  errc code = errc::internal;
  std::string message;
  std::int64_t compact_revision = 0;

  error() = default;
  error(errc c, std::string msg, std::int64_t compact_rev = 0)
      : code(c), message(std::move(msg)), compact_revision(compact_rev) {}

  friend bool operator==(const error& e, errc c) noexcept { return e.code == c; }
};

/// Either a T or an `error`. A tiny `std::expected` for C++20.
template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::in_place_index<0>, std::move(value)) {}     // NOLINT implicit
  result(conch::error e) : v_(std::in_place_index<1>, std::move(e)) {}  // NOLINT implicit

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const conch::error& error() const& { return std::get<1>(v_); }
  conch::error&& error() && { return std::get<1>(std::move(v_)); }

  template <class U>
  T value_or(U&& fallback) const& {
    return ok() ? value() : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  std::variant<T, conch::error> v_;
};

template <>
class [[nodiscard]] result<void> {
 public:
  result() = default;
  result(conch::error e) : e_(std::move(e)), ok_(false) {}  // NOLINT implicit

  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  void value() const noexcept {}
  const conch::error& error() const& { return e_; }
  conch::error&& error() && { return std::move(e_); }

 private:
  conch::error e_;
  bool ok_ = true;
};

}  // namespace conch

template <>
struct std::is_error_code_enum<conch::errc> : std::true_type {};
