// Keys read from etcd: decoding never crashes; what decodes re-encodes to the
// very same key (one key, one meaning); a foreign key is a one-line error.
// Any byte string as a name survives encode → decode.
#include "conch/logic/keys.hpp"

#include "fuzz_check.hpp"

#include <string_view>

namespace {

template <class K>
void check(std::string_view prefix, std::string_view key) {
  namespace cd = conch::detail;
  const auto k = cd::decode_key<K>(prefix, key);
  if (!k) {
    CONCH_FUZZ_CHECK(k.error().code == conch::errc::invalid_argument);
    CONCH_FUZZ_CHECK(k.error().message.find('\n') == std::string::npos);
    return;
  }
  const auto again = cd::encode_key(prefix, *k);
  CONCH_FUZZ_CHECK(again.ok() && *again == key);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace cd = conch::detail;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  for (std::string_view prefix : {std::string_view(), std::string_view("conch/")}) {
    check<cd::election_key>(prefix, input);
    check<cd::semaphore_slot_key>(prefix, input);
    check<cd::semaphore_queue_key>(prefix, input);
    check<cd::cron_job_key>(prefix, input);
    check<cd::cron_fire_key>(prefix, input);
    check<cd::cron_run_key>(prefix, input);
  }
  const auto name = cd::encode_name(input);
  CONCH_FUZZ_CHECK(name.ok() == !input.empty());
  if (name) {
    CONCH_FUZZ_CHECK(name->find('/') == std::string::npos);
    const auto back = cd::decode_name(*name);
    CONCH_FUZZ_CHECK(back.ok() && *back == input);
  }
  return 0;
}
