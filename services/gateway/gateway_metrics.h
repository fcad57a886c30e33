#pragma once
// The gateway's Prometheus metrics. Families are built once at start on the given registry; the
// hot path resolves a labelled child through a per-thread cache, so recording a request costs a
// few hash lookups and no shared lock.
//
// Label values are bounded: routes are a fixed set, model/deployment/provider come from the
// router's catalog (never from the client), teams from the key configuration, and feature values
// (client-chosen) are capped: the first `feature_label_limit` distinct features get their own
// label value, later ones are reported as "other". Customer and API-key labels are off unless
// EnableAttributionLabels switches them on (each with the same kind of cap), because their values
// are unbounded in number.
//
//   auto metrics = std::make_shared<GatewayMetrics>(registry, /*feature_label_limit=*/100);
//   metrics->RecordRequest("/v1/chat/completions", 200, "gpt-4o-mini", "dep", "openai", "team");
//
// Thread-safe.

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "tollgate/v1/common.pb.h"

namespace tollgate::gateway {

class GatewayMetrics {
 public:
  GatewayMetrics(std::shared_ptr<prometheus::Registry> registry, size_t feature_label_limit);

  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

  // Opt-in, before serving: cost per customer (tollgate_gateway_customer_cost_usd_total{customer})
  // and per API key id (tollgate_gateway_api_key_cost_usd_total{api_key}); the first `limit`
  // distinct values of each get their own label value, later ones are reported as "other".
  void EnableAttributionLabels(bool customer, bool api_key, size_t limit);

  // tollgate_gateway_requests_total{route,status,model,deployment,provider,team}
  void RecordRequest(std::string_view route, int status, std::string_view model,
                     std::string_view deployment, std::string_view provider, std::string_view team);
  // tollgate_gateway_tokens_total{token_type,model,provider,team}; token_type in input,
  // cached_input, cache_write, output, reasoning.
  void RecordTokens(const v1::TokenUsage& usage, std::string_view model, std::string_view provider,
                    std::string_view team);
  // tollgate_gateway_cost_usd_total{team,feature,model,provider} (double: display only; the
  // accounting of record is the ledger's integer pico-dollars).
  // (+ the opt-in customer / API-key families, when enabled and the values are non-empty).
  void RecordCost(int64_t cost_pico, std::string_view team, std::string_view feature,
                  std::string_view model, std::string_view provider,
                  std::string_view customer = {}, std::string_view api_key = {});

  void ObserveRequestDuration(std::string_view route, double seconds);
  void ObserveUpstreamDuration(std::string_view provider, double seconds);
  void ObserveTtft(std::string_view provider, double seconds);
  // Streaming: the gap between two consecutive content-carrying upstream events.
  void ObserveTimeBetweenTokens(std::string_view provider, double seconds);
  void ObserveOverhead(double seconds);

  void RecordFallback(std::string_view from_deployment);
  // kind: connect, tls, timeout, http_429, http_5xx, protocol, stream.
  void RecordUpstreamError(std::string_view deployment, std::string_view kind);

  void SetLedgerQueueDepth(double depth) { ledger_queue_depth_->Set(depth); }
  void SetLedgerUnackedEvents(double n) { ledger_unacked_->Set(n); }
  // result: sent, acked, dropped.
  void AddLedgerEvents(std::string_view result, double n);

  void ConnectionOpened() { active_connections_->Increment(); }
  void ConnectionClosed() { active_connections_->Decrement(); }

  // Routing (issue 6). tollgate_gateway_router_fallback_decisions_total: requests routed from the
  // Watch snapshot because Route failed or timed out.
  void RecordRouterFallbackDecision() { router_fallback_decisions_->Increment(); }
  // tollgate_gateway_route_cache_lookups_total{result}: hit, miss (cache on, nothing usable).
  void RecordRouteCacheHit() { route_cache_hits_->Increment(); }
  void RecordRouteCacheMiss() { route_cache_misses_->Increment(); }
  // tollgate_gateway_outcome_queue_depth and tollgate_gateway_outcomes_total{result}: attempt
  // outcomes for Router.ReportOutcomes; result in sent, dropped (queue full), failed (RPC error).
  void SetOutcomeQueueDepth(double depth) { outcome_queue_depth_->Set(depth); }
  void AddOutcomes(std::string_view result, double n);
  // tollgate_gateway_router_watch_events_total{kind}: snapshot, health, heartbeat, reconnect.
  void RecordWatchEvent(std::string_view kind);
  // tollgate_gateway_router_snapshot_held: 1 once a catalog snapshot was received.
  void SetSnapshotHeld(bool held) { snapshot_held_->Set(held ? 1 : 0); }
  // tollgate_gateway_log_queue_depth and tollgate_gateway_log_lines_dropped_total from the
  // logger's queue (called before each /metrics answer).
  void UpdateLogQueue();

  // Guardrails (guardrails.h). tollgate_gateway_guardrail_actions_total{team,detector,action}:
  // detector is a PII detector name, "pattern:<rule>" (rule names come from the config),
  // "max_input_tokens" or "max_request_bytes"; action in block, redact, log. `n` matches.
  void RecordGuardrailAction(std::string_view team, std::string_view detector,
                             std::string_view action, double n);

  // The label value to use for a client-supplied feature (see the class comment).
  // A bounded label value: `value` while fewer than `limit` distinct values were admitted to
  // `cap` (or it already was), else "other". Empty stays empty.
  struct LabelCap {
    explicit LabelCap(size_t limit) : limit(limit) {}
    const size_t limit;
    absl::Mutex mu;
    absl::flat_hash_set<std::string> admitted ABSL_GUARDED_BY(mu);
  };
  std::string CappedLabel(LabelCap& cap, std::string_view value);

 private:
  template <typename T>
  T& Child(prometheus::Family<T>& family, std::initializer_list<std::string_view> names,
           std::initializer_list<std::string_view> values);
  prometheus::Histogram& HistogramChild(prometheus::Family<prometheus::Histogram>& family,
                                        std::string_view name, std::string_view value);

  const std::shared_ptr<prometheus::Registry> registry_;
  const uint64_t instance_id_;  // distinguishes instances in the per-thread caches
  LabelCap feature_cap_;
  std::unique_ptr<LabelCap> attribution_cap_customer_, attribution_cap_api_key_;
  prometheus::Family<prometheus::Counter>* customer_cost_ = nullptr;
  prometheus::Family<prometheus::Counter>* api_key_cost_ = nullptr;

  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Counter>& tokens_;
  prometheus::Family<prometheus::Counter>& cost_;
  prometheus::Family<prometheus::Histogram>& request_duration_;
  prometheus::Family<prometheus::Histogram>& upstream_duration_;
  prometheus::Family<prometheus::Histogram>& ttft_;
  prometheus::Family<prometheus::Histogram>& time_between_tokens_;
  prometheus::Histogram* overhead_;
  prometheus::Family<prometheus::Counter>& fallbacks_;
  prometheus::Family<prometheus::Counter>& upstream_errors_;
  prometheus::Gauge* ledger_queue_depth_;
  prometheus::Gauge* ledger_unacked_;
  prometheus::Family<prometheus::Counter>& ledger_events_;
  prometheus::Gauge* active_connections_;

  prometheus::Counter* router_fallback_decisions_ = nullptr;
  prometheus::Counter* route_cache_hits_ = nullptr;
  prometheus::Counter* route_cache_misses_ = nullptr;
  prometheus::Gauge* outcome_queue_depth_ = nullptr;
  prometheus::Family<prometheus::Counter>* outcomes_ = nullptr;
  prometheus::Family<prometheus::Counter>* watch_events_ = nullptr;
  prometheus::Gauge* snapshot_held_ = nullptr;
  prometheus::Gauge* log_queue_depth_ = nullptr;
  prometheus::Counter* log_lines_dropped_ = nullptr;
  prometheus::Family<prometheus::Counter>* guardrail_actions_ = nullptr;

};

}  // namespace tollgate::gateway
