// Duration text: never crashes; bad input is a one-line error; good input
// round-trips through its canonical spelling.
#include "conch/logic/duration.hpp"

#include "fuzz_check.hpp"

#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace cd = conch::detail;
  const auto d = cd::parse_duration(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!d) {
    CONCH_FUZZ_CHECK(d.error().code == conch::errc::invalid_argument);
    CONCH_FUZZ_CHECK(!d.error().message.empty() &&
                     d.error().message.find('\n') == std::string::npos);
    return 0;
  }
  CONCH_FUZZ_CHECK(d->count() >= 0);
  const auto again = cd::parse_duration(cd::format_duration(*d));
  CONCH_FUZZ_CHECK(again.ok() && *again == *d);
  return 0;
}
