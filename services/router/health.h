#pragma once
// Per-deployment health learnt from the attempt outcomes gateways report.
//
//   HealthTracker health(HealthOptions{}, Clock::Real(), metrics);
//   health.SetCatalog(*catalog);                 // and again on every catalog change
//   health.Report(request.outcomes());           // ReportOutcomes
//   health.Tick();                               // periodically: time-based transitions
//   std::shared_ptr<const HealthSnapshot> s = health.Get();   // what decisions read
//
// For each deployment (by id; state survives catalog reloads while the id stays):
//   - EWMAs of latency and time to first token over successful attempts (weight `ewma_alpha`
//     for the newest sample; the first sample is taken as is), and of the error rate.
//   - A circuit breaker. CLOSED -> OPEN after `failure_threshold` consecutive failures;
//     OPEN -> HALF_OPEN when `open_duration` has passed (decisions then let one probe through
//     at a time, see ProbeGate); HALF_OPEN -> CLOSED on a success, -> OPEN on a failure.
//     Outcomes of attempts that started before the circuit's last change do not move it.
//   - A cooldown after a 429: until now + retry_after (or `default_cooldown` without one),
//     capped at `max_cooldown`; a later 429 can only extend it.
//   - Requests and tokens (input + output) reported over the last 60 s against the catalog's
//     limits; `near_limit` once either reaches `limit_headroom_percent` of its limit.
// Outcome kinds (router.proto OutcomeErrorKind; without a kind, the HTTP status decides):
//   success: no error kind and HTTP 2xx/3xx. failure: CONNECT, TIMEOUT, RESET, OVERLOADED,
//   UPSTREAM, or HTTP 0, 408, 5xx. rate limited: RATE_LIMITED or HTTP 429. neutral (no health
//   effect): CONTEXT_LENGTH, CLIENT, CANCELLED, other 4xx. Every outcome but a connect
//   failure counts towards RPM/TPM use.
//
// Every Report() batch and Tick() publishes a new immutable HealthSnapshot and sends the
// changes since the previous one (circuit opened/half-opened/closed, cooldown started/ended,
// limit near/cleared) to the listeners, and updates the per-deployment metrics.
//
// Thread-safety: all methods are thread-safe. Report() locks one deployment at a time, then
// the publisher; Get() is an atomic load. Listeners run with the publisher lock held: they must
// be quick and must not call back into the tracker.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "google/protobuf/repeated_field.h"
#include "services/router/catalog.h"
#include "services/router/clock.h"
#include "services/router/health_state.h"
#include "tollgate/v1/router.pb.h"

namespace tollgate::router {

class RouterMetrics;

struct HealthOptions {
  int32_t failure_threshold = 5;
  absl::Duration open_duration = absl::Seconds(30);
  absl::Duration probe_hold = absl::Seconds(10);  // a probe without an outcome frees its slot
  double ewma_alpha = 0.2;
  absl::Duration default_cooldown = absl::Seconds(1);
  absl::Duration max_cooldown = absl::Minutes(5);
  int32_t limit_headroom_percent = 90;
};

struct ReportCounts {
  int32_t accepted = 0;
  int32_t unknown_deployment = 0;
  int32_t rejected = 0;
};

class HealthTracker {
 public:
  // Called with the changes of one publication (never empty).
  using Listener = std::function<void(const std::vector<v1::HealthEvent>& events)>;

  // `clock` must outlive the tracker; `metrics` too, unless null (no metrics).
  HealthTracker(HealthOptions options, const Clock* clock, RouterMetrics* metrics);
  ~HealthTracker();
  HealthTracker(const HealthTracker&) = delete;
  HealthTracker& operator=(const HealthTracker&) = delete;

  // Aligns the tracked deployments with `catalog`: new ids start healthy, removed ids are
  // forgotten, limits are updated. Publishes.
  void SetCatalog(const Catalog& catalog);

  // Applies a batch of outcomes and publishes. Outcomes for unknown deployment ids are
  // counted and ignored; malformed ones (no id, negative numbers, status outside 0..999)
  // are counted as rejected and ignored.
  ReportCounts Report(const google::protobuf::RepeatedPtrField<v1::Outcome>& outcomes);

  // Publishes the time-based changes (open -> half-open, cooldown ends, use leaves the window).
  void Tick();

  // The latest snapshot (never null).
  std::shared_ptr<const HealthSnapshot> Get() const {
    return snapshot_.load(std::memory_order_acquire);
  }

  // Adds a listener for health changes; call before traffic starts.
  void AddListener(Listener listener);

  const HealthOptions& options() const { return options_; }
  const Clock* clock() const { return clock_; }

 private:
  struct Entry;
  using EntryIndex = absl::flat_hash_map<std::string, std::shared_ptr<Entry>>;

  void Apply(Entry& entry, const v1::Outcome& outcome, absl::Time now);
  void Publish(absl::Time now, bool tick) ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);
  DeploymentHealthView ViewOf(Entry& entry, absl::Time now, bool tick)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);
  void AddMetrics(Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);
  void RemoveMetrics(Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);

  const HealthOptions options_;
  const Clock* const clock_;
  RouterMetrics* const metrics_;

  absl::Mutex publish_mu_;
  std::vector<std::string> order_ ABSL_GUARDED_BY(publish_mu_);  // catalog deployment order
  std::string catalog_version_ ABSL_GUARDED_BY(publish_mu_);
  std::vector<Listener> listeners_ ABSL_GUARDED_BY(publish_mu_);
  // Which entries exist; swapped whole by SetCatalog so Report() needs no lock to find one.
  std::atomic<std::shared_ptr<const EntryIndex>> index_;
  std::atomic<std::shared_ptr<const HealthSnapshot>> snapshot_;
};

}  // namespace tollgate::router
