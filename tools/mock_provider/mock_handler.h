#pragma once
// MockHandler: everything tollgate-mock-provider does with one HTTP request, independent of
// sockets. It turns a parsed request into a ResponsePlan (the exact bytes to write, with the
// delays between writes), and keeps the counters behind /_mock/stats and the fail_first state.
//
//   MockHandler handler(MockOptions{});
//   ResponsePlan plan = handler.Handle(request);
//   for (step : plan.steps) { wait step.delay_ms; write the step's bytes; }
//   if (plan.close) close the connection; else read the next request.
//
// Routes (each dialect's details, wire formats and errors are in its header):
//   POST /v1/chat/completions                        OpenAI            (openai_dialect.h)
//   POST /openai/deployments/{d}/chat/completions?api-version=...      Azure OpenAI
//   POST /openai/v1/chat/completions                 Azure OpenAI (v1)
//   POST /v1/messages                                Anthropic         (anthropic_dialect.h)
//   POST /v1beta/models/{model}:generateContent      Gemini            (gemini_dialect.h)
//   POST /v1beta/models/{model}:streamGenerateContent?alt=sse
//   POST /v1/embeddings                              OpenAI embeddings  (embeddings.h)
//   POST /openai/deployments/{d}/embeddings?api-version=...            Azure OpenAI
//   POST /openai/v1/embeddings                       Azure OpenAI (v1)
//   POST /v1beta/models/{model}:embedContent         Gemini
//   POST /v1beta/models/{model}:batchEmbedContents   Gemini
//   GET  /v1/models[/<id>]          OpenAI's list, or Anthropic's when anthropic-version is sent
//   GET  /v1beta/models[/<model>]   Gemini's list
//   GET  /_mock/stats               counters since start or the last reset (mock_stats.h)
//   POST /_mock/reset               zeroes the counters and forgets fail_first state;
//   {"reset":true} GET  /healthz                   200 "ok"
// Anything else: 404 {"error":{"message":"Invalid URL (<METHOD> <path>)",...}} (OpenAI's shape).
//
// Directives (mock_logic.h Directives; in the last user message or as x-mock-* headers) on every
// generation route, answered in the route's dialect:
//   status=CODE          answer CODE with the dialect's error body and retry headers
//   retry_after=S        retry delay on 429/503/529 (default 1 where the provider always sends
//                        one: OpenAI 429/503, Azure 429, Anthropic 429, Gemini 429 retryDelay)
//   fail_first=K key=ID  the first K requests carrying key ID fail with `status` (default 500);
//                        later ones succeed. Counts are per key (no key: one shared "" key),
//                        shared by all connections and dialects, and cleared by /_mock/reset.
//   tokens/cached/reasoning  usage shaping (mock_logic.h); reasoning is also spelled thinking
//                        (Anthropic: a thinking block) and thoughts (Gemini: thoughtsTokenCount)
//   cache_write_5m=N cache_write_1h=N   Anthropic cache writes (ignored by other dialects)
//   block=REASON         Gemini: 200 with promptFeedback.blockReason; Azure: 400 content_filter;
//                        ignored by OpenAI and Anthropic
//   stream_error=TYPE    stream only: after stream_error_after=N content events (default 2; or
//                        before the finish event if there are fewer), send the dialect's
//                        mid-stream error for TYPE (an Anthropic error type or a status) and end
//                        the stream (Anthropic "event: error"; OpenAI/Azure/Gemini a data: error
//                        object). Counted in stream_errors; its usage is not counted.
//   stall_ms=N           delay before the response headers
//   latency_ms=N         non-stream: added to stall_ms; the whole response is written after
//                        stall_ms + latency_ms (default --latency_ms). Forced errors (status=,
//                        fail_first) wait the same; validation errors (bad JSON, bad
//                        directive, 401) are answered at once.
//   ttft_ms=N            stream: delay between the headers and the first event (default --ttft_ms)
//   inter_token_ms=N     stream: delay between content events (default --inter_token_ms)
//   disconnect_after=N   stream: close the connection after the opening event(s) and N content
//                        events, without finish event, usage, end marker or the chunked
//                        terminator (wins over stream_error); non-stream: send the headers (full
//                        content-length) and half the body, then close. Such responses count as
//                        "disconnects" and their usage is not counted.
//
// Embeddings routes: the dialect's own access checks (API key, Azure api-version) come first,
// exactly as on its chat route; then embeddings.h validates the body. Directives come from the
// x-mock-* headers, then from the [[mock: ...]] blocks of the text inputs in input order.
// status=, retry_after=, fail_first=/key=, stall_ms=, latency_ms= and disconnect_after= (half
// the body, then close) work as for a non-stream generation; the others are accepted and
// ignored. Counted in requests, by_status and embedding_requests; a successful response's input
// tokens go to prompt_tokens and embedding_tokens (mock_stats.h).
//
// Thread-safe: Handle may be called from any number of threads at once.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "tools/mock_provider/dialect.h"
#include "tools/mock_provider/embeddings.h"
#include "tools/mock_provider/mock_logic.h"
#include "tools/mock_provider/mock_stats.h"

namespace tollgate::tools::mock {

struct MockOptions {
  int64_t latency_ms = 0;      // default latency_ms directive
  int64_t ttft_ms = 0;         // default ttft_ms directive
  int64_t inter_token_ms = 0;  // default inter_token_ms directive
  // Non-empty: every API route requires this key, in the dialect's own header (OpenAI
  // Authorization: Bearer, Azure api-key, Anthropic x-api-key, Gemini x-goog-api-key or ?key=),
  // else the dialect's auth error.
  std::string require_key;
};

// The bytes of one response and how to write them: for each step k, wait steps[k].delay_ms, then
// write bytes [steps[k-1].end, steps[k].end). Then close the connection if `close`.
struct ResponsePlan {
  struct Step {
    int64_t delay_ms = 0;
    size_t end = 0;
  };
  int status = 200;
  std::string bytes;
  std::vector<Step> steps;
  bool close = false;
};

class MockHandler {
 public:
  using Request = HttpRequest;

  explicit MockHandler(MockOptions options);
  ~MockHandler();

  MockHandler(const MockHandler&) = delete;
  MockHandler& operator=(const MockHandler&) = delete;

  // The response to `request` (which the caller has read completely).
  ResponsePlan Handle(const Request& request);

  const MockStats& stats() const { return stats_; }

 private:
  ResponsePlan Generate(const Dialect& dialect, const Call& call);
  ResponsePlan GenerateEmbeddings(const EmbeddingsRoute& route, const Call& call);
  // The status the status= and fail_first= directives ask for (200: none); counts one request
  // for fail_first's key.
  int DirectedStatus(const Directives& d);
  // True when this request must fail: counts one request for `key`.
  bool FailFirst(const std::string& key, int64_t k);
  void Reset();

  const MockOptions options_;
  // Indexed by DialectId.
  std::array<std::unique_ptr<const Dialect>, kDialectCount> dialects_;
  MockStats stats_;
  std::atomic<uint64_t> seq_{0};
  // std::mutex rather than absl::Mutex: Debian's abseil is not built with TSan annotations, so
  // ThreadSanitizer cannot see absl::Mutex synchronisation and reports false races.
  std::mutex mu_;
  absl::flat_hash_map<std::string, int64_t> fail_counts_ ABSL_GUARDED_BY(mu_);
};

// A complete non-stream response: status line, headers, body. `extra_headers` are raw
// "name: value\r\n" lines. Used for errors and small answers outside the generation routes too.
ResponsePlan JsonResponse(int status, std::string_view body, bool keep_alive,
                          std::string_view extra_headers = {}, int64_t delay_ms = 0,
                          std::string_view content_type = "application/json");

}  // namespace tollgate::tools::mock
