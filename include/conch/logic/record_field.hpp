// conch/logic/record_field.hpp — one record field to JSON, from JSON, and to text.
//
// The field types a record may use, and how each is spelled: strings as
// strings, integers as JSON integers (range-checked on the way in; a float is
// the wrong type), times as RFC 3339 strings, vectors as arrays, optionals as
// the value or absent/null. `from_json` reports false on a mismatch and never
// throws, whatever the JSON holds.
#pragma once

#include "conch/logic/name_codec.hpp"
#include "conch/logic/time_format.hpp"

#include <concepts>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace conch::detail::record_field_impl {

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

template <class T>
concept integer = std::integral<T> && !std::same_as<T, bool>;

// To JSON.
inline nlohmann::json to_json(const std::string& s) { return s; }
inline nlohmann::json to_json(bool b) { return b; }
template <integer I>
nlohmann::json to_json(I v) {
  return v;
}
inline nlohmann::json to_json(wall_time t) { return format_rfc3339(t); }
inline nlohmann::json to_json(tick_time t) { return format_rfc3339(t); }
template <class T>
nlohmann::json to_json(const std::optional<T>& v) {
  return v ? to_json(*v) : nlohmann::json(nullptr);
}
template <class T>
nlohmann::json to_json(const std::vector<T>& v) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& e : v) a.push_back(to_json(e));
  return a;
}

// From JSON: false when the JSON value does not fit the field.
inline bool from_json(const nlohmann::json& j, std::string& out) {
  if (!j.is_string()) return false;
  out = j.get_ref<const std::string&>();
  return true;
}
inline bool from_json(const nlohmann::json& j, bool& out) {
  if (!j.is_boolean()) return false;
  out = j.get<bool>();
  return true;
}
template <integer I>
bool from_json(const nlohmann::json& j, I& out) {
  if (j.is_number_unsigned()) {
    const auto v = j.get<std::uint64_t>();
    if (v > static_cast<std::uint64_t>(std::numeric_limits<I>::max())) return false;
    out = static_cast<I>(v);
    return true;
  }
  if (j.is_number_integer()) {
    const auto v = j.get<std::int64_t>();
    if constexpr (std::is_unsigned_v<I>) {
      if (v < 0) return false;
    } else {
      if (v < std::numeric_limits<I>::min() || v > std::numeric_limits<I>::max()) return false;
    }
    out = static_cast<I>(v);
    return true;
  }
  return false;
}
inline bool from_json(const nlohmann::json& j, wall_time& out) {
  if (!j.is_string()) return false;
  auto t = parse_rfc3339(j.get_ref<const std::string&>());
  if (t) out = *t;
  return t.ok();
}
/// A tick is a whole second; a time with milliseconds is not a tick.
inline bool from_json(const nlohmann::json& j, tick_time& out) {
  wall_time t;
  if (!from_json(j, t) || t != std::chrono::floor<std::chrono::seconds>(t)) return false;
  out = std::chrono::floor<std::chrono::seconds>(t);
  return true;
}
template <class T>
bool from_json(const nlohmann::json& j, std::optional<T>& out) {
  if (j.is_null()) {
    out.reset();
    return true;
  }
  T v{};
  if (!from_json(j, v)) return false;
  out = std::move(v);
  return true;
}
template <class T>
bool from_json(const nlohmann::json& j, std::vector<T>& out) {
  if (!j.is_array()) return false;
  std::vector<T> v;
  v.reserve(j.size());
  for (const auto& e : j) {
    if (!from_json(e, v.emplace_back())) return false;
  }
  out = std::move(v);
  return true;
}

// What a field should have been, for the error message.
inline const char* expected(const std::string&) { return "a string"; }
inline const char* expected(bool) { return "true or false"; }
template <integer I>
const char* expected(I) {
  return "an integer in range";
}
inline const char* expected(wall_time) { return "an RFC 3339 time"; }
inline const char* expected(tick_time) { return "an RFC 3339 time in whole seconds"; }
template <class T>
const char* expected(const std::optional<T>&) {
  return expected(T{});
}
template <class T>
const char* expected(const std::vector<T>&) {
  if constexpr (std::same_as<T, std::string>) return "an array of strings";
  return "an array";
}

// As a person reads it.
inline std::string to_text(const std::string& s) { return printable(s); }
inline std::string to_text(bool b) { return b ? "true" : "false"; }
template <integer I>
std::string to_text(I v) {
  return std::to_string(v);
}
inline std::string to_text(wall_time t) { return format_rfc3339(t); }
inline std::string to_text(tick_time t) { return format_rfc3339(t); }
template <class T>
std::string to_text(const std::optional<T>& v) {
  return v ? to_text(*v) : "-";
}

/// A word is printed bare if the shell would read it back unchanged.
inline std::string shell_word(const std::string& w) {
  const bool bare = !w.empty() && w.find_first_not_of(
                                      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                      "0123456789_@%+=:,./-") == std::string::npos;
  if (bare) return w;
  std::string out = "'";
  for (char c : w) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return printable(out + "'");
}
template <class T>
std::string to_text(const std::vector<T>& v) {
  std::string out;
  for (const auto& e : v) {
    if (!out.empty()) out += ' ';
    if constexpr (std::same_as<T, std::string>) {
      out += shell_word(e);
    } else {
      out += to_text(e);
    }
  }
  return out;
}

}  // namespace conch::detail::record_field_impl
