#pragma once
// The ledger's Prometheus metrics, built once at start on a shared registry.
//
//   tollgate_ledger_events_ingested_total{result="inserted"|"duplicate"}
//   tollgate_ledger_ingest_batches_total{result="ok"|<lower-case status code>}
//   tollgate_ledger_ingest_queue_depth            batches waiting for a writer
//   tollgate_ledger_ingest_streams                open Ingest streams
//   tollgate_ledger_ingest_batch_size             events per batch read
//   tollgate_ledger_db_write_events               events per write transaction (batches coalesced)
//   tollgate_ledger_db_write_seconds              one write transaction attempt
//   tollgate_ledger_ingest_lag_seconds            commit time - event time, per event
//   tollgate_ledger_ingest_retries_total          write attempts retried after a transient error
//   tollgate_ledger_spend_queries_total{result="ok"|<lower-case status code>}
//   tollgate_ledger_spend_query_seconds           one spend query, queueing included
//
// QuotaMetrics (quotas, docs/budgets.md), per quota in its current window, in the quota's unit
// (USD as a decimal, tokens, requests), labels {quota, team, scope, unit, period}:
//   tollgate_ledger_budget_limit, tollgate_ledger_budget_spent (recorded spend; for minute windows
//   what leases hold), tollgate_ledger_budget_remaining (limit - max(spent, committed), >= 0),
//   tollgate_ledger_budget_used_ratio (max(spent, committed) / limit)
//   tollgate_ledger_budget_alerts_total{quota, percent}   alert thresholds crossed (fired by this
//   replica) tollgate_ledger_quota_leases_granted_total{unit}      Lease updates that granted more
//   allowance tollgate_ledger_quota_lease_exhausted_total           Lease updates refused: the
//   window is spent
//
// Thread-safe (prometheus-cpp metrics are).

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace tollgate::ledger {

class LedgerMetrics {
 public:
  // Errors: kInternal when prometheus-cpp rejects a definition (a programming error).
  static absl::StatusOr<std::unique_ptr<LedgerMetrics>> Create(prometheus::Registry& registry);

  prometheus::Counter& events_inserted() { return *events_inserted_; }
  prometheus::Counter& events_duplicate() { return *events_duplicate_; }
  prometheus::Counter& ingest_batches(const absl::Status& result);
  prometheus::Gauge& ingest_queue_depth() { return *ingest_queue_depth_; }
  prometheus::Gauge& ingest_streams() { return *ingest_streams_; }
  prometheus::Histogram& ingest_batch_size() { return *ingest_batch_size_; }
  prometheus::Histogram& db_write_events() { return *db_write_events_; }
  prometheus::Histogram& db_write_seconds() { return *db_write_seconds_; }
  prometheus::Histogram& ingest_lag_seconds() { return *ingest_lag_seconds_; }
  prometheus::Counter& ingest_retries() { return *ingest_retries_; }
  prometheus::Counter& spend_queries(const absl::Status& result);
  prometheus::Histogram& spend_query_seconds() { return *spend_query_seconds_; }

  // "ok" or the lower-case canonical code name ("invalid_argument").
  static std::string ResultLabel(const absl::Status& status);

 private:
  LedgerMetrics() = default;

  prometheus::Counter* events_inserted_ = nullptr;
  prometheus::Counter* events_duplicate_ = nullptr;
  prometheus::Family<prometheus::Counter>* ingest_batches_ = nullptr;
  prometheus::Gauge* ingest_queue_depth_ = nullptr;
  prometheus::Gauge* ingest_streams_ = nullptr;
  prometheus::Histogram* ingest_batch_size_ = nullptr;
  prometheus::Histogram* db_write_events_ = nullptr;
  prometheus::Histogram* db_write_seconds_ = nullptr;
  prometheus::Histogram* ingest_lag_seconds_ = nullptr;
  prometheus::Counter* ingest_retries_ = nullptr;
  prometheus::Family<prometheus::Counter>* spend_queries_ = nullptr;
  prometheus::Histogram* spend_query_seconds_ = nullptr;
};

class QuotaMetrics {
 public:
  // Errors: kInternal when prometheus-cpp rejects a definition (a programming error).
  static absl::StatusOr<std::unique_ptr<QuotaMetrics>> Create(prometheus::Registry& registry);

  struct Budget {
    std::string quota, team, scope, unit, period;  // labels
    double limit = 0, spent = 0, remaining = 0, used_ratio = 0;
  };
  // Sets the gauges of `b.quota` (replacing its label set if its labels changed).
  void SetBudget(const Budget& b);
  // Removes the gauges of every quota not in `quota_ids` (deleted quotas).
  void RetainBudgets(const std::vector<std::string>& quota_ids);

  void AlertFired(const std::string& quota, int percent);
  void LeaseGranted(std::string_view unit);
  void LeaseExhausted() { lease_exhausted_->Increment(); }

 private:
  QuotaMetrics() = default;

  struct Gauges {
    std::map<std::string, std::string> labels;
    prometheus::Gauge* limit = nullptr;
    prometheus::Gauge* spent = nullptr;
    prometheus::Gauge* remaining = nullptr;
    prometheus::Gauge* used_ratio = nullptr;
  };
  void RemoveLocked(Gauges& g) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  prometheus::Family<prometheus::Gauge>* limit_ = nullptr;
  prometheus::Family<prometheus::Gauge>* spent_ = nullptr;
  prometheus::Family<prometheus::Gauge>* remaining_ = nullptr;
  prometheus::Family<prometheus::Gauge>* used_ratio_ = nullptr;
  prometheus::Family<prometheus::Counter>* alerts_ = nullptr;
  prometheus::Family<prometheus::Counter>* leases_granted_ = nullptr;
  prometheus::Counter* lease_exhausted_ = nullptr;

  absl::Mutex mu_;
  std::map<std::string, Gauges> budgets_ ABSL_GUARDED_BY(mu_);  // by quota id
};

}  // namespace tollgate::ledger
