#include "services/gateway/sse_parser.h"

#include <string>
#include <vector>

#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"

namespace tollgate::gateway {
namespace {

struct Parsed {
  std::string raw;
  std::string data;
  std::string event;
  std::string id;
  bool has_data = false;
  bool terminated = true;
  bool operator==(const Parsed&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Parsed& p) {
  return os << "{raw=" << testing::PrintToString(p.raw)
            << " data=" << testing::PrintToString(p.data) << " event=" << p.event << " id=" << p.id
            << " has_data=" << p.has_data << "}";
}

// Feeds `pieces` in order, then Finish; returns every event reported.
std::vector<Parsed> FeedAll(const std::vector<std::string>& pieces,
                            size_t max_event_bytes = 1 << 20) {
  SseParser parser(max_event_bytes);
  std::vector<Parsed> out;
  auto collect = [&](const SseEvent& e) {
    out.push_back(Parsed{std::string(e.raw), std::string(e.data), std::string(e.event),
                         std::string(e.id), e.has_data, e.terminated});
  };
  for (const std::string& piece : pieces) {
    absl::Status st = parser.Feed(piece, collect);
    EXPECT_TRUE(st.ok()) << st;
  }
  parser.Finish(collect);
  return out;
}

std::vector<std::string> Datas(const std::vector<Parsed>& events) {
  std::vector<std::string> out;
  for (const Parsed& e : events) {
    if (e.has_data) out.push_back(e.data);
  }
  return out;
}

// A realistic OpenAI stream with include_usage (PROVIDERS.md §1.3).
const std::vector<std::string>& OpenAiEventData() {
  static const std::vector<std::string> kData = {
      R"({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null})",
      R"({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}],"usage":null})",
      R"({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":" world, \u00e9t\u00e9 \"quoted\""},"finish_reason":null}],"usage":null})",
      R"({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"finish_reason":null}],"usage":null})",
      R"({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null})",
      R"({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":82,"completion_tokens":18,"total_tokens":100}})",
      "[DONE]",
  };
  return kData;
}

std::string OpenAiStream(const std::string& eol) {
  std::string s;
  for (const std::string& d : OpenAiEventData()) s += "data: " + d + eol + eol;
  return s;
}

TEST(SseParser, WholeOpenAiStream) {
  const std::string stream = OpenAiStream("\n");
  std::vector<Parsed> events = FeedAll({stream});
  EXPECT_EQ(Datas(events), OpenAiEventData());
  std::string raw;
  for (const Parsed& e : events) {
    raw += e.raw;
    EXPECT_TRUE(e.terminated);
  }
  EXPECT_EQ(raw, stream) << "raw event bytes must reproduce the input exactly";
  EXPECT_EQ(events.front().raw, "data: " + OpenAiEventData().front() + "\n\n");
}

TEST(SseParser, SplitAtEveryByteBoundaryYieldsTheSameEvents) {
  for (const std::string eol : {"\n", "\r\n", "\r"}) {
    const std::string stream = OpenAiStream(eol);
    const std::vector<Parsed> whole = FeedAll({stream});
    ASSERT_EQ(Datas(whole), OpenAiEventData()) << "eol " << testing::PrintToString(eol);
    for (size_t k = 0; k <= stream.size(); ++k) {
      std::vector<Parsed> split = FeedAll({stream.substr(0, k), stream.substr(k)});
      ASSERT_EQ(Datas(split), OpenAiEventData())
          << "split at " << k << " eol " << testing::PrintToString(eol);
      ASSERT_EQ(split.size(), whole.size());
      for (size_t e = 0; e < split.size(); ++e) {
        // Each raw event is the original text; only a '\n' whose '\r' was already dispatched
        // may be missing at the end.
        const std::string& want = whole[e].raw;
        const std::string& got = split[e].raw;
        ASSERT_TRUE(got == want || (got + "\n" == want && std::string(eol) == "\r\n"))
            << "split at " << k << " event " << e << ": " << testing::PrintToString(got);
      }
      if (std::string(eol) == "\n") {
        ASSERT_EQ(split, whole) << "split at " << k;
      }
    }
  }
}

TEST(SseParser, ThreeWaySplitsYieldTheSameEvents) {
  const std::string stream = OpenAiStream("\r\n");
  for (size_t a = 0; a <= stream.size(); a += 7) {
    for (size_t b = a; b <= stream.size(); b += 13) {
      std::vector<Parsed> split =
          FeedAll({stream.substr(0, a), stream.substr(a, b - a), stream.substr(b)});
      ASSERT_EQ(Datas(split), OpenAiEventData()) << a << "," << b;
    }
  }
}

TEST(SseParser, OneByteAtATime) {
  for (const std::string eol : {"\n", "\r\n", "\r"}) {
    const std::string stream = OpenAiStream(eol);
    std::vector<std::string> bytes;
    for (char c : stream) bytes.push_back(std::string(1, c));
    std::vector<Parsed> events = FeedAll(bytes);
    EXPECT_EQ(Datas(events), OpenAiEventData()) << testing::PrintToString(eol);
    if (std::string(eol) == "\n") {
      EXPECT_EQ(events, FeedAll({stream}));
    }
  }
}

TEST(SseParser, EventIsDispatchedAsSoonAsItsBlankLineArrives) {
  SseParser parser(1024);
  std::vector<std::string> got;
  auto collect = [&](const SseEvent& e) { got.push_back(std::string(e.data)); };
  ASSERT_TRUE(parser.Feed("data: one\n", collect).ok());
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(parser.buffered_bytes(), 10u);
  ASSERT_TRUE(parser.Feed("\n", collect).ok());
  EXPECT_EQ(got, std::vector<std::string>{"one"});
  EXPECT_EQ(parser.buffered_bytes(), 0u);
  // A CRLF blank line split after its '\r' dispatches at once; the '\n' is not an empty event.
  ASSERT_TRUE(parser.Feed("data: two\r\n\r", collect).ok());
  EXPECT_EQ(got, (std::vector<std::string>{"one", "two"}));
  std::string raw;
  ASSERT_TRUE(parser
                  .Feed("\ndata: three\r\n\r\n",
                        [&](const SseEvent& e) {
                          got.push_back(std::string(e.data));
                          raw = std::string(e.raw);
                        })
                  .ok());
  EXPECT_EQ(got, (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_EQ(raw, "data: three\r\n\r\n") << "the swallowed '\\n' must not start the next event";
}

TEST(SseParser, MultiLineDataFieldsAndComments) {
  std::vector<Parsed> events = FeedAll({
      ": keep-alive\n\n"
      "event: message\nid: 7\ndata: first\ndata:second\ndata\n: note\nretry: 10\nunknown: x\n\n"
      "\n\n\n"
      "data: {\"a\":1}\r\n\r\n",
  });
  ASSERT_EQ(events.size(), 3u);
  EXPECT_FALSE(events[0].has_data);
  EXPECT_EQ(events[0].raw, ": keep-alive\n\n");
  EXPECT_TRUE(events[1].has_data);
  EXPECT_EQ(events[1].data, "first\nsecond\n");
  EXPECT_EQ(events[1].event, "message");
  EXPECT_EQ(events[1].id, "7");
  EXPECT_EQ(events[2].data, "{\"a\":1}");
  EXPECT_EQ(events[2].raw, "data: {\"a\":1}\r\n\r\n");
}

TEST(SseParser, OnlyOneLeadingSpaceIsStripped) {
  std::vector<Parsed> events = FeedAll({"data:  two spaces\n\ndata:none\n\n"});
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].data, " two spaces");
  EXPECT_EQ(events[1].data, "none");
}

TEST(SseParser, FinishFlushesAnUnterminatedEvent) {
  std::vector<Parsed> events = FeedAll({"data: a\n\ndata: [DONE]"});
  ASSERT_EQ(events.size(), 2u);
  EXPECT_TRUE(events[0].terminated);
  EXPECT_EQ(events[1].data, "[DONE]");
  EXPECT_FALSE(events[1].terminated);
  EXPECT_EQ(events[1].raw, "data: [DONE]");

  events = FeedAll({"data: b\n"});
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "b");
  EXPECT_FALSE(events[0].terminated);

  EXPECT_TRUE(FeedAll({"data: c\n\n\n"}).size() == 1);
  EXPECT_TRUE(FeedAll({""}).empty());
}

TEST(SseParser, OversizeEventIsAnError) {
  SseParser parser(64);
  int n = 0;
  auto count = [&](const SseEvent&) { ++n; };
  ASSERT_TRUE(parser.Feed("data: small\n\n", count).ok());
  EXPECT_EQ(n, 1);
  // Grows past the limit without ever being terminated.
  absl::Status st = absl::OkStatus();
  for (int i = 0; i < 10 && st.ok(); ++i) st = parser.Feed("data: 0123456789\n", count);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
  // Stays failed.
  EXPECT_EQ(parser.Feed("\n", count).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(n, 1);

  // A complete event over the limit in a single Feed is rejected too.
  SseParser one_shot(16);
  EXPECT_EQ(one_shot.Feed("data: " + std::string(40, 'x') + "\n\n", count).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(n, 1);
}

TEST(SseParser, LongStreamKeepsMemoryBounded) {
  SseParser parser(256);
  int n = 0;
  for (int i = 0; i < 10000; ++i) {
    ASSERT_TRUE(parser.Feed("data: {\"x\":1}\n\n", [&](const SseEvent&) { ++n; }).ok());
    ASSERT_EQ(parser.buffered_bytes(), 0u);
  }
  EXPECT_EQ(n, 10000);
}

}  // namespace
}  // namespace tollgate::gateway
