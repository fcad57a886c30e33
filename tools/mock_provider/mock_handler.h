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
// Routes:
//   POST /v1/chat/completions   OpenAI Chat Completions (mock_logic.h), with directives
//   GET  /v1/models[/<id>]      OpenAI model list / model object
//   GET  /_mock/stats           counters since start or the last reset (MockStats::ToJson)
//   POST /_mock/reset           zeroes the counters and forgets fail_first state; {"reset":true}
//   GET  /healthz               200 "ok"
// Anything else: 404 {"error":{"message":"Invalid URL (<METHOD> <path>)",...}}.
//
// Directives (mock_logic.h Directives; message text and x-mock-* headers) on chat completions:
//   status=CODE          answer CODE with OpenAI's error body (ForcedError) instead of a completion
//   retry_after=S        retry-after seconds on 429/503 (default 1)
//   fail_first=K key=ID  the first K requests carrying key ID fail with `status` (default 500);
//                        later ones succeed. Counts are per key (no key: one shared "" key),
//                        shared by all connections, and cleared by /_mock/reset.
//   tokens/cached/reasoning  usage shaping (mock_logic.h)
//   stall_ms=N           delay before the response headers
//   latency_ms=N         non-stream: added to stall_ms; the whole response is written after
//                        stall_ms + latency_ms (default --latency_ms). Forced errors (status=,
//                        fail_first) wait the same; validation errors (bad JSON, bad
//                        directive, 401) are answered at once.
//   ttft_ms=N            stream: delay between the headers and the first chunk (default --ttft_ms)
//   inter_token_ms=N     stream: delay between content chunks (default --inter_token_ms)
//   disconnect_after=N   stream: close the connection after the role chunk(s) and N content
//                        chunks, without finish chunk, usage, [DONE] or the chunked terminator;
//                        non-stream: send the headers (full content-length) and half the body,
//                        then close. Such responses count as "disconnects" and their usage is not
//                        counted.
//
// Thread-safe: Handle may be called from any number of threads at once.

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "boost/beast/http/message.hpp"
#include "boost/beast/http/string_body.hpp"
#include "tools/mock_provider/mock_logic.h"

namespace tollgate::tools::mock {

struct MockOptions {
  int64_t latency_ms = 0;      // default latency_ms directive
  int64_t ttft_ms = 0;         // default ttft_ms directive
  int64_t inter_token_ms = 0;  // default inter_token_ms directive
  // Non-empty: /v1/* requires "Authorization: Bearer <require_key>", else 401 as OpenAI answers.
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

// Counters of POST /v1/chat/completions since start or the last Reset. Token counters sum the
// usage of every successful (200) response that was not cut by disconnect_after, whether or not
// the usage was sent to the client (what the provider "billed"); they are updated before the
// response is written. Lock-free; thread-safe.
class MockStats {
 public:
  void CountRequest() { requests_.fetch_add(1, std::memory_order_relaxed); }
  void CountStream() { streams_.fetch_add(1, std::memory_order_relaxed); }
  void CountDisconnect() { disconnects_.fetch_add(1, std::memory_order_relaxed); }
  void CountStatus(int status);
  void CountUsage(const Usage& usage);
  void Reset();

  int64_t requests() const { return requests_.load(std::memory_order_relaxed); }
  int64_t status_count(int status) const;

  // {"requests":N,"streams":N,"disconnects":N,"by_status":{"200":N,...},"prompt_tokens":N,
  //  "completion_tokens":N,"cached_tokens":N,"reasoning_tokens":N}
  // by_status lists only statuses seen, in increasing order.
  std::string ToJson() const;

 private:
  std::atomic<int64_t> requests_{0};
  std::atomic<int64_t> streams_{0};
  std::atomic<int64_t> disconnects_{0};
  std::atomic<int64_t> prompt_tokens_{0};
  std::atomic<int64_t> completion_tokens_{0};
  std::atomic<int64_t> cached_tokens_{0};
  std::atomic<int64_t> reasoning_tokens_{0};
  std::array<std::atomic<int64_t>, 600> by_status_{};
};

class MockHandler {
 public:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;

  explicit MockHandler(MockOptions options);

  MockHandler(const MockHandler&) = delete;
  MockHandler& operator=(const MockHandler&) = delete;

  // The response to `request` (which the caller has read completely).
  ResponsePlan Handle(const Request& request);

  const MockStats& stats() const { return stats_; }

 private:
  ResponsePlan HandleChat(const Request& request);
  // True when this request must fail: counts one request for `key`.
  bool FailFirst(const std::string& key, int64_t k);
  void Reset();

  const MockOptions options_;
  MockStats stats_;
  std::atomic<uint64_t> seq_{0};
  // std::mutex rather than absl::Mutex: Debian's abseil is not built with TSan annotations, so
  // ThreadSanitizer cannot see absl::Mutex synchronisation and reports false races.
  std::mutex mu_;
  absl::flat_hash_map<std::string, int64_t> fail_counts_ ABSL_GUARDED_BY(mu_);
};

// A complete non-stream response: status line, headers, body. `extra_headers` are raw
// "name: value\r\n" lines. Used for errors and small answers outside the chat route too.
ResponsePlan JsonResponse(int status, std::string_view body, bool keep_alive,
                          std::string_view extra_headers = {}, int64_t delay_ms = 0);

}  // namespace tollgate::tools::mock
