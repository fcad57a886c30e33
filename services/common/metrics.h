#pragma once
// Prometheus plumbing shared by the services. Each component builds its metric families once at
// start on a shared registry (prometheus-cpp families are thread-safe to update).
//
// The gateway serves /metrics on its own HTTP listener (SerializeMetrics); the router and ledger
// run a small pull exposer on a dedicated address (StartMetricsExposer).

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/exposer.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace tollgate {

// Prometheus text exposition (format 0.0.4) of everything in `registry`.
std::string SerializeMetrics(const prometheus::Registry& registry);

// Starts an HTTP exposer serving `registry` at http://<address>/metrics. Errors: kUnavailable when
// the address cannot be bound.
absl::StatusOr<std::unique_ptr<prometheus::Exposer>> StartMetricsExposer(
    const std::string& address, std::shared_ptr<prometheus::Registry> registry);

// Histogram buckets in seconds for request latencies: 100 µs .. 60 s.
const prometheus::Histogram::BucketBoundaries& LatencyBucketsSeconds();

// Buckets for batch sizes: 1 .. 4096.
const prometheus::Histogram::BucketBoundaries& BatchSizeBuckets();

}  // namespace tollgate
