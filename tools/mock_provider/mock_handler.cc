#include "tools/mock_provider/mock_handler.h"

#include <ctime>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "boost/beast/http/status.hpp"

namespace tollgate::tools::mock {
namespace http = boost::beast::http;
namespace {

constexpr int64_t kRateLimitRequests = 10000;
constexpr int64_t kRateLimitTokens = 30'000'000;

// HTTP/1.0 connections are closed after each response: no chunked encoding there, and no need
// to echo "connection: keep-alive".
bool KeepAlive(const MockHandler::Request& request) {
  return request.version() >= 11 && request.keep_alive();
}

std::string_view Path(std::string_view target) {
  const size_t q = target.find('?');
  return q == std::string_view::npos ? target : target.substr(0, q);
}

// Status line and the headers every response has. `content_length` < 0: the body is streamed
// (chunked on HTTP/1.1, close-delimited otherwise).
void AppendHead(std::string& out, int status, bool keep_alive, std::string_view content_type,
                int64_t content_length, bool chunked, std::string_view extra_headers) {
  const std::string_view reason = http::obsolete_reason(static_cast<http::status>(status));
  absl::StrAppend(&out, "HTTP/1.1 ", status, " ", std::string(reason),
                  "\r\ncontent-type: ", std::string(content_type), "\r\n");
  if (content_length >= 0) {
    absl::StrAppend(&out, "content-length: ", content_length, "\r\n");
  } else if (chunked) {
    out += "transfer-encoding: chunked\r\n";
  }
  out += keep_alive ? "" : "connection: close\r\n";
  out += extra_headers;
  out += "\r\n";
}

// Headers OpenAI puts on every API response.
std::string OpenAiHeaders(uint64_t seq, int64_t processing_ms, int64_t prompt_tokens,
                          int64_t retry_after_s, bool rate_limited) {
  std::string h;
  h.reserve(400);
  absl::StrAppend(&h, "x-request-id: req_", absl::StrFormat("%032x", seq), "\r\n",
                  "openai-organization: org-mock\r\nopenai-version: 2020-10-01\r\n",
                  "openai-processing-ms: ", processing_ms, "\r\n",
                  "x-ratelimit-limit-requests: ", kRateLimitRequests, "\r\n",
                  "x-ratelimit-limit-tokens: ", kRateLimitTokens, "\r\n");
  if (rate_limited) {
    absl::StrAppend(&h, "x-ratelimit-remaining-requests: 0\r\nx-ratelimit-remaining-tokens: 0\r\n",
                    "x-ratelimit-reset-requests: ", retry_after_s, "s\r\n",
                    "x-ratelimit-reset-tokens: ", retry_after_s, "s\r\n");
  } else {
    absl::StrAppend(
        &h, "x-ratelimit-remaining-requests: ", kRateLimitRequests - 1, "\r\n",
        "x-ratelimit-remaining-tokens: ", std::max<int64_t>(kRateLimitTokens - prompt_tokens, 0),
        "\r\n", "x-ratelimit-reset-requests: 6ms\r\nx-ratelimit-reset-tokens: 0s\r\n");
  }
  if (retry_after_s > 0) absl::StrAppend(&h, "retry-after: ", retry_after_s, "\r\n");
  return h;
}

ResponsePlan ErrorResponse(const ApiError& error, bool keep_alive, uint64_t seq, int64_t delay_ms) {
  const std::string headers =
      OpenAiHeaders(seq, delay_ms, 0, error.retry_after_s, error.status == 429);
  return JsonResponse(error.status, RenderErrorJson(error), keep_alive, headers, delay_ms);
}

std::string MaskKey(std::string_view key) {
  if (key.size() <= 8) return "***";
  return absl::StrCat(std::string(key.substr(0, 3)), "***",
                      std::string(key.substr(key.size() - 4)));
}

// OpenAI's answers to a missing or wrong key.
std::optional<ApiError> CheckAuth(const MockHandler::Request& request, const std::string& key) {
  if (key.empty()) return std::nullopt;
  const auto it = request.find(http::field::authorization);
  std::string_view value = it == request.end() ? std::string_view() : std::string_view(it->value());
  constexpr std::string_view kBearer = "Bearer ";
  if (value.size() < kBearer.size() ||
      !std::equal(kBearer.begin(), kBearer.end(), value.begin(),
                  [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
    ApiError e;
    e.status = 401;
    e.message =
        "You didn't provide an API key. You need to provide your API key in an Authorization "
        "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field "
        "(with blank username) if you're accessing the API from your browser and are prompted for "
        "a username and password. You can obtain an API key from "
        "https://platform.openai.com/account/api-keys.";
    return e;
  }
  value.remove_prefix(kBearer.size());
  if (value == key) return std::nullopt;
  ApiError e;
  e.status = 401;
  e.message = absl::StrCat("Incorrect API key provided: ", MaskKey(value),
                           ". You can find your API key at "
                           "https://platform.openai.com/account/api-keys.");
  e.code = "invalid_api_key";
  return e;
}

constexpr std::array<std::string_view, 5> kModels = {"gpt-4o", "gpt-4o-mini", "o3-mini", "gpt-4.1",
                                                     "text-embedding-3-small"};
constexpr int64_t kModelCreated = 1715367049;

void AppendModel(std::string& out, std::string_view id) {
  absl::StrAppend(&out, "{\"id\":\"", std::string(id),
                  "\",\"object\":\"model\",\"created\":", kModelCreated,
                  ",\"owned_by\":\"system\"}");
}

// Appends `data` as one HTTP/1.1 chunk, or raw for a close-delimited body.
void AppendChunk(std::string& out, std::string_view data, bool chunked) {
  if (chunked) absl::StrAppend(&out, absl::Hex(data.size()), "\r\n");
  out += data;
  if (chunked) out += "\r\n";
}

}  // namespace

// ---------------------------------------------------------------------------------------------

void MockStats::CountStatus(int status) {
  if (status >= 0 && status < static_cast<int>(by_status_.size())) {
    by_status_[static_cast<size_t>(status)].fetch_add(1, std::memory_order_relaxed);
  }
}

void MockStats::CountUsage(const Usage& usage) {
  prompt_tokens_.fetch_add(usage.prompt_tokens, std::memory_order_relaxed);
  completion_tokens_.fetch_add(usage.completion_tokens, std::memory_order_relaxed);
  cached_tokens_.fetch_add(usage.cached_tokens, std::memory_order_relaxed);
  reasoning_tokens_.fetch_add(usage.reasoning_tokens, std::memory_order_relaxed);
}

void MockStats::Reset() {
  for (auto* c : {&requests_, &streams_, &disconnects_, &prompt_tokens_, &completion_tokens_,
                  &cached_tokens_, &reasoning_tokens_}) {
    c->store(0, std::memory_order_relaxed);
  }
  for (auto& c : by_status_) c.store(0, std::memory_order_relaxed);
}

int64_t MockStats::status_count(int status) const {
  if (status < 0 || status >= static_cast<int>(by_status_.size())) return 0;
  return by_status_[static_cast<size_t>(status)].load(std::memory_order_relaxed);
}

std::string MockStats::ToJson() const {
  std::string out;
  absl::StrAppend(
      &out, "{\"requests\":", requests(), ",\"streams\":", streams_.load(std::memory_order_relaxed),
      ",\"disconnects\":", disconnects_.load(std::memory_order_relaxed), ",\"by_status\":{");
  bool first = true;
  for (size_t s = 0; s < by_status_.size(); ++s) {
    const int64_t n = by_status_[s].load(std::memory_order_relaxed);
    if (n == 0) continue;
    absl::StrAppend(&out, first ? "" : ",", "\"", s, "\":", n);
    first = false;
  }
  absl::StrAppend(&out, "},\"prompt_tokens\":", prompt_tokens_.load(std::memory_order_relaxed),
                  ",\"completion_tokens\":", completion_tokens_.load(std::memory_order_relaxed),
                  ",\"cached_tokens\":", cached_tokens_.load(std::memory_order_relaxed),
                  ",\"reasoning_tokens\":", reasoning_tokens_.load(std::memory_order_relaxed), "}");
  return out;
}

ResponsePlan JsonResponse(int status, std::string_view body, bool keep_alive,
                          std::string_view extra_headers, int64_t delay_ms) {
  ResponsePlan plan;
  plan.status = status;
  plan.bytes.reserve(256 + extra_headers.size() + body.size());
  AppendHead(plan.bytes, status, keep_alive, "application/json", static_cast<int64_t>(body.size()),
             false, extra_headers);
  plan.bytes += body;
  plan.steps.push_back({delay_ms, plan.bytes.size()});
  plan.close = !keep_alive;
  return plan;
}

MockHandler::MockHandler(MockOptions options) : options_(std::move(options)) {}

ResponsePlan MockHandler::Handle(const Request& request) {
  const bool keep_alive = KeepAlive(request);
  const std::string_view path = Path(request.target());
  const http::verb method = request.method();

  if (path == "/v1/chat/completions" && method == http::verb::post) return HandleChat(request);
  if (path == "/_mock/stats" && method == http::verb::get) {
    return JsonResponse(200, stats_.ToJson(), keep_alive);
  }
  if (path == "/_mock/reset" && method == http::verb::post) {
    Reset();
    return JsonResponse(200, "{\"reset\":true}", keep_alive);
  }
  if (path == "/healthz" && method == http::verb::get) {
    return JsonResponse(200, "\"ok\"", keep_alive);
  }
  const uint64_t seq = seq_.fetch_add(1, std::memory_order_relaxed) + 1;
  if ((path == "/v1/models" || path.starts_with("/v1/models/")) && method == http::verb::get) {
    if (auto e = CheckAuth(request, options_.require_key)) {
      return ErrorResponse(*e, keep_alive, seq, 0);
    }
    std::string body;
    if (path == "/v1/models") {
      body = "{\"object\":\"list\",\"data\":[";
      for (size_t i = 0; i < kModels.size(); ++i) {
        if (i > 0) body += ',';
        AppendModel(body, kModels[i]);
      }
      body += "]}";
    } else {
      const std::string_view id = path.substr(std::string_view("/v1/models/").size());
      if (std::find(kModels.begin(), kModels.end(), id) == kModels.end()) {
        return ErrorResponse(ForcedError(404, id, 0), keep_alive, seq, 0);
      }
      AppendModel(body, id);
    }
    return JsonResponse(200, body, keep_alive, OpenAiHeaders(seq, 0, 0, 0, false));
  }
  ApiError e;
  e.status = 404;
  e.message = absl::StrCat("Invalid URL (", std::string(request.method_string()), " ",
                           std::string(path), ")");
  return ErrorResponse(e, keep_alive, seq, 0);
}

ResponsePlan MockHandler::HandleChat(const Request& request) {
  stats_.CountRequest();
  const uint64_t seq = seq_.fetch_add(1, std::memory_order_relaxed) + 1;
  const bool keep_alive = KeepAlive(request);
  auto fail = [&](const ApiError& error, int64_t delay_ms) {
    stats_.CountStatus(error.status);
    return ErrorResponse(error, keep_alive, seq, delay_ms);
  };

  if (auto e = CheckAuth(request, options_.require_key)) return fail(*e, 0);
  ChatRequest chat;
  if (auto e = ParseChatRequest(request.body(), chat)) return fail(*e, 0);

  Directives d;
  for (const auto& field : request) {
    const std::string_view name = field.name_string();
    constexpr std::string_view kPrefix = "x-mock-";
    if (name.size() <= kPrefix.size() ||
        !std::equal(kPrefix.begin(), kPrefix.end(), name.begin(),
                    [](char a, char b) { return a == std::tolower(b); })) {
      continue;
    }
    absl::Status st = ApplyDirective(name.substr(kPrefix.size()), field.value(), d);
    if (!st.ok()) {
      ApiError e;
      e.message = std::string(st.message());
      e.code = "invalid_mock_directive";
      return fail(e, 0);
    }
  }
  if (absl::Status st = ParseDirectives(chat.last_user_text, d); !st.ok()) {
    ApiError e;
    e.message = std::string(st.message());
    e.code = "invalid_mock_directive";
    return fail(e, 0);
  }
  if (chat.stream) stats_.CountStream();

  const int64_t stall_ms = d.stall_ms.value_or(0);
  const int64_t latency_ms = d.latency_ms.value_or(options_.latency_ms);
  int status = d.status.value_or(200);
  if (d.fail_first.has_value()) {
    if (status == 200) status = 500;
    if (!FailFirst(d.key.value_or(""), *d.fail_first)) status = 200;
  }
  if (status != 200) {
    return fail(ForcedError(status, chat.model, d.retry_after.value_or(0)), stall_ms + latency_ms);
  }

  const Completion completion =
      BuildCompletion(chat, d, seq, static_cast<int64_t>(std::time(nullptr)));
  const bool disconnect = d.disconnect_after.has_value();
  stats_.CountStatus(200);
  if (disconnect) {
    stats_.CountDisconnect();
  } else {
    stats_.CountUsage(completion.usage);
  }

  if (!chat.stream) {
    const std::string body = RenderCompletionJson(completion);
    const std::string headers =
        OpenAiHeaders(seq, stall_ms + latency_ms, chat.prompt_tokens, 0, false);
    if (!disconnect) {
      return JsonResponse(200, body, keep_alive, headers, stall_ms + latency_ms);
    }
    ResponsePlan plan;
    AppendHead(plan.bytes, 200, keep_alive, "application/json", static_cast<int64_t>(body.size()),
               false, headers);
    plan.bytes.append(body, 0, body.size() / 2);
    plan.steps.push_back({stall_ms + latency_ms, plan.bytes.size()});
    plan.close = true;
    return plan;
  }

  // Streams: one step per delay; chunks without a delay between them share a write.
  const int64_t ttft_ms = d.ttft_ms.value_or(options_.ttft_ms);
  const int64_t inter_token_ms = d.inter_token_ms.value_or(options_.inter_token_ms);
  const bool chunked = request.version() >= 11;
  ResponsePlan plan;
  plan.close = !keep_alive || !chunked || disconnect;
  plan.bytes.reserve(1024 + static_cast<size_t>(completion.usage.completion_tokens) * 240);
  AppendHead(plan.bytes, 200, keep_alive, "text/event-stream; charset=utf-8", -1, chunked,
             OpenAiHeaders(seq, stall_ms + ttft_ms, chat.prompt_tokens, 0, false));
  plan.steps.push_back({stall_ms, 0});
  auto cut = [&](int64_t delay_ms) {
    if (delay_ms <= 0) return;
    plan.steps.back().end = plan.bytes.size();
    plan.steps.push_back({delay_ms, 0});
  };
  bool first_event = true;
  int64_t content_chunks = 0;
  bool stopped = false;
  RenderStreamEvents(completion, chat.include_usage, [&](EventKind kind, std::string_view data) {
    if (stopped) return;
    if (first_event) {
      cut(ttft_ms);
      first_event = false;
    }
    if (kind == EventKind::kContent) {
      if (disconnect && content_chunks == *d.disconnect_after) {
        stopped = true;
        return;
      }
      if (content_chunks > 0) cut(inter_token_ms);
      ++content_chunks;
    } else if (kind == EventKind::kFinish && disconnect) {
      stopped = true;
      return;
    }
    AppendChunk(plan.bytes, data, chunked);
  });
  if (!stopped && chunked) plan.bytes += "0\r\n\r\n";
  plan.steps.back().end = plan.bytes.size();
  return plan;
}

bool MockHandler::FailFirst(const std::string& key, int64_t k) {
  std::lock_guard<std::mutex> lock(mu_);
  return ++fail_counts_[key] <= k;
}

void MockHandler::Reset() {
  stats_.Reset();
  std::lock_guard<std::mutex> lock(mu_);
  fail_counts_.clear();
}

}  // namespace tollgate::tools::mock
