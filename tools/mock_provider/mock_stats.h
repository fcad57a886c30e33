#pragma once
// MockStats: the counters behind GET /_mock/stats, per dialect and in total.
//
// Counters cover API requests (chat completions, messages, generateContent, and the embeddings
// routes of embeddings.h) since start or the last Reset; embedding_requests counts the embeddings
// ones among `requests`. Token counters sum the usage of every successful (200) response that was
// not cut by disconnect_after or failed by stream_error, whether or not the usage was sent to the
// client (what the provider "billed"); they are updated before the response is written. Tokens
// are counted in the neutral shape of mock_logic.h Usage: prompt_tokens includes cache reads and
// writes, completion_tokens includes reasoning, whatever the dialect's own reporting. Embeddings
// input tokens (embeddings.h token rules, counted even for Gemini, which reports no usage) are
// added to prompt_tokens and, on their own, to embedding_tokens, so chat prompt tokens are
// prompt_tokens - embedding_tokens.
//
// Lock-free; thread-safe.

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "tools/mock_provider/dialect.h"
#include "tools/mock_provider/mock_logic.h"

namespace tollgate::tools::mock {

class MockStats {
 public:
  void CountRequest(DialectId d) { Add(at(d).requests, 1); }
  void CountStream(DialectId d) { Add(at(d).streams, 1); }
  void CountDisconnect(DialectId d) { Add(at(d).disconnects, 1); }
  void CountStreamError(DialectId d) { Add(at(d).stream_errors, 1); }
  void CountStatus(DialectId d, int status);
  void CountUsage(DialectId d, const Usage& usage);
  void CountEmbeddingRequest(DialectId d) { Add(at(d).embedding_requests, 1); }
  // A successful embeddings response's input tokens: to prompt_tokens and embedding_tokens.
  void CountEmbeddingUsage(DialectId d, int64_t tokens);
  void Reset();

  // Totals over all dialects.
  int64_t requests() const;
  int64_t status_count(int status) const;
  // One dialect's.
  int64_t requests(DialectId d) const { return at(d).requests.load(std::memory_order_relaxed); }
  int64_t status_count(DialectId d, int status) const;

  // The totals, then per dialect the same counters:
  //   {"requests":N,"streams":N,"disconnects":N,"by_status":{"200":N,...},"prompt_tokens":N,
  //    "completion_tokens":N,"cached_tokens":N,"reasoning_tokens":N,"stream_errors":N,
  //    "cache_write_5m_tokens":N,"cache_write_1h_tokens":N,"embedding_requests":N,
  //    "embedding_tokens":N,
  //    "by_dialect":{"openai":{<the same keys>},"azure":{...},"anthropic":{...},"gemini":{...}}}
  // by_status lists only statuses seen, in increasing order.
  std::string ToJson() const;

 private:
  static constexpr size_t kStatuses = 600;
  struct Counters {
    std::atomic<int64_t> requests{0};
    std::atomic<int64_t> streams{0};
    std::atomic<int64_t> disconnects{0};
    std::atomic<int64_t> stream_errors{0};
    std::atomic<int64_t> prompt_tokens{0};
    std::atomic<int64_t> completion_tokens{0};
    std::atomic<int64_t> cached_tokens{0};
    std::atomic<int64_t> reasoning_tokens{0};
    std::atomic<int64_t> cache_write_5m_tokens{0};
    std::atomic<int64_t> cache_write_1h_tokens{0};
    std::atomic<int64_t> embedding_requests{0};
    std::atomic<int64_t> embedding_tokens{0};
    std::array<std::atomic<int64_t>, kStatuses> by_status{};
  };

  static void Add(std::atomic<int64_t>& counter, int64_t n) {
    counter.fetch_add(n, std::memory_order_relaxed);
  }
  Counters& at(DialectId d) { return dialects_[static_cast<size_t>(d)]; }
  const Counters& at(DialectId d) const { return dialects_[static_cast<size_t>(d)]; }

  std::array<Counters, kDialectCount> dialects_;
};

}  // namespace tollgate::tools::mock
