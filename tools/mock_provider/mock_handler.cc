#include "tools/mock_provider/mock_handler.h"

#include <algorithm>
#include <cctype>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "boost/beast/http/status.hpp"
#include "services/common/status.h"
#include "tools/mock_provider/anthropic_dialect.h"
#include "tools/mock_provider/gemini_dialect.h"
#include "tools/mock_provider/openai_dialect.h"

namespace tollgate::tools::mock {
using std::string_view_literals::operator""sv;
namespace http = boost::beast::http;
namespace {

// HTTP/1.0 connections are closed after each response: no chunked encoding there, and no need
// to echo "connection: keep-alive".
bool KeepAlive(const MockHandler::Request& request) {
  return request.version() >= 11 && request.keep_alive();
}

// Status line and the headers every response has. `content_length` < 0: the body is streamed
// (chunked on HTTP/1.1, close-delimited otherwise).
void AppendHead(std::string& out, int status, bool keep_alive, std::string_view content_type,
                int64_t content_length, bool chunked, std::string_view extra_headers) {
  // 529 is Anthropic's own status; Beast has no reason phrase for it.
  const auto beast_reason = http::obsolete_reason(static_cast<http::status>(status));
  const std::string_view reason = status == 529
                                      ? std::string_view("Overloaded")
                                      : std::string_view(beast_reason.data(), beast_reason.size());
  absl::StrAppend(&out, "HTTP/1.1 ", status, " ", Av(reason),
                  "\r\ncontent-type: ", Av(content_type), "\r\n");
  if (content_length >= 0) {
    absl::StrAppend(&out, "content-length: ", content_length, "\r\n");
  } else if (chunked) {
    out += "transfer-encoding: chunked\r\n"sv;
  }
  out += keep_alive ? ""sv : "connection: close\r\n"sv;
  out += extra_headers;
  out += "\r\n"sv;
}

// Appends `data` as one HTTP/1.1 chunk, or raw for a close-delimited body.
void AppendChunk(std::string& out, std::string_view data, bool chunked) {
  if (chunked) absl::StrAppend(&out, absl::Hex(data.size()), "\r\n");
  out += data;
  if (chunked) out += "\r\n"sv;
}

ResponsePlan ReplyResponse(const Reply& reply, bool keep_alive, int64_t delay_ms) {
  return JsonResponse(reply.status, reply.body, keep_alive, reply.headers, delay_ms,
                      reply.content_type);
}

// The query part of a request target ("" if none).
std::string_view Query(std::string_view target) {
  const size_t q = target.find('?');
  return q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
}

std::string_view Path(std::string_view target) {
  const size_t q = target.find('?');
  return q == std::string_view::npos ? target : target.substr(0, q);
}

// Applies the request's x-mock-<key> headers.
absl::Status HeaderDirectives(const MockHandler::Request& request, Directives& d) {
  for (const auto& field : request) {
    const std::string_view name = field.name_string();
    constexpr std::string_view kPrefix = "x-mock-";
    if (name.size() <= kPrefix.size() ||
        !std::equal(kPrefix.begin(), kPrefix.end(), name.begin(),
                    [](char a, char b) { return a == std::tolower(b); })) {
      continue;
    }
    TOLLGATE_RETURN_IF_ERROR(ApplyDirective(name.substr(kPrefix.size()), field.value(), d));
  }
  return absl::OkStatus();
}

// A non-stream response cut after the headers (with the full content-length) and half the body.
ResponsePlan HalfBodyResponse(std::string_view body, bool keep_alive,
                              std::string_view extra_headers, int64_t delay_ms,
                              std::string_view content_type) {
  ResponsePlan plan;
  AppendHead(plan.bytes, 200, keep_alive, content_type, static_cast<int64_t>(body.size()), false,
             extra_headers);
  plan.bytes.append(body, 0, body.size() / 2);
  plan.steps.push_back({delay_ms, plan.bytes.size()});
  plan.close = true;
  return plan;
}

// The dialect's access checks (API key; Azure's api-version) for an embeddings request, which
// must be exactly those of its chat route: the dialect's Parse of a minimal valid chat request
// with the same headers and query, sent to `chat_path`. Dialects expose their checks only through
// Parse, so this runs them rather than copying them. nullopt when access is granted.
std::optional<Reply> CheckEmbeddingsAccess(const Dialect& dialect, const Call& call,
                                           std::string_view chat_path) {
  HttpRequest probe(call.request.base());
  probe.body() = dialect.id() == DialectId::kGemini
                     ? R"({"contents":[{"parts":[{"text":"access"}]}]})"
                     : R"({"model":"access","messages":[{"role":"user","content":"access"}]})";
  const Call probe_call{probe, chat_path, call.query, call.seq, call.require_key};
  ChatRequest ignored;
  return dialect.Parse(probe_call, ignored);
}

// A request-validation error in the dialect's framing: the headers and content type of its 400,
// with `body`.
Reply ValidationReply(const Dialect& dialect, const Call& call, std::string_view model, int status,
                      std::string body) {
  Reply reply = dialect.Error(call, 400, model, 0, 0);
  reply.status = status;
  reply.body = std::move(body);
  return reply;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

ResponsePlan JsonResponse(int status, std::string_view body, bool keep_alive,
                          std::string_view extra_headers, int64_t delay_ms,
                          std::string_view content_type) {
  ResponsePlan plan;
  plan.status = status;
  plan.bytes.reserve(256 + extra_headers.size() + body.size());
  AppendHead(plan.bytes, status, keep_alive, content_type, static_cast<int64_t>(body.size()), false,
             extra_headers);
  plan.bytes += body;
  plan.steps.push_back({delay_ms, plan.bytes.size()});
  plan.close = !keep_alive;
  return plan;
}

MockHandler::MockHandler(MockOptions options) : options_(std::move(options)) {
  dialects_[static_cast<size_t>(DialectId::kOpenAi)] =
      std::make_unique<OpenAiDialect>(OpenAiFlavor::kOpenAi);
  dialects_[static_cast<size_t>(DialectId::kAzure)] =
      std::make_unique<OpenAiDialect>(OpenAiFlavor::kAzure);
  dialects_[static_cast<size_t>(DialectId::kAnthropic)] = std::make_unique<AnthropicDialect>();
  dialects_[static_cast<size_t>(DialectId::kGemini)] = std::make_unique<GeminiDialect>();
}

MockHandler::~MockHandler() = default;

ResponsePlan MockHandler::Handle(const Request& request) {
  const bool keep_alive = KeepAlive(request);
  const std::string_view target = request.target();
  const std::string_view path = Path(target);
  const http::verb method = request.method();

  if (method == http::verb::post) {
    if (const std::optional<EmbeddingsRoute> route = MatchEmbeddingsRoute(path)) {
      const Call call{request, path, Query(target),
                      seq_.fetch_add(1, std::memory_order_relaxed) + 1, options_.require_key};
      return GenerateEmbeddings(*route, call);
    }
    for (const auto& dialect : dialects_) {
      if (!dialect->Matches(path)) continue;
      const Call call{request, path, Query(target),
                      seq_.fetch_add(1, std::memory_order_relaxed) + 1, options_.require_key};
      return Generate(*dialect, call);
    }
  }
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
  const Call call{request, path, Query(target), seq_.fetch_add(1, std::memory_order_relaxed) + 1,
                  options_.require_key};
  if (method == http::verb::get) {
    // Anthropic first: it claims /v1/models only for requests carrying anthropic-version.
    for (DialectId id : {DialectId::kAnthropic, DialectId::kOpenAi, DialectId::kGemini}) {
      if (auto reply = dialects_[static_cast<size_t>(id)]->Models(call)) {
        return ReplyResponse(*reply, keep_alive, 0);
      }
    }
  }
  ApiError e;
  e.status = 404;
  e.message = absl::StrCat("Invalid URL (", Av(request.method_string()), " ", Av(path), ")");
  return ReplyResponse(OpenAiErrorReply(e, call.seq), keep_alive, 0);
}

ResponsePlan MockHandler::Generate(const Dialect& dialect, const Call& call) {
  const DialectId id = dialect.id();
  stats_.CountRequest(id);
  const bool keep_alive = KeepAlive(call.request);
  auto fail = [&](const Reply& reply, int64_t delay_ms) {
    stats_.CountStatus(id, reply.status);
    return ReplyResponse(reply, keep_alive, delay_ms);
  };

  ChatRequest chat;
  if (auto e = dialect.Parse(call, chat)) return fail(*e, 0);

  Directives d;
  if (absl::Status st = HeaderDirectives(call.request, d); !st.ok()) {
    return fail(dialect.InvalidDirective(call, ToStd(st.message())), 0);
  }
  if (absl::Status st = ParseDirectives(chat.last_user_text, d); !st.ok()) {
    return fail(dialect.InvalidDirective(call, ToStd(st.message())), 0);
  }
  if (chat.stream) stats_.CountStream(id);

  const int64_t stall_ms = d.stall_ms.value_or(0);
  const int64_t latency_ms = d.latency_ms.value_or(options_.latency_ms);
  const int status = DirectedStatus(d);
  if (status != 200) {
    return fail(
        dialect.Error(call, status, chat.model, d.retry_after.value_or(0), stall_ms + latency_ms),
        stall_ms + latency_ms);
  }
  // Directives a dialect cannot express are dropped before they shape the completion.
  const DialectTraits traits = dialect.traits();
  if (!traits.cache_writes) {
    d.cache_write_5m.reset();
    d.cache_write_1h.reset();
  }
  if (d.block.has_value() && !traits.block_in_band) {
    if (auto blocked = dialect.BlockedPrompt(call, chat, *d.block)) {
      return fail(*blocked, stall_ms + latency_ms);
    }
    d.block.reset();
  }

  const Completion completion =
      BuildCompletion(chat, d, call.seq, static_cast<int64_t>(std::time(nullptr)), dialect.ids());
  const bool disconnect = d.disconnect_after.has_value();
  const bool stream_error = chat.stream && d.stream_error.has_value() && !disconnect;
  stats_.CountStatus(id, 200);
  if (disconnect) {
    stats_.CountDisconnect(id);
  } else if (stream_error) {
    stats_.CountStreamError(id);
  } else {
    stats_.CountUsage(id, completion.usage);
  }

  if (!chat.stream) {
    const std::string body = dialect.Body(completion, chat);
    const std::string headers = dialect.SuccessHeaders(call, chat, stall_ms + latency_ms);
    if (!disconnect) {
      return JsonResponse(200, body, keep_alive, headers, stall_ms + latency_ms,
                          dialect.ContentType());
    }
    return HalfBodyResponse(body, keep_alive, headers, stall_ms + latency_ms,
                            dialect.ContentType());
  }

  // Streams: one step per delay; events without a delay between them share a write.
  const int64_t ttft_ms = d.ttft_ms.value_or(options_.ttft_ms);
  const int64_t inter_token_ms = d.inter_token_ms.value_or(options_.inter_token_ms);
  const bool chunked = call.request.version() >= 11;
  ResponsePlan plan;
  plan.close = !keep_alive || !chunked || disconnect;
  plan.bytes.reserve(1024 + static_cast<size_t>(completion.usage.completion_tokens) * 240);
  AppendHead(plan.bytes, 200, keep_alive, dialect.StreamContentType(), -1, chunked,
             dialect.SuccessHeaders(call, chat, stall_ms + ttft_ms));
  plan.steps.push_back({stall_ms, 0});
  auto cut = [&](int64_t delay_ms) {
    if (delay_ms <= 0) return;
    plan.steps.back().end = plan.bytes.size();
    plan.steps.push_back({delay_ms, 0});
  };
  // With disconnect_after or stream_error the stream stops after `limit` content events, or
  // before the finish event if it comes first.
  const int64_t limit = disconnect     ? *d.disconnect_after
                        : stream_error ? d.stream_error_after.value_or(kDefaultStreamErrorAfter)
                                       : -1;
  bool first_event = true;
  int64_t content_events = 0;
  bool stopped = false;
  dialect.Stream(completion, chat, [&](EventKind kind, std::string_view data) {
    if (stopped) return;
    if (first_event) {
      cut(ttft_ms);
      first_event = false;
    }
    const bool at_limit = limit >= 0 && (kind == EventKind::kFinish ||
                                         (kind == EventKind::kContent && content_events == limit));
    if (at_limit) {
      stopped = true;
      if (stream_error)
        AppendChunk(plan.bytes, dialect.StreamError(*d.stream_error, chat), chunked);
      return;
    }
    if (kind == EventKind::kContent) {
      if (content_events > 0) cut(inter_token_ms);
      ++content_events;
    }
    AppendChunk(plan.bytes, data, chunked);
  });
  if (!disconnect && chunked) plan.bytes += "0\r\n\r\n"sv;
  plan.steps.back().end = plan.bytes.size();
  return plan;
}

ResponsePlan MockHandler::GenerateEmbeddings(const EmbeddingsRoute& route, const Call& call) {
  const DialectId id = route.dialect;
  const Dialect& dialect = *dialects_[static_cast<size_t>(id)];
  stats_.CountRequest(id);
  stats_.CountEmbeddingRequest(id);
  const bool keep_alive = KeepAlive(call.request);
  auto fail = [&](const Reply& reply, int64_t delay_ms) {
    stats_.CountStatus(id, reply.status);
    return ReplyResponse(reply, keep_alive, delay_ms);
  };

  if (auto denied = CheckEmbeddingsAccess(dialect, call, route.chat_path)) return fail(*denied, 0);
  EmbeddingsRequest request;
  if (route.api == EmbeddingsApi::kOpenAi) {
    if (auto e = ParseOpenAiEmbeddingsRequest(call.request.body(), request, route.model)) {
      return fail(ValidationReply(dialect, call, route.model, e->status, RenderErrorJson(*e)), 0);
    }
  } else if (auto e = ParseGeminiEmbedRequest(call.request.body(), route.model,
                                              route.api == EmbeddingsApi::kGeminiBatch, request)) {
    return fail(ValidationReply(dialect, call, route.model, e->status, RenderGeminiErrorJson(*e)),
                0);
  }

  Directives d;
  absl::Status st = HeaderDirectives(call.request, d);
  if (st.ok()) st = ParseEmbeddingDirectives(request, d);
  if (!st.ok()) return fail(dialect.InvalidDirective(call, ToStd(st.message())), 0);

  const int64_t delay_ms = d.stall_ms.value_or(0) + d.latency_ms.value_or(options_.latency_ms);
  if (const int status = DirectedStatus(d); status != 200) {
    return fail(dialect.Error(call, status, request.model, d.retry_after.value_or(0), delay_ms),
                delay_ms);
  }

  ChatRequest summary;  // what SuccessHeaders reads: the model and the input tokens
  summary.model = request.model;
  summary.prompt_tokens = EmbeddingsTokens(request);
  const std::string body =
      route.api == EmbeddingsApi::kOpenAi
          ? RenderOpenAiEmbeddingsJson(request)
          : RenderGeminiEmbeddingsJson(request, route.api == EmbeddingsApi::kGeminiBatch);
  const std::string headers = dialect.SuccessHeaders(call, summary, delay_ms);
  stats_.CountStatus(id, 200);
  if (d.disconnect_after.has_value()) {
    stats_.CountDisconnect(id);
    return HalfBodyResponse(body, keep_alive, headers, delay_ms, dialect.ContentType());
  }
  stats_.CountEmbeddingUsage(id, summary.prompt_tokens);
  return JsonResponse(200, body, keep_alive, headers, delay_ms, dialect.ContentType());
}

int MockHandler::DirectedStatus(const Directives& d) {
  int status = d.status.value_or(200);
  if (d.fail_first.has_value()) {
    if (status == 200) status = 500;
    if (!FailFirst(d.key.value_or(""), *d.fail_first)) status = 200;
  }
  return status;
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
