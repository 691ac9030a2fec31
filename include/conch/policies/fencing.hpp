// conch/policies/fencing.hpp — the fencing policy: the token handed to every
// holder, and the guard that makes a stale holder's writes fail.
//
// A holder's claim is a key it created (an election contender key, a
// semaphore slot key). Everything a holder writes afterwards, and its release,
// goes through a txn that compares that key's create_revision: once the key is
// gone (lease expired, resigned) or re-created by someone else, the txn fails
// instead of clobbering the successor. The token is what the holder hands to
// the outside world (CONCH_REV) so other systems can refuse a stale holder:
//
// - revision_fencing: token = create_revision of the holder key — strictly
//   increasing per office and per slot, free (no extra write). The default.
// - counter_fencing:  token = a dense counter per office (1, 2, 3, ...), bumped
//   by a put in the acquiring txn; the token is the counter key's version.
// - no_fencing:       token 0 and no guard on the holder's writes.
//
//   auto txn = conch::guarded_txn(policy, held, {conch::put_request{"conch/data", "v"}});
//   auto r = transport.txn(txn, d);   // r->succeeded == false: we no longer hold
#pragma once

#include "conch/policies/transport.hpp"
#include "conch/result.hpp"

#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace conch {

/// What a holder's claim rests on.
struct fence {
  std::string key;               ///< the holder's key (contender or slot)
  revision create_revision = 0;  ///< that key's create_revision: what every guard compares
  std::int64_t token = 0;        ///< the fencing token handed to the holder
  friend bool operator==(const fence&, const fence&) = default;
};

/// Where a fencing policy acts when an office is taken.
struct fence_site {
  std::string holder_key;   ///< the key whose possession is the office
  std::string counter_key;  ///< counter_fencing's counter (detail::fencing_counter_key)
};

/// A fencing policy: `acquire_ops(site)` are appended to the txn that takes
/// (or confirms) the office; `token(responses, create_revision)` reads the
/// token from the responses to exactly those ops; `guard(fence)` are the
/// compares that protect the holder's writes.
template <class F>
concept fencing_policy = std::copyable<F> && std::default_initializable<F> &&
    requires(const F& f, const fence_site& site, const fence& held,
             std::span<const response_op> responses, revision create_revision) {
  { f.acquire_ops(site) } -> std::same_as<std::vector<request_op>>;
  { f.token(responses, create_revision) } -> std::same_as<result<std::int64_t>>;
  { f.guard(held) } -> std::same_as<std::vector<compare>>;
};

/// Spells out which part of the fencing policy `F` is missing (for a static_assert).
template <class F>
constexpr bool check_fencing_policy() {
  static_assert(
      requires(const F& f, const fence_site& s) {
        { f.acquire_ops(s) } -> std::same_as<std::vector<request_op>>;
      },
      "conch: a fencing policy needs `std::vector<request_op> acquire_ops(const fence_site&) "
      "const`");
  static_assert(
      requires(const F& f, std::span<const response_op> r, revision c) {
        { f.token(r, c) } -> std::same_as<result<std::int64_t>>;
      },
      "conch: a fencing policy needs `result<std::int64_t> token(std::span<const response_op>, "
      "revision) const`");
  static_assert(
      requires(const F& f, const fence& h) {
        { f.guard(h) } -> std::same_as<std::vector<compare>>;
      },
      "conch: a fencing policy needs `std::vector<compare> guard(const fence&) const`");
  static_assert(std::copyable<F> && std::default_initializable<F>,
                "conch: a fencing policy must be a default-constructible, copyable value");
  return fencing_policy<F>;
}

/// The compare every fenced write carries: the holder key still exists and is
/// the very key the holder created.
inline compare holds(const fence& held) {
  return compare::create_revision(held.key) == held.create_revision;
}

/// Token = create_revision of the holder key.
struct revision_fencing {
  std::vector<request_op> acquire_ops(const fence_site&) const { return {}; }
  result<std::int64_t> token(std::span<const response_op>, revision create_revision) const {
    if (create_revision <= 0)
      return error{errc::failed_precondition, "fencing: the holder key has no create_revision"};
    return create_revision;
  }
  std::vector<compare> guard(const fence& held) const { return {holds(held)}; }
};

/// Token = the version of a per-office counter key, put in the acquiring txn:
/// 1 for the first holder, then 2, 3, ... Never delete the counter key (its
/// version would restart at 1).
struct counter_fencing {
  std::vector<request_op> acquire_ops(const fence_site& site) const {
    put_request bump;
    bump.key = site.counter_key;
    bump.value = site.holder_key;  // who bumped it last, for a person reading etcd
    bump.prev_kv = true;
    return {std::move(bump)};
  }
  result<std::int64_t> token(std::span<const response_op> responses, revision) const {
    const auto* put = responses.empty() ? nullptr : std::get_if<put_response>(&responses.front());
    if (!put) return error{errc::internal, "fencing: the counter bump's response is missing"};
    return put->prev_kv ? put->prev_kv->version + 1 : 1;
  }
  std::vector<compare> guard(const fence& held) const { return {holds(held)}; }
};

/// Token 0 and unguarded writes. Release stays fenced (fenced_release): that
/// guard protects conch's own bookkeeping, not the user's data.
struct no_fencing {
  std::vector<request_op> acquire_ops(const fence_site&) const { return {}; }
  result<std::int64_t> token(std::span<const response_op>, revision) const {
    return std::int64_t{0};
  }
  std::vector<compare> guard(const fence&) const { return {}; }
};

/// `ops` as one txn that runs only while `held` is still held (per the policy's guard).
template <fencing_policy F>
txn_request guarded_txn(const F& policy, const fence& held, std::vector<request_op> ops) {
  txn_request txn;
  txn.compares = policy.guard(held);
  txn.success = std::move(ops);
  return txn;
}

/// Appends the policy's acquire ops to `txn.success`; returns the index of
/// the first, to find their responses for read_token.
template <fencing_policy F>
std::size_t add_acquire_ops(txn_request& txn, const F& policy, const fence_site& site) {
  const std::size_t first = txn.success.size();
  for (auto& op : policy.acquire_ops(site)) txn.success.push_back(std::move(op));
  return first;
}

/// The token from a succeeded acquiring txn whose acquire ops start at `first`.
template <fencing_policy F>
result<std::int64_t> read_token(const F& policy, const txn_response& r, std::size_t first,
                                revision create_revision) {
  std::span<const response_op> all(r.responses);
  return policy.token(first <= all.size() ? all.subspan(first) : std::span<const response_op>{},
                      create_revision);
}

/// Release or resign: delete the holder key only if it is still ours. Never a
/// bare delete — a slot key re-created by the next holder must survive a late release.
inline txn_request fenced_release(const fence& held) {
  txn_request txn;
  txn.compares = {holds(held)};
  delete_request del;
  del.key = held.key;
  txn.success = {std::move(del)};
  return txn;
}

}  // namespace conch
