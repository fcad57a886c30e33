#pragma once
// PostgreSQL persistence of quotas and their leases (migration 0007_quotas.sql; quota.proto,
// docs/budgets.md).
//
//   QuotaStore store(options);
//   absl::StatusOr<v1::Quota> q = store.SetQuota(quota, "ops", authorize);
//   absl::StatusOr<v1::LeaseResponse> r = store.Lease(request, absl::Now());
//
// Leases. One transaction per LeaseRequest. Each (quota, window) is serialised across ledger
// replicas by locking its quota_windows row (SELECT ... FOR UPDATE; rows are locked in (quota id,
// window) order, so concurrent requests cannot deadlock). For the current window of a quota:
//   * the window row is created on first use with base = the spend the usage events recorded in
//     the window so far (the daily rollups; 0 for minute windows);
//   * the gateway's lease row is upserted: used := max(stored, reported) (cumulative, so a
//     retried call changes nothing); release: granted := used; else the lease is renewed until
//     now + lease_term (at most the window's end + 5 s);
//   * committed = base + sum over the window's leases of max(granted, used). Released leases count
//     what they used; expired leases that were never released keep counting their grant until
//     the window ends (conservative: allowance is never granted twice);
//   * when need > granted: the lease grows to min(max(want, need), the most the gateway may hold
//     without committed exceeding the limit), or nothing is granted and the grant says exhausted.
// A report for the window that ended at most 2 s ago updates `used` (and release) but never
// grants. Any other window: an error in the grant, nothing changed. Unknown (deleted, revoked)
// quota: error "unknown quota", exhausted.
//
// Quotas returned here always have limit (canonical text), limit_units and lease_chunk
// (max(1, limit_units / 20)) filled. Key-derived quotas ("k-<key id>-rpm"/"-tpm") come from
// active keys' rpm/tpm: scope key, team = the key's team, subject = key id, per minute, hard.
//
// Errors as TenancyStore (store.h conventions), plus kNotFound (no such quota, team or key),
// kAlreadyExists (replacing by id onto another quota's scope/team/subject/unit/period).
// Not thread-safe: one connection.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/ledger/tenancy_store.h"
#include "tollgate/v1/quota.pb.h"
#include "tollgate/v1/tenancy.pb.h"

namespace pqxx {
class transaction_base;
}  // namespace pqxx

namespace tollgate::ledger {

// Fills quota->limit (canonical text) and lease_chunk from quota->limit_units().
void CompleteQuota(v1::Quota* quota);

// The quotas a key's rpm/tpm define (none when both are 0).
std::vector<v1::Quota> KeyQuotas(const std::string& key_id, const std::string& team, int64_t rpm,
                                 int64_t tpm);

// Appends every SetQuota quota and the quotas derived from `snapshot`'s keys to
// snapshot->quotas, sorted by id. Throws libpqxx exceptions (for TenancyStore::ActiveKeys).
void AppendSnapshotQuotas(pqxx::transaction_base& txn, v1::KeySetSnapshot* snapshot);

// Who may change a quota of `team` ("" = org-wide or team-less), checked inside the transaction.
using QuotaAuthorizer = std::function<absl::Status(const std::string& team)>;

// A quota's state in its window (ListQuotas, alerts, metrics) with the amounts in lease units.
struct QuotaStatus {
  v1::QuotaState state;
  int64_t spent = 0;      // recorded by usage events; 0 for minute windows
  int64_t committed = 0;  // base + leases' max(granted, used)
  int64_t used = 0;       // max(spent, committed)
};

// A lease decision, for metrics.
struct LeaseOutcome {
  v1::QuotaUnit unit = v1::QUOTA_UNIT_UNSPECIFIED;
  int64_t extra = 0;  // granted by this call
  bool exhausted = false;
};

class QuotaStore {
 public:
  struct Options {
    TenancyStore::Options database;
    // How long a lease lasts unless renewed (minute windows: at most until the window's end + 5 s).
    absl::Duration lease_term = absl::Seconds(30);
  };

  explicit QuotaStore(Options options);
  ~QuotaStore();
  QuotaStore(const QuotaStore&) = delete;
  QuotaStore& operator=(const QuotaStore&) = delete;

  // Creates or replaces (SetQuotaRequest's rules) a validated quota (ValidateQuota) with
  // `limit_units`. Checks that the team exists and a key subject exists in that team; calls
  // `authorize` with the team of the quota replaced (if any, with its row locked); writes the
  // audit row quota.set. Changing the scope, team, subject, unit or period of a quota by id resets
  // its windows. Errors: kNotFound (id), kInvalidArgument (team or key), kAlreadyExists.
  absl::StatusOr<v1::Quota> SetQuota(const v1::Quota& quota, int64_t limit_units,
                                     const std::string& actor, const QuotaAuthorizer& authorize);
  // Deletes quota `id` (and its windows and leases) after `authorize(its team)`; audit
  // quota.delete. Errors: kNotFound, kInvalidArgument (a key-derived id).
  absl::StatusOr<v1::Quota> DeleteQuota(const std::string& id, const std::string& actor,
                                        const QuotaAuthorizer& authorize);

  // SetQuota quotas (and key-derived ones when `include_key_limits`), `team` != "" limiting to
  // quotas of that team, `limits_only` to REQUESTS/TOKENS per minute; sorted by id.
  absl::StatusOr<std::vector<v1::Quota>> ListQuotas(const std::string& team, bool limits_only,
                                                    bool include_key_limits);

  // Each quota's state in its window containing `now` (quota.proto QuotaState), in order.
  absl::StatusOr<std::vector<QuotaStatus>> States(const std::vector<v1::Quota>& quotas,
                                                  absl::Time now);

  // For every alert percent of `state` reached and not yet fired in its window: records it as
  // fired (creating the window row if needed) and returns it. A percent is returned by exactly
  // one call over all ledger replicas.
  absl::StatusOr<std::vector<int32_t>> FireAlerts(const v1::QuotaState& state);

  // The lease algorithm above; one grant per update, in order.
  absl::StatusOr<v1::LeaseResponse> Lease(const v1::LeaseRequest& request, absl::Time now,
                                          std::vector<LeaseOutcome>* outcomes = nullptr);

  // Deletes windows (and their leases) that ended before `before`. Returns how many.
  absl::StatusOr<int64_t> DeleteWindowsBefore(absl::Time before);

 private:
  Options options_;
  TenancyStore db_;  // the connection (TenancyStore::WithConnection)
};

}  // namespace tollgate::ledger
