#include "services/ledger/maintenance.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/common/logging.h"
#include "services/ledger/ledger_metrics.h"

namespace tollgate::ledger {

PartitionMaintainer::PartitionMaintainer(std::unique_ptr<PostgresUsageStore> store, Options options,
                                         prometheus::Registry& registry)
    : store_(std::move(store)), options_(options) {
  runs_ = &prometheus::BuildCounter()
               .Name("tollgate_ledger_maintenance_runs_total")
               .Help("Partition maintenance passes (create ahead, retention), by result")
               .Register(registry);
  dropped_ = &prometheus::BuildCounter()
                  .Name("tollgate_ledger_partitions_dropped_total")
                  .Help("usage_events monthly partitions dropped by retention")
                  .Register(registry)
                  .Add({});
  anomalies_ = &prometheus::BuildCounter()
                    .Name("tollgate_ledger_anomalies_total")
                    .Help(
                        "Hourly spend anomalies recorded (spend above ratio x the same-hour-of-"
                        "week baseline), by dimension")
                    .Register(registry);
  for (const char* d : {"team", "feature", "requested_model"}) anomalies_->Add({{"dimension", d}});
}

PartitionMaintainer::~PartitionMaintainer() { Stop(); }

void PartitionMaintainer::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Loop(); });
}

void PartitionMaintainer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

absl::Status PartitionMaintainer::RunOnce(absl::Time now) {
  absl::StatusOr<PartitionMaintenance> done =
      store_->MaintainPartitions(now, options_.months_ahead, options_.retention_months);
  runs_->Add({{"result", LedgerMetrics::ResultLabel(done.status())}}).Increment();
  if (!done.ok()) {
    LogWarn("partition maintenance failed", {{"error", done.status().ToString()}});
    return done.status();
  }
  dropped_->Increment(static_cast<double>(done->dropped_partitions.size()));
  if (options_.detect_anomalies) {
    const int64_t current_hour = absl::ToUnixSeconds(now) / 3600 * 3600;
    if (next_anomaly_hour_ == 0) {
      next_anomaly_hour_ = current_hour - int64_t{3600} * options_.anomaly_lookback_hours;
    }
    // Only completed hours: the current one is still filling.
    for (; next_anomaly_hour_ < current_hour; next_anomaly_hour_ += 3600) {
      auto found = store_->DetectAnomalies(next_anomaly_hour_, options_.anomaly);
      if (!found.ok()) {
        LogWarn("anomaly detection failed", {{"error", found.status().ToString()}});
        return found.status();  // retried from this hour at the next pass
      }
      for (const auto& [dimension, count] : *found) {
        if (count == 0) continue;
        anomalies_->Add({{"dimension", dimension}}).Increment(static_cast<double>(count));
        LogWarn("spend anomaly", {{"hour", absl::StrCat(next_anomaly_hour_)},
                                  {"dimension", dimension},
                                  {"count", absl::StrCat(count)}});
      }
    }
  }
  if (!done->dropped_partitions.empty()) {
    LogInfo("retention dropped partitions",
            {{"partitions", absl::StrJoin(done->dropped_partitions, ",")},
             {"retention_months", absl::StrCat(options_.retention_months)}});
  }
  return absl::OkStatus();
}

void PartitionMaintainer::Loop() {
  for (;;) {
    RunOnce(absl::Now()).IgnoreError();
    absl::MutexLock lock(&mu_);
    auto stopping = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
    mu_.AwaitWithTimeout(absl::Condition(&stopping), options_.interval);
    if (stopping_) return;
  }
}

}  // namespace tollgate::ledger
