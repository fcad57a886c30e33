#pragma once
// FakeUsageStore: an in-memory UsageStore for tests of the services above the store.
//
// Several fakes may share one State (one fake per writer thread, like one connection each). The
// test scripts failures, blocks writers to exercise backpressure, and inspects what was stored.
// InsertBatches validates events with ValidateUsageEvent and is idempotent on event_id, like
// PostgresUsageStore. Thread-safe through State::mu.

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "services/ledger/store.h"

namespace tollgate::ledger {

class FakeUsageStore final : public UsageStore {
 public:
  struct State {
    absl::Mutex mu;
    std::map<std::string, v1::UsageEvent> events ABSL_GUARDED_BY(mu);
    // Returned by the next InsertBatches calls, in order, before anything is stored.
    std::deque<absl::Status> insert_failures ABSL_GUARDED_BY(mu);
    int insert_calls ABSL_GUARDED_BY(mu) = 0;
    std::vector<size_t> batches_per_insert ABSL_GUARDED_BY(mu);  // of each call that stored
    int inserts_waiting ABSL_GUARDED_BY(mu) = 0;                 // calls blocked by `blocked`
    bool blocked ABSL_GUARDED_BY(mu) = false;  // InsertBatches and QuerySpend wait while true
    int migrate_calls ABSL_GUARDED_BY(mu) = 0;
    int query_calls ABSL_GUARDED_BY(mu) = 0;  // QuerySpend calls started (blocked ones included)
    absl::StatusOr<v1::SpendResponse> spend_result ABSL_GUARDED_BY(mu);
    v1::SpendQuery last_query ABSL_GUARDED_BY(mu);
    absl::Duration last_timeout ABSL_GUARDED_BY(mu);
    // FocusRecords: every [from, to) asked for; days listed in focus_empty_days get no records,
    // others one record {from, to}; a day in focus_fail_days fails with kUnavailable.
    std::vector<std::pair<int64_t, int64_t>> focus_calls ABSL_GUARDED_BY(mu);
    std::set<int64_t> focus_empty_days ABSL_GUARDED_BY(mu);
    std::set<int64_t> focus_fail_days ABSL_GUARDED_BY(mu);
  };

  explicit FakeUsageStore(std::shared_ptr<State> state) : state_(std::move(state)) {}

  absl::Status Migrate() override;
  absl::StatusOr<std::vector<InsertResult>> InsertBatches(
      absl::Span<const std::vector<v1::UsageEvent>> batches) override;
  absl::StatusOr<v1::SpendResponse> QuerySpend(const v1::SpendQuery& query,
                                               absl::Duration timeout) override;
  absl::StatusOr<v1::FocusChunk> FocusRecords(const v1::ExportFocusRequest& request,
                                              int64_t from_unix_s, int64_t to_unix_s,
                                              absl::Duration timeout) override;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace tollgate::ledger
