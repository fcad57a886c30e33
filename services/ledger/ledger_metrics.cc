#include "services/ledger/ledger_metrics.h"

#include <algorithm>
#include <exception>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "services/common/metrics.h"

namespace tollgate::ledger {

absl::StatusOr<std::unique_ptr<LedgerMetrics>> LedgerMetrics::Create(
    prometheus::Registry& registry) {
  std::unique_ptr<LedgerMetrics> m(new LedgerMetrics());
  try {
    auto& events = prometheus::BuildCounter()
                       .Name("tollgate_ledger_events_ingested_total")
                       .Help(
                           "Usage events committed by the ledger, by result: inserted (new) or "
                           "duplicate (already stored; replays are expected after reconnects)")
                       .Register(registry);
    m->events_inserted_ = &events.Add({{"result", "inserted"}});
    m->events_duplicate_ = &events.Add({{"result", "duplicate"}});

    m->ingest_batches_ = &prometheus::BuildCounter()
                              .Name("tollgate_ledger_ingest_batches_total")
                              .Help(
                                  "Ingest batches processed, by result (ok or the status code "
                                  "that ended the stream)")
                              .Register(registry);
    for (const char* r : {"ok", "invalid_argument", "unavailable", "cancelled", "internal"}) {
      m->ingest_batches_->Add({{"result", r}});
    }

    m->ingest_queue_depth_ = &prometheus::BuildGauge()
                                  .Name("tollgate_ledger_ingest_queue_depth")
                                  .Help("Batches read from gateways and waiting for a writer")
                                  .Register(registry)
                                  .Add({});
    m->ingest_streams_ = &prometheus::BuildGauge()
                              .Name("tollgate_ledger_ingest_streams")
                              .Help("Open Ingest streams (one per connected gateway, normally)")
                              .Register(registry)
                              .Add({});
    m->ingest_batch_size_ = &prometheus::BuildHistogram()
                                 .Name("tollgate_ledger_ingest_batch_size")
                                 .Help("Events per ingest batch read")
                                 .Register(registry)
                                 .Add({}, BatchSizeBuckets());
    m->db_write_events_ = &prometheus::BuildHistogram()
                               .Name("tollgate_ledger_db_write_events")
                               .Help(
                                   "Events per batch write transaction (the queued batches a "
                                   "writer commits together)")
                               .Register(registry)
                               .Add({}, BatchSizeBuckets());
    m->db_write_seconds_ = &prometheus::BuildHistogram()
                                .Name("tollgate_ledger_db_write_seconds")
                                .Help(
                                    "Duration of one batch write transaction (COPY + INSERT + "
                                    "commit), failed attempts included")
                                .Register(registry)
                                .Add({}, LatencyBucketsSeconds());
    m->ingest_lag_seconds_ =
        &prometheus::BuildHistogram()
             .Name("tollgate_ledger_ingest_lag_seconds")
             .Help("Commit time minus event time, per event (includes gateway spooling)")
             .Register(registry)
             .Add({},
                  prometheus::Histogram::BucketBoundaries{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                                                          30, 60, 300, 900, 3600, 21600, 86400});
    m->ingest_retries_ = &prometheus::BuildCounter()
                              .Name("tollgate_ledger_ingest_retries_total")
                              .Help("Batch writes retried after a transient database error")
                              .Register(registry)
                              .Add({});
    m->spend_queries_ = &prometheus::BuildCounter()
                             .Name("tollgate_ledger_spend_queries_total")
                             .Help("Spend queries served, by result (ok or status code)")
                             .Register(registry);
    for (const char* r : {"ok", "invalid_argument", "deadline_exceeded", "unavailable",
                          "resource_exhausted", "internal"}) {
      m->spend_queries_->Add({{"result", r}});
    }
    m->spend_query_seconds_ = &prometheus::BuildHistogram()
                                   .Name("tollgate_ledger_spend_query_seconds")
                                   .Help("Spend query duration, queueing included")
                                   .Register(registry)
                                   .Add({}, LatencyBucketsSeconds());
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("ledger metrics: ", e.what()));
  }
  return m;
}

std::string LedgerMetrics::ResultLabel(const absl::Status& status) {
  if (status.ok()) return "ok";
  return absl::AsciiStrToLower(absl::StatusCodeToString(status.code()));
}

prometheus::Counter& LedgerMetrics::ingest_batches(const absl::Status& result) {
  return ingest_batches_->Add({{"result", ResultLabel(result)}});
}

prometheus::Counter& LedgerMetrics::spend_queries(const absl::Status& result) {
  return spend_queries_->Add({{"result", ResultLabel(result)}});
}

absl::StatusOr<std::unique_ptr<QuotaMetrics>> QuotaMetrics::Create(prometheus::Registry& registry) {
  std::unique_ptr<QuotaMetrics> m(new QuotaMetrics());
  try {
    m->limit_ = &prometheus::BuildGauge()
                     .Name("tollgate_ledger_budget_limit")
                     .Help("A quota's limit in its unit (USD, tokens or requests)")
                     .Register(registry);
    m->spent_ = &prometheus::BuildGauge()
                     .Name("tollgate_ledger_budget_spent")
                     .Help(
                         "Spend recorded by usage events in the quota's current window, in its "
                         "unit; for per-minute quotas, what the window's leases hold")
                     .Register(registry);
    m->remaining_ = &prometheus::BuildGauge()
                         .Name("tollgate_ledger_budget_remaining")
                         .Help(
                             "Limit minus the larger of recorded spend and what leases hold, in "
                             "the quota's unit (never below 0)")
                         .Register(registry);
    m->used_ratio_ = &prometheus::BuildGauge()
                          .Name("tollgate_ledger_budget_used_ratio")
                          .Help(
                              "The larger of recorded spend and what leases hold, divided by "
                              "the limit (1 = the window's allowance is used up)")
                          .Register(registry);
    m->alerts_ = &prometheus::BuildCounter()
                      .Name("tollgate_ledger_budget_alerts_total")
                      .Help(
                          "Budget alert thresholds crossed (each fires once per window, on one "
                          "ledger replica)")
                      .Register(registry);
    m->leases_granted_ = &prometheus::BuildCounter()
                              .Name("tollgate_ledger_quota_leases_granted_total")
                              .Help("Lease updates that granted a gateway more allowance, by unit")
                              .Register(registry);
    for (const char* unit : {"usd", "tokens", "requests"}) {
      m->leases_granted_->Add({{"unit", unit}});
    }
    m->lease_exhausted_ = &prometheus::BuildCounter()
                               .Name("tollgate_ledger_quota_lease_exhausted_total")
                               .Help(
                                   "Lease updates refused because the quota's window is spent "
                                   "(the gateway answers 429)")
                               .Register(registry)
                               .Add({});
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("quota metrics: ", e.what()));
  }
  return m;
}

void QuotaMetrics::RemoveLocked(Gauges& g) {
  limit_->Remove(g.limit);
  spent_->Remove(g.spent);
  remaining_->Remove(g.remaining);
  used_ratio_->Remove(g.used_ratio);
}

void QuotaMetrics::SetBudget(const Budget& b) {
  std::map<std::string, std::string> labels = {{"quota", b.quota},
                                               {"team", b.team},
                                               {"scope", b.scope},
                                               {"unit", b.unit},
                                               {"period", b.period}};
  absl::MutexLock lock(&mu_);
  auto it = budgets_.find(b.quota);
  if (it != budgets_.end() && it->second.labels != labels) {
    RemoveLocked(it->second);
    budgets_.erase(it);
    it = budgets_.end();
  }
  if (it == budgets_.end()) {
    Gauges g;
    g.labels = labels;
    g.limit = &limit_->Add(labels);
    g.spent = &spent_->Add(labels);
    g.remaining = &remaining_->Add(labels);
    g.used_ratio = &used_ratio_->Add(labels);
    it = budgets_.emplace(b.quota, std::move(g)).first;
  }
  it->second.limit->Set(b.limit);
  it->second.spent->Set(b.spent);
  it->second.remaining->Set(b.remaining);
  it->second.used_ratio->Set(b.used_ratio);
}

void QuotaMetrics::RetainBudgets(const std::vector<std::string>& quota_ids) {
  absl::MutexLock lock(&mu_);
  for (auto it = budgets_.begin(); it != budgets_.end();) {
    if (std::find(quota_ids.begin(), quota_ids.end(), it->first) == quota_ids.end()) {
      RemoveLocked(it->second);
      it = budgets_.erase(it);
    } else {
      ++it;
    }
  }
}

void QuotaMetrics::AlertFired(const std::string& quota, int percent) {
  alerts_->Add({{"quota", quota}, {"percent", absl::StrCat(percent)}}).Increment();
}

void QuotaMetrics::LeaseGranted(std::string_view unit) {
  leases_granted_->Add({{"unit", std::string(unit)}}).Increment();
}

}  // namespace tollgate::ledger
