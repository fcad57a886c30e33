#include "services/gateway/spool/spool_metrics.h"

namespace tollgate::gateway {

SpoolMetrics::SpoolMetrics(prometheus::Registry& registry) {
  auto gauge = [&](const char* name, const char* help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
  };
  bytes_ = gauge("tollgate_gateway_spool_bytes", "Bytes of usage spool segment files on disk");
  segments_ = gauge("tollgate_gateway_spool_segments", "Usage spool segment files on disk");
  oldest_unacked_age_ =
      gauge("tollgate_gateway_spool_oldest_unacked_age_seconds",
            "Age of the oldest spooled usage event not yet acknowledged by the ledger (0 when "
            "every event is acknowledged)");
  auto& events = prometheus::BuildCounter()
                     .Name("tollgate_gateway_spool_events_total")
                     .Help(
                         "Usage spool events by result: appended (durable on disk), sent (to "
                         "the ledger, resends included), acked (committed by the ledger), "
                         "dropped (never written: spool full under policy drop, spool closed, "
                         "disk error), rejected (requests refused with 503 spool_full)")
                     .Register(registry);
  appended_ = &events.Add({{"result", "appended"}});
  sent_ = &events.Add({{"result", "sent"}});
  acked_ = &events.Add({{"result", "acked"}});
  dropped_ = &events.Add({{"result", "dropped"}});
  rejected_ = &events.Add({{"result", "rejected"}});
  fsync_ = &prometheus::BuildHistogram()
                .Name("tollgate_gateway_spool_fsync_seconds")
                .Help("fdatasync latency of each usage spool group commit")
                .Register(registry)
                .Add({}, prometheus::Histogram::BucketBoundaries{0.0001, 0.00025, 0.0005, 0.001,
                                                                 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                                 0.1, 0.25, 0.5, 1, 2.5});
}

}  // namespace tollgate::gateway
