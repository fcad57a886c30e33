#pragma once
// POST /v1/chat/completions (and POST /v1/messages through the Anthropic ingress): the gateway's
// hot path.
//
// For each request, on the connection's own thread and never blocking it:
//   1. authenticate the virtual key (401 invalid_api_key);
//   2. parse the body once (Boost.JSON, per-request monotonic storage) and validate it (400,
//      naming the field); attribute it (team/key/environment from the key, feature, customer,
//      tags, environment from headers; 400 on malformed attribution headers); apply the key's
//      guardrails (guardrails.h: 400 / 413 when blocked, PII redacted in the body in place);
//   3. route: a decision-cache hit (per-thread RouteCache, on by default), else Router.Route
//      (asynchronous gRPC, deadline; 404 model_not_found, 400 when no deployment can serve the
//      request, 403 model_not_allowed when the team may not use the model); when Route fails or
//      times out, route from the Watch snapshot in priority order (SnapshotStore), else 503 +
//      retry-after;
//   4. try the candidates in order (at most max_attempts, within max_total_retry): connect
//      errors, timeouts, 429 and 5xx before any byte reached the client move on to the next
//      candidate after a jittered backoff; a candidate whose known retry-after exceeds the
//      remaining budget is skipped (a shorter one is waited out); a 400 context_length_exceeded
//      moves on to a candidate with a larger context window (passed through when there is none);
//      other upstream 4xx are passed through as they are; when every attempt failed the client
//      gets 429 (with retry-after), 504 (timeouts) or 502 upstream_error; every attempt's outcome
//      goes to the OutcomeReporter (Router.ReportOutcomes);
//   5. the deployment's dialect adapter (providers/provider.h) translates the request and the
//      answer; a parameter the dialect cannot honour skips that candidate (400 naming it when no
//      candidate could take the request); non-stream: the (translated) body with usage priced
//      into x-tollgate-cost-usd; stream: forward every translated SSE event as soon as it
//      arrives, hiding the usage-only chunk from clients that did not ask for it, and end a
//      broken stream with an error event;
//   6. record a UsageEvent (every request after authentication, failures included) in the
//      ledger queue and the metrics.
//
// Response headers: x-tollgate-request-id (always), x-tollgate-deployment,
// x-tollgate-provider and x-tollgate-route-reason ("<policy>: <candidate reason>", when a
// deployment answered), x-tollgate-cost-usd (non-stream success). Request header
// x-tollgate-route-class names the request class for the router's classifier.
//
// Thread-safe: one handler serves all worker threads; per-thread state lives in GatewayWorker.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "boost/asio/awaitable.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ssl/context.hpp"
#include "services/gateway/auth.h"
#include "services/gateway/catalog_snapshot.h"
#include "services/gateway/gateway_metrics.h"
#include "services/gateway/guardrails.h"
#include "services/gateway/http_server.h"
#include "services/gateway/ledger_client.h"
#include "services/gateway/outcome_reporter.h"
#include "services/gateway/quota_manager.h"
#include "services/gateway/route_cache.h"
#include "services/gateway/router_client.h"
#include "services/gateway/upstream_client.h"
#include "services/router/request_classifier.h"

namespace tollgate::gateway {

// The per-thread state of a gateway worker: its upstream connection pool and routing state
// (decision cache, random source, known retry-after cooldowns). Used only on its thread.
class GatewayWorker : public WorkerState {
 public:
  GatewayWorker(boost::asio::io_context& ioc, boost::asio::ssl::context* tls,
                UpstreamOptions options)
      : pool_(ioc, tls, options), rng_(std::random_device{}()) {}
  ~GatewayWorker() override { pool_.Close(); }

  UpstreamPool& pool() { return pool_; }

  // The thread's decision cache, created on first use over `generation`.
  RouteCache& route_cache(const std::atomic<uint64_t>* generation) {
    if (route_cache_ == nullptr) route_cache_ = std::make_unique<RouteCache>(generation);
    return *route_cache_;
  }
  std::mt19937_64& rng() { return rng_; }
  // Deployment id -> until when an upstream asked (retry-after) not to be called.
  absl::flat_hash_map<std::string, std::chrono::steady_clock::time_point>& cooldowns() {
    return cooldowns_;
  }
  // The classifier configuration of the snapshot at `generation` (reloaded when it changed).
  const router::ClassifierConfig* classifier(const SnapshotStore& store);

 private:
  UpstreamPool pool_;
  std::unique_ptr<RouteCache> route_cache_;
  std::mt19937_64 rng_;
  absl::flat_hash_map<std::string, std::chrono::steady_clock::time_point> cooldowns_;
  uint64_t classifier_generation_ = 0;
  std::optional<router::ClassifierConfig> classifier_;
};

struct ChatHandlerOptions {
  int max_attempts = 3;
  // Budget for fallback: no new attempt starts later than this after the first one started.
  std::chrono::milliseconds max_total_retry{30000};
  // Base backoff before attempt n+1: base * 2^(n-1), jittered to [half, full].
  std::chrono::milliseconds retry_backoff{25};
  // Reuse Route answers within their cache scope and TTL (needs a SnapshotStore).
  bool route_cache = true;
  // Route every request from the Watch snapshot in priority order without calling Router.Route
  // (no policies, no health beyond what the snapshot says): the "no-routing" baseline the
  // benchmark compares the decision cache against. Requests the snapshot cannot route still go
  // to the router.
  bool snapshot_routing_only = false;
  size_t max_upstream_body_bytes = 16 * 1024 * 1024;
  size_t max_stream_event_bytes = 1024 * 1024;
  // One structured "request" log line (info) per request. The usage event in the ledger and
  // the metrics hold the same facts; off saves a log-thread hand-off and a write per request.
  bool access_log = true;
};

struct ChatContext;

// The client-facing API a request arrived on. Both are served by the same pipeline over the
// internal OpenAI form; kMessages (POST /v1/messages, Anthropic-compatible) translates the
// request in and every answer, error and stream event out (messages_ingress.h).
// kEmbeddings (POST /v1/embeddings) uses the same routing, fallback and accounting, non-stream.
enum class ChatIngress { kChatCompletions, kMessages, kEmbeddings };

class ChatHandler {
 public:
  // Dependencies must outlive the handler. Sessions passed to Handle must belong to a server whose
  // workers are GatewayWorkers.
  ChatHandler(ChatHandlerOptions options, const KeyStore* keys, RouterClient* router,
              LedgerClient* ledger, GatewayMetrics* metrics);

  // Optional routing collaborators (call before serving; both must outlive the handler): the
  // Watch snapshot (router fallback, decision-cache invalidation and classifier) and the outcome
  // reporter. Null: no snapshot fallback / no cache / no outcome reports.
  void SetRouting(SnapshotStore* snapshots, OutcomeReporter* outcomes) {
    snapshots_ = snapshots;
    outcomes_ = outcomes;
  }

  // Optional (call before serving; must outlive the handler): guardrails applied to every
  // request after attribution and before routing (guardrails.h). Null: none.
  void SetGuardrails(const Guardrails* guardrails) { guardrails_ = guardrails; }

  // Optional (call before serving; must outlive the handler): budgets and rate limits
  // (quota_manager.h). After routing, a request under a hard quota reserves its worst case from
  // the gateway's leases (waiting off the I/O thread when a lease must grow) or is refused with
  // 429; the reservation is settled with the real usage when the request is recorded. Null: none.
  void SetQuotas(QuotaManager* quotas) { quotas_ = quotas; }

  void Handle(std::shared_ptr<HttpSession> session, HttpRequest request,
              ChatIngress ingress = ChatIngress::kChatCompletions);

 private:
  enum class Outcome { kDone, kNext };
  struct Failure;

  boost::asio::awaitable<void> Serve(std::unique_ptr<ChatContext> context);
  boost::asio::awaitable<absl::StatusOr<v1::RouteResponse>> Route(ChatContext& ctx);
  boost::asio::awaitable<Outcome> Attempt(ChatContext& ctx, UpstreamPool& pool,
                                          const v1::Deployment& deployment, Failure& last,
                                          bool larger_context_available);
  void ReportOutcome(ChatContext& ctx, const v1::Deployment& d, int64_t start_unix_ms,
                     unsigned http_status, v1::OutcomeErrorKind kind, int64_t latency_us,
                     int64_t ttft_us, const v1::TokenUsage* usage, int64_t retry_after_ms);
  boost::asio::awaitable<Outcome> ServeNonStream(ChatContext& ctx, const v1::Deployment& d,
                                                 UpstreamExchange& exchange,
                                                 std::chrono::steady_clock::time_point start,
                                                 Failure& last);
  boost::asio::awaitable<Outcome> ServeStream(ChatContext& ctx, const v1::Deployment& d,
                                              UpstreamExchange& exchange,
                                              std::chrono::steady_clock::time_point start);

  void ReplyError(ChatContext& ctx, unsigned status, std::string_view type, std::string_view code,
                  std::string_view param, std::string_view message,
                  std::string_view retry_after = {}, bool should_retry = true);
  // Reserves the request's worst case under its hard quotas; false when refused (answered).
  boost::asio::awaitable<bool> AdmitQuotas(ChatContext& ctx);
  void FailAllAttempts(ChatContext& ctx, const Failure& last);
  // Records the request's outcome: usage event to the ledger (in the spool's file when this
  // returns, see LedgerClient::Enqueue), metrics, log line. Moves ctx.event out.
  void Record(ChatContext& ctx, const v1::Deployment* served, unsigned http_status,
              std::string_view error_code, const v1::TokenUsage& usage, int64_t cost_pico);

  const ChatHandlerOptions options_;
  const KeyStore* const keys_;
  RouterClient* const router_;
  LedgerClient* const ledger_;
  GatewayMetrics* const metrics_;
  SnapshotStore* snapshots_ = nullptr;
  OutcomeReporter* outcomes_ = nullptr;
  const Guardrails* guardrails_ = nullptr;
  QuotaManager* quotas_ = nullptr;
};

}  // namespace tollgate::gateway
