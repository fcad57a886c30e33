#include "services/router/router_metrics.h"

#include <exception>

#include "absl/strings/str_cat.h"

namespace tollgate::router {
namespace {

// Fine buckets: a decision takes microseconds, and regressions show up there.
const prometheus::Histogram::BucketBoundaries& DecisionBucketsSeconds() {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2};
  return kBuckets;
}

prometheus::Family<prometheus::Gauge>* Gauges(prometheus::Registry& registry, const char* name,
                                              const char* help) {
  return &prometheus::BuildGauge().Name(name).Help(help).Register(registry);
}

prometheus::Family<prometheus::Counter>* Counters(prometheus::Registry& registry, const char* name,
                                                  const char* help) {
  return &prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

}  // namespace

absl::StatusOr<std::unique_ptr<RouterMetrics>> RouterMetrics::Create(
    prometheus::Registry& registry) {
  std::unique_ptr<RouterMetrics> m(new RouterMetrics());
  try {
    m->route_requests_ = Counters(registry, "tollgate_router_route_requests_total",
                                  "Route calls by canonical model and result (ok, not_found, "
                                  "no_candidates, permission_denied, invalid_argument)");
    m->decisions_ = Counters(registry, "tollgate_router_decisions_total",
                             "Successful Route decisions by canonical model, request class, "
                             "deciding policy and first candidate deployment");
    m->route_duration_ = &prometheus::BuildHistogram()
                              .Name("tollgate_router_route_duration_seconds")
                              .Help("Time to decide a Route call, in process")
                              .Register(registry)
                              .Add({}, DecisionBucketsSeconds());
    auto* reloads = Counters(registry, "tollgate_router_catalog_reloads_total",
                             "Catalog file reloads by result (success, failure)");
    m->reload_success_ = &reloads->Add({{"result", "success"}});
    m->reload_failure_ = &reloads->Add({{"result", "failure"}});
    m->catalog_deployments_ = &Gauges(registry, "tollgate_router_catalog_deployments",
                                      "Enabled deployments in the live catalog")
                                   ->Add({});
    auto* outcomes = Counters(registry, "tollgate_router_outcomes_total",
                              "Attempt outcomes reported by gateways, by result (accepted, "
                              "unknown_deployment, rejected)");
    m->outcomes_accepted_ = &outcomes->Add({{"result", "accepted"}});
    m->outcomes_unknown_ = &outcomes->Add({{"result", "unknown_deployment"}});
    m->outcomes_rejected_ = &outcomes->Add({{"result", "rejected"}});
    m->watch_streams_ =
        &Gauges(registry, "tollgate_router_watch_streams", "Open Watch streams")->Add({});
    m->watch_resyncs_ = &Counters(registry, "tollgate_router_watch_resyncs_total",
                                  "Watch readers too slow for the event backlog, sent a fresh "
                                  "snapshot instead")
                             ->Add({});
    m->circuit_state_ = Gauges(registry, "tollgate_router_deployment_circuit_state",
                               "Circuit breaker state: 0 closed, 1 half-open, 2 open");
    m->transitions_ = Counters(registry, "tollgate_router_deployment_circuit_transitions_total",
                               "Circuit breaker transitions by new state (open, half_open, "
                               "closed)");
    m->latency_ewma_ = Gauges(registry, "tollgate_router_deployment_latency_ewma_seconds",
                              "EWMA of successful attempts' latency (0: no sample)");
    m->ttft_ewma_ = Gauges(registry, "tollgate_router_deployment_ttft_ewma_seconds",
                           "EWMA of successful attempts' time to first token (0: no sample)");
    m->error_rate_ = Gauges(registry, "tollgate_router_deployment_error_rate",
                            "EWMA of the share of attempts that failed or were rate limited");
    m->cooldown_ = Gauges(registry, "tollgate_router_deployment_cooldown",
                          "1 while the deployment cools down after a 429");
    m->cooldowns_ = Counters(registry, "tollgate_router_deployment_cooldowns_total",
                             "429 answers that started or extended a cooldown");
    m->rpm_used_ = Gauges(registry, "tollgate_router_deployment_rpm_used",
                          "Requests reported over the last 60 seconds");
    m->tpm_used_ = Gauges(registry, "tollgate_router_deployment_tpm_used",
                          "Input + output tokens reported over the last 60 seconds");
    m->near_limit_ = Gauges(registry, "tollgate_router_deployment_near_limit",
                            "1 while the deployment is demoted for nearing its RPM/TPM limit");
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("cannot register router metrics: ", e.what()));
  }
  return m;
}

prometheus::Counter& RouterMetrics::RouteRequests(const std::string& model,
                                                  const std::string& result) {
  return route_requests_->Add({{"model", model}, {"result", result}});
}

prometheus::Counter& RouterMetrics::Decisions(const std::string& model,
                                              absl::string_view request_class,
                                              absl::string_view policy,
                                              const std::string& deployment) {
  return decisions_->Add({{"model", model},
                          {"class", std::string(request_class)},
                          {"policy", std::string(policy)},
                          {"deployment", deployment}});
}

RouterMetrics::Deployment RouterMetrics::AddDeployment(const std::string& id) {
  const prometheus::Labels labels = {{"deployment", id}};
  Deployment d;
  d.circuit_state = &circuit_state_->Add(labels);
  d.opened = &transitions_->Add({{"deployment", id}, {"to", "open"}});
  d.half_opened = &transitions_->Add({{"deployment", id}, {"to", "half_open"}});
  d.closed = &transitions_->Add({{"deployment", id}, {"to", "closed"}});
  d.latency_ewma = &latency_ewma_->Add(labels);
  d.ttft_ewma = &ttft_ewma_->Add(labels);
  d.error_rate = &error_rate_->Add(labels);
  d.cooldown = &cooldown_->Add(labels);
  d.cooldowns = &cooldowns_->Add(labels);
  d.rpm_used = &rpm_used_->Add(labels);
  d.tpm_used = &tpm_used_->Add(labels);
  d.near_limit = &near_limit_->Add(labels);
  return d;
}

void RouterMetrics::RemoveDeployment(const Deployment& d) {
  circuit_state_->Remove(d.circuit_state);
  transitions_->Remove(d.opened);
  transitions_->Remove(d.half_opened);
  transitions_->Remove(d.closed);
  latency_ewma_->Remove(d.latency_ewma);
  ttft_ewma_->Remove(d.ttft_ewma);
  error_rate_->Remove(d.error_rate);
  cooldown_->Remove(d.cooldown);
  cooldowns_->Remove(d.cooldowns);
  rpm_used_->Remove(d.rpm_used);
  tpm_used_->Remove(d.tpm_used);
  near_limit_->Remove(d.near_limit);
}

}  // namespace tollgate::router
