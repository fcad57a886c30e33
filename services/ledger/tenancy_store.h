#pragma once
// PostgreSQL persistence of teams, virtual keys and the control-plane audit log (migration
// 0005_tenancy.sql). Like PostgresUsageStore, every libpqxx exception is caught here and returned
// as an absl::Status with the same code conventions (store.h): kUnavailable (database away or
// connection lost: retry), kAborted, kDeadlineExceeded, kInvalidArgument, kInternal; plus
// kNotFound (unknown team or key), kAlreadyExists (team exists), kFailedPrecondition (key already
// revoked).
//
// Every change and its audit row are written in one transaction.
//
// Not thread-safe: one connection. TenancyAdminService uses it from one worker thread.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tollgate/v1/tenancy.pb.h"

namespace pqxx {
class connection_base;
class transaction_base;
}  // namespace pqxx

namespace tollgate::ledger {

// Appends one control-plane change to the audit log (control_plane_audit) inside `txn`, so the
// change and its record commit together. `before`/`after`: JSON, "" for none.
void WriteAudit(pqxx::transaction_base& txn, const std::string& actor, const std::string& action,
                const std::string& team, const std::string& target, const std::string& before,
                const std::string& after);

class TenancyStore {
 public:
  struct Options {
    std::string database_url;  // never logged
    absl::Duration connect_timeout = absl::Seconds(10);
    absl::Duration statement_timeout = absl::Seconds(10);
  };

  explicit TenancyStore(Options options);
  ~TenancyStore();
  TenancyStore(const TenancyStore&) = delete;
  TenancyStore& operator=(const TenancyStore&) = delete;

  // `actor` is the admin token name recorded in the audit log.
  absl::StatusOr<v1::Team> CreateTeam(const std::string& name, const std::string& actor);
  // Sorted by name; `team` != "" limits the answer to that team.
  absl::StatusOr<v1::ListTeamsResponse> ListTeams(const std::string& team);

  // `request` must be validated (TenancyAdminService does). Errors: kNotFound (no such team).
  absl::StatusOr<v1::CreateKeyResponse> CreateKey(const v1::CreateKeyRequest& request,
                                                  const std::string& actor);
  // Newest first; `team` != "" limits the answer.
  absl::StatusOr<v1::ListKeysResponse> ListKeys(const std::string& team, bool include_revoked);
  // Revokes key `id` after `authorize(key's team)` allowed it (checked inside the transaction,
  // with the row locked). Errors: kNotFound, kFailedPrecondition (already revoked), or
  // authorize's error.
  absl::StatusOr<v1::VirtualKey> RevokeKey(
      const std::string& id, const std::string& actor,
      const std::function<absl::Status(const std::string& team)>& authorize);

  // Newest first, at most `limit` entries; `team` != "" limits the answer.
  absl::StatusOr<v1::ListAuditResponse> ListAudit(const std::string& team, int limit);

  // Keys neither revoked nor expired, sorted by id (so equal sets serialise equally), and every
  // quota the gateways enforce (quota_store.h's AppendSnapshotQuotas), sorted by id.
  absl::StatusOr<v1::KeySetSnapshot> ActiveKeys();

  // Runs `f` on this store's connection (connecting first if needed), mapping libpqxx exceptions
  // to absl::Status like every call above; `op` prefixes error messages. QuotaStore shares the
  // connection handling this way.
  absl::Status WithConnection(std::string_view op,
                              const std::function<absl::Status(pqxx::connection_base&)>& f);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tollgate::ledger
