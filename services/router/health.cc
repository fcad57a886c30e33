#include "services/router/health.h"

#include <algorithm>
#include <array>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/logging.h"
#include "services/router/router_metrics.h"

namespace tollgate::router {
namespace {

constexpr int64_t kWindowSeconds = 60;

enum class Verdict { kSuccess, kFailure, kRateLimited, kNeutral };

Verdict Judge(const v1::Outcome& o) {
  switch (o.error_kind()) {
    case v1::OUTCOME_ERROR_CONNECT:
    case v1::OUTCOME_ERROR_TIMEOUT:
    case v1::OUTCOME_ERROR_RESET:
    case v1::OUTCOME_ERROR_OVERLOADED:
    case v1::OUTCOME_ERROR_UPSTREAM:
      return Verdict::kFailure;
    case v1::OUTCOME_ERROR_RATE_LIMITED:
      return Verdict::kRateLimited;
    case v1::OUTCOME_ERROR_CONTEXT_LENGTH:
    case v1::OUTCOME_ERROR_CLIENT:
    case v1::OUTCOME_ERROR_CANCELLED:
      return Verdict::kNeutral;
    default:
      break;
  }
  const int status = o.http_status();
  if (status == 429) return Verdict::kRateLimited;
  if (status == 0 || status == 408 || status >= 500) return Verdict::kFailure;
  if (status >= 200 && status < 400) return Verdict::kSuccess;
  return Verdict::kNeutral;
}

bool Malformed(const v1::Outcome& o) {
  return o.deployment_id().empty() || o.http_status() < 0 || o.http_status() > 999 ||
         o.latency_us() < 0 || o.ttft_us() < 0 || o.input_tokens() < 0 || o.output_tokens() < 0 ||
         o.retry_after_ms() < 0 || o.time_unix_ms() < 0;
}

int64_t ToMillis(absl::Time t) { return t == absl::InfinitePast() ? 0 : absl::ToUnixMillis(t); }

}  // namespace

void DeploymentHealthView::ToProto(absl::Time now, v1::DeploymentHealth* out) const {
  const v1::CircuitState state = CircuitAt(now);
  const bool cooling = CoolingDownAt(now);
  out->set_deployment_id(id);
  out->set_circuit(state);
  out->set_consecutive_failures(consecutive_failures);
  out->set_latency_ewma_us(latency_ewma_us);
  out->set_ttft_ewma_us(ttft_ewma_us);
  out->set_error_rate(error_rate);
  out->set_outcomes(outcomes);
  out->set_circuit_open_until_unix_ms(state == v1::CIRCUIT_OPEN ? ToMillis(open_until) : 0);
  out->set_cooldown_until_unix_ms(cooling ? ToMillis(cooldown_until) : 0);
  out->set_rpm_used(rpm_used);
  out->set_tpm_used(tpm_used);
  out->set_rpm_limit(rpm_limit);
  out->set_tpm_limit(tpm_limit);
  out->set_near_limit(near_limit);
  out->set_available(state != v1::CIRCUIT_OPEN && !cooling);
}

struct HealthTracker::Entry {
  struct Bucket {
    int64_t second = -1;
    int64_t requests = 0;
    int64_t tokens = 0;
  };

  explicit Entry(std::string deployment_id) : id(std::move(deployment_id)) {}

  const std::string id;
  const std::shared_ptr<ProbeGate> probe_gate = std::make_shared<ProbeGate>();
  // Only touched with the tracker's publish_mu_ held: Report() may still hold an entry that
  // SetCatalog() just dropped, and must not touch series that are being removed.
  RouterMetrics::Deployment series;
  bool has_series = false;

  absl::Mutex mu;
  int64_t rpm_limit ABSL_GUARDED_BY(mu) = 0;
  int64_t tpm_limit ABSL_GUARDED_BY(mu) = 0;
  v1::CircuitState circuit ABSL_GUARDED_BY(mu) = v1::CIRCUIT_CLOSED;
  absl::Time open_until ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  absl::Time changed_at ABSL_GUARDED_BY(mu) = absl::InfinitePast();  // last circuit change
  int32_t consecutive_failures ABSL_GUARDED_BY(mu) = 0;
  absl::Time cooldown_until ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  double latency_ewma_us ABSL_GUARDED_BY(mu) = 0;
  double ttft_ewma_us ABSL_GUARDED_BY(mu) = 0;
  double error_rate ABSL_GUARDED_BY(mu) = 0;
  int64_t outcomes ABSL_GUARDED_BY(mu) = 0;
  int64_t cooldowns_to_count ABSL_GUARDED_BY(mu) = 0;  // for the metric, at the next Publish
  std::array<Bucket, kWindowSeconds> usage ABSL_GUARDED_BY(mu);
};

HealthTracker::HealthTracker(HealthOptions options, const Clock* clock, RouterMetrics* metrics)
    : options_(options), clock_(clock), metrics_(metrics) {
  index_.store(std::make_shared<const EntryIndex>());
  auto empty = std::make_shared<HealthSnapshot>();
  empty->published = clock_->Now();
  snapshot_.store(std::move(empty));
}

HealthTracker::~HealthTracker() {
  absl::MutexLock lock(&publish_mu_);
  for (auto& [id, entry] : *index_.load()) RemoveMetrics(*entry);
}

void HealthTracker::AddListener(Listener listener) {
  absl::MutexLock lock(&publish_mu_);
  listeners_.push_back(std::move(listener));
}

void HealthTracker::AddMetrics(Entry& entry) {
  if (metrics_ == nullptr || entry.has_series) return;
  entry.series = metrics_->AddDeployment(entry.id);
  entry.has_series = true;
}

void HealthTracker::RemoveMetrics(Entry& entry) {
  if (metrics_ == nullptr || !entry.has_series) return;
  metrics_->RemoveDeployment(entry.series);
  entry.has_series = false;
}

void HealthTracker::SetCatalog(const Catalog& catalog) {
  absl::MutexLock lock(&publish_mu_);
  const std::shared_ptr<const EntryIndex> old = index_.load();
  auto index = std::make_shared<EntryIndex>();
  order_.clear();
  for (const v1::Deployment& d : catalog.deployments()) {
    auto it = old->find(d.id());
    std::shared_ptr<Entry> entry = it != old->end() ? it->second : std::make_shared<Entry>(d.id());
    {
      absl::MutexLock entry_lock(&entry->mu);
      entry->rpm_limit = d.limits().rpm();
      entry->tpm_limit = d.limits().tpm();
    }
    AddMetrics(*entry);
    (*index)[d.id()] = std::move(entry);
    order_.push_back(d.id());
  }
  for (const auto& [id, entry] : *old) {
    if (!index->contains(id)) RemoveMetrics(*entry);
  }
  index_.store(std::move(index));
  catalog_version_ = catalog.version();
  Publish(clock_->Now(), /*tick=*/false);
}

ReportCounts HealthTracker::Report(
    const google::protobuf::RepeatedPtrField<v1::Outcome>& outcomes) {
  ReportCounts counts;
  const absl::Time now = clock_->Now();
  const std::shared_ptr<const EntryIndex> index = index_.load();
  for (const v1::Outcome& outcome : outcomes) {
    if (Malformed(outcome)) {
      ++counts.rejected;
      continue;
    }
    auto it = index->find(outcome.deployment_id());
    if (it == index->end()) {
      ++counts.unknown_deployment;
      continue;
    }
    Apply(*it->second, outcome, now);
    ++counts.accepted;
  }
  if (metrics_ != nullptr) {
    metrics_->outcomes_accepted().Increment(counts.accepted);
    metrics_->outcomes_unknown().Increment(counts.unknown_deployment);
    metrics_->outcomes_rejected().Increment(counts.rejected);
  }
  if (counts.accepted > 0) {
    absl::MutexLock lock(&publish_mu_);
    Publish(now, /*tick=*/false);
  }
  return counts;
}

void HealthTracker::Apply(Entry& e, const v1::Outcome& o, absl::Time now) {
  const Verdict verdict = Judge(o);
  // An attempt's start time orders it against circuit changes; unknown or future: now.
  absl::Time started = o.time_unix_ms() > 0 ? absl::FromUnixMillis(o.time_unix_ms()) : now;
  if (started > now) started = now;
  const double alpha = options_.ewma_alpha;
  // Latencies: 0 means "no sample yet", so the first sample is taken as is.
  auto ewma = [alpha](double& value, double sample) {
    value = value == 0 ? sample : value + alpha * (sample - value);
  };
  auto error_rate = [alpha](double& value, double sample) { value += alpha * (sample - value); };
  std::string log_event;
  int32_t failures = 0;
  {
    absl::MutexLock lock(&e.mu);
    ++e.outcomes;
    if (o.error_kind() != v1::OUTCOME_ERROR_CONNECT) {
      const int64_t second = absl::ToUnixSeconds(now);
      Entry::Bucket& bucket = e.usage[static_cast<size_t>(second % kWindowSeconds)];
      if (bucket.second != second) bucket = Entry::Bucket{second, 0, 0};
      ++bucket.requests;
      bucket.tokens += o.input_tokens() + o.output_tokens();
    }
    const bool counts_for_circuit = started >= e.changed_at;
    const v1::CircuitState circuit =
        e.circuit == v1::CIRCUIT_OPEN && now >= e.open_until ? v1::CIRCUIT_HALF_OPEN : e.circuit;
    switch (verdict) {
      case Verdict::kSuccess:
        error_rate(e.error_rate, 0);
        if (o.latency_us() > 0) ewma(e.latency_ewma_us, static_cast<double>(o.latency_us()));
        if (o.ttft_us() > 0) ewma(e.ttft_ewma_us, static_cast<double>(o.ttft_us()));
        if (counts_for_circuit) {
          e.consecutive_failures = 0;
          if (circuit != v1::CIRCUIT_CLOSED) {
            e.circuit = v1::CIRCUIT_CLOSED;
            e.changed_at = now;
            e.probe_gate->Release();
            log_event = "circuit closed";
          }
        }
        break;
      case Verdict::kFailure:
        error_rate(e.error_rate, 1);
        if (!counts_for_circuit) break;
        ++e.consecutive_failures;
        failures = e.consecutive_failures;
        if ((circuit == v1::CIRCUIT_CLOSED &&
             e.consecutive_failures >= options_.failure_threshold) ||
            circuit == v1::CIRCUIT_HALF_OPEN) {
          e.circuit = v1::CIRCUIT_OPEN;
          e.open_until = now + options_.open_duration;
          e.changed_at = now;
          e.probe_gate->Release();
          log_event = circuit == v1::CIRCUIT_HALF_OPEN ? "circuit reopened after a failed probe"
                                                       : "circuit opened";
        }
        break;
      case Verdict::kRateLimited: {
        error_rate(e.error_rate, 1);
        const absl::Duration wait =
            std::min(o.retry_after_ms() > 0 ? absl::Milliseconds(o.retry_after_ms())
                                            : options_.default_cooldown,
                     options_.max_cooldown);
        if (now + wait > e.cooldown_until) {
          e.cooldown_until = now + wait;
          ++e.cooldowns_to_count;
        }
        // A rate-limited probe proves the deployment answers: let the next probe go soon.
        if (circuit == v1::CIRCUIT_HALF_OPEN) e.probe_gate->Release();
        break;
      }
      case Verdict::kNeutral:
        if (circuit == v1::CIRCUIT_HALF_OPEN) e.probe_gate->Release();
        break;
    }
  }
  if (!log_event.empty()) {
    const std::string count = std::to_string(failures);
    (log_event == "circuit closed" ? LogInfo : LogWarn)(
        log_event, {{"deployment", e.id},
                    {"consecutive_failures", count},
                    {"http_status", std::to_string(o.http_status())},
                    {"error_kind", v1::OutcomeErrorKind_Name(o.error_kind())},
                    {"request_id", o.request_id()}});
  }
}

DeploymentHealthView HealthTracker::ViewOf(Entry& e, absl::Time now, bool tick) {
  DeploymentHealthView v;
  v.id = e.id;
  v.probe_gate = e.probe_gate;
  absl::MutexLock lock(&e.mu);
  if (e.cooldowns_to_count > 0 && e.has_series) {
    e.series.cooldowns->Increment(static_cast<double>(e.cooldowns_to_count));
  }
  e.cooldowns_to_count = 0;
  if (tick && e.circuit == v1::CIRCUIT_OPEN && now >= e.open_until) {
    e.circuit = v1::CIRCUIT_HALF_OPEN;
    LogInfo("circuit half-open: probing", {{"deployment", e.id}});
  }
  v.circuit = e.circuit;
  v.open_until = e.open_until;
  v.cooldown_until = e.cooldown_until;
  v.consecutive_failures = e.consecutive_failures;
  v.outcomes = e.outcomes;
  v.latency_ewma_us = static_cast<int64_t>(e.latency_ewma_us);
  v.ttft_ewma_us = static_cast<int64_t>(e.ttft_ewma_us);
  v.error_rate = e.error_rate;
  const int64_t second = absl::ToUnixSeconds(now);
  for (const Entry::Bucket& b : e.usage) {
    if (b.second > second - kWindowSeconds && b.second <= second) {
      v.rpm_used += b.requests;
      v.tpm_used += b.tokens;
    }
  }
  v.rpm_limit = e.rpm_limit;
  v.tpm_limit = e.tpm_limit;
  const int64_t headroom = options_.limit_headroom_percent;
  v.near_limit = (v.rpm_limit > 0 && v.rpm_used * 100 >= v.rpm_limit * headroom) ||
                 (v.tpm_limit > 0 && v.tpm_used * 100 >= v.tpm_limit * headroom);
  return v;
}

void HealthTracker::Publish(absl::Time now, bool tick) {
  const std::shared_ptr<const HealthSnapshot> previous = snapshot_.load();
  const std::shared_ptr<const EntryIndex> index = index_.load();
  auto snapshot = std::make_shared<HealthSnapshot>();
  snapshot->catalog_version = catalog_version_;
  snapshot->published = now;
  snapshot->views.reserve(order_.size());
  std::vector<v1::HealthEvent> events;
  for (const std::string& id : order_) {
    Entry& entry = *index->at(id);
    DeploymentHealthView view = ViewOf(entry, now, tick);
    const v1::CircuitState circuit = view.CircuitAt(now);
    const bool cooling = view.CoolingDownAt(now);
    auto event = [&](v1::HealthEvent::Kind kind) {
      v1::HealthEvent& e = events.emplace_back();
      e.set_kind(kind);
      e.set_deployment_id(id);
      view.ToProto(now, e.mutable_health());
    };
    auto old = previous->index_by_id.find(id);
    if (old != previous->index_by_id.end()) {
      const DeploymentHealthView& before = previous->views[old->second];
      const v1::CircuitState was = before.CircuitAt(previous->published);
      if (circuit == v1::CIRCUIT_OPEN &&
          (was != v1::CIRCUIT_OPEN || before.open_until != view.open_until)) {
        event(v1::HealthEvent::CIRCUIT_OPENED);
        if (entry.has_series) entry.series.opened->Increment();
      } else if (circuit == v1::CIRCUIT_HALF_OPEN && was != v1::CIRCUIT_HALF_OPEN) {
        event(v1::HealthEvent::CIRCUIT_HALF_OPENED);
        if (entry.has_series) entry.series.half_opened->Increment();
      } else if (circuit == v1::CIRCUIT_CLOSED && was != v1::CIRCUIT_CLOSED) {
        event(v1::HealthEvent::CIRCUIT_CLOSED);
        if (entry.has_series) entry.series.closed->Increment();
      }
      const bool was_cooling = before.CoolingDownAt(previous->published);
      if (cooling && !was_cooling) event(v1::HealthEvent::COOLDOWN_STARTED);
      if (!cooling && was_cooling) event(v1::HealthEvent::COOLDOWN_ENDED);
      if (view.near_limit && !before.near_limit) event(v1::HealthEvent::LIMIT_NEAR);
      if (!view.near_limit && before.near_limit) event(v1::HealthEvent::LIMIT_CLEARED);
    }
    if (entry.has_series) {
      const RouterMetrics::Deployment& m = entry.series;
      m.circuit_state->Set(circuit == v1::CIRCUIT_OPEN        ? 2
                           : circuit == v1::CIRCUIT_HALF_OPEN ? 1
                                                              : 0);
      m.latency_ewma->Set(static_cast<double>(view.latency_ewma_us) / 1e6);
      m.ttft_ewma->Set(static_cast<double>(view.ttft_ewma_us) / 1e6);
      m.error_rate->Set(view.error_rate);
      m.cooldown->Set(cooling ? 1 : 0);
      m.rpm_used->Set(static_cast<double>(view.rpm_used));
      m.tpm_used->Set(static_cast<double>(view.tpm_used));
      m.near_limit->Set(view.near_limit ? 1 : 0);
    }
    snapshot->index_by_id[id] = snapshot->views.size();
    snapshot->views.push_back(std::move(view));
  }
  snapshot_.store(std::move(snapshot), std::memory_order_release);
  if (!events.empty()) {
    for (const Listener& listener : listeners_) listener(events);
  }
}

void HealthTracker::Tick() {
  absl::MutexLock lock(&publish_mu_);
  Publish(clock_->Now(), /*tick=*/true);
}

}  // namespace tollgate::router
