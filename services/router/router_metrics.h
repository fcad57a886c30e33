#pragma once
// The router's Prometheus metrics, registered once at start. Thread-safe to update.
//   tollgate_router_decisions_total{model,class,policy,deployment}  ok decisions, first choice
//   tollgate_router_route_requests_total{model,result}  result: ok | not_found | no_candidates |
//       permission_denied | invalid_argument; model is the canonical catalog name, or
//       "<unknown>" when the request named no catalog model (label cardinality stays bounded by
//       the catalog).
//   tollgate_router_route_duration_seconds              decision time in process (histogram)
//   tollgate_router_catalog_reloads_total{result}       result: success | failure
//   tollgate_router_catalog_deployments                 enabled deployments in the live catalog
//   tollgate_router_outcomes_total{result}              reported outcomes: accepted |
//       unknown_deployment | rejected
//   Per deployment (label deployment = id; series removed when the id leaves the catalog):
//   tollgate_router_deployment_circuit_state            0 closed, 1 half-open, 2 open
//   tollgate_router_deployment_circuit_transitions_total{to}   to: open | half_open | closed
//   tollgate_router_deployment_latency_ewma_seconds     0 until the first success
//   tollgate_router_deployment_ttft_ewma_seconds        0 until the first streamed success
//   tollgate_router_deployment_error_rate               EWMA of failures and 429s, 0..1
//   tollgate_router_deployment_cooldown                 1 while in a 429 cooldown
//   tollgate_router_deployment_cooldowns_total          429s that started or extended one
//   tollgate_router_deployment_rpm_used / _tpm_used     reported use over the last 60 s
//   tollgate_router_deployment_near_limit               1 while demoted for its RPM/TPM use
//   tollgate_router_watch_streams                       open Watch streams
//   tollgate_router_watch_resyncs_total                 slow Watch readers sent a fresh snapshot

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace tollgate::router {

class RouterMetrics {
 public:
  struct Deployment {
    prometheus::Gauge* circuit_state = nullptr;
    prometheus::Counter* opened = nullptr;
    prometheus::Counter* half_opened = nullptr;
    prometheus::Counter* closed = nullptr;
    prometheus::Gauge* latency_ewma = nullptr;
    prometheus::Gauge* ttft_ewma = nullptr;
    prometheus::Gauge* error_rate = nullptr;
    prometheus::Gauge* cooldown = nullptr;
    prometheus::Counter* cooldowns = nullptr;
    prometheus::Gauge* rpm_used = nullptr;
    prometheus::Gauge* tpm_used = nullptr;
    prometheus::Gauge* near_limit = nullptr;
  };

  // Errors: kInvalidArgument when the families cannot be registered (e.g. a family of the same
  // name but another help text or type already exists on `registry`).
  static absl::StatusOr<std::unique_ptr<RouterMetrics>> Create(prometheus::Registry& registry);

  // Counter of Route calls for `model` ending with `result`. Takes a lock inside prometheus-cpp:
  // call when a catalog is installed (or on rare paths), not per request.
  prometheus::Counter& RouteRequests(const std::string& model, const std::string& result);
  // tollgate_router_decisions_total{model,class,policy,deployment}: bounded by the catalog
  // (models x classes x policies x deployments). Looked up per decision (Family::Add: a hash and
  // a lock, ~1 µs).
  prometheus::Counter& Decisions(const std::string& model, absl::string_view request_class,
                                 absl::string_view policy, const std::string& deployment);

  // The series of deployment `id` (created on first use). Takes prometheus-cpp's lock: call on
  // catalog changes only. RemoveDeployment drops them.
  Deployment AddDeployment(const std::string& id);
  void RemoveDeployment(const Deployment& series);

  prometheus::Histogram& route_duration() { return *route_duration_; }
  prometheus::Counter& reload_success() { return *reload_success_; }
  prometheus::Counter& reload_failure() { return *reload_failure_; }
  prometheus::Gauge& catalog_deployments() { return *catalog_deployments_; }
  prometheus::Counter& outcomes_accepted() { return *outcomes_accepted_; }
  prometheus::Counter& outcomes_unknown() { return *outcomes_unknown_; }
  prometheus::Counter& outcomes_rejected() { return *outcomes_rejected_; }
  prometheus::Gauge& watch_streams() { return *watch_streams_; }
  prometheus::Counter& watch_resyncs() { return *watch_resyncs_; }

 private:
  RouterMetrics() = default;

  prometheus::Family<prometheus::Counter>* route_requests_ = nullptr;
  prometheus::Family<prometheus::Counter>* decisions_ = nullptr;
  prometheus::Histogram* route_duration_ = nullptr;
  prometheus::Counter* reload_success_ = nullptr;
  prometheus::Counter* reload_failure_ = nullptr;
  prometheus::Gauge* catalog_deployments_ = nullptr;
  prometheus::Counter* outcomes_accepted_ = nullptr;
  prometheus::Counter* outcomes_unknown_ = nullptr;
  prometheus::Counter* outcomes_rejected_ = nullptr;
  prometheus::Gauge* watch_streams_ = nullptr;
  prometheus::Counter* watch_resyncs_ = nullptr;

  prometheus::Family<prometheus::Gauge>* circuit_state_ = nullptr;
  prometheus::Family<prometheus::Counter>* transitions_ = nullptr;
  prometheus::Family<prometheus::Gauge>* latency_ewma_ = nullptr;
  prometheus::Family<prometheus::Gauge>* ttft_ewma_ = nullptr;
  prometheus::Family<prometheus::Gauge>* error_rate_ = nullptr;
  prometheus::Family<prometheus::Gauge>* cooldown_ = nullptr;
  prometheus::Family<prometheus::Counter>* cooldowns_ = nullptr;
  prometheus::Family<prometheus::Gauge>* rpm_used_ = nullptr;
  prometheus::Family<prometheus::Gauge>* tpm_used_ = nullptr;
  prometheus::Family<prometheus::Gauge>* near_limit_ = nullptr;
};

}  // namespace tollgate::router
