#pragma once
// The ledger's Prometheus metrics, built once at start on a shared registry.
//
//   tollgate_ledger_events_ingested_total{result="inserted"|"duplicate"}
//   tollgate_ledger_ingest_batches_total{result="ok"|<lower-case status code>}
//   tollgate_ledger_ingest_queue_depth            batches waiting for a writer
//   tollgate_ledger_ingest_streams                open Ingest streams
//   tollgate_ledger_ingest_batch_size             events per batch read
//   tollgate_ledger_db_write_seconds              one InsertBatch attempt
//   tollgate_ledger_ingest_lag_seconds            commit time - event time, per event
//   tollgate_ledger_ingest_retries_total          InsertBatch attempts retried after a transient
//   error tollgate_ledger_spend_queries_total{result="ok"|<lower-case status code>}
//   tollgate_ledger_spend_query_seconds           one spend query, queueing included
//
// Thread-safe (prometheus-cpp metrics are).

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
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
  prometheus::Histogram* db_write_seconds_ = nullptr;
  prometheus::Histogram* ingest_lag_seconds_ = nullptr;
  prometheus::Counter* ingest_retries_ = nullptr;
  prometheus::Family<prometheus::Counter>* spend_queries_ = nullptr;
  prometheus::Histogram* spend_query_seconds_ = nullptr;
};

}  // namespace tollgate::ledger
