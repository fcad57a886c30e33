#pragma once
// Background upkeep of the ledger's PostgreSQL schema: one thread that, at start and then every
// `interval`, creates the usage_events partitions for the current and the next `months_ahead` UTC
// months and, when `retention_months` > 0, drops whole partitions older than the retention window
// (PostgresUsageStore::MaintainPartitions). Failures are logged and counted, then retried at the
// next interval; they never stop the ledger (the ingest path also creates a missing partition on
// demand).
//
// Metrics (registered at construction on the given registry):
//   tollgate_ledger_maintenance_runs_total{result="ok"|<lower-case status code>}
//   tollgate_ledger_partitions_dropped_total
//   tollgate_ledger_anomalies_total{dimension}     anomalies recorded (alert on its increase)
//
// Thread-safety: Start and Stop are called from one thread; the destructor stops.

#include <memory>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/registry.h"
#include "services/ledger/store.h"

namespace tollgate::ledger {

class PartitionMaintainer {
 public:
  struct Options {
    int months_ahead = 3;
    int retention_months = 0;  // 0: keep forever
    absl::Duration interval = absl::Hours(1);
    // Anomaly detection over the hours completed since the previous pass (at most the last
    // `anomaly_lookback_hours` at start); disabled when false.
    bool detect_anomalies = true;
    int anomaly_lookback_hours = 24;
    AnomalyOptions anomaly;
  };

  PartitionMaintainer(std::unique_ptr<PostgresUsageStore> store, Options options,
                      prometheus::Registry& registry);
  ~PartitionMaintainer();
  PartitionMaintainer(const PartitionMaintainer&) = delete;
  PartitionMaintainer& operator=(const PartitionMaintainer&) = delete;

  void Start();
  // Wakes the thread and joins it; a run in progress finishes first.
  void Stop();

  // One maintenance pass on the calling thread (Start's thread calls it too).
  absl::Status RunOnce(absl::Time now);

 private:
  void Loop();

  std::unique_ptr<PostgresUsageStore> store_;
  const Options options_;
  prometheus::Family<prometheus::Counter>* runs_ = nullptr;
  prometheus::Counter* dropped_ = nullptr;
  prometheus::Family<prometheus::Counter>* anomalies_ = nullptr;
  int64_t next_anomaly_hour_ = 0;  // first hour not yet checked (0: none yet)
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace tollgate::ledger
