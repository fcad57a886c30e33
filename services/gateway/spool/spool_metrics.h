#pragma once
// Prometheus metrics of the usage spool, registered once on the gateway's registry:
//   tollgate_gateway_spool_bytes                      bytes of segment files on disk
//   tollgate_gateway_spool_segments                   segment files on disk
//   tollgate_gateway_spool_oldest_unacked_age_seconds age of the oldest event not acknowledged
//                                                     by the ledger (0 when all are)
//   tollgate_gateway_spool_events_total{result}       appended (durable), sent (to the ledger,
//                                                     resends included), acked, dropped (never
//                                                     written: spool full under policy drop,
//                                                     spool closed, disk error),
//                                                     rejected (chat requests refused with 503
//                                                     spool_full under policy reject)
//   tollgate_gateway_spool_fsync_seconds              fdatasync latency of each group commit
//
// Thread-safe (prometheus-cpp metrics are).

#include <memory>
#include <string_view>

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace tollgate::gateway {

class SpoolMetrics {
 public:
  explicit SpoolMetrics(prometheus::Registry& registry);

  void SetBytes(double bytes) { bytes_->Set(bytes); }
  void SetSegments(double segments) { segments_->Set(segments); }
  void SetOldestUnackedAge(double seconds) { oldest_unacked_age_->Set(seconds); }
  void AddAppended(double n) { appended_->Increment(n); }
  void AddSent(double n) { sent_->Increment(n); }
  void AddAcked(double n) { acked_->Increment(n); }
  void AddDropped(double n) { dropped_->Increment(n); }
  void AddRejected(double n) { rejected_->Increment(n); }
  void ObserveFsync(double seconds) { fsync_->Observe(seconds); }

 private:
  prometheus::Gauge* bytes_;
  prometheus::Gauge* segments_;
  prometheus::Gauge* oldest_unacked_age_;
  prometheus::Counter* appended_;
  prometheus::Counter* sent_;
  prometheus::Counter* acked_;
  prometheus::Counter* dropped_;
  prometheus::Counter* rejected_;
  prometheus::Histogram* fsync_;
};

}  // namespace tollgate::gateway
