// conch/logic/record_codec.hpp — JSON and text for any record, derived from
// its Boost.Hana struct, so a field is declared once and encoded, decoded and
// printed everywhere without another line.
//
// A record is a struct declared with BOOST_HANA_DEFINE_STRUCT that also has
// `static constexpr std::string_view kind` (for messages) and may have
// `required_fields` (an array of field names). Field types: std::string,
// integers, bool, wall_time and tick_time (RFC 3339 strings), std::vector and
// std::optional of those.
//
// Decoding is forgiving where it can be and strict where it must be:
// unknown fields are ignored, missing fields keep their value-initialized
// default unless required, and anything else (not JSON, not an object, a
// field of the wrong type, a time that is not RFC 3339) is an error value
// naming the record kind and the field. Nothing throws out.
//
//   std::string text = encode_record(holder);
//   result<holder_record> back = decode_record<holder_record>(text);
//   std::cout << format_record_lines(*back);   // "host:    db1\npid:     4242\n..."
#pragma once

#include "conch/logic/record_field.hpp"
#include "conch/result.hpp"

#include <boost/hana.hpp>
#include <concepts>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace conch::detail {

/// The largest value conch reads as a record; etcd itself refuses requests
/// past 1.5 MiB by default, and no record of ours comes near.
inline constexpr std::size_t max_record_bytes = 1 << 20;

template <class R>
concept record = boost::hana::Struct<R>::value && requires {
  { R::kind } -> std::convertible_to<std::string_view>;
};

/// The record as compact JSON. Strings that are not valid UTF-8 have the bad
/// bytes replaced by U+FFFD (JSON cannot carry them); a record may trim
/// itself first through `static void trim(R&)` (e.g. a run's output tail).
template <record R>
std::string encode_record(R r) {
  if constexpr (requires { R::trim(r); }) R::trim(r);
  nlohmann::json j = nlohmann::json::object();
  boost::hana::for_each(boost::hana::accessors<R>(), [&](auto pair) {
    const auto& value = boost::hana::second(pair)(r);
    if constexpr (record_field_impl::is_optional<std::remove_cvref_t<decltype(value)>>::value) {
      if (!value) return;  // absent, not null: a reader of an older record sees the same
    }
    j[boost::hana::to<const char*>(boost::hana::first(pair))] = record_field_impl::to_json(value);
  });
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

template <record R>
result<R> decode_record(std::string_view text) {
  const std::string kind(R::kind);
  if (text.size() > max_record_bytes)
    return error{errc::corrupt, kind + " record: larger than 1 MiB"};
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return error{errc::corrupt, kind + " record: not JSON"};
  if (!j.is_object()) return error{errc::corrupt, kind + " record: not a JSON object"};
  if constexpr (requires { R::required_fields; }) {
    for (std::string_view f : R::required_fields)
      if (!j.contains(f))
        return error{errc::corrupt, kind + " record: field \"" + std::string(f) + "\" is missing"};
  }
  R r{};
  std::optional<error> failure;
  boost::hana::for_each(boost::hana::accessors<R>(), [&](auto pair) {
    const char* name = boost::hana::to<const char*>(boost::hana::first(pair));
    auto it = j.find(name);
    if (failure || it == j.end()) return;
    if (!record_field_impl::from_json(*it, boost::hana::second(pair)(r)))
      failure = error{errc::corrupt, kind + " record: field \"" + name + "\" is not " +
                                         record_field_impl::expected(boost::hana::second(pair)(r))};
  });
  if (failure) return std::move(*failure);
  return r;
}

/// Each field's name and its value as a person reads it (times in RFC 3339,
/// argv shell-quoted, an absent optional as "-", control bytes escaped).
template <record R>
std::vector<std::pair<std::string, std::string>> record_fields(const R& r) {
  std::vector<std::pair<std::string, std::string>> out;
  boost::hana::for_each(boost::hana::accessors<R>(), [&](auto pair) {
    out.emplace_back(boost::hana::to<const char*>(boost::hana::first(pair)),
                     record_field_impl::to_text(boost::hana::second(pair)(r)));
  });
  return out;
}

/// One "field: value" line per field, values aligned.
template <record R>
std::string format_record_lines(const R& r) {
  const auto fields = record_fields(r);
  std::size_t width = 0;
  for (const auto& f : fields) width = std::max(width, f.first.size());
  std::string out;
  for (const auto& [name, value] : fields)
    out += name + ":" + std::string(width - name.size() + 1, ' ') + value + "\n";
  return out;
}

/// All fields on one line: "host=db1 pid=4242 ..." (for logs).
template <record R>
std::string format_record_line(const R& r) {
  std::string out;
  for (const auto& [name, value] : record_fields(r))
    out += (out.empty() ? "" : " ") + name + "=" + value;
  return out;
}

}  // namespace conch::detail
