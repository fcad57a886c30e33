#include "services/gateway/chat_handler.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "boost/asio/as_tuple.hpp"
#include "boost/asio/async_result.hpp"
#include "boost/asio/co_spawn.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/steady_timer.hpp"
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
#include "services/common/price_schedule.h"
#include "services/common/request_id.h"
#include "services/gateway/attribution.h"
#include "services/gateway/http_util.h"
#include "services/gateway/messages_ingress.h"
#include "services/gateway/openai_dialect.h"
#include "services/gateway/providers/provider.h"
#include "services/gateway/route_features.h"
#include "services/gateway/sse_parser.h"

namespace tollgate::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kChatRoute = "/v1/chat/completions";
constexpr std::string_view kMessagesRoute = "/v1/messages";
constexpr std::string_view kEmbeddingsRoute = "/v1/embeddings";
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr size_t kMaxPassthroughBodyBytes = 1024 * 1024;
constexpr unsigned kJsonMaxDepth = 64;
constexpr std::string_view kRouteClassHeader = "x-tollgate-route-class";
constexpr std::string_view kRouteReasonHeader = "x-tollgate-route-reason";
constexpr size_t kRouteReasonMaxBytes = 200;

int64_t NowUnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// retry-after-ms / retry-after of an upstream answer, in milliseconds (0 when absent).
int64_t RetryAfterMs(const UpstreamExchange::ResponseHeader& header) {
  auto value = [&](std::string_view name) {
    auto it = header.find(name);
    return it == header.end() ? std::string_view() : std::string_view(it->value());
  };
  return ParseRetryAfterMs(value("retry-after-ms"), value("retry-after"));
}

// Header-safe, bounded route reason.
std::string RouteReason(const v1::RouteResponse& route, const v1::Candidate& candidate,
                        bool cached) {
  std::string reason =
      absl::StrCat(route.policy(), ": ", candidate.reason(), cached ? " (cached decision)" : "");
  if (reason.size() > kRouteReasonMaxBytes) reason.resize(kRouteReasonMaxBytes);
  for (char& c : reason) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = ' ';
  }
  return reason;
}

v1::OutcomeErrorKind OutcomeKindOf(UpstreamErrorKind kind) {
  switch (kind) {
    case UpstreamErrorKind::kConnect:
    case UpstreamErrorKind::kTls:
      return v1::OUTCOME_ERROR_CONNECT;
    case UpstreamErrorKind::kTimeout:
      return v1::OUTCOME_ERROR_TIMEOUT;
    case UpstreamErrorKind::kIo:
      return v1::OUTCOME_ERROR_RESET;
    default:
      return v1::OUTCOME_ERROR_UPSTREAM;
  }
}

v1::OutcomeErrorKind OutcomeKindOfStatus(unsigned status) {
  if (status == 429) return v1::OUTCOME_ERROR_RATE_LIMITED;
  if (status == 529) return v1::OUTCOME_ERROR_OVERLOADED;
  // The provider refused Tollgate's credentials for this deployment: its fault, not the client's.
  if (status == 401 || status == 403) return v1::OUTCOME_ERROR_UPSTREAM;
  if (status >= 500) return v1::OUTCOME_ERROR_UPSTREAM;
  if (status >= 400) return v1::OUTCOME_ERROR_CLIENT;
  return v1::OUTCOME_ERROR_NONE;
}

bool RouterUnreachable(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kAborted:
      return true;
    default:
      return false;
  }
}

int64_t Micros(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

int64_t NowUnixMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The provider key of a deployment: the environment variable named by api_key_env, else the
// file named by the deployment option api_key_file (a mounted Kubernetes secret; surrounding
// whitespace trimmed). Read once per thread and cached; the value is never logged.
std::string ProviderApiKey(const v1::Deployment& d) {
  const std::string& env = d.api_key_env();
  const std::string file(DeploymentOption(d, "api_key_file"));
  thread_local absl::flat_hash_map<std::string, std::string> cache;
  const std::string cache_key = absl::StrCat(env, "\n", file);
  auto it = cache.find(cache_key);
  if (it != cache.end()) return it->second;
  std::string key;
  if (const char* value = env.empty() ? nullptr : std::getenv(env.c_str())) key = value;
  if (key.empty() && !file.empty()) {
    std::ifstream in(file);
    std::stringstream content;
    content << in.rdbuf();
    key = std::string(absl::StripAsciiWhitespace(content.str()));
    if (key.empty()) {
      LogWarn("provider API key file is missing or empty",
              {{"api_key_file", file}, {"deployment", d.id()}});
    }
  } else if (key.empty() && !env.empty()) {
    LogWarn("provider API key environment variable is not set", {{"api_key_env", env}});
  }
  return cache.emplace(cache_key, std::move(key)).first->second;
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

// The cost of `usage` at `prices` (flat: EffectivePrices), 0 (logged) when it cannot be priced.
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

void SetServedHeaders(http::fields& headers, const std::string& request_id, const v1::Deployment& d,
                      const std::string& route_reason) {
  headers.set(kRequestIdHeader, request_id);
  headers.set(kDeploymentHeader, d.id());
  headers.set(kProviderHeader, d.provider());
  if (!route_reason.empty()) headers.set(kRouteReasonHeader, route_reason);
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
  ChatIngress ingress = ChatIngress::kChatCompletions;
  std::string_view route_path;  // kChatRoute or kMessagesRoute
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
  v1::RouteRequest route_request;
  RouteDecision route;
  bool route_cached = false;
  std::string route_reason;  // x-tollgate-route-reason of the current candidate
  v1::UsageEvent event;      // filled as the request progresses; attempts appended
  // The current attempt's dialect adapter and call (valid during Attempt).
  const Provider* provider = nullptr;
  ProviderCall call;
  // The flat unit prices the served usage was priced at (Price()), stored in the event.
  v1::UnitPrices prices;
  // Hard quotas: what was reserved (settled in Record) and the rate-limit headers to send.
  std::shared_ptr<QuotaReservation> reservation;
  RateLimitView rate_requests;
  RateLimitView rate_tokens;
};

namespace {

// Prices `usage` served by `d`: the deployment's price card in effect when the request started
// (a dated price change applies from its date on), at its long-context tier when the input
// crossed it. Remembers the flat prices in ctx.prices for the usage event.
int64_t Price(ChatContext& ctx, const v1::Deployment& d, const v1::TokenUsage& usage) {
  ctx.prices = EffectivePrices(PricesAt(d, ctx.event.time_unix_us() / 1000), usage);
  return PriceOrZero(usage, ctx.prices, ctx.request_id);
}

// OpenAI's x-ratelimit-* headers for the tightest per-minute request and token quota.
void SetRateLimitHeaders(http::fields& headers, const ChatContext& ctx) {
  auto set = [&](const RateLimitView& view, const char* kind) {
    if (view.limit <= 0) return;
    headers.set(absl::StrCat("x-ratelimit-limit-", kind), absl::StrCat(view.limit));
    headers.set(absl::StrCat("x-ratelimit-remaining-", kind), absl::StrCat(view.remaining));
    headers.set(absl::StrCat("x-ratelimit-reset-", kind), FormatResetDuration(view.reset_ms));
  };
  set(ctx.rate_requests, "requests");
  set(ctx.rate_tokens, "tokens");
}

// Without max_tokens, a reply can be as long as the deployment allows; a deployment that does not
// say is assumed to allow this much.
constexpr int64_t kDefaultMaxOutputTokens = 16384;

// The most a request can cost on any of its candidates: input at most one token per body byte
// (tokenizers emit at least one byte per token; the body's JSON framing exceeds the per-message
// tokens a chat template adds), output up to max_tokens or the deployment's maximum.
QuotaDemand WorstCase(const ChatContext& ctx) {
  QuotaDemand demand;
  demand.requests = 1;
  const int64_t input = std::max<int64_t>(ctx.estimated_input_tokens,
                                          static_cast<int64_t>(ctx.request.body().size()));
  for (int i = 0; i < ctx.route.candidates_size(); ++i) {
    const v1::Deployment& d = ctx.route.candidates(i).deployment();
    int64_t output = 0;
    if (ctx.ingress != ChatIngress::kEmbeddings) {
      output = ctx.info.max_output_tokens > 0 ? ctx.info.max_output_tokens
               : d.max_output_tokens() > 0    ? d.max_output_tokens()
                                              : kDefaultMaxOutputTokens;
      if (d.max_output_tokens() > 0) output = std::min(output, d.max_output_tokens());
    }
    v1::TokenUsage usage;
    usage.set_input_tokens(input);
    usage.set_output_tokens(output);
    const v1::UnitPrices prices =
        EffectivePrices(PricesAt(d, ctx.event.time_unix_us() / 1000), usage);
    absl::StatusOr<int64_t> cost = PriceUsage(usage, prices);
    demand.tokens = std::max(demand.tokens, input + output);
    demand.cost_pico = std::max(demand.cost_pico, cost.ok() ? *cost : int64_t{0});
  }
  return demand;
}

}  // namespace

// Why the last attempt failed, for the response when every attempt failed.
struct ChatHandler::Failure {
  unsigned upstream_status = 0;  // 0: no HTTP response
  UpstreamErrorKind kind = UpstreamErrorKind::kNone;
  // The candidate's dialect cannot honour a request parameter (kInvalidArgument, ParamOf names
  // it): when every candidate failed so, the client gets 400 with this message.
  absl::Status unsupported;
  std::string deployment;
  std::string reason;             // short, client-safe
  std::string retry_after;        // from an upstream 429
  int64_t retry_after_ms = 0;     // this attempt's retry-after, 0 when none
  bool context_exceeded = false;  // this attempt failed with context_length_exceeded
};

const router::ClassifierConfig* GatewayWorker::classifier(const SnapshotStore& store) {
  const uint64_t generation = store.generation();
  if (generation != classifier_generation_) {
    classifier_generation_ = generation;
    std::shared_ptr<const v1::RouterSnapshot> snapshot = store.Get();
    if (snapshot != nullptr) {
      classifier_ = router::ClassifierConfigFromProto(snapshot->classifier());
    } else {
      classifier_.reset();
    }
  }
  return classifier_ ? &*classifier_ : nullptr;
}

ChatHandler::ChatHandler(ChatHandlerOptions options, const KeyStore* keys, RouterClient* router,
                         LedgerClient* ledger, GatewayMetrics* metrics)
    : options_(options), keys_(keys), router_(router), ledger_(ledger), metrics_(metrics) {}

void ChatHandler::Handle(std::shared_ptr<HttpSession> session, HttpRequest request,
                         ChatIngress ingress) {
  auto owned = std::make_unique<ChatContext>();
  ChatContext& ctx = *owned;
  ctx.ingress = ingress;
  ctx.route_path = ingress == ChatIngress::kMessages     ? kMessagesRoute
                   : ingress == ChatIngress::kEmbeddings ? kEmbeddingsRoute
                                                         : kChatRoute;
  ctx.start = session->request_start();
  ctx.session = std::move(session);
  ctx.request = std::move(request);
  ctx.keep_alive = ctx.request.keep_alive();
  ctx.request_id = NewRequestId();
  ctx.event.set_event_id(ctx.request_id);
  ctx.event.set_request_id(ctx.request_id);
  ctx.event.set_time_unix_us(NowUnixMicros() - Micros(Clock::now() - ctx.start));
  ctx.event.set_endpoint(std::string(ctx.route_path));

  // Anthropic clients send their key in x-api-key.
  std::string_view authorization = HeaderValue(ctx.request, "authorization");
  std::string from_api_key;
  if (authorization.empty() && ingress == ChatIngress::kMessages) {
    from_api_key = absl::StrCat("Bearer ", std::string(HeaderValue(ctx.request, "x-api-key")));
    authorization = from_api_key;
  }
  absl::StatusOr<ApiKeyInfo> key = Authenticate(*keys_, authorization);
  if (!key.ok()) {
    ReplyError(ctx, 401, "invalid_request_error", "invalid_api_key", "",
               std::string(key.status().message()));
    metrics_->RecordRequest(ctx.route_path, 401, "", "", "", "");
    metrics_->ObserveRequestDuration(ctx.route_path, Seconds(Clock::now() - ctx.start));
    LogInfo("request rejected", {{"request_id", ctx.request_id},
                                 {"route", ctx.route_path},
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
  if (ingress == ChatIngress::kMessages) {
    absl::StatusOr<json::object> chat = MessagesToChatRequest(ctx.body);
    if (!chat.ok()) {
      ReplyError(ctx, 400, "invalid_request_error", "invalid_request", ParamOf(chat.status()),
                 std::string(chat.status().message()));
      Record(ctx, nullptr, 400, "invalid_request", v1::TokenUsage(), 0);
      return;
    }
    ctx.body = json::value(std::move(*chat), ctx.body.storage());
  }
  absl::StatusOr<ChatRequestInfo> info = ingress == ChatIngress::kEmbeddings
                                             ? ParseEmbeddingsRequest(ctx.body)
                                             : ParseChatRequest(ctx.body);
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
  // A virtual key may be limited to models and to one feature (tollgatectl keys create).
  if (absl::Status allowed = CheckModelAllowed(ctx.key, ctx.info.model); !allowed.ok()) {
    ReplyError(ctx, 403, "permission_error", "model_not_allowed", "model",
               std::string(allowed.message()));
    Record(ctx, nullptr, 403, "model_not_allowed", v1::TokenUsage(), 0);
    return;
  }
  if (ctx.key.restrictions != nullptr && !ctx.key.restrictions->feature.empty() &&
      ctx.event.attribution().feature() != ctx.key.restrictions->feature) {
    ReplyError(ctx, 403, "permission_error", "feature_not_allowed", "",
               absl::StrCat("This API key may only be used for the feature '",
                            ctx.key.restrictions->feature,
                            "' (send it in the x-tollgate-feature header)."));
    Record(ctx, nullptr, 403, "feature_not_allowed", v1::TokenUsage(), 0);
    return;
  }
  if (guardrails_ != nullptr) {  // before any provider sees the prompt; redacts ctx.body in place
    GuardrailDecision guard = guardrails_->Enforce(ctx.key.team, ctx.key.id, ctx.request_id,
                                                   text.size(), ctx.body, metrics_);
    if (guard.blocked) {
      ReplyError(ctx, guard.http_status, "invalid_request_error", guard.code, guard.param,
                 guard.message);
      Record(ctx, nullptr, guard.http_status, guard.code, v1::TokenUsage(), 0);
      return;
    }
  }

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
  v1::RouteRequest request = ctx.route_request;
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

namespace {

// The RouteRequest for `ctx`'s request, with the features the router's classifier reads.
v1::RouteRequest BuildRouteRequest(const ChatContext& ctx) {
  v1::RouteRequest request;
  request.set_request_id(ctx.request_id);
  request.set_model(ctx.info.model);
  *request.mutable_attribution() = ctx.event.attribution();
  request.set_estimated_input_tokens(ctx.estimated_input_tokens);
  request.set_max_output_tokens(ctx.info.max_output_tokens);
  request.set_stream(ctx.info.stream);
  bool has_tools = false;
  for (const std::string& capability : ctx.info.required_capabilities) {
    request.add_required_capabilities(capability);
    if (capability == "tools") has_tools = true;
  }
  if (!has_tools) {
    const json::value* functions = ctx.body.as_object().if_contains("functions");
    has_tools = functions != nullptr && functions->is_array() && !functions->get_array().empty();
  }
  request.set_has_tools(has_tools);
  for (std::string& marker : ContentMarkers(ctx.body)) {
    request.add_content_markers(std::move(marker));
  }
  request.set_class_hint(std::string(HeaderValue(ctx.request, kRouteClassHeader)));
  if (ctx.key.restrictions != nullptr) {
    for (const std::string& region : ctx.key.restrictions->regions) {
      request.add_allowed_regions(region);
    }
  }
  return request;
}

}  // namespace

asio::awaitable<void> ChatHandler::Serve(std::unique_ptr<ChatContext> owned) {
  ChatContext& ctx = *owned;
  GatewayWorker* worker = static_cast<GatewayWorker*>(ctx.session->worker_state());
  ctx.route_request = BuildRouteRequest(ctx);
  if (quotas_ != nullptr) {
    // For routing rules on budget use (e.g. cheaper models past 80%): before admission, from the
    // leases this gateway holds.
    const v1::Attribution& a = ctx.event.attribution();
    const QuotaSubject who{ctx.key.team, ctx.key.id, a.feature(), a.customer()};
    if (quotas_->Applies(who)) {
      ctx.route_request.set_budget_used_percent(quotas_->BudgetUsedPercent(who));
    }
  }

  // Decision cache: keyed by the class this gateway computes with the router's classifier and
  // the snapshot's thresholds, so it needs a snapshot; a class hint the classifier does not know
  // goes to the router (which rejects it).
  RouteCache* cache = nullptr;
  std::string request_class;
  uint64_t generation = 0;
  if (options_.route_cache && !options_.snapshot_routing_only && snapshots_ != nullptr) {
    const router::ClassifierConfig* classifier = worker->classifier(*snapshots_);
    const std::string& hint = ctx.route_request.class_hint();
    if (classifier != nullptr && (hint.empty() || router::ParseRequestClass(hint).has_value())) {
      cache = &worker->route_cache(snapshots_->generation_counter());
      request_class = std::string(
          router::RequestClassName(router::ClassifyRequest(ctx.route_request, *classifier)));
      generation = cache->generation();
      std::optional<RouteDecision> hit =
          cache->Lookup(ctx.route_request, request_class, worker->rng());
      if (hit) {
        metrics_->RecordRouteCacheHit();
        ctx.route = std::move(*hit);
        ctx.route_cached = true;
      } else {
        metrics_->RecordRouteCacheMiss();
      }
    }
  }

  if (!ctx.route_cached && options_.snapshot_routing_only && snapshots_ != nullptr) {
    // The no-routing baseline: priority order from the pushed catalog, no Route call.
    if (std::shared_ptr<const v1::RouterSnapshot> snapshot = snapshots_->Get()) {
      absl::StatusOr<v1::RouteResponse> routed = RouteFromSnapshot(*snapshot, ctx.route_request);
      if (routed.ok()) {
        ctx.route = RouteDecision(std::make_shared<const v1::RouteResponse>(std::move(*routed)));
        ctx.route_cached = true;
      }
    }
  }
  if (!ctx.route_cached) {
    absl::StatusOr<v1::RouteResponse> routed = co_await Route(ctx);
    const bool cacheable = routed.ok() && cache != nullptr;
    if (!routed.ok() && RouterUnreachable(routed.status().code()) && snapshots_ != nullptr) {
      std::shared_ptr<const v1::RouterSnapshot> snapshot = snapshots_->Get();
      if (snapshot != nullptr) {
        LogWarn("router call failed; routing from the catalog snapshot",
                {{"request_id", ctx.request_id},
                 {"grpc_code", absl::StatusCodeToString(routed.status().code())},
                 {"error", std::string(routed.status().message())}});
        routed = RouteFromSnapshot(*snapshot, ctx.route_request);
        metrics_->RecordRouterFallbackDecision();
      }
    }
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
        case absl::StatusCode::kPermissionDenied:
          ReplyError(
              ctx, 403, "permission_error", "model_not_allowed", "model",
              absl::StrCat("Your team may not use the model '", ctx.info.model, "': ", message));
          Record(ctx, nullptr, 403, "model_not_allowed", v1::TokenUsage(), 0);
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
    auto shared = std::make_shared<const v1::RouteResponse>(std::move(*routed));
    if (cacheable) cache->Insert(ctx.route_request, shared, generation);
    ctx.route = RouteDecision(std::move(shared));
  }
  ctx.model_label = ctx.route.model();
  if (ctx.route.candidates_size() == 0) {
    ReplyError(ctx, 503, "server_error", "no_deployment", "",
               "No deployment is available for this model; retry shortly.", "1");
    Record(ctx, nullptr, 503, "no_deployment", v1::TokenUsage(), 0);
    co_return;
  }

  if (quotas_ != nullptr && !co_await AdmitQuotas(ctx)) co_return;

  UpstreamPool& pool = worker->pool();
  auto& cooldowns = worker->cooldowns();
  const Clock::time_point first_start = Clock::now();
  const Clock::time_point budget_end = first_start + options_.max_total_retry;
  int64_t context_floor = 0;  // after a context-length error: only larger windows
  int attempts = 0;
  Failure last;
  const v1::Deployment* previous = nullptr;
  const int n = ctx.route.candidates_size();
  // Candidates an upstream recently asked (retry-after) not to call go after the others, so a
  // request waits out a retry-after only when nothing else can serve it.
  std::vector<int> order;
  order.reserve(static_cast<size_t>(n));
  const Clock::time_point route_time = Clock::now();
  for (int pass = 0; pass < 2; ++pass) {
    for (int i = 0; i < n; ++i) {
      auto it = cooldowns.find(ctx.route.candidates(i).deployment().id());
      const bool cooling = it != cooldowns.end() && it->second > route_time;
      if (cooling == (pass == 1)) order.push_back(i);
    }
  }
  for (size_t k = 0; k < order.size() && attempts < options_.max_attempts; ++k) {
    const int i = order[k];
    const v1::Candidate& candidate = ctx.route.candidates(i);
    const v1::Deployment& deployment = candidate.deployment();
    if (context_floor > 0 && deployment.context_window() <= context_floor) continue;
    Clock::time_point now = Clock::now();
    Clock::duration wait = Clock::duration::zero();
    auto cooling = cooldowns.find(deployment.id());
    if (cooling != cooldowns.end()) {
      if (cooling->second <= now) {
        cooldowns.erase(cooling);
      } else {
        // Respect the upstream's retry-after: wait it out when the budget allows, else skip.
        if (cooling->second > budget_end) continue;
        wait = cooling->second - now;
      }
    }
    if (attempts > 0) {
      const int64_t base = options_.retry_backoff.count() << std::min(attempts - 1, 10);
      const int64_t jittered =
          base <= 1 ? base : std::uniform_int_distribution<int64_t>(base / 2, base)(worker->rng());
      wait = std::max<Clock::duration>(wait, std::chrono::milliseconds(jittered));
      if (now + wait > budget_end) break;
    }
    if (wait > Clock::duration::zero()) {
      asio::steady_timer timer(ctx.session->executor());
      timer.expires_after(wait);
      co_await timer.async_wait(kUseTuple);
    }
    if (previous != nullptr) metrics_->RecordFallback(previous->id());
    bool larger = false;
    for (size_t j = k + 1; j < order.size() && !larger; ++j) {
      larger = ctx.route.candidates(order[j]).deployment().context_window() >
               deployment.context_window();
    }
    ctx.route_reason = RouteReason(ctx.route.answer(), candidate, ctx.route_cached);
    last.retry_after_ms = 0;
    last.context_exceeded = false;
    const Outcome outcome = co_await Attempt(ctx, pool, deployment, last, larger);
    ++attempts;
    if (outcome == Outcome::kDone) co_return;
    previous = &deployment;
    if (last.retry_after_ms > 0) {
      cooldowns[deployment.id()] = Clock::now() + std::chrono::milliseconds(last.retry_after_ms);
    }
    if (last.context_exceeded) {
      context_floor =
          std::max<int64_t>(context_floor, std::max<int64_t>(1, deployment.context_window()));
    }
  }
  if (attempts == 0) {
    ReplyError(ctx, 503, "server_error", "no_deployment", "",
               "Every candidate deployment is cooling down after rate limiting; retry shortly.",
               "1");
    Record(ctx, nullptr, 503, "no_deployment", v1::TokenUsage(), 0);
    co_return;
  }
  FailAllAttempts(ctx, last);
}

asio::awaitable<bool> ChatHandler::AdmitQuotas(ChatContext& ctx) {
  const v1::Attribution& attribution = ctx.event.attribution();
  const QuotaSubject who{ctx.key.team, ctx.key.id, attribution.feature(), attribution.customer()};
  if (!quotas_->Applies(who)) co_return true;
  const QuotaDemand demand = WorstCase(ctx);
  std::optional<QuotaDecision> decision = quotas_->TryAdmit(who, demand);
  if (!decision) {
    asio::any_io_executor executor = ctx.session->executor();
    decision = co_await asio::async_initiate<decltype(asio::use_awaitable), void(QuotaDecision)>(
        [this, executor, &who, &demand](auto handler) {
          quotas_->AdmitLater(who, demand, executor,
                              [handler = std::make_shared<decltype(handler)>(std::move(handler))](
                                  QuotaDecision d) mutable { std::move (*handler)(std::move(d)); });
        },
        asio::use_awaitable);
  }
  ctx.rate_requests = decision->requests;
  ctx.rate_tokens = decision->tokens;
  if (decision->kind == QuotaDecision::Kind::kAdmitted) {
    ctx.reservation = std::move(decision->reservation);
    co_return true;
  }
  if (decision->kind == QuotaDecision::Kind::kUnavailable) {
    ReplyError(ctx, 503, "server_error", "budget_unavailable", "", decision->message, "1");
    Record(ctx, nullptr, 503, "budget_unavailable", v1::TokenUsage(), 0);
    co_return false;
  }
  const v1::Quota& quota = decision->refused_by;
  const int64_t retry_after =
      std::max<int64_t>(1, decision->window_end_unix_s - NowUnixMillis() / 1000);
  if (quota.period() == v1::QUOTA_PERIOD_MINUTE) {
    RateLimitView& view =
        quota.unit() == v1::QUOTA_UNIT_REQUESTS ? ctx.rate_requests : ctx.rate_tokens;
    view = {quota.limit_units(), 0, retry_after * 1000};
    ReplyError(ctx, 429, quota.unit() == v1::QUOTA_UNIT_REQUESTS ? "requests" : "tokens",
               "rate_limit_exceeded", "", decision->message, absl::StrCat(retry_after));
    Record(ctx, nullptr, 429, "rate_limit_exceeded", v1::TokenUsage(), 0);
  } else {
    // Retrying cannot help before the period ends: x-should-retry tells OpenAI SDKs not to.
    ReplyError(ctx, 429, "insufficient_quota", "budget_exceeded", "", decision->message,
               absl::StrCat(retry_after), /*should_retry=*/false);
    Record(ctx, nullptr, 429, "budget_exceeded", v1::TokenUsage(), 0);
  }
  co_return false;
}

void ChatHandler::ReportOutcome(ChatContext& ctx, const v1::Deployment& d, int64_t start_unix_ms,
                                unsigned http_status, v1::OutcomeErrorKind kind, int64_t latency_us,
                                int64_t ttft_us, const v1::TokenUsage* usage,
                                int64_t retry_after_ms) {
  if (outcomes_ == nullptr) return;
  v1::Outcome outcome;
  outcome.set_deployment_id(d.id());
  outcome.set_http_status(static_cast<int32_t>(http_status));
  outcome.set_latency_us(std::max<int64_t>(0, latency_us));
  outcome.set_ttft_us(std::max<int64_t>(0, ttft_us));
  if (usage != nullptr) {
    outcome.set_input_tokens(usage->input_tokens());
    outcome.set_output_tokens(usage->output_tokens());
  }
  outcome.set_retry_after_ms(retry_after_ms);
  outcome.set_error_kind(kind);
  outcome.set_time_unix_ms(start_unix_ms);
  outcome.set_request_id(ctx.request_id);
  outcomes_->Report(std::move(outcome));
}

asio::awaitable<ChatHandler::Outcome> ChatHandler::Attempt(ChatContext& ctx, UpstreamPool& pool,
                                                           const v1::Deployment& d, Failure& last,
                                                           bool larger_context_available) {
  const Clock::time_point attempt_start = Clock::now();
  const int64_t start_unix_ms = NowUnixMillis();
  v1::Attempt* record = ctx.event.add_attempts();
  record->set_deployment_id(d.id());
  auto fail = [&](unsigned status, UpstreamErrorKind kind, std::string_view metric_kind,
                  std::string reason, const std::string& detail) {
    record->set_http_status(static_cast<int32_t>(status));
    record->set_error(detail);
    record->set_latency_us(Micros(Clock::now() - attempt_start));
    const v1::OutcomeErrorKind outcome_kind =
        status != 0 ? OutcomeKindOfStatus(status) : OutcomeKindOf(kind);
    ReportOutcome(ctx, d, start_unix_ms, status, outcome_kind, record->latency_us(), 0, nullptr,
                  last.retry_after_ms);
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

  const Provider* provider = FindProvider(d.dialect());
  if (provider == nullptr) {
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
  const std::string api_key = ProviderApiKey(d);
  ctx.call = ProviderCall{.deployment = &d,
                          .base_path = target->base_path,
                          .api_key = api_key,
                          .stream = ctx.info.stream,
                          .client_wants_usage = ctx.info.client_wants_usage,
                          .request_id = ctx.request_id,
                          .created_unix = ctx.event.time_unix_us() / 1000000,
                          .client_model = ctx.info.model};
  ctx.provider = provider;
  absl::StatusOr<ProviderRequest> translated =
      ctx.ingress == ChatIngress::kEmbeddings
          ? provider->BuildEmbeddingsRequest(ctx.body.as_object(), ctx.call)
          : provider->BuildChatRequest(ctx.body.as_object(), ctx.call);
  if (!translated.ok()) {
    const std::string detail(translated.status().message());
    record->set_error(detail);
    if (translated.status().code() == absl::StatusCode::kInvalidArgument ||
        translated.status().code() == absl::StatusCode::kUnimplemented) {
      // Not the deployment's fault: no outcome report; another dialect may take the request.
      LogInfo("candidate cannot honour the request",
              {{"request_id", ctx.request_id}, {"deployment", d.id()}, {"error", detail}});
      last.upstream_status = 0;
      last.kind = UpstreamErrorKind::kNone;
      last.deployment = d.id();
      last.reason = detail;
      last.unsupported = translated.status();
      co_return Outcome::kNext;
    }
    fail(0, UpstreamErrorKind::kProtocol, "protocol", "deployment misconfigured", detail);
    co_return Outcome::kNext;
  }
  last.unsupported = absl::OkStatus();

  UpstreamExchange::Request request(http::verb::post, translated->target, 11);
  request.set(http::field::host, target->host_header);
  request.set(http::field::content_type, "application/json");
  request.set(http::field::accept, ctx.info.stream ? "text/event-stream" : "application/json");
  request.set(http::field::user_agent, "tollgate-gateway/0.1");
  for (const auto& [name, value] : translated->headers) request.set(name, value);
  request.keep_alive(true);
  request.body() = std::move(translated->body);
  request.prepare_payload();

  UpstreamExchange exchange(pool);
  absl::Status started = co_await exchange.Start(*target, request);
  if (!started.ok()) {
    const UpstreamErrorKind kind = exchange.error_kind();
    fail(0, kind, UpstreamErrorKindName(kind), std::string(exchange.failure_reason()),
         std::string(started.message()));
    co_return Outcome::kNext;
  }

  const unsigned status = exchange.status();
  if (status == 429 || status >= 500) {
    last.retry_after = std::string(exchange.header()[http::field::retry_after]);
    last.retry_after_ms = RetryAfterMs(exchange.header());
    if (status == 429 && last.retry_after_ms == 0) {
      // Some dialects say when to retry only in the body (Gemini's RetryInfo.retryDelay).
      absl::StatusOr<std::string> body = co_await exchange.ReadAll(kMaxPassthroughBodyBytes);
      if (body.ok()) last.retry_after_ms = provider->RetryAfterMsFromBody(*body);
      if (last.retry_after_ms > 0)
        last.retry_after = absl::StrCat((last.retry_after_ms + 999) / 1000);
    }
    exchange.Finish();  // body unread (or read for its delay): the connection is closed
    fail(status, UpstreamErrorKind::kNone, status == 429 ? "http_429" : "http_5xx",
         absl::StrCat("upstream status ", status), absl::StrCat("upstream returned ", status));
    co_return Outcome::kNext;
  }
  if (status == 401 || status == 403) {
    // The provider refused the deployment's credentials (a missing, wrong or revoked provider
    // key, a region or model not enabled for the account): the client's request is fine and
    // another deployment may serve it. The client never sees the provider's auth error.
    exchange.Finish();
    fail(status, UpstreamErrorKind::kNone, "http_auth",
         "the provider refused the deployment's credentials",
         absl::StrCat("upstream returned ", status, " (provider credentials)"));
    co_return Outcome::kNext;
  }
  if (status < 200 || status >= 300) {
    // The provider rejected the request itself (400, 404, 422, ...): another deployment would
    // most likely too, so the client gets the provider's answer (in the client's API shape).
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
    ProviderError error = provider->TranslateError(status, *body);
    const bool context_exceeded = error.context_length_exceeded;
    ReportOutcome(ctx, d, start_unix_ms, status,
                  context_exceeded ? v1::OUTCOME_ERROR_CONTEXT_LENGTH : v1::OUTCOME_ERROR_CLIENT,
                  record->latency_us(), 0, nullptr, 0);
    if (context_exceeded && larger_context_available) {
      // Too long for this deployment only: a larger-context candidate may still serve it.
      record->set_error("context_length_exceeded");
      LogInfo("context window exceeded; trying a larger-context candidate",
              {{"request_id", ctx.request_id}, {"deployment", d.id()}});
      last.upstream_status = status;
      last.kind = UpstreamErrorKind::kNone;
      last.deployment = d.id();
      last.reason = "context length exceeded";
      last.context_exceeded = true;
      co_return Outcome::kNext;
    }
    HttpResponse response(static_cast<http::status>(status), 11);
    response.set(http::field::content_type, "application/json");
    SetServedHeaders(response, ctx.request_id, d, ctx.route_reason);
    SetRateLimitHeaders(response, ctx);
    SetRateLimitHeaders(response, ctx);
    response.keep_alive(ctx.keep_alive);
    response.body() = ctx.ingress == ChatIngress::kMessages ? MessagesErrorBody(status, error.body)
                                                            : std::move(error.body);
    ctx.session->Reply(std::move(response));
    Record(ctx, &d, status, "upstream_rejected", v1::TokenUsage(), Price(ctx, d, v1::TokenUsage()));
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
  const int64_t start_unix_ms = NowUnixMillis() - Micros(Clock::now() - attempt_start) / 1000;
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
    ReportOutcome(ctx, d, start_unix_ms, status, OutcomeKindOf(kind), record->latency_us(), 0,
                  nullptr, 0);
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

  absl::StatusOr<ProviderResponse> translated =
      ctx.ingress == ChatIngress::kEmbeddings
          ? ctx.provider->TranslateEmbeddingsResponse(*body, ctx.call)
          : ctx.provider->TranslateChatResponse(*body, ctx.call);
  if (!translated.ok()) {
    // Nothing has reached the client yet: the next candidate may still serve the request.
    const std::string detail(translated.status().message());
    record->set_error(detail);
    metrics_->RecordUpstreamError(d.id(), "protocol");
    ReportOutcome(ctx, d, start_unix_ms, status, v1::OUTCOME_ERROR_UPSTREAM, record->latency_us(),
                  0, nullptr, 0);
    LogWarn("upstream response not understood",
            {{"request_id", ctx.request_id}, {"deployment", d.id()}, {"error", detail}});
    last.upstream_status = 0;
    last.kind = UpstreamErrorKind::kProtocol;
    last.deployment = d.id();
    last.reason = "the upstream response was not understood";
    co_return Outcome::kNext;
  }
  const v1::TokenUsage usage =
      translated->usage ? *translated->usage
                        : EstimatedUsage(ctx.estimated_input_tokens, translated->output_bytes);
  const int64_t cost = Price(ctx, d, usage);
  ReportOutcome(ctx, d, start_unix_ms, status, v1::OUTCOME_ERROR_NONE, record->latency_us(), 0,
                &usage, 0);

  HttpResponse response(http::status::ok, 11);
  response.set(http::field::content_type, "application/json");
  SetServedHeaders(response, ctx.request_id, d, ctx.route_reason);
  SetRateLimitHeaders(response, ctx);
  response.set(kCostHeader, FormatPicoUsd(cost));
  response.keep_alive(ctx.keep_alive);
  if (ctx.ingress == ChatIngress::kMessages) {
    absl::StatusOr<std::string> message =
        ChatResponseToMessage(translated->body, usage, ctx.info.model);
    if (message.ok()) {
      response.body() = std::move(*message);
    } else {
      // Recorded as served (the upstream did the work); the client learns the answer was lost.
      LogError(
          "cannot translate the answer for /v1/messages",
          {{"request_id", ctx.request_id}, {"error", std::string(message.status().message())}});
      response.result(http::status::bad_gateway);
      response.body() = MessagesErrorBody(
          502, ErrorBody("The upstream answer could not be translated to the Messages API.",
                         "upstream_error", "", "upstream_error"));
    }
  } else {
    response.body() = std::move(translated->body);
  }
  // Durability contract: the usage event reaches the spool's file (write(), which survives a
  // crash of the process) before the client can see the answer.
  Record(ctx, &d, 200, "", usage, cost);
  ctx.session->Reply(std::move(response));
  co_return Outcome::kDone;
}

asio::awaitable<ChatHandler::Outcome> ChatHandler::ServeStream(ChatContext& ctx,
                                                               const v1::Deployment& d,
                                                               UpstreamExchange& exchange,
                                                               Clock::time_point attempt_start) {
  v1::Attempt* record = ctx.event.mutable_attempts(ctx.event.attempts_size() - 1);
  const int64_t start_unix_ms = NowUnixMillis() - Micros(Clock::now() - attempt_start) / 1000;
  int64_t attempt_ttft_us = 0;
  record->set_http_status(static_cast<int32_t>(exchange.status()));
  const std::chrono::milliseconds client_timeout = ctx.session->options().idle_timeout;
  beast::tcp_stream& client = ctx.session->stream();

  // The upstream accepted the request: commit to this deployment and open the client stream.
  http::response<http::empty_body> head(http::status::ok, 11);
  head.set(http::field::content_type, "text/event-stream");
  head.set(http::field::cache_control, "no-cache");
  SetServedHeaders(head, ctx.request_id, d, ctx.route_reason);
  SetRateLimitHeaders(head, ctx);
  head.keep_alive(ctx.keep_alive && !ctx.session->draining());
  head.chunked(true);
  http::response_serializer<http::empty_body> serializer(head);
  client.expires_after(client_timeout);
  auto [head_ec, head_bytes] = co_await http::async_write_header(client, serializer, kUseTuple);
  bool client_gone = static_cast<bool>(head_ec);

  SseParser parser(options_.max_stream_event_bytes);
  std::unique_ptr<StreamTranslator> translator = ctx.provider->NewStreamTranslator(ctx.call);
  const StreamProgress& progress = translator->progress();
  // The Anthropic ingress re-reads the translated OpenAI events and encodes them as Anthropic's.
  const bool messages = ctx.ingress == ChatIngress::kMessages;
  std::optional<SseParser> reparser;
  std::optional<MessagesStreamEncoder> encoder;
  if (messages) {
    reparser.emplace(options_.max_stream_event_bytes);
    encoder.emplace(absl::StrCat("msg_", ctx.request_id), ctx.info.model);
  }
  bool recorded = false;  // the usage event was enqueued: ctx.event and `record` are gone
  v1::TokenUsage recorded_usage;
  std::string out;         // bytes for the client from this read
  std::string translated;  // OpenAI events from this read (messages ingress only)
  absl::Status broken;
  Clock::time_point last_output;  // when the previous content-carrying event arrived
  // Where the event that ended the stream begins in `out` (OpenAI dialect out; npos: not in this
  // read): what precedes it is forwarded before the usage event is recorded.
  size_t end_at = std::string::npos;
  auto on_event = [&](const SseEvent& event) {
    const bool ended = progress.done || progress.error;
    const size_t before = out.size();
    translator->OnEvent(event, messages ? translated : out);
    if (!ended && !messages && (progress.done || progress.error)) end_at = before;
    if (progress.has_output && !recorded) {
      const Clock::time_point now = Clock::now();
      if (last_output != Clock::time_point()) {
        metrics_->ObserveTimeBetweenTokens(d.provider(), Seconds(now - last_output));
      }
      last_output = now;
      if (attempt_ttft_us == 0) {
        attempt_ttft_us = std::max<int64_t>(1, Micros(Clock::now() - attempt_start));
      }
      if (ctx.event.ttft_us() == 0) {
        ctx.event.set_ttft_us(std::max<int64_t>(1, Micros(Clock::now() - ctx.start)));
      }
    }
  };
  // Messages ingress: the translated OpenAI events of this read become Anthropic events.
  auto encode = [&]() {
    if (!messages || translated.empty()) return;
    (void)reparser->Feed(translated, [&](const SseEvent& event) {
      if (event.has_data) encoder->OnChunk(event.data, out);
    });
    translated.clear();
  };

  // Builds and enqueues the usage event. Durability contract: it runs, and the event is in the
  // spool's file, before the client can see the end of the stream ("[DONE]" or the terminating
  // chunk), so a client that saw the end has its request recorded.
  auto record_end = [&]() {
    recorded = true;
    record->set_latency_us(Micros(Clock::now() - attempt_start));
    std::string error_code;
    if (!broken.ok()) {
      error_code = "upstream_stream_interrupted";
      record->set_error(std::string(broken.message()));
      metrics_->RecordUpstreamError(d.id(), "stream");
      LogWarn("upstream stream interrupted", {{"request_id", ctx.request_id},
                                              {"deployment", d.id()},
                                              {"error", std::string(broken.message())}});
    } else if (client_gone) {
      error_code = "client_disconnected";
    } else if (progress.error) {
      error_code = "upstream_stream_error";
    }
    const v1::TokenUsage final_usage =
        progress.usage ? *progress.usage
                       : EstimatedUsage(ctx.estimated_input_tokens, progress.output_bytes);
    recorded_usage = final_usage;
    const int64_t cost = Price(ctx, d, final_usage);
    v1::OutcomeErrorKind kind = v1::OUTCOME_ERROR_NONE;
    if (!broken.ok()) {
      kind = broken.code() == absl::StatusCode::kDeadlineExceeded ? v1::OUTCOME_ERROR_TIMEOUT
                                                                  : v1::OUTCOME_ERROR_RESET;
    } else if (client_gone) {
      kind = v1::OUTCOME_ERROR_CANCELLED;
    } else if (progress.error) {
      kind = v1::OUTCOME_ERROR_UPSTREAM;
    }
    ReportOutcome(ctx, d, start_unix_ms, exchange.status(), kind, record->latency_us(),
                  attempt_ttft_us, &final_usage, 0);
    Record(ctx, &d, 200, error_code, final_usage, cost);
  };
  // The end of a complete stream: the usage event is recorded first (durability contract),
  // then the Anthropic ingress closes its message with the recorded usage.
  auto end_complete = [&]() {
    if (recorded) return;
    record_end();
    if (messages) encoder->Finish(recorded_usage, out);
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
      translator->Finish(messages ? translated : out);
      encode();
      if (progress.done || progress.error) end_complete();
      if (!out.empty()) client_gone = !co_await WriteChunk(client, out, client_timeout);
      break;
    }
    end_at = std::string::npos;
    const absl::Status fed = parser.Feed(*piece, on_event);
    encode();
    if ((progress.done || progress.error) && !recorded) {
      // The tokens before the end marker go out first: recording the usage event must precede
      // the end of the stream, not the content (time to first token when a whole answer
      // arrives in one read).
      if (end_at != std::string::npos && end_at > 0) {
        client_gone = !co_await WriteChunk(client, std::string_view(out).substr(0, end_at),
                                           client_timeout);
        out.erase(0, end_at);
      }
      end_complete();
    }
    // Forward at once what arrived: one chunk per upstream read, never held back.
    if (!out.empty() && !client_gone) {
      client_gone = !co_await WriteChunk(client, out, client_timeout);
    }
    if (!fed.ok()) {
      if (!recorded) broken = fed;  // after the end the client already has a complete stream
      break;
    }
  }

  if (!client_gone && !broken.ok() && !recorded) {
    const std::string message = absl::StrCat(
        "The response stream from deployment '", d.id(), "' was interrupted before it completed",
        broken.code() == absl::StatusCode::kDeadlineExceeded ? " (timeout)." : ".");
    std::string event;
    if (messages) {
      encoder->Error("api_error", message, event);
    } else {
      event = StreamErrorEvent(message, "upstream_error", "upstream_error");
    }
    client_gone = !co_await WriteChunk(client, event, client_timeout);
  }
  if (!recorded) {
    record_end();
    if (messages && !client_gone && broken.ok()) {
      // The upstream closed without its end marker: close the Anthropic message all the same.
      out.clear();
      encoder->Finish(recorded_usage, out);
      if (!out.empty()) client_gone = !co_await WriteChunk(client, out, client_timeout);
    }
  }
  if (!client_gone) client_gone = !co_await WriteLastChunk(client, client_timeout);
  exchange.Finish();  // pooled only when the upstream response was read to its end

  const bool keep_alive = head.keep_alive() && !client_gone && broken.ok();
  ctx.session->FinishStreamed(keep_alive);
  co_return Outcome::kDone;
}

void ChatHandler::ReplyError(ChatContext& ctx, unsigned status, std::string_view type,
                             std::string_view code, std::string_view param,
                             std::string_view message, std::string_view retry_after,
                             bool should_retry) {
  HttpResponse response = ErrorResponse(status, type, code, param, message, ctx.keep_alive);
  if (ctx.ingress == ChatIngress::kMessages) {
    response.body() = MessagesErrorBody(status, response.body());
    response.prepare_payload();
  }
  response.set(kRequestIdHeader, ctx.request_id);
  if (!retry_after.empty()) response.set(http::field::retry_after, retry_after);
  if (!should_retry) response.set("x-should-retry", "false");
  SetRateLimitHeaders(response, ctx);
  ctx.session->Reply(std::move(response));
}

void ChatHandler::FailAllAttempts(ChatContext& ctx, const Failure& last) {
  const std::string message = absl::StrCat("All ", ctx.event.attempts_size(),
                                           " upstream attempt(s) failed; the last, on "
                                           "deployment '",
                                           last.deployment, "': ", last.reason, ".");
  if (!last.unsupported.ok()) {
    ReplyError(ctx, 400, "invalid_request_error", "unsupported_parameter",
               ParamOf(last.unsupported), std::string(last.unsupported.message()));
    Record(ctx, nullptr, 400, "unsupported_parameter", v1::TokenUsage(), 0);
  } else if (last.upstream_status == 429) {
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
  if (ctx.reservation != nullptr) {
    quotas_->Settle(*ctx.reservation,
                    {.requests = 1,
                     .tokens = served != nullptr ? usage.input_tokens() + usage.output_tokens() : 0,
                     .cost_pico = cost_pico});
  }
  auto event = std::make_unique<v1::UsageEvent>(std::move(ctx.event));
  if (served != nullptr) {
    event->set_served_deployment(served->id());
    event->set_provider(served->provider());
    event->set_upstream_model(served->upstream_model());
    event->set_region(served->region());
    *event->mutable_prices() = ctx.prices;
  }
  *event->mutable_usage() = usage;
  event->set_cost_pico(cost_pico);
  event->set_latency_us(Micros(total));
  event->set_http_status(static_cast<int32_t>(http_status));
  event->set_error_code(std::string(error_code));

  const std::string& team = ctx.key.team;
  const std::string_view deployment = served ? std::string_view(served->id()) : "";
  const std::string_view provider = served ? std::string_view(served->provider()) : "";
  metrics_->RecordRequest(ctx.route_path, http_status, ctx.model_label, deployment, provider, team);
  metrics_->ObserveRequestDuration(ctx.route_path, Seconds(total));
  Clock::duration upstream = Clock::duration::zero();
  for (const v1::Attempt& attempt : event->attempts()) {
    upstream += std::chrono::microseconds(attempt.latency_us());
  }
  if (served != nullptr) {
    metrics_->RecordTokens(usage, ctx.model_label, provider, team);
    metrics_->RecordCost(cost_pico, team, event->attribution().feature(), ctx.model_label, provider,
                         event->attribution().customer(), event->attribution().api_key_id());
    const v1::Attempt& last = event->attempts(event->attempts_size() - 1);
    metrics_->ObserveUpstreamDuration(provider, static_cast<double>(last.latency_us()) / 1e6);
    if (event->ttft_us() > 0) {
      metrics_->ObserveTtft(provider, static_cast<double>(event->ttft_us()) / 1e6);
    }
  }
  metrics_->ObserveOverhead(std::max(0.0, Seconds(total - upstream)));

  if (options_.access_log) {
    LogInfo("request", {{"request_id", event->request_id()},
                        {"route", ctx.route_path},
                        {"status", absl::StrCat(http_status)},
                        {"model", event->requested_model()},
                        {"deployment", deployment},
                        {"attempts", absl::StrCat(event->attempts_size())},
                        {"stream", event->stream() ? "true" : "false"},
                        {"team", team},
                        {"latency_us", absl::StrCat(event->latency_us())},
                        {"error_code", error_code}});
  }
  ledger_->Enqueue(std::move(event));
}

}  // namespace tollgate::gateway
