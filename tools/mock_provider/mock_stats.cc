#include "tools/mock_provider/mock_stats.h"

#include "absl/strings/str_cat.h"

namespace tollgate::tools::mock {
namespace {

// One object's counters, each the sum over `n` Counters selected by the caller.
template <typename Get>
void AppendCounters(std::string& out, Get&& get, size_t statuses) {
  absl::StrAppend(&out, "{\"requests\":", get([](auto& c) -> auto& { return c.requests; }),
                  ",\"streams\":", get([](auto& c) -> auto& { return c.streams; }),
                  ",\"disconnects\":", get([](auto& c) -> auto& { return c.disconnects; }),
                  ",\"by_status\":{");
  bool first = true;
  for (size_t s = 0; s < statuses; ++s) {
    const int64_t n = get([s](auto& c) -> auto& { return c.by_status[s]; });
    if (n == 0) continue;
    absl::StrAppend(&out, first ? "" : ",", "\"", s, "\":", n);
    first = false;
  }
  absl::StrAppend(
      &out, "},\"prompt_tokens\":", get([](auto& c) -> auto& { return c.prompt_tokens; }),
      ",\"completion_tokens\":", get([](auto& c) -> auto& { return c.completion_tokens; }),
      ",\"cached_tokens\":", get([](auto& c) -> auto& { return c.cached_tokens; }),
      ",\"reasoning_tokens\":", get([](auto& c) -> auto& { return c.reasoning_tokens; }),
      ",\"stream_errors\":", get([](auto& c) -> auto& { return c.stream_errors; }),
      ",\"cache_write_5m_tokens\":", get([](auto& c) -> auto& { return c.cache_write_5m_tokens; }),
      ",\"cache_write_1h_tokens\":", get([](auto& c) -> auto& { return c.cache_write_1h_tokens; }),
      ",\"embedding_requests\":", get([](auto& c) -> auto& { return c.embedding_requests; }),
      ",\"embedding_tokens\":", get([](auto& c) -> auto& { return c.embedding_tokens; }));
}

}  // namespace

void MockStats::CountStatus(DialectId d, int status) {
  if (status >= 0 && static_cast<size_t>(status) < kStatuses) {
    Add(at(d).by_status[static_cast<size_t>(status)], 1);
  }
}

void MockStats::CountUsage(DialectId d, const Usage& usage) {
  Counters& c = at(d);
  Add(c.prompt_tokens, usage.prompt_tokens);
  Add(c.completion_tokens, usage.completion_tokens);
  Add(c.cached_tokens, usage.cached_tokens);
  Add(c.reasoning_tokens, usage.reasoning_tokens);
  Add(c.cache_write_5m_tokens, usage.cache_write_5m_tokens);
  Add(c.cache_write_1h_tokens, usage.cache_write_1h_tokens);
}

void MockStats::CountEmbeddingUsage(DialectId d, int64_t tokens) {
  Add(at(d).prompt_tokens, tokens);
  Add(at(d).embedding_tokens, tokens);
}

void MockStats::Reset() {
  for (Counters& c : dialects_) {
    for (auto* n :
         {&c.requests, &c.streams, &c.disconnects, &c.stream_errors, &c.prompt_tokens,
          &c.completion_tokens, &c.cached_tokens, &c.reasoning_tokens, &c.cache_write_5m_tokens,
          &c.cache_write_1h_tokens, &c.embedding_requests, &c.embedding_tokens}) {
      n->store(0, std::memory_order_relaxed);
    }
    for (auto& n : c.by_status) n.store(0, std::memory_order_relaxed);
  }
}

int64_t MockStats::requests() const {
  int64_t n = 0;
  for (const Counters& c : dialects_) n += c.requests.load(std::memory_order_relaxed);
  return n;
}

int64_t MockStats::status_count(int status) const {
  int64_t n = 0;
  for (size_t d = 0; d < kDialectCount; ++d) n += status_count(static_cast<DialectId>(d), status);
  return n;
}

int64_t MockStats::status_count(DialectId d, int status) const {
  if (status < 0 || static_cast<size_t>(status) >= kStatuses) return 0;
  return at(d).by_status[static_cast<size_t>(status)].load(std::memory_order_relaxed);
}

std::string MockStats::ToJson() const {
  std::string out;
  out.reserve(2048);
  AppendCounters(
      out,
      [this](auto&& field) {
        int64_t sum = 0;
        for (const Counters& c : dialects_) sum += field(c).load(std::memory_order_relaxed);
        return sum;
      },
      kStatuses);
  out += ",\"by_dialect\":{";
  for (size_t d = 0; d < kDialectCount; ++d) {
    absl::StrAppend(&out, d == 0 ? "" : ",", "\"", Av(DialectName(static_cast<DialectId>(d))),
                    "\":");
    const Counters& one = dialects_[d];
    AppendCounters(
        out, [&one](auto&& field) { return field(one).load(std::memory_order_relaxed); },
        kStatuses);
    out += '}';
  }
  out += "}}";
  return out;
}

}  // namespace tollgate::tools::mock
