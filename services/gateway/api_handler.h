#pragma once
// The gateway's HTTP routes:
//   POST /v1/chat/completions   ChatHandler (OpenAI Chat Completions)
//   POST /v1/messages           ChatHandler, Anthropic Messages ingress (x-api-key accepted)
//   POST /v1/embeddings         ChatHandler, embeddings (deployments with "embeddings")
//   GET  /v1/models             Router.ListModels as an OpenAI list   (auth required)
//   GET  /v1/models/{id}        one model, by id or alias; 404 model_not_found (auth required)
//   GET  /healthz               200 while the process serves HTTP
//   GET  /readyz                200 when the router is reachable (RouterClient::Ready) and the
//                               server is not draining; 503 otherwise
//   GET  /metrics               Prometheus text format
// Unknown paths get 404 and known paths with the wrong method 405 (with Allow), both as
// OpenAI-shaped JSON errors. /healthz, /readyz and /metrics also answer HEAD.
//
// Thread-safe.

#include <memory>
#include <string_view>

#include "services/gateway/auth.h"
#include "services/gateway/chat_handler.h"
#include "services/gateway/gateway_metrics.h"
#include "services/gateway/http_server.h"
#include "services/gateway/router_client.h"

namespace tollgate::gateway {

class ApiHandler : public HttpHandler {
 public:
  // Dependencies must outlive the handler.
  ApiHandler(ChatHandler* chat, const KeyStore* keys, RouterClient* router,
             GatewayMetrics* metrics);

  void Handle(std::shared_ptr<HttpSession> session, HttpRequest request) override;
  void OnRejected(std::string_view target, int status) override;

  // Optional (call before serving): while `ledger`'s usage spool is full under policy reject,
  // chat requests get 503 spool_full with retry-after instead of being served unrecorded.
  void SetLedger(LedgerClient* ledger) { ledger_ = ledger; }

  // The bounded "route" label of a request path.
  static std::string_view RouteLabel(std::string_view path);

 private:
  void Models(std::shared_ptr<HttpSession> session, HttpRequest request, std::string model_id);
  void Finish(HttpSession& session, HttpResponse&& response, std::string_view route,
              std::chrono::steady_clock::time_point start, std::string_view team = {});

  ChatHandler* const chat_;
  const KeyStore* const keys_;
  RouterClient* const router_;
  GatewayMetrics* const metrics_;
  LedgerClient* ledger_ = nullptr;
};

}  // namespace tollgate::gateway
