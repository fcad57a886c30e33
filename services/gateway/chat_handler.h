#pragma once
// POST /v1/chat/completions: the gateway's hot path.
//
// For each request, on the connection's own thread and never blocking it:
//   1. authenticate the virtual key (401 invalid_api_key);
//   2. parse the body once (Boost.JSON, per-request monotonic storage) and validate it (400,
//      naming the field); attribute it (team/key/environment from the key, feature, customer,
//      tags, environment from headers; 400 on malformed attribution headers);
//   3. Router.Route (asynchronous gRPC, deadline; 404 model_not_found, 400 when no deployment
//      can serve the request, 503 + retry-after when the router is unavailable);
//   4. try the candidates in order (at most max_attempts): connect errors, timeouts, 429 and 5xx
//      before any byte reached the client move on to the next candidate; other upstream 4xx are
//      passed through as they are; when every attempt failed the client gets 429 (with
//      retry-after), 504 (timeouts) or 502 upstream_error, after the last attempt's failure;
//   5. non-stream: forward the upstream body unchanged, with usage priced into
//      x-tollgate-cost-usd; stream: forward every SSE event as soon as it arrives, hiding the
//      usage-only chunk from clients that did not ask for it, and end a broken stream with an
//      error event;
//   6. record a UsageEvent (every request after authentication, failures included) in the
//      ledger queue and the metrics.
//
// Response headers: x-tollgate-request-id (always), x-tollgate-deployment and
// x-tollgate-provider (when a deployment answered), x-tollgate-cost-usd (non-stream success).
//
// Thread-safe: one handler serves all worker threads; per-thread state lives in GatewayWorker.

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "boost/asio/awaitable.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ssl/context.hpp"
#include "services/gateway/auth.h"
#include "services/gateway/gateway_metrics.h"
#include "services/gateway/http_server.h"
#include "services/gateway/ledger_client.h"
#include "services/gateway/router_client.h"
#include "services/gateway/upstream_client.h"

namespace tollgate::gateway {

// The per-thread state of a gateway worker: its upstream connection pool.
class GatewayWorker : public WorkerState {
 public:
  GatewayWorker(boost::asio::io_context& ioc, boost::asio::ssl::context* tls,
                UpstreamOptions options)
      : pool_(ioc, tls, options) {}
  ~GatewayWorker() override { pool_.Close(); }

  UpstreamPool& pool() { return pool_; }

 private:
  UpstreamPool pool_;
};

struct ChatHandlerOptions {
  int max_attempts = 3;
  size_t max_upstream_body_bytes = 16 * 1024 * 1024;
  size_t max_stream_event_bytes = 1024 * 1024;
};

struct ChatContext;

class ChatHandler {
 public:
  // Dependencies must outlive the handler. Sessions passed to Handle must belong to a server whose
  // workers are GatewayWorkers.
  ChatHandler(ChatHandlerOptions options, const KeyStore* keys, RouterClient* router,
              LedgerClient* ledger, GatewayMetrics* metrics);

  void Handle(std::shared_ptr<HttpSession> session, HttpRequest request);

 private:
  enum class Outcome { kDone, kNext };
  struct Failure;

  boost::asio::awaitable<void> Serve(std::unique_ptr<ChatContext> context);
  boost::asio::awaitable<absl::StatusOr<v1::RouteResponse>> Route(ChatContext& ctx);
  boost::asio::awaitable<Outcome> Attempt(ChatContext& ctx, UpstreamPool& pool,
                                          const v1::Deployment& deployment, Failure& last);
  boost::asio::awaitable<Outcome> ServeNonStream(ChatContext& ctx, const v1::Deployment& d,
                                                 UpstreamExchange& exchange,
                                                 std::chrono::steady_clock::time_point start,
                                                 Failure& last);
  boost::asio::awaitable<Outcome> ServeStream(ChatContext& ctx, const v1::Deployment& d,
                                              UpstreamExchange& exchange,
                                              std::chrono::steady_clock::time_point start);

  void ReplyError(ChatContext& ctx, unsigned status, std::string_view type, std::string_view code,
                  std::string_view param, std::string_view message,
                  std::string_view retry_after = {});
  void FailAllAttempts(ChatContext& ctx, const Failure& last);
  // Records the request's outcome: usage event to the ledger, metrics, log line.
  void Record(ChatContext& ctx, const v1::Deployment* served, unsigned http_status,
              std::string_view error_code, const v1::TokenUsage& usage, int64_t cost_pico);

  const ChatHandlerOptions options_;
  const KeyStore* const keys_;
  RouterClient* const router_;
  LedgerClient* const ledger_;
  GatewayMetrics* const metrics_;
};

}  // namespace tollgate::gateway
