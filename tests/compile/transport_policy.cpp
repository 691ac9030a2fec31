// Compile-only: the transport concept against its archetype, and the etcd
// transport against the concept. The archetype is declarations only: it can
// never run, so it is no stand-in for etcd.
#include "conch/detail/txn_batcher.hpp"
#include "conch/etcd.hpp"
#include "conch/policies/transport.hpp"
#include "conch/tool/metered_transport.hpp"

namespace {

struct watch_archetype {
  conch::result<conch::watch_batch> next(conch::deadline);
  void cancel() noexcept;
};

struct keepalive_archetype {
  conch::result<void> send();
  conch::result<std::int64_t> next(conch::deadline);
  void cancel() noexcept;
};

struct transport_archetype {
  conch::result<conch::range_response> range(const conch::range_request&, conch::deadline);
  conch::result<conch::put_response> put(const conch::put_request&, conch::deadline);
  conch::result<conch::delete_response> delete_range(const conch::delete_request&, conch::deadline);
  conch::result<conch::txn_response> txn(const conch::txn_request&, conch::deadline);
  conch::result<conch::lease_grant_response> lease_grant(std::int64_t, conch::deadline);
  conch::result<void> lease_revoke(conch::lease_id, conch::deadline);
  conch::result<conch::lease_ttl_response> lease_time_to_live(conch::lease_id, conch::deadline);
  keepalive_archetype keepalive(conch::lease_id);
  watch_archetype watch(const conch::watch_request&);
  conch::deadline default_deadline();
};

struct throwing_cancel : watch_archetype {
  void cancel();  // cancel() must be noexcept: it runs from destructors and other threads
};

struct no_watch {
  conch::result<conch::range_response> range(const conch::range_request&, conch::deadline);
};

}  // namespace

static_assert(conch::watch_stream<watch_archetype>);
static_assert(conch::keepalive_stream<keepalive_archetype>);
static_assert(conch::transport<transport_archetype>);
static_assert(conch::transport<conch::etcd_transport>);

static_assert(!conch::watch_stream<throwing_cancel>);
static_assert(!conch::transport<no_watch>);

// Batches of txns are an optional capability: the etcd transport has it,
// the metered wrapper forwards it where its inner transport has it, and the
// group commit falls back to plain txns on a transport without it.
static_assert(conch::txn_batching<conch::etcd_transport>);
static_assert(!conch::txn_batching<transport_archetype>);
static_assert(conch::txn_batching<conch::tool::metered_transport<conch::etcd_transport>>);
static_assert(!conch::txn_batching<conch::tool::metered_transport<transport_archetype>>);
static_assert(conch::transport<conch::tool::metered_transport<transport_archetype>>);
template class conch::detail::txn_batcher<transport_archetype>;
template class conch::detail::txn_batcher<conch::etcd_transport>;
