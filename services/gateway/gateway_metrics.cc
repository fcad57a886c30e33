#include "services/gateway/gateway_metrics.h"

#include <atomic>
#include <cstring>
#include <map>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "services/common/logging.h"
#include "services/common/metrics.h"

namespace tollgate::gateway {
namespace {

std::atomic<uint64_t> g_next_instance_id{1};

// Per-thread map from (instance, family, label values) to the family's child. Children of a
// prometheus-cpp family live as long as the family, so the pointers stay valid.
absl::flat_hash_map<std::string, void*>& ChildCache() {
  thread_local absl::flat_hash_map<std::string, void*> cache;
  return cache;
}

std::string CacheKey(uint64_t instance, const void* family,
                     std::initializer_list<std::string_view> values) {
  std::string key;
  key.reserve(32 + 16 * values.size());
  key.append(reinterpret_cast<const char*>(&instance), sizeof(instance));
  key.append(reinterpret_cast<const char*>(&family), sizeof(family));
  for (std::string_view v : values) {
    key.append(v.data(), v.size());
    key.push_back('\x1f');
  }
  return key;
}

constexpr double kPicoPerUsdDouble = 1e12;

}  // namespace

GatewayMetrics::GatewayMetrics(std::shared_ptr<prometheus::Registry> registry,
                               size_t feature_label_limit)
    : registry_(std::move(registry)),
      instance_id_(g_next_instance_id.fetch_add(1)),
      feature_cap_(feature_label_limit),
      requests_(prometheus::BuildCounter()
                    .Name("tollgate_gateway_requests_total")
                    .Help("HTTP requests served, by route, status and the deployment that served")
                    .Register(*registry_)),
      tokens_(prometheus::BuildCounter()
                  .Name("tollgate_gateway_tokens_total")
                  .Help("Tokens served, by type (input, cached_input, cache_write, output, "
                        "reasoning); cached/cache_write are subsets of input, reasoning of output")
                  .Register(*registry_)),
      cost_(prometheus::BuildCounter()
                .Name("tollgate_gateway_cost_usd_total")
                .Help("Cost of served requests in USD (display only; the ledger is the record)")
                .Register(*registry_)),
      request_duration_(prometheus::BuildHistogram()
                            .Name("tollgate_gateway_request_duration_seconds")
                            .Help("Time from request read to response complete")
                            .Register(*registry_)),
      upstream_duration_(prometheus::BuildHistogram()
                             .Name("tollgate_gateway_upstream_duration_seconds")
                             .Help("Time spent on the successful upstream attempt")
                             .Register(*registry_)),
      ttft_(prometheus::BuildHistogram()
                .Name("tollgate_gateway_ttft_seconds")
                .Help("Streaming: time from request read to the first content chunk")
                .Register(*registry_)),
      time_between_tokens_(prometheus::BuildHistogram()
                               .Name("tollgate_gateway_time_between_tokens_seconds")
                               .Help("Streaming: gap between consecutive content chunks from "
                                     "the upstream, as the gateway received them")
                               .Register(*registry_)),
      overhead_(&prometheus::BuildHistogram()
                     .Name("tollgate_gateway_overhead_seconds")
                     .Help("Gateway time per request: total minus time spent upstream")
                     .Register(*registry_)
                     .Add({}, LatencyBucketsSeconds())),
      fallbacks_(prometheus::BuildCounter()
                     .Name("tollgate_gateway_fallbacks_total")
                     .Help("Requests moved to the next candidate after a failed attempt")
                     .Register(*registry_)),
      upstream_errors_(prometheus::BuildCounter()
                           .Name("tollgate_gateway_upstream_errors_total")
                           .Help("Failed upstream attempts by kind (connect, tls, timeout, "
                                 "http_429, http_5xx, http_auth, protocol, stream)")
                           .Register(*registry_)),
      ledger_queue_depth_(&prometheus::BuildGauge()
                               .Name("tollgate_gateway_ledger_queue_depth")
                               .Help("Usage events waiting to be batched for the ledger")
                               .Register(*registry_)
                               .Add({})),
      ledger_unacked_(&prometheus::BuildGauge()
                           .Name("tollgate_gateway_ledger_unacked_events")
                           .Help("Usage events sent or batched but not yet acknowledged")
                           .Register(*registry_)
                           .Add({})),
      ledger_events_(prometheus::BuildCounter()
                         .Name("tollgate_gateway_ledger_events_total")
                         .Help("Usage events by result: sent (written to the stream, resends "
                               "included), acked, dropped (queue full or shutdown)")
                         .Register(*registry_)),
      active_connections_(&prometheus::BuildGauge()
                               .Name("tollgate_gateway_active_connections")
                               .Help("Open client connections")
                               .Register(*registry_)
                               .Add({})) {
  // Pre-create the ledger series so dashboards see zeros before the first event.
  for (const char* result : {"sent", "acked", "dropped"}) ledger_events_.Add({{"result", result}});

  router_fallback_decisions_ =
      &prometheus::BuildCounter()
           .Name("tollgate_gateway_router_fallback_decisions_total")
           .Help(
               "Requests routed from the Watch catalog snapshot because Router.Route failed or "
               "exceeded its deadline")
           .Register(*registry_)
           .Add({});
  auto& cache = prometheus::BuildCounter()
                    .Name("tollgate_gateway_route_cache_lookups_total")
                    .Help("Decision-cache lookups by result (hit, miss)")
                    .Register(*registry_);
  route_cache_hits_ = &cache.Add({{"result", "hit"}});
  route_cache_misses_ = &cache.Add({{"result", "miss"}});
  outcome_queue_depth_ = &prometheus::BuildGauge()
                              .Name("tollgate_gateway_outcome_queue_depth")
                              .Help("Attempt outcomes waiting to be reported to the router")
                              .Register(*registry_)
                              .Add({});
  outcomes_ = &prometheus::BuildCounter()
                   .Name("tollgate_gateway_outcomes_total")
                   .Help(
                       "Attempt outcomes for Router.ReportOutcomes by result: sent, dropped "
                       "(queue full), failed (the report RPC failed)")
                   .Register(*registry_);
  for (const char* result : {"sent", "dropped", "failed"}) outcomes_->Add({{"result", result}});
  watch_events_ = &prometheus::BuildCounter()
                       .Name("tollgate_gateway_router_watch_events_total")
                       .Help(
                           "Router Watch stream messages by kind (snapshot, health, heartbeat) "
                           "and stream (re)connections (reconnect)")
                       .Register(*registry_);
  log_queue_depth_ = &prometheus::BuildGauge()
                          .Name("tollgate_gateway_log_queue_depth")
                          .Help("Log lines queued for the log writer thread (bounded: "
                                "services/common/logging.h)")
                          .Register(*registry_)
                          .Add({});
  log_lines_dropped_ = &prometheus::BuildCounter()
                            .Name("tollgate_gateway_log_lines_dropped_total")
                            .Help("Log lines dropped because the log queue was full (stderr "
                                  "blocked); request threads never wait for log output")
                            .Register(*registry_)
                            .Add({});
  snapshot_held_ = &prometheus::BuildGauge()
                        .Name("tollgate_gateway_router_snapshot_held")
                        .Help("1 once a catalog snapshot from the router's Watch stream is held")
                        .Register(*registry_)
                        .Add({});
  guardrail_actions_ = &prometheus::BuildCounter()
                            .Name("tollgate_gateway_guardrail_actions_total")
                            .Help(
                                "Guardrail actions by team, detector (a PII detector, "
                                "pattern:<rule>, max_input_tokens, max_request_bytes) and action "
                                "(block, redact: matches replaced, log: matches only logged)")
                            .Register(*registry_);
}

template <typename T>
T& GatewayMetrics::Child(prometheus::Family<T>& family,
                         std::initializer_list<std::string_view> names,
                         std::initializer_list<std::string_view> values) {
  auto& cache = ChildCache();
  std::string key = CacheKey(instance_id_, &family, values);
  auto it = cache.find(key);
  if (it != cache.end()) return *static_cast<T*>(it->second);
  std::map<std::string, std::string> labels;
  auto name = names.begin();
  for (std::string_view v : values) labels.emplace(std::string(*name++), std::string(v));
  T* child = &family.Add(labels);
  cache.emplace(std::move(key), child);
  return *child;
}

prometheus::Histogram& GatewayMetrics::HistogramChild(
    prometheus::Family<prometheus::Histogram>& family, std::string_view name,
    std::string_view value) {
  auto& cache = ChildCache();
  std::string key = CacheKey(instance_id_, &family, {value});
  auto it = cache.find(key);
  if (it != cache.end()) return *static_cast<prometheus::Histogram*>(it->second);
  prometheus::Histogram* child =
      &family.Add({{std::string(name), std::string(value)}}, LatencyBucketsSeconds());
  cache.emplace(std::move(key), child);
  return *child;
}

void GatewayMetrics::RecordRequest(std::string_view route, int status, std::string_view model,
                                   std::string_view deployment, std::string_view provider,
                                   std::string_view team) {
  char status_text[16];
  const int n = snprintf(status_text, sizeof(status_text), "%d", status);
  Child(requests_, {"route", "status", "model", "deployment", "provider", "team"},
        {route, std::string_view(status_text, n), model, deployment, provider, team})
      .Increment();
}

void GatewayMetrics::RecordTokens(const v1::TokenUsage& usage, std::string_view model,
                                  std::string_view provider, std::string_view team) {
  const std::pair<const char*, int64_t> counts[] = {
      {"input", usage.input_tokens()},
      {"cached_input", usage.cached_input_tokens()},
      {"cache_write", usage.cache_write_5m_tokens() + usage.cache_write_1h_tokens()},
      {"output", usage.output_tokens()},
      {"reasoning", usage.reasoning_tokens()},
  };
  for (const auto& [type, count] : counts) {
    if (count <= 0) continue;
    Child(tokens_, {"token_type", "model", "provider", "team"}, {type, model, provider, team})
        .Increment(static_cast<double>(count));
  }
}

void GatewayMetrics::RecordCost(int64_t cost_pico, std::string_view team, std::string_view feature,
                                std::string_view model, std::string_view provider,
                                std::string_view customer, std::string_view api_key) {
  if (cost_pico <= 0) return;
  const double usd = static_cast<double>(cost_pico) / kPicoPerUsdDouble;
  const std::string feature_label = CappedLabel(feature_cap_, feature);
  Child(cost_, {"team", "feature", "model", "provider"}, {team, feature_label, model, provider})
      .Increment(usd);
  if (customer_cost_ != nullptr && !customer.empty()) {
    const std::string label = CappedLabel(*attribution_cap_customer_, customer);
    Child(*customer_cost_, {"customer"}, {label}).Increment(usd);
  }
  if (api_key_cost_ != nullptr && !api_key.empty()) {
    const std::string label = CappedLabel(*attribution_cap_api_key_, api_key);
    Child(*api_key_cost_, {"api_key"}, {label}).Increment(usd);
  }
}

void GatewayMetrics::ObserveRequestDuration(std::string_view route, double seconds) {
  HistogramChild(request_duration_, "route", route).Observe(seconds);
}

void GatewayMetrics::ObserveUpstreamDuration(std::string_view provider, double seconds) {
  HistogramChild(upstream_duration_, "provider", provider).Observe(seconds);
}

void GatewayMetrics::ObserveTtft(std::string_view provider, double seconds) {
  HistogramChild(ttft_, "provider", provider).Observe(seconds);
}

void GatewayMetrics::ObserveTimeBetweenTokens(std::string_view provider, double seconds) {
  HistogramChild(time_between_tokens_, "provider", provider).Observe(seconds);
}

void GatewayMetrics::ObserveOverhead(double seconds) { overhead_->Observe(seconds); }

void GatewayMetrics::RecordFallback(std::string_view from_deployment) {
  Child(fallbacks_, {"from_deployment"}, {from_deployment}).Increment();
}

void GatewayMetrics::RecordUpstreamError(std::string_view deployment, std::string_view kind) {
  Child(upstream_errors_, {"deployment", "kind"}, {deployment, kind}).Increment();
}

void GatewayMetrics::AddLedgerEvents(std::string_view result, double n) {
  if (n <= 0) return;
  Child(ledger_events_, {"result"}, {result}).Increment(n);
}

std::string GatewayMetrics::CappedLabel(LabelCap& cap, std::string_view value) {
  if (value.empty()) return std::string();
  // Per-thread memo of admitted values, so the hot path takes the lock only once per value.
  thread_local absl::flat_hash_set<std::string> admitted;  // keys: instance, cap, value
  std::string key(reinterpret_cast<const char*>(&instance_id_), sizeof(instance_id_));
  const LabelCap* cap_ptr = &cap;
  key.append(reinterpret_cast<const char*>(&cap_ptr), sizeof(cap_ptr));
  key.append(value.data(), value.size());
  if (admitted.contains(key)) return std::string(value);
  {
    absl::MutexLock lock(&cap.mu);
    const absl::string_view v(value.data(), value.size());
    if (!cap.admitted.contains(v)) {
      if (cap.admitted.size() >= cap.limit) return "other";
      cap.admitted.emplace(v);
    }
  }
  admitted.insert(std::move(key));
  return std::string(value);
}

void GatewayMetrics::EnableAttributionLabels(bool customer, bool api_key, size_t limit) {
  if (customer) {
    attribution_cap_customer_ = std::make_unique<LabelCap>(limit);
    customer_cost_ = &prometheus::BuildCounter()
                          .Name("tollgate_gateway_customer_cost_usd_total")
                          .Help("Spend in USD by customer (opt-in: --metrics_customer_label; "
                                "values beyond --attribution_label_limit are \"other\")")
                          .Register(*registry_);
  }
  if (api_key) {
    attribution_cap_api_key_ = std::make_unique<LabelCap>(limit);
    api_key_cost_ = &prometheus::BuildCounter()
                         .Name("tollgate_gateway_api_key_cost_usd_total")
                         .Help("Spend in USD by virtual API key id (opt-in: "
                               "--metrics_api_key_label; values beyond "
                               "--attribution_label_limit are \"other\")")
                         .Register(*registry_);
  }
}

void GatewayMetrics::AddOutcomes(std::string_view result, double n) {
  Child(*outcomes_, {"result"}, {result}).Increment(n);
}

void GatewayMetrics::RecordWatchEvent(std::string_view kind) {
  Child(*watch_events_, {"kind"}, {kind}).Increment();
}

void GatewayMetrics::RecordGuardrailAction(std::string_view team, std::string_view detector,
                                           std::string_view action, double n) {
  Child(*guardrail_actions_, {"team", "detector", "action"}, {team, detector, action}).Increment(n);
}

void GatewayMetrics::UpdateLogQueue() {
  const LogQueueStats stats = GetLogQueueStats();
  log_queue_depth_->Set(static_cast<double>(stats.depth));
  const double dropped = static_cast<double>(stats.dropped);
  if (dropped > log_lines_dropped_->Value()) {
    log_lines_dropped_->Increment(dropped - log_lines_dropped_->Value());
  }
}

}  // namespace tollgate::gateway
