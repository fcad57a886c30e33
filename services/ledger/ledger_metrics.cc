#include "services/ledger/ledger_metrics.h"

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

}  // namespace tollgate::ledger
