#include "tools/mock_provider/mock_logic.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "boost/json/parse.hpp"
#include "boost/json/serialize.hpp"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tollgate::tools::mock {
namespace {

namespace json = boost::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

json::array Messages(std::string_view text) { return json::parse(text).as_array(); }

// ---- tokens -----------------------------------------------------------------------------------

TEST(CountPromptTokensTest, StringContentRoundsUpPerMessage) {
  // 3 + (4 + ceil(5/4)=2) + (4 + ceil(8/4)=2) = 15
  EXPECT_EQ(CountPromptTokens(Messages(
                R"([{"role":"system","content":"hello"},{"role":"user","content":"12345678"}])")),
            15);
}

TEST(CountPromptTokensTest, EmptyAndNullContentCountOnlyTheMessage) {
  EXPECT_EQ(CountPromptTokens(Messages(R"([{"role":"user","content":""}])")), 7);
  EXPECT_EQ(CountPromptTokens(Messages(R"([{"role":"assistant","content":null,"tool_calls":[]},
                                          {"role":"user","content":"a"}])")),
            3 + 4 + 4 + 1);
}

TEST(CountPromptTokensTest, ArrayContentCountsTextPartsOnly) {
  // text parts "abcd" + "efghi" = 9 bytes -> 3 tokens; the image counts nothing.
  EXPECT_EQ(CountPromptTokens(Messages(R"([{"role":"user","content":[
      {"type":"text","text":"abcd"},
      {"type":"image_url","image_url":{"url":"https://x/y.png"}},
      {"type":"text","text":"efghi"}]}])")),
            3 + 4 + 3);
}

TEST(CountPromptTokensTest, ToolMessagesCountTheirContentAndUtf8IsBytes) {
  // "héllo" is 6 bytes -> 2 tokens; tool content "0123456789" -> 3 tokens.
  EXPECT_EQ(CountPromptTokens(Messages(R"([{"role":"user","content":"h\u00e9llo"},
      {"role":"tool","tool_call_id":"call_1","content":"0123456789"}])")),
            3 + (4 + 2) + (4 + 3));
}

TEST(Fnv1aTest, KnownVectors) {
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(Fnv1a64("foobar"), 0x85944171f73967e8ULL);
}

// ---- directives -------------------------------------------------------------------------------

TEST(DirectivesTest, ParsesEveryKnownKey) {
  Directives d;
  ASSERT_TRUE(ParseDirectives("hi [[mock: status=429 retry_after=2 tokens=5 cached=3 reasoning=4 "
                              "ttft_ms=10 inter_token_ms=2 latency_ms=7 stall_ms=9 "
                              "disconnect_after=1 fail_first=2 key=fb-1]] there",
                              d)
                  .ok());
  EXPECT_EQ(d.status, 429);
  EXPECT_EQ(d.retry_after, 2);
  EXPECT_EQ(d.tokens, 5);
  EXPECT_EQ(d.cached, 3);
  EXPECT_EQ(d.reasoning, 4);
  EXPECT_EQ(d.ttft_ms, 10);
  EXPECT_EQ(d.inter_token_ms, 2);
  EXPECT_EQ(d.latency_ms, 7);
  EXPECT_EQ(d.stall_ms, 9);
  EXPECT_EQ(d.disconnect_after, 1);
  EXPECT_EQ(d.fail_first, 2);
  EXPECT_EQ(d.key, "fb-1");
}

TEST(DirectivesTest, TextWithoutDirectivesChangesNothing) {
  Directives d;
  ASSERT_TRUE(ParseDirectives("just a [[normal]] prompt", d).ok());
  EXPECT_FALSE(d.status.has_value());
  EXPECT_FALSE(d.tokens.has_value());
}

TEST(DirectivesTest, UnknownKeyIsAnError) {
  Directives d;
  absl::Status st = ParseDirectives("x [[mock: tokns=5]]", d);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("unknown mock directive 'tokns'"));
}

TEST(DirectivesTest, MalformedDirectivesAreErrors) {
  Directives d;
  EXPECT_FALSE(ParseDirectives("[[mock: tokens]]", d).ok());
  EXPECT_FALSE(ParseDirectives("[[mock: tokens=-1]]", d).ok());
  EXPECT_FALSE(ParseDirectives("[[mock: tokens=5x]]", d).ok());
  EXPECT_FALSE(ParseDirectives("[[mock: status=302]]", d).ok());
  EXPECT_FALSE(ParseDirectives("[[mock: status=429", d).ok());
  EXPECT_FALSE(ParseDirectives("[[mock: key=a/b]]", d).ok());
}

TEST(DirectivesTest, HeaderStyleNamesAndLaterValuesWin) {
  Directives d;
  ASSERT_TRUE(ApplyDirective("Inter-Token-MS", "4", d).ok());
  ASSERT_TRUE(ApplyDirective("tokens", "3", d).ok());
  ASSERT_TRUE(ParseDirectives("[[mock: tokens=6]] [[mock: tokens=7]]", d).ok());
  EXPECT_EQ(d.inter_token_ms, 4);
  EXPECT_EQ(d.tokens, 7);
}

TEST(PromptTextTest, StripsDirectivesAndTrims) {
  EXPECT_EQ(PromptText("  hello [[mock: status=429]] world [[mock:tokens=1]] "), "hello  world");
  EXPECT_EQ(PromptText("[[mock: tokens=3]]"), "");
  EXPECT_EQ(PromptText("open [[mock: never closed"), "open [[mock: never closed");
}

// ---- completions ------------------------------------------------------------------------------

ChatRequest Request(std::string prompt) {
  ChatRequest r;
  r.model = "gpt-4o-mini";
  r.prompt_tokens = 20;
  r.last_user_text = std::move(prompt);
  return r;
}

TEST(BuildCompletionTest, DeterministicWordCountAndContent) {
  const ChatRequest r = Request("Say hello");
  const Completion a = BuildCompletion(r, {}, 1, 100);
  const Completion b = BuildCompletion(r, {}, 2, 200);
  const int64_t expected_words = 8 + static_cast<int64_t>(Fnv1a64("Say hello") % 17);
  ASSERT_EQ(a.choices.size(), 1u);
  EXPECT_EQ(a.choices[0].words, expected_words);
  EXPECT_EQ(a.choices[0].content, b.choices[0].content);
  EXPECT_EQ(a.choices[0].content, GenerateWords(Fnv1a64("Say hello"), expected_words));
  EXPECT_EQ(std::count(a.choices[0].content.begin(), a.choices[0].content.end(), ' '),
            expected_words - 1);
  EXPECT_EQ(a.usage.completion_tokens, expected_words);
  EXPECT_EQ(a.usage.prompt_tokens, 20);
  EXPECT_EQ(a.id, "chatcmpl-1");
  EXPECT_EQ(a.choices[0].finish_reason, "stop");
  // Directives do not change the content.
  const Completion c = BuildCompletion(Request("Say hello [[mock: ttft_ms=5]]"), {}, 3, 300);
  EXPECT_EQ(c.choices[0].content, a.choices[0].content);
  EXPECT_NE(BuildCompletion(Request("Say goodbye"), {}, 1, 1).choices[0].content,
            a.choices[0].content);
}

TEST(BuildCompletionTest, DirectivesShapeUsage) {
  Directives d;
  d.tokens = 5;
  d.cached = 1000;
  d.reasoning = 7;
  const Completion c = BuildCompletion(Request("x"), d, 1, 1);
  EXPECT_EQ(c.choices[0].words, 5);
  EXPECT_EQ(c.usage.completion_tokens, 12);
  EXPECT_EQ(c.usage.reasoning_tokens, 7);
  EXPECT_EQ(c.usage.cached_tokens, 20) << "clamped to prompt_tokens";
}

TEST(BuildCompletionTest, MaxTokensTruncatesWithLength) {
  ChatRequest r = Request("x");
  r.max_completion_tokens = 10;
  Directives d;
  d.tokens = 30;
  d.reasoning = 4;
  const Completion c = BuildCompletion(r, d, 1, 1);
  EXPECT_EQ(c.choices[0].words, 6);
  EXPECT_EQ(c.choices[0].finish_reason, "length");
  EXPECT_EQ(c.usage.completion_tokens, 10);
}

TEST(BuildCompletionTest, SeveralChoicesAreBilledTogether) {
  ChatRequest r = Request("x");
  r.n = 3;
  Directives d;
  d.tokens = 4;
  const Completion c = BuildCompletion(r, d, 1, 1);
  ASSERT_EQ(c.choices.size(), 3u);
  EXPECT_EQ(c.usage.completion_tokens, 12);
  EXPECT_NE(c.choices[0].content, c.choices[1].content);
}

TEST(BuildCompletionTest, CacheTokensAreClampedInTurnToThePrompt) {
  Directives d;
  d.cached = 8;
  d.cache_write_5m = 10;
  d.cache_write_1h = 10;
  const Completion c = BuildCompletion(Request("x"), d, 1, 1);  // prompt_tokens 20
  EXPECT_EQ(c.usage.prompt_tokens, 20);
  EXPECT_EQ(c.usage.cached_tokens, 8);
  EXPECT_EQ(c.usage.cache_write_5m_tokens, 10);
  EXPECT_EQ(c.usage.cache_write_1h_tokens, 2);
}

TEST(BuildCompletionTest, BlockedPromptHasNoChoicesAndNoOutput) {
  Directives d;
  d.block = "SAFETY";
  d.reasoning = 5;
  d.cached = 3;
  const Completion c = BuildCompletion(Request("x"), d, 1, 1);
  EXPECT_EQ(c.block_reason, "SAFETY");
  EXPECT_TRUE(c.choices.empty());
  EXPECT_EQ(c.usage.completion_tokens, 0);
  EXPECT_EQ(c.usage.reasoning_tokens, 0);
  EXPECT_EQ(c.usage.prompt_tokens, 20);
  EXPECT_EQ(c.usage.cached_tokens, 3);
}

TEST(BuildCompletionTest, IdStyleNamesCompletionAndToolCalls) {
  ChatRequest r = Request("Paris now");
  r.tool_to_call = "f";
  r.n = 2;
  const Completion c = BuildCompletion(r, {}, 9, 1, {.completion = "msg_", .tool_call = "toolu_"});
  EXPECT_EQ(c.id, "msg_9");
  EXPECT_EQ(c.seq, 9u);
  EXPECT_EQ(c.choices[0].tool_call_id, "toolu_9");
  EXPECT_EQ(c.choices[1].tool_call_id, "toolu_9_1");
  EXPECT_EQ(c.seed, Fnv1a64("Paris now"));
}

TEST(ReasoningTextTest, AsManyWordsAsReasoningTokensAndDeterministic) {
  Directives d;
  d.reasoning = 6;
  d.tokens = 6;
  const Completion a = BuildCompletion(Request("think"), d, 1, 1);
  const Completion b = BuildCompletion(Request("think [[mock: ttft_ms=1]]"), d, 2, 2);
  const std::string text = ReasoningText(a);
  EXPECT_EQ(std::count(text.begin(), text.end(), ' '), 5);
  EXPECT_EQ(text, ReasoningText(b));
  EXPECT_NE(text, a.choices[0].content);
  EXPECT_EQ(ReasoningText(BuildCompletion(Request("think"), {}, 1, 1)), "");
}

TEST(StreamHelpersTest, NextPieceSplitsWordsWithLeadingSpaces) {
  std::vector<std::string> pieces;
  size_t cursor = 0;
  for (std::string_view p; !(p = NextPiece("one two three", cursor)).empty();) {
    pieces.emplace_back(p);
  }
  EXPECT_THAT(pieces, ElementsAre("one", " two", " three"));
  cursor = 0;
  EXPECT_EQ(NextPiece("", cursor), "");
}

TEST(StreamHelpersTest, SplitToolArgumentsReassembles) {
  const auto parts = SplitToolArguments(R"({"query":"Paris"})");
  EXPECT_THAT(parts, ElementsAre(R"({"query":)", R"("Paris")", "}"));
}

// ---- directives added for the Anthropic and Gemini dialects -----------------------------------

TEST(DirectivesTest, DialectDirectives) {
  Directives d;
  ASSERT_TRUE(ParseDirectives("[[mock: cache_write_5m=4 cache_write_1h=2 thinking=7 block=SAFETY "
                              "stream_error=overloaded_error stream_error_after=3]]",
                              d)
                  .ok());
  EXPECT_EQ(d.cache_write_5m, 4);
  EXPECT_EQ(d.cache_write_1h, 2);
  EXPECT_EQ(d.reasoning, 7);
  EXPECT_EQ(d.block, "SAFETY");
  EXPECT_EQ(d.stream_error, 529);
  EXPECT_EQ(d.stream_error_after, 3);
  ASSERT_TRUE(ParseDirectives("[[mock: thoughts=9 stream_error=500]]", d).ok());
  EXPECT_EQ(d.reasoning, 9);
  EXPECT_EQ(d.stream_error, 500);
  EXPECT_FALSE(ParseDirectives("[[mock: stream_error=bogus_error]]", d).ok());
  EXPECT_FALSE(ParseDirectives("[[mock: stream_error=302]]", d).ok());
  EXPECT_FALSE(ParseDirectives("[[mock: block=a/b]]", d).ok());
  EXPECT_FALSE(ParseDirectives("[[mock: cache_write_5m=x]]", d).ok());
}

TEST(ErrorTypeTest, AnthropicErrorTypesRoundTrip) {
  for (std::string_view type :
       {"invalid_request_error", "authentication_error", "billing_error", "permission_error",
        "not_found_error", "request_too_large", "rate_limit_error", "api_error", "timeout_error",
        "overloaded_error"}) {
    const std::optional<int> status = ErrorTypeStatus(type);
    ASSERT_TRUE(status.has_value()) << type;
    EXPECT_EQ(ErrorTypeForStatus(*status), type);
  }
  EXPECT_EQ(ErrorTypeStatus("overloaded_error"), 529);
  EXPECT_EQ(ErrorTypeForStatus(418), "invalid_request_error");
  EXPECT_EQ(ErrorTypeForStatus(503), "api_error");
  EXPECT_FALSE(ErrorTypeStatus("nope").has_value());
}

}  // namespace
}  // namespace tollgate::tools::mock
