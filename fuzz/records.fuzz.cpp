// Record values from etcd: never crash, whatever a foreign writer put there;
// a bad value is a one-line error; a good one survives encode → decode unchanged.
#include "conch/logic/records.hpp"

#include "fuzz_check.hpp"

#include <string_view>

namespace {

template <class R>
void check(std::string_view text) {
  namespace cd = conch::detail;
  const auto r = cd::decode_record<R>(text);
  if (!r) {
    CONCH_FUZZ_CHECK(r.error().code == conch::errc::corrupt);
    CONCH_FUZZ_CHECK(!r.error().message.empty() &&
                     r.error().message.find('\n') == std::string::npos);
    return;
  }
  const auto again = cd::decode_record<R>(cd::encode_record(*r));
  CONCH_FUZZ_CHECK(again.ok());
  if constexpr (requires(R x) { R::trim(x); }) {
    R trimmed = *r;
    R::trim(trimmed);
    CONCH_FUZZ_CHECK(*again == trimmed);
  } else {
    CONCH_FUZZ_CHECK(*again == *r);
  }
  CONCH_FUZZ_CHECK(!cd::format_record_lines(*r).empty());
  CONCH_FUZZ_CHECK(cd::format_record_line(*r).find('\n') == std::string::npos);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check<conch::detail::holder_record>(text);
  check<conch::detail::job_record>(text);
  check<conch::detail::claim_record>(text);
  check<conch::detail::run_record>(text);
  return 0;
}
