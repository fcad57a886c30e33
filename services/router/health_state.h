#pragma once
// Immutable health snapshots read by the routing engine. HealthTracker (health.h) builds a new
// HealthSnapshot after every batch of outcome reports and every tick and swaps it in
// atomically; a decision reads one snapshot and evaluates time-based state (an open circuit
// whose period ended is half-open, a cooldown that ended is over) against its own `now`.
//
// The one mutable piece is the ProbeGate of each deployment: a lock-free slot that lets one
// request at a time probe a half-open circuit.
//
// Thread-safety: snapshots are immutable and shareable; ProbeGate is lock-free and thread-safe.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tollgate/v1/router.pb.h"

namespace tollgate::router {

// One probe at a time through a half-open circuit: TryAcquire() succeeds when no probe was
// granted within the last `hold` (the probe's outcome, reported later, decides the circuit;
// a lost report frees the slot when `hold` expires). Release() frees it at once.
class ProbeGate {
 public:
  bool TryAcquire(absl::Time now, absl::Duration hold) {
    const int64_t now_ns = absl::ToUnixNanos(now);
    int64_t free_at = free_at_ns_.load(std::memory_order_relaxed);
    while (now_ns >= free_at) {
      if (free_at_ns_.compare_exchange_weak(free_at, now_ns + absl::ToInt64Nanoseconds(hold),
                                            std::memory_order_acq_rel)) {
        return true;
      }
    }
    return false;
  }
  bool Available(absl::Time now) const {
    return absl::ToUnixNanos(now) >= free_at_ns_.load(std::memory_order_relaxed);
  }
  void Release() { free_at_ns_.store(0, std::memory_order_release); }

 private:
  std::atomic<int64_t> free_at_ns_{0};
};

// What a decision knows about one deployment.
struct DeploymentHealthView {
  std::string id;
  v1::CircuitState circuit = v1::CIRCUIT_CLOSED;  // as published; see CircuitAt()
  absl::Time open_until = absl::InfinitePast();   // OPEN: half-opens at this time
  absl::Time cooldown_until = absl::InfinitePast();
  int32_t consecutive_failures = 0;
  int64_t outcomes = 0;
  int64_t latency_ewma_us = 0;  // 0 = no sample
  int64_t ttft_ewma_us = 0;     // 0 = no sample
  double error_rate = 0;
  int64_t rpm_used = 0;
  int64_t tpm_used = 0;
  int64_t rpm_limit = 0;
  int64_t tpm_limit = 0;
  bool near_limit = false;
  std::shared_ptr<ProbeGate> probe_gate;  // never null in a tracker's snapshot

  v1::CircuitState CircuitAt(absl::Time now) const {
    if (circuit == v1::CIRCUIT_OPEN && now >= open_until) return v1::CIRCUIT_HALF_OPEN;
    return circuit;
  }
  bool CoolingDownAt(absl::Time now) const { return now < cooldown_until; }
  // Fills `out` as seen at `now`.
  void ToProto(absl::Time now, v1::DeploymentHealth* out) const;
};

struct HealthSnapshot {
  std::string catalog_version;              // the catalog `views` is aligned with
  std::vector<DeploymentHealthView> views;  // by Catalog deployment index
  absl::flat_hash_map<std::string, size_t> index_by_id;
  absl::Time published;

  // The view of deployment `id` at catalog index `index` of the catalog `catalog_version`, or
  // nullptr when this snapshot does not know the deployment.
  const DeploymentHealthView* Find(absl::string_view version, size_t index,
                                   absl::string_view id) const {
    if (version == catalog_version && index < views.size()) return &views[index];
    auto it = index_by_id.find(id);
    return it == index_by_id.end() ? nullptr : &views[it->second];
  }
};

}  // namespace tollgate::router
