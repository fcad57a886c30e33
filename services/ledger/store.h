#pragma once
// Persistence of usage events and the spend queries over them.
//
// UsageStore is the interface the ingest and admin services use; PostgresUsageStore is the only
// code in Tollgate that talks to PostgreSQL (and the only code that includes libpqxx): every
// libpqxx or standard exception is caught inside it and returned as an absl::Status.
//
//   PostgresUsageStore store({.database_url = "postgresql://tollgate@db/tollgate"});
//   TOLLGATE_RETURN_IF_ERROR(store.Migrate());
//   TOLLGATE_ASSIGN_OR_RETURN(InsertResult r, store.InsertBatch(events));
//
// Error codes tell the caller what to do:
//   kUnavailable        the database is unreachable, restarting, or the connection broke (it is
//                       reopened on the next call), or the commit outcome is unknown: retry.
//   kAborted            a serialization failure or deadlock rolled the transaction back: retry.
//   kDeadlineExceeded   the statement timeout expired.
//   kInvalidArgument    the input is wrong (an event that fails ValidateUsageEvent, a bad spend
//                       query); retrying the same input fails again.
//   kFailedPrecondition the schema is not what this binary expects (run Migrate; or an applied
//                       migration differs from the embedded one).
//   kInternal           anything else.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "services/ledger/spend_query.h"
#include "tollgate/v1/ledger.pb.h"

namespace tollgate::ledger {

struct InsertResult {
  int64_t inserted = 0;    // rows new to usage_events
  int64_t duplicates = 0;  // events already stored, or repeated within the batch
};

// Not thread-safe: an implementation may hold one connection. Use one store per thread.
class UsageStore {
 public:
  virtual ~UsageStore() = default;

  // Brings the schema up to date with EmbeddedMigrations(). Safe to run concurrently from several
  // replicas; a no-op when everything is applied.
  virtual absl::Status Migrate() = 0;

  // Stores every event of `batches` in one transaction (all or none), idempotently on event_id,
  // and returns one result per batch, in order: for each, inserted + duplicates == its size. An id
  // repeated within the call counts as a duplicate in every batch after its first occurrence.
  // Every event is checked with ValidateUsageEvent first, and one bad event rejects the whole call
  // with kInvalidArgument naming it. Empty batches succeed without I/O.
  virtual absl::StatusOr<std::vector<InsertResult>> InsertBatches(
      absl::Span<const std::vector<v1::UsageEvent>> batches) = 0;

  // InsertBatches for one batch.
  absl::StatusOr<InsertResult> InsertBatch(const std::vector<v1::UsageEvent>& events);

  // Runs a spend query (see spend_query.h for the semantics). The statement is cancelled after
  // `timeout` (absl::InfiniteDuration(): the store's default). The response echoes group_by; cost
  // strings have exactly 12 fractional digits; `total` covers every matching event, ignoring
  // limit.
  virtual absl::StatusOr<v1::SpendResponse> QuerySpend(const v1::SpendQuery& query,
                                                       absl::Duration timeout) = 0;

  // Reprices stored events (see RepriceRequest in ledger.proto and reprice.h): atomically writes
  // one usage_corrections row per event whose effective cost changes and adds the deltas to the
  // hourly rollups; a dry run writes nothing. Reprices are serialised (advisory lock), so two
  // concurrent calls never both correct the same old cost. Costs in the response have exactly 12
  // fractional digits. Default: kUnimplemented.
  virtual absl::StatusOr<v1::RepriceResponse> Reprice(const v1::RepriceRequest& request,
                                                      absl::Duration timeout);

  // FOCUS records (focus.h) for the events of [from_unix_s, to_unix_s) matching
  // request.filters(), ordered by hour and key. ExportFocus calls it one UTC day at a time.
  // Default: kUnimplemented.
  virtual absl::StatusOr<v1::FocusChunk> FocusRecords(const v1::ExportFocusRequest& request,
                                                      int64_t from_unix_s, int64_t to_unix_s,
                                                      absl::Duration timeout);

  // Recorded anomalies, newest first. Default: kUnimplemented.
  virtual absl::StatusOr<v1::ListAnomaliesResponse> ListAnomalies(
      const v1::ListAnomaliesRequest& request, absl::Duration timeout);
};

struct AnomalyOptions {
  int baseline_weeks = 4;     // same hour of week over this many previous weeks
  std::string ratio = "3";    // anomaly when actual > ratio x expected (decimal string)
  std::string min_usd = "1";  // ... and actual >= this (decimal USD)
};

// What MaintainPartitions did.
struct PartitionMaintenance {
  std::vector<int64_t> ensured_month_starts;    // Unix seconds of each UTC month now present
  std::vector<std::string> dropped_partitions;  // e.g. "usage_events_p202401"
};

class PostgresUsageStore final : public UsageStore {
 public:
  struct Options {
    // libpq connection URL or key=value string. Never logged (it may hold a password).
    std::string database_url;
    // Bound on opening a connection (libpq connect_timeout, whole seconds, at least 1).
    absl::Duration connect_timeout = absl::Seconds(10);
    // Session statement_timeout: bounds every statement, inserts included. Zero: none.
    absl::Duration statement_timeout = absl::Seconds(60);
    // application_name shown in pg_stat_activity.
    std::string application_name = "tollgate-ledger";
  };

  // Does not connect: the first call that needs the database does, and a call after a broken
  // connection opens a new one.
  explicit PostgresUsageStore(Options options);
  ~PostgresUsageStore() override;
  PostgresUsageStore(const PostgresUsageStore&) = delete;
  PostgresUsageStore& operator=(const PostgresUsageStore&) = delete;

  // Opens the connection if it is not open. Errors: kUnavailable.
  absl::Status Connect();

  absl::Status Migrate() override;
  absl::StatusOr<std::vector<InsertResult>> InsertBatches(
      absl::Span<const std::vector<v1::UsageEvent>> batches) override;
  using UsageStore::InsertBatch;
  absl::StatusOr<v1::SpendResponse> QuerySpend(const v1::SpendQuery& query,
                                               absl::Duration timeout) override;
  absl::StatusOr<v1::RepriceResponse> Reprice(const v1::RepriceRequest& request,
                                              absl::Duration timeout) override;
  absl::StatusOr<v1::FocusChunk> FocusRecords(const v1::ExportFocusRequest& request,
                                              int64_t from_unix_s, int64_t to_unix_s,
                                              absl::Duration timeout) override;
  absl::StatusOr<v1::ListAnomaliesResponse> ListAnomalies(const v1::ListAnomaliesRequest& request,
                                                          absl::Duration timeout) override;

  // Compares the spend of the UTC hour starting at `hour_unix_s` per team, feature and requested
  // model with the baseline and records anomalies (idempotent: a re-run adds nothing). Returns
  // the anomalies new to the table, per dimension.
  absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> DetectAnomalies(
      int64_t hour_unix_s, const AnomalyOptions& options);

  // Applies only the embedded migrations with version <= max_version (tests of in-place
  // upgrades). Migrate() is MigrateTo(latest).
  absl::Status MigrateTo(int max_version);

  // Partition upkeep (the ledger's maintenance thread): makes sure usage_events has the partitions
  // of the UTC months of `now` through `now` + months_ahead, and, when retention_months > 0, drops
  // every partition whose month ended before the start of month(now) - retention_months, with the
  // idempotency keys of its events (a replay of an event older than the retention window is
  // stored again). Hourly rollups are kept. Safe to run from several replicas at once.
  absl::StatusOr<PartitionMaintenance> MaintainPartitions(absl::Time now, int months_ahead,
                                                          int retention_months);

  // Runs a spend query from raw events (kEvents) or hourly rollups (kRollups) regardless of the
  // automatic choice; kRollups fails with kInvalidArgument when the query cannot use them.
  // For tests and the benchmark.
  absl::StatusOr<v1::SpendResponse> QuerySpendFrom(const v1::SpendQuery& query,
                                                   absl::Duration timeout, SpendSource source);

 private:
  absl::Status EnsurePartition(int64_t month_start_unix_s);
  absl::Status EnsurePartitionsFor(absl::Span<const std::vector<v1::UsageEvent>> batches);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The advisory lock key Migrate() holds (pg_advisory_xact_lock): "tollgate" in ASCII.
inline constexpr int64_t kMigrationLockKey = 0x746f6c6c67617465;
// The advisory lock key Reprice() holds: "tgrprice" in ASCII.
inline constexpr int64_t kRepriceLockKey = 0x7467727072696365;

}  // namespace tollgate::ledger
