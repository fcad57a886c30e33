#include "services/gateway/chat_handler.h"

#include <cstdlib>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/as_tuple.hpp"
#include "boost/asio/async_result.hpp"
#include "boost/asio/co_spawn.hpp"
#include "boost/asio/use_awaitable.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/http/chunk_encode.hpp"
#include "boost/beast/http/empty_body.hpp"
#include "boost/beast/http/serializer.hpp"
#include "boost/beast/http/write.hpp"
#include "boost/json/monotonic_resource.hpp"
#include "boost/json/parse.hpp"
#include "services/common/logging.h"
#include "services/common/money.h"
#include "services/gateway/attribution.h"
#include "services/gateway/http_util.h"
#include "services/gateway/openai_dialect.h"
#include "services/gateway/sse_parser.h"

namespace tollgate::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kRoute = "/v1/chat/completions";
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr size_t kMaxPassthroughBodyBytes = 1024 * 1024;
constexpr unsigned kJsonMaxDepth = 64;

int64_t Micros(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

int64_t NowUnixMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The provider key named by a deployment's api_key_env. The environment is read once per thread
// and cached; the value is never logged.
std::string ProviderApiKey(const std::string& env) {
  thread_local absl::flat_hash_map<std::string, std::string> cache;
  auto it = cache.find(env);
  if (it != cache.end()) return it->second;
  const char* value = env.empty() ? nullptr : std::getenv(env.c_str());
  if (!env.empty() && (value == nullptr || *value == '\0')) {
    LogWarn("provider API key environment variable is not set", {{"api_key_env", env}});
  }
  return cache.emplace(env, value ? value : "").first->second;
}

std::string_view HeaderValue(const HttpRequest& request, std::string_view name) {
  auto it = request.find(name);
  return it == request.end() ? std::string_view() : std::string_view(it->value());
}

v1::TokenUsage EstimatedUsage(int64_t input_tokens, int64_t output_bytes) {
  v1::TokenUsage usage;
  usage.set_input_tokens(input_tokens);
  usage.set_output_tokens(EstimateTokens(output_bytes));
  usage.set_estimated(true);
  return usage;
}

int64_t PriceOrZero(const v1::TokenUsage& usage, const v1::UnitPrices& prices,
                    const std::string& request_id) {
  absl::StatusOr<int64_t> cost = PriceUsage(usage, prices);
  if (!cost.ok()) {
    LogError("cannot price usage",
             {{"request_id", request_id}, {"error", std::string(cost.status().message())}});
    return 0;
  }
  return *cost;
}

void SetServedHeaders(http::fields& headers, const std::string& request_id,
                      const v1::Deployment& d) {
  headers.set(kRequestIdHeader, request_id);
  headers.set(kDeploymentHeader, d.id());
  headers.set(kProviderHeader, d.provider());
}

// Writes one chunk of a chunked response; false when the client is gone.
asio::awaitable<bool> WriteChunk(beast::tcp_stream& stream, std::string_view data,
                                 std::chrono::milliseconds timeout) {
  stream.expires_after(timeout);
  auto [ec, n] = co_await asio::async_write(
      stream, http::make_chunk(asio::const_buffer(data.data(), data.size())), kUseTuple);
  co_return !ec;
}

asio::awaitable<bool> WriteLastChunk(beast::tcp_stream& stream, std::chrono::milliseconds timeout) {
  stream.expires_after(timeout);
  auto [ec, n] = co_await asio::async_write(stream, http::make_chunk_last(), kUseTuple);
  co_return !ec;
}

}  // namespace

// Everything about one request; owned by its coroutine.
struct ChatContext {
  std::shared_ptr<HttpSession> session;
  HttpRequest request;
  std::string request_id;
  Clock::time_point start;
  bool keep_alive = true;
  ApiKeyInfo key;
  std::optional<json::monotonic_resource> json_storage;
  json::value body;
  ChatRequestInfo info;
  int64_t estimated_input_tokens = 0;
  std::string model_label;  // catalog-resolved model; bounded label values only
  v1::RouteResponse route;
  v1::UsageEvent event;  // filled as the request progresses; attempts appended
};

// Why the last attempt failed, for the response when every attempt failed.
struct ChatHandler::Failure {
  unsigned upstream_status = 0;  // 0: no HTTP response
  UpstreamErrorKind kind = UpstreamErrorKind::kNone;
  std::string deployment;
  std::string reason;       // short, client-safe
  std::string retry_after;  // from an upstream 429
};

ChatHandler::ChatHandler(ChatHandlerOptions options, const KeyStore* keys, RouterClient* router,
                         LedgerClient* ledger, GatewayMetrics* metrics)
    : options_(options), keys_(keys), router_(router), ledger_(ledger), metrics_(metrics) {}

void ChatHandler::Handle(std::shared_ptr<HttpSession> session, HttpRequest request) {
  auto owned = std::make_unique<ChatContext>();
  ChatContext& ctx = *owned;
  ctx.start = session->request_start();
  ctx.session = std::move(session);
  ctx.request = std::move(request);
  ctx.keep_alive = ctx.request.keep_alive();
  ctx.request_id = NewRequestId();
  ctx.event.set_event_id(ctx.request_id);
  ctx.event.set_request_id(ctx.request_id);
  ctx.event.set_time_unix_us(NowUnixMicros() - Micros(Clock::now() - ctx.start));
  ctx.event.set_endpoint(std::string(kRoute));

  absl::StatusOr<ApiKeyInfo> key = Authenticate(*keys_, HeaderValue(ctx.request, "authorization"));
  if (!key.ok()) {
    ReplyError(ctx, 401, "invalid_request_error", "invalid_api_key", "",
               std::string(key.status().message()));
    metrics_->RecordRequest(kRoute, 401, "", "", "", "");
    metrics_->ObserveRequestDuration(kRoute, Seconds(Clock::now() - ctx.start));
    LogInfo("request rejected", {{"request_id", ctx.request_id},
                                 {"route", kRoute},
                                 {"status", "401"},
                                 {"error_code", "invalid_api_key"}});
    return;
  }
  ctx.key = std::move(*key);
  ctx.event.mutable_attribution()->set_team(ctx.key.team);
  ctx.event.mutable_attribution()->set_api_key_id(ctx.key.id);
  ctx.event.mutable_attribution()->set_environment(ctx.key.environment);

  const std::string& text = ctx.request.body();
  ctx.json_storage.emplace(std::max<size_t>(1024, text.size() * 2));
  json::parse_options parse_options;
  parse_options.max_depth = kJsonMaxDepth;
  json::error_code ec;
  ctx.body = json::parse(text, ec, &*ctx.json_storage, parse_options);
  if (ec) {
    ReplyError(ctx, 400, "invalid_request_error", "invalid_json", "",
               absl::StrCat("We could not parse the JSON body of your request: ", ec.message()));
    Record(ctx, nullptr, 400, "invalid_json", v1::TokenUsage(), 0);
    return;
  }
  absl::StatusOr<ChatRequestInfo> info = ParseChatRequest(ctx.body);
  if (!info.ok()) {
    ReplyError(ctx, 400, "invalid_request_error", "invalid_request", ParamOf(info.status()),
               std::string(info.status().message()));
    Record(ctx, nullptr, 400, "invalid_request", v1::TokenUsage(), 0);
    return;
  }
  ctx.info = std::move(*info);
  ctx.event.set_requested_model(ctx.info.model);
  ctx.event.set_stream(ctx.info.stream);

  AttributionInputs in;
  in.team = ctx.key.team;
  in.api_key_id = ctx.key.id;
  in.key_environment = ctx.key.environment;
  in.feature = HeaderValue(ctx.request, kFeatureHeader);
  in.customer = HeaderValue(ctx.request, kCustomerHeader);
  in.tags = HeaderValue(ctx.request, kTagsHeader);
  in.environment = HeaderValue(ctx.request, kEnvironmentHeader);
  in.body_user = ctx.info.user;
  absl::StatusOr<v1::Attribution> attribution = BuildAttribution(in);
  if (!attribution.ok()) {
    ReplyError(ctx, 400, "invalid_request_error", "invalid_attribution",
               ParamOf(attribution.status()), std::string(attribution.status().message()));
    Record(ctx, nullptr, 400, "invalid_attribution", v1::TokenUsage(), 0);
    return;
  }
  *ctx.event.mutable_attribution() = std::move(*attribution);
  ctx.estimated_input_tokens = EstimateTokens(static_cast<int64_t>(text.size()));

  asio::any_io_executor executor = ctx.session->executor();
  std::string request_id = ctx.request_id;
  asio::co_spawn(executor, Serve(std::move(owned)),
                 [request_id = std::move(request_id)](std::exception_ptr error) {
                   if (!error) return;
                   // Serve does not throw by design (no throwing overloads are used); if it
                   // does, the session is dropped with the coroutine and its connection closes.
                   try {
                     std::rethrow_exception(error);
                   } catch (const std::exception& e) {
                     LogError("request failed with an exception",
                              {{"request_id", request_id}, {"error", e.what()}});
                   } catch (...) {
                     LogError("request failed with an exception", {{"request_id", request_id}});
                   }
                 });
}

asio::awaitable<absl::StatusOr<v1::RouteResponse>> ChatHandler::Route(ChatContext& ctx) {
  v1::RouteRequest request;
  request.set_request_id(ctx.request_id);
  request.set_model(ctx.info.model);
  *request.mutable_attribution() = ctx.event.attribution();
  request.set_estimated_input_tokens(ctx.estimated_input_tokens);
  request.set_max_output_tokens(ctx.info.max_output_tokens);
  request.set_stream(ctx.info.stream);
  for (const std::string& capability : ctx.info.required_capabilities) {
    request.add_required_capabilities(capability);
  }
  asio::any_io_executor executor = ctx.session->executor();
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable),
                                          void(absl::StatusOr<v1::RouteResponse>)>(
      [this, executor](auto handler, v1::RouteRequest request) {
        router_->Route(
            std::move(request), executor,
            [handler = std::move(handler)](absl::StatusOr<v1::RouteResponse> result) mutable {
              std::move(handler)(std::move(result));
            });
      },
      asio::use_awaitable, std::move(request));
}

asio::awaitable<void> ChatHandler::Serve(std::unique_ptr<ChatContext> owned) {
  ChatContext& ctx = *owned;
  absl::StatusOr<v1::RouteResponse> routed = co_await Route(ctx);
  if (!routed.ok()) {
    const std::string message(routed.status().message());
    switch (routed.status().code()) {
      case absl::StatusCode::kNotFound:
        ReplyError(ctx, 404, "invalid_request_error", "model_not_found", "model",
                   absl::StrCat("The model '", ctx.info.model, "' does not exist."));
        Record(ctx, nullptr, 404, "model_not_found", v1::TokenUsage(), 0);
        break;
      case absl::StatusCode::kFailedPrecondition:
        ReplyError(ctx, 400, "invalid_request_error", "no_eligible_deployment", "model", message);
        Record(ctx, nullptr, 400, "no_eligible_deployment", v1::TokenUsage(), 0);
        break;
      case absl::StatusCode::kInvalidArgument:
        ReplyError(ctx, 400, "invalid_request_error", "invalid_request", "", message);
        Record(ctx, nullptr, 400, "invalid_request", v1::TokenUsage(), 0);
        break;
      default:
        LogWarn("router call failed",
                {{"request_id", ctx.request_id},
                 {"grpc_code", absl::StatusCodeToString(routed.status().code())},
                 {"error", message}});
        ReplyError(ctx, 503, "server_error", "router_unavailable", "",
                   "The routing service is unavailable; retry shortly.", "1");
        Record(ctx, nullptr, 503, "router_unavailable", v1::TokenUsage(), 0);
        break;
    }
    co_return;
  }
  ctx.route = std::move(*routed);
  ctx.model_label = ctx.route.model();
  if (ctx.route.candidates_size() == 0) {
    ReplyError(ctx, 503, "server_error", "no_deployment", "",
               "No deployment is available for this model; retry shortly.", "1");
    Record(ctx, nullptr, 503, "no_deployment", v1::TokenUsage(), 0);
    co_return;
  }

  UpstreamPool& pool = static_cast<GatewayWorker*>(ctx.session->worker_state())->pool();
  const int attempts = std::min(options_.max_attempts, ctx.route.candidates_size());
  Failure last;
  for (int i = 0; i < attempts; ++i) {
    const v1::Deployment& deployment = ctx.route.candidates(i).deployment();
    const Outcome outcome = co_await Attempt(ctx, pool, deployment, last);
    if (outcome == Outcome::kDone) co_return;
    if (i + 1 < attempts) metrics_->RecordFallback(deployment.id());
  }
  FailAllAttempts(ctx, last);
}

asio::awaitable<ChatHandler::Outcome> ChatHandler::Attempt(ChatContext& ctx, UpstreamPool& pool,
                                                           const v1::Deployment& d, Failure& last) {
  const Clock::time_point attempt_start = Clock::now();
  v1::Attempt* record = ctx.event.add_attempts();
  record->set_deployment_id(d.id());
  auto fail = [&](unsigned status, UpstreamErrorKind kind, std::string_view metric_kind,
                  std::string reason, const std::string& detail) {
    record->set_http_status(static_cast<int32_t>(status));
    record->set_error(detail);
    record->set_latency_us(Micros(Clock::now() - attempt_start));
    metrics_->RecordUpstreamError(d.id(), metric_kind);
    LogWarn("upstream attempt failed", {{"request_id", ctx.request_id},
                                        {"deployment", d.id()},
                                        {"status", absl::StrCat(status)},
                                        {"error", detail}});
    last.upstream_status = status;
    last.kind = kind;
    last.deployment = d.id();
    last.reason = std::move(reason);
  };

  if (!d.dialect().empty() && d.dialect() != "openai") {
    fail(0, UpstreamErrorKind::kProtocol, "protocol", "unsupported provider dialect",
         absl::StrCat("unsupported dialect '", d.dialect(), "'"));
    co_return Outcome::kNext;
  }
  absl::StatusOr<UpstreamTarget> target = ParseBaseUrl(d.base_url());
  if (!target.ok()) {
    fail(0, UpstreamErrorKind::kProtocol, "protocol", "invalid deployment base_url",
         std::string(target.status().message()));
    co_return Outcome::kNext;
  }

  UpstreamExchange::Request request(http::verb::post,
                                    absl::StrCat(target->base_path, "/chat/completions"), 11);
  request.set(http::field::host, target->host_header);
  request.set(http::field::content_type, "application/json");
  request.set(http::field::accept, ctx.info.stream ? "text/event-stream" : "application/json");
  request.set(http::field::user_agent, "tollgate-gateway/0.1");
  const std::string api_key = ProviderApiKey(d.api_key_env());
  if (!api_key.empty()) request.set(http::field::authorization, absl::StrCat("Bearer ", api_key));
  request.keep_alive(true);
  request.body() = RewriteChatRequest(ctx.body.as_object(), d.upstream_model(), ctx.info.stream);
  request.prepare_payload();

  UpstreamExchange exchange(pool);
  absl::Status started = co_await exchange.Start(*target, request);
  if (!started.ok()) {
    const UpstreamErrorKind kind = exchange.error_kind();
    fail(0, kind, UpstreamErrorKindName(kind),
         kind == UpstreamErrorKind::kTimeout ? "timed out" : "connection failed",
         std::string(started.message()));
    co_return Outcome::kNext;
  }

  const unsigned status = exchange.status();
  if (status == 429 || status >= 500) {
    last.retry_after = std::string(exchange.header()[http::field::retry_after]);
    exchange.Finish();  // body unread: the connection is closed, not pooled
    fail(status, UpstreamErrorKind::kNone, status == 429 ? "http_429" : "http_5xx",
         absl::StrCat("upstream status ", status), absl::StrCat("upstream returned ", status));
    co_return Outcome::kNext;
  }
  if (status < 200 || status >= 300) {
    // The provider rejected the request itself (400, 401, 404, ...): another deployment would
    // most likely too, so the client gets the provider's answer as it is.
    absl::StatusOr<std::string> body = co_await exchange.ReadAll(kMaxPassthroughBodyBytes);
    if (!body.ok()) {
      const UpstreamErrorKind kind = exchange.error_kind();
      fail(status, kind, UpstreamErrorKindName(kind), absl::StrCat("upstream status ", status),
           std::string(body.status().message()));
      co_return Outcome::kNext;
    }
    exchange.Finish();
    record->set_http_status(static_cast<int32_t>(status));
    record->set_error(absl::StrCat("upstream returned ", status));
    record->set_latency_us(Micros(Clock::now() - attempt_start));
    HttpResponse response(static_cast<http::status>(status), 11);
    const auto content_type = exchange.header()[http::field::content_type];
    response.set(http::field::content_type,
                 content_type.empty() ? std::string_view("application/json")
                                      : std::string_view(content_type.data(), content_type.size()));
    SetServedHeaders(response, ctx.request_id, d);
    response.keep_alive(ctx.keep_alive);
    response.body() = std::move(*body);
    ctx.session->Reply(std::move(response));
    Record(ctx, &d, status, "upstream_rejected", v1::TokenUsage(), 0);
    co_return Outcome::kDone;
  }
  if (ctx.info.stream) co_return co_await ServeStream(ctx, d, exchange, attempt_start);
  co_return co_await ServeNonStream(ctx, d, exchange, attempt_start, last);
}

asio::awaitable<ChatHandler::Outcome> ChatHandler::ServeNonStream(ChatContext& ctx,
                                                                  const v1::Deployment& d,
                                                                  UpstreamExchange& exchange,
                                                                  Clock::time_point attempt_start,
                                                                  Failure& last) {
  v1::Attempt* record = ctx.event.mutable_attempts(ctx.event.attempts_size() - 1);
  const unsigned status = exchange.status();
  absl::StatusOr<std::string> body = co_await exchange.ReadAll(options_.max_upstream_body_bytes);
  if (!body.ok()) {
    // Nothing has reached the client yet, so the next candidate may still serve the request.
    const UpstreamErrorKind kind = exchange.error_kind();
    const std::string detail(body.status().message());
    record->set_http_status(static_cast<int32_t>(status));
    record->set_error(detail);
    record->set_latency_us(Micros(Clock::now() - attempt_start));
    metrics_->RecordUpstreamError(d.id(), UpstreamErrorKindName(kind));
    LogWarn("upstream attempt failed", {{"request_id", ctx.request_id},
                                        {"deployment", d.id()},
                                        {"status", absl::StrCat(status)},
                                        {"error", detail}});
    last.upstream_status = 0;
    last.kind = kind;
    last.deployment = d.id();
    last.reason = kind == UpstreamErrorKind::kTimeout    ? "timed out reading the response"
                  : kind == UpstreamErrorKind::kTooLarge ? "response too large"
                                                         : "response interrupted";
    co_return Outcome::kNext;
  }
  exchange.Finish();
  record->set_http_status(static_cast<int32_t>(status));
  record->set_latency_us(Micros(Clock::now() - attempt_start));

  ChatResponseUsage extracted = ExtractChatResponseUsage(*body);
  const v1::TokenUsage usage =
      extracted.usage ? *extracted.usage
                      : EstimatedUsage(ctx.estimated_input_tokens, extracted.output_bytes);
  const int64_t cost = PriceOrZero(usage, d.prices(), ctx.request_id);

  HttpResponse response(http::status::ok, 11);
  response.set(http::field::content_type, "application/json");
  SetServedHeaders(response, ctx.request_id, d);
  response.set(kCostHeader, FormatPicoUsd(cost));
  response.keep_alive(ctx.keep_alive);
  response.body() = std::move(*body);
  ctx.session->Reply(std::move(response));
  Record(ctx, &d, 200, "", usage, cost);
  co_return Outcome::kDone;
}

asio::awaitable<ChatHandler::Outcome> ChatHandler::ServeStream(ChatContext& ctx,
                                                               const v1::Deployment& d,
                                                               UpstreamExchange& exchange,
                                                               Clock::time_point attempt_start) {
  v1::Attempt* record = ctx.event.mutable_attempts(ctx.event.attempts_size() - 1);
  record->set_http_status(static_cast<int32_t>(exchange.status()));
  const std::chrono::milliseconds client_timeout = ctx.session->options().idle_timeout;
  beast::tcp_stream& client = ctx.session->stream();

  // The upstream accepted the request: commit to this deployment and open the client stream.
  http::response<http::empty_body> head(http::status::ok, 11);
  head.set(http::field::content_type, "text/event-stream");
  head.set(http::field::cache_control, "no-cache");
  SetServedHeaders(head, ctx.request_id, d);
  head.keep_alive(ctx.keep_alive && !ctx.session->draining());
  head.chunked(true);
  http::response_serializer<http::empty_body> serializer(head);
  client.expires_after(client_timeout);
  auto [head_ec, head_bytes] = co_await http::async_write_header(client, serializer, kUseTuple);
  bool client_gone = static_cast<bool>(head_ec);

  SseParser parser(options_.max_stream_event_bytes);
  std::optional<v1::TokenUsage> usage;
  int64_t output_bytes = 0;
  bool upstream_error_event = false;
  std::string out;
  absl::Status broken;
  auto on_event = [&](const SseEvent& event) {
    bool forward = true;
    if (event.has_data) {
      const StreamChunkInfo chunk = InspectStreamChunk(event.data);
      if (chunk.is_error) upstream_error_event = true;
      if (chunk.usage) usage = *chunk.usage;
      // The gateway asked for usage on the client's behalf: hide that chunk unless the client
      // asked for it too.
      if (chunk.usage_only && !ctx.info.client_wants_usage) forward = false;
      if (chunk.has_output) {
        output_bytes += chunk.output_bytes;
        if (ctx.event.ttft_us() == 0) {
          ctx.event.set_ttft_us(std::max<int64_t>(1, Micros(Clock::now() - ctx.start)));
        }
      }
    }
    if (forward) {
      out.append(event.raw.data(), event.raw.size());
      if (!event.terminated) out.append("\n\n");
    }
  };

  while (!client_gone) {
    absl::StatusOr<std::string_view> piece = co_await exchange.ReadSome();
    if (!piece.ok()) {
      broken = piece.status();
      break;
    }
    out.clear();
    if (piece->empty()) {
      parser.Finish(on_event);
      if (!out.empty()) client_gone = !co_await WriteChunk(client, out, client_timeout);
      break;
    }
    const absl::Status fed = parser.Feed(*piece, on_event);
    // Forward at once what arrived: one chunk per upstream read, never held back.
    if (!out.empty()) client_gone = !co_await WriteChunk(client, out, client_timeout);
    if (!fed.ok()) {
      broken = fed;
      break;
    }
  }

  record->set_latency_us(Micros(Clock::now() - attempt_start));
  std::string error_code;
  if (!client_gone && !broken.ok()) {
    const std::string event = StreamErrorEvent(
        absl::StrCat("The response stream from deployment '", d.id(),
                     "' was interrupted before it completed",
                     broken.code() == absl::StatusCode::kDeadlineExceeded ? " (timeout)." : "."),
        "upstream_error", "upstream_error");
    client_gone = !co_await WriteChunk(client, event, client_timeout);
  }
  if (!client_gone) client_gone = !co_await WriteLastChunk(client, client_timeout);
  exchange.Finish();  // pooled only when the upstream response was read to its end

  if (!broken.ok()) {
    error_code = "upstream_stream_interrupted";
    record->set_error(std::string(broken.message()));
    metrics_->RecordUpstreamError(d.id(), "stream");
    LogWarn("upstream stream interrupted", {{"request_id", ctx.request_id},
                                            {"deployment", d.id()},
                                            {"error", std::string(broken.message())}});
  } else if (client_gone) {
    error_code = "client_disconnected";
  } else if (upstream_error_event) {
    error_code = "upstream_stream_error";
  }
  const v1::TokenUsage final_usage =
      usage ? *usage : EstimatedUsage(ctx.estimated_input_tokens, output_bytes);
  const int64_t cost = PriceOrZero(final_usage, d.prices(), ctx.request_id);
  const bool keep_alive = head.keep_alive() && !client_gone && broken.ok();
  ctx.session->FinishStreamed(keep_alive);
  Record(ctx, &d, 200, error_code, final_usage, cost);
  co_return Outcome::kDone;
}

void ChatHandler::ReplyError(ChatContext& ctx, unsigned status, std::string_view type,
                             std::string_view code, std::string_view param,
                             std::string_view message, std::string_view retry_after) {
  HttpResponse response = ErrorResponse(status, type, code, param, message, ctx.keep_alive);
  response.set(kRequestIdHeader, ctx.request_id);
  if (!retry_after.empty()) response.set(http::field::retry_after, retry_after);
  ctx.session->Reply(std::move(response));
}

void ChatHandler::FailAllAttempts(ChatContext& ctx, const Failure& last) {
  const std::string message = absl::StrCat("All ", ctx.event.attempts_size(),
                                           " upstream attempt(s) failed; the last, on "
                                           "deployment '",
                                           last.deployment, "': ", last.reason, ".");
  if (last.upstream_status == 429) {
    ReplyError(ctx, 429, "rate_limit_error", "rate_limit_exceeded", "", message,
               last.retry_after.empty() ? std::string_view("1") : last.retry_after);
    Record(ctx, nullptr, 429, "rate_limit_exceeded", v1::TokenUsage(), 0);
  } else if (last.kind == UpstreamErrorKind::kTimeout) {
    ReplyError(ctx, 504, "upstream_error", "upstream_timeout", "", message);
    Record(ctx, nullptr, 504, "upstream_timeout", v1::TokenUsage(), 0);
  } else {
    ReplyError(ctx, 502, "upstream_error", "upstream_error", "", message);
    Record(ctx, nullptr, 502, "upstream_error", v1::TokenUsage(), 0);
  }
}

void ChatHandler::Record(ChatContext& ctx, const v1::Deployment* served, unsigned http_status,
                         std::string_view error_code, const v1::TokenUsage& usage,
                         int64_t cost_pico) {
  const Clock::duration total = Clock::now() - ctx.start;
  auto event = std::make_unique<v1::UsageEvent>(std::move(ctx.event));
  if (served != nullptr) {
    event->set_served_deployment(served->id());
    event->set_provider(served->provider());
    event->set_upstream_model(served->upstream_model());
    event->set_region(served->region());
    *event->mutable_prices() = served->prices();
  }
  *event->mutable_usage() = usage;
  event->set_cost_pico(cost_pico);
  event->set_latency_us(Micros(total));
  event->set_http_status(static_cast<int32_t>(http_status));
  event->set_error_code(std::string(error_code));

  const std::string& team = ctx.key.team;
  const std::string_view deployment = served ? std::string_view(served->id()) : "";
  const std::string_view provider = served ? std::string_view(served->provider()) : "";
  metrics_->RecordRequest(kRoute, http_status, ctx.model_label, deployment, provider, team);
  metrics_->ObserveRequestDuration(kRoute, Seconds(total));
  Clock::duration upstream = Clock::duration::zero();
  for (const v1::Attempt& attempt : event->attempts()) {
    upstream += std::chrono::microseconds(attempt.latency_us());
  }
  if (served != nullptr) {
    metrics_->RecordTokens(usage, ctx.model_label, provider, team);
    metrics_->RecordCost(cost_pico, team, event->attribution().feature(), ctx.model_label,
                         provider);
    const v1::Attempt& last = event->attempts(event->attempts_size() - 1);
    metrics_->ObserveUpstreamDuration(provider, static_cast<double>(last.latency_us()) / 1e6);
    if (event->ttft_us() > 0) {
      metrics_->ObserveTtft(provider, static_cast<double>(event->ttft_us()) / 1e6);
    }
  }
  metrics_->ObserveOverhead(std::max(0.0, Seconds(total - upstream)));

  LogInfo("request", {{"request_id", event->request_id()},
                      {"route", kRoute},
                      {"status", absl::StrCat(http_status)},
                      {"model", event->requested_model()},
                      {"deployment", deployment},
                      {"attempts", absl::StrCat(event->attempts_size())},
                      {"stream", event->stream() ? "true" : "false"},
                      {"team", team},
                      {"latency_us", absl::StrCat(event->latency_us())},
                      {"error_code", error_code}});
  ledger_->Enqueue(std::move(event));
}

}  // namespace tollgate::gateway
