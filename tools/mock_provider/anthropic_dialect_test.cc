#include "tools/mock_provider/anthropic_dialect.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "boost/json/parse.hpp"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tollgate::tools::mock {
namespace {

namespace json = boost::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr IdStyle kIds = {.completion = "msg_", .tool_call = "toolu_"};

ChatRequest MustParse(std::string_view body) {
  ChatRequest request;
  auto error = ParseMessagesRequest(body, request);
  EXPECT_FALSE(error.has_value()) << (error ? error->message : "");
  return request;
}

std::string MustFail(std::string_view body) {
  ChatRequest request;
  auto error = ParseMessagesRequest(body, request);
  EXPECT_TRUE(error.has_value()) << body;
  if (!error) return "";
  EXPECT_EQ(error->status, 400);
  EXPECT_EQ(error->type, "invalid_request_error");
  return error->message;
}

// A request body with `messages` (JSON array text) and extra top-level fields.
std::string Body(std::string_view messages, std::string_view extra = "") {
  return absl::StrCat(R"({"model":"claude-sonnet-4-20250514","max_tokens":1024,"messages":)",
                      Av(messages), extra.empty() ? "" : ",", Av(extra), "}");
}

ChatRequest Request(std::string prompt) {
  ChatRequest r;
  r.model = "claude-sonnet-4-20250514";
  r.prompt_tokens = 20;
  r.last_user_text = std::move(prompt);
  return r;
}

// ---- request validation -----------------------------------------------------------------------

TEST(ParseMessagesRequestTest, ExtractsWhatTheMockNeeds) {
  const ChatRequest r = MustParse(Body(
      R"([{"role":"user","content":[{"type":"text","text":"first"},{"type":"text","text":" part"}]},
               {"role":"assistant","content":"ok"},
               {"role":"user","content":"again please"}])",
      R"("system":"Be brief.","stream":true)"));
  EXPECT_EQ(r.model, "claude-sonnet-4-20250514");
  EXPECT_TRUE(r.stream);
  EXPECT_EQ(r.n, 1);
  EXPECT_EQ(r.max_completion_tokens, 1024);
  EXPECT_EQ(r.last_user_text, "again please");
  // The system prompt counts as one message: 3 + (4+3) + (4+1) + (4+3) + system (4+3).
  EXPECT_EQ(r.prompt_tokens, 3 + 7 + 5 + 7 + 7);
  EXPECT_TRUE(r.tool_to_call.empty());
}

TEST(ParseMessagesRequestTest, SystemBlocksCountLikeTheString) {
  const ChatRequest a =
      MustParse(Body(R"([{"role":"user","content":"x"}])", R"("system":"Be brief.")"));
  const ChatRequest b = MustParse(Body(
      R"([{"role":"user","content":"x"}])",
      R"("system":[{"type":"text","text":"Be ","cache_control":{"type":"ephemeral"}},{"type":"text","text":"brief."}])"));
  EXPECT_EQ(a.prompt_tokens, b.prompt_tokens);
  EXPECT_EQ(MustParse(Body(R"([{"role":"user","content":"x"}])")).prompt_tokens, 3 + 5);
}

TEST(ParseMessagesRequestTest, RejectsWhatAnthropicRejects) {
  EXPECT_EQ(MustFail(R"({"model":"m","messages":[{"role":"user","content":"x"}]})"),
            "max_tokens: Field required");
  EXPECT_EQ(MustFail(R"({"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]})"),
            "max_tokens: Input should be greater than or equal to 1");
  EXPECT_EQ(MustFail(R"({"max_tokens":5,"messages":[{"role":"user","content":"x"}]})"),
            "model: Field required");
  EXPECT_THAT(MustFail(Body(R"([{"role":"system","content":"x"},{"role":"user","content":"y"}])")),
              HasSubstr("Unexpected role \"system\". The Messages API accepts a top-level "
                        "`system` parameter"));
  EXPECT_EQ(MustFail(Body(R"([{"role":"tool","content":"x"}])")),
            "messages.0.role: Input should be 'user' or 'assistant'");
  EXPECT_EQ(MustFail(Body(R"([{"role":"user","content":"x"}])", R"("n":2)")),
            "n: Extra inputs are not permitted");
  EXPECT_EQ(MustFail(Body("[]")), "messages: at least one message is required");
  EXPECT_EQ(MustFail(Body(R"([{"role":"user","content":"x"}])", R"("temperature":1.5)")),
            "temperature: Input should be less than or equal to 1");
  EXPECT_EQ(MustFail(Body(R"([{"role":"user","content":[{"type":"text","text":""}]}])")),
            "messages: text content blocks must be non-empty");
  EXPECT_THAT(MustFail(Body(R"([{"role":"user","content":""},{"role":"user","content":"x"}])")),
              HasSubstr("messages.0: all messages must have non-empty content"));
  EXPECT_THAT(MustFail(Body(R"([{"role":"user","content":[{"type":"video"}]}])")),
              StartsWith("messages.0.content.0.type: Input tag 'video'"));
  EXPECT_EQ(MustFail("{oops"), "The request body is not valid JSON: syntax error");
  // A final empty assistant message is a (legal) prefill.
  MustParse(Body(R"([{"role":"user","content":"x"},{"role":"assistant","content":""}])"));
}

TEST(ParseMessagesRequestTest, ThinkingBudgetRules) {
  EXPECT_EQ(MustFail(Body(R"([{"role":"user","content":"x"}])",
                          R"("thinking":{"type":"enabled","budget_tokens":512})")),
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024");
  EXPECT_THAT(MustFail(Body(R"([{"role":"user","content":"x"}])",
                            R"("thinking":{"type":"enabled","budget_tokens":2048})")),
              StartsWith("`max_tokens` must be greater than `thinking.budget_tokens`"));
  MustParse(R"({"model":"m","max_tokens":2048,"messages":[{"role":"user","content":"x"}],
                 "thinking":{"type":"enabled","budget_tokens":1024}})");
}

TEST(ParseMessagesRequestTest, ToolUseAndToolResultMustPair) {
  constexpr std::string_view kUse =
      R"({"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"f","input":{}}]})";
  EXPECT_THAT(
      MustFail(Body(absl::StrCat(R"([{"role":"user","content":"x"},)", Av(kUse),
                                 R"(,{"role":"user","content":"no result"}])"))),
      StartsWith("messages.1: `tool_use` ids were found without `tool_result` blocks immediately "
                 "after: toolu_1."));
  EXPECT_THAT(
      MustFail(Body(
          R"([{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_9","content":"r"}]}])")),
      StartsWith("messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: "
                 "toolu_9."));
  const ChatRequest r = MustParse(Body(
      absl::StrCat(
          R"([{"role":"user","content":"Paris now"},)", Av(kUse),
          R"(,{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"18C"}]}])"),
      R"("tools":[{"name":"f","input_schema":{"type":"object"}}])"));
  EXPECT_TRUE(r.tool_to_call.empty()) << "the last message is a tool result: answer with text";
  EXPECT_EQ(r.last_user_text, "Paris now") << "directives come from the question, not the result";
}

TEST(ParseMessagesRequestTest, ChoosesTheToolToCall) {
  constexpr std::string_view kTools =
      R"("tools":[{"name":"search","input_schema":{"type":"object"}},
                  {"type":"web_search_20250305","name":"web_search"},
                  {"name":"weather","input_schema":{"type":"object"}}])";
  auto parse = [&](std::string_view choice) {
    return MustParse(Body(R"([{"role":"user","content":"Paris now"}])",
                          absl::StrCat(Av(kTools), choice.empty() ? "" : ",", Av(choice))));
  };
  EXPECT_EQ(parse("").tool_to_call, "search");
  EXPECT_EQ(parse(R"("tool_choice":{"type":"any"})").tool_to_call, "search");
  EXPECT_EQ(parse(R"("tool_choice":{"type":"none"})").tool_to_call, "");
  EXPECT_EQ(parse(R"("tool_choice":{"type":"tool","name":"weather"})").tool_to_call, "weather");
  EXPECT_EQ(MustFail(Body(R"([{"role":"user","content":"x"}])", R"("tools":[{"name":"f"}])")),
            "tools.0.custom.input_schema: Field required");
}

// ---- responses --------------------------------------------------------------------------------

TEST(RenderMessageJsonTest, GoldenTextAnswerAndUsageExcludesCacheFromInput) {
  Directives d;
  d.tokens = 3;
  d.cached = 5;
  d.cache_write_5m = 4;
  d.cache_write_1h = 2;
  const Completion c = BuildCompletion(Request("Say hello"), d, 42, 1, kIds);
  const std::string expected = absl::StrCat(
      R"({"id":"msg_42","type":"message","role":"assistant","model":"claude-sonnet-4-20250514",)",
      R"("content":[{"type":"text","text":")", c.choices[0].content, R"("}],)",
      R"("stop_reason":"end_turn","stop_sequence":null,)",
      R"("usage":{"input_tokens":9,"cache_creation_input_tokens":6,"cache_read_input_tokens":5,)",
      R"("cache_creation":{"ephemeral_5m_input_tokens":4,"ephemeral_1h_input_tokens":2},)",
      R"("output_tokens":3,"service_tier":"standard"}})");
  EXPECT_EQ(RenderMessageJson(c), expected);
  // input + cache writes + cache reads = all the prompt's tokens.
  EXPECT_EQ(9 + 6 + 5, c.usage.prompt_tokens);
}

TEST(RenderMessageJsonTest, ThinkingBlockComesFirstAndCountsAsOutput) {
  Directives d;
  d.tokens = 2;
  d.reasoning = 4;
  const Completion c = BuildCompletion(Request("think"), d, 3, 1, kIds);
  const json::value v = json::parse(RenderMessageJson(c));
  const json::array& content = v.at("content").as_array();
  ASSERT_EQ(content.size(), 2u);
  EXPECT_EQ(content[0].at("type"), "thinking");
  EXPECT_EQ(content[0].at("thinking"), json::value(ReasoningText(c)));
  EXPECT_FALSE(content[0].at("signature").as_string().empty());
  EXPECT_EQ(content[1].at("type"), "text");
  EXPECT_EQ(v.at("usage").at("output_tokens"), 6);
}

TEST(RenderMessageJsonTest, ToolUseShape) {
  ChatRequest r = Request("Paris \"weather\"");
  r.tool_to_call = "get_weather";
  const Completion c = BuildCompletion(r, {}, 7, 1, kIds);
  const json::value v = json::parse(RenderMessageJson(c));
  EXPECT_EQ(v.at("stop_reason"), "tool_use");
  const json::object& block = v.at("content").at(0).as_object();
  EXPECT_EQ(block.at("type"), "tool_use");
  EXPECT_EQ(block.at("id"), "toolu_7");
  EXPECT_EQ(block.at("name"), "get_weather");
  EXPECT_EQ(block.at("input"), json::parse(R"({"query":"Paris"})"));
  EXPECT_EQ(v.at("usage").at("output_tokens"),
            ToolCallTokens("get_weather", R"({"query":"Paris"})"));
}

TEST(RenderMessageJsonTest, MaxTokensStopAndEmptyAnswer) {
  ChatRequest r = Request("x");
  r.max_completion_tokens = 3;
  Directives d;
  d.tokens = 10;
  EXPECT_EQ(json::parse(RenderMessageJson(BuildCompletion(r, d, 1, 1, kIds))).at("stop_reason"),
            "max_tokens");
  d.tokens = 0;
  const json::value empty = json::parse(RenderMessageJson(BuildCompletion(Request("x"), d, 1, 1)));
  EXPECT_TRUE(empty.at("content").as_array().empty());
  EXPECT_EQ(empty.at("usage").at("output_tokens"), 0);
}

// ---- streams ----------------------------------------------------------------------------------

struct Event {
  EventKind kind;
  std::string name;
  json::object data;
};

std::vector<Event> Parsed(const std::vector<std::pair<EventKind, std::string>>& events) {
  std::vector<Event> out;
  for (const auto& [kind, text] : events) {
    EXPECT_THAT(text, StartsWith("event: "));
    EXPECT_EQ(text.substr(text.size() - 2), "\n\n");
    const size_t nl = text.find('\n');
    const std::string name = text.substr(7, nl - 7);
    EXPECT_EQ(text.substr(nl + 1, 6), "data: ");
    json::object data = json::parse(text.substr(nl + 7, text.size() - nl - 9)).as_object();
    EXPECT_EQ(data.at("type"), json::value(name)) << text;
    out.push_back({kind, name, std::move(data)});
  }
  return out;
}

std::vector<std::string> Names(const std::vector<Event>& events) {
  std::vector<std::string> names;
  for (const auto& e : events) names.push_back(e.name);
  return names;
}

TEST(MessageStreamTest, TextEventSequenceAndUsage) {
  Directives d;
  d.tokens = 3;
  d.cached = 5;
  d.cache_write_1h = 2;
  const Completion c = BuildCompletion(Request("hello"), d, 5, 99, kIds);
  const std::vector<Event> events = Parsed(MessageStreamEvents(c));
  EXPECT_THAT(Names(events),
              ElementsAre("message_start", "content_block_start", "ping", "content_block_delta",
                          "content_block_delta", "content_block_delta", "content_block_stop",
                          "message_delta", "message_stop"));
  std::vector<EventKind> kinds;
  for (const auto& e : events) kinds.push_back(e.kind);
  EXPECT_THAT(kinds, ElementsAre(EventKind::kRole, EventKind::kFrame, EventKind::kFrame,
                                 EventKind::kContent, EventKind::kContent, EventKind::kContent,
                                 EventKind::kFrame, EventKind::kFinish, EventKind::kDone));

  const json::object& message = events[0].data.at("message").as_object();
  EXPECT_EQ(message.at("id"), "msg_5");
  EXPECT_TRUE(message.at("content").as_array().empty());
  EXPECT_TRUE(message.at("stop_reason").is_null());
  EXPECT_EQ(message.at("usage").at("input_tokens"), 13);
  EXPECT_EQ(message.at("usage").at("cache_read_input_tokens"), 5);
  EXPECT_EQ(message.at("usage").at("cache_creation_input_tokens"), 2);
  EXPECT_EQ(message.at("usage").at("cache_creation").at("ephemeral_1h_input_tokens"), 2);
  EXPECT_EQ(message.at("usage").at("output_tokens"), 1) << "a small count, not the total";

  EXPECT_EQ(events[1].data.at("index"), 0);
  EXPECT_EQ(events[1].data.at("content_block"), json::parse(R"({"type":"text","text":""})"));
  std::string text;
  for (size_t i = 3; i <= 5; ++i) {
    EXPECT_EQ(events[i].data.at("delta").at("type"), "text_delta");
    text += events[i].data.at("delta").at("text").as_string();
  }
  EXPECT_EQ(text, c.choices[0].content);
  EXPECT_EQ(events[6].data.at("index"), 0);

  const json::object& delta = events[7].data;
  EXPECT_EQ(delta.at("delta").at("stop_reason"), "end_turn");
  EXPECT_TRUE(delta.at("delta").at("stop_sequence").is_null());
  // Cumulative: the final totals, input counts repeated.
  EXPECT_EQ(delta.at("usage"), json::parse(R"({"input_tokens":13,"cache_creation_input_tokens":2,
                                                "cache_read_input_tokens":5,"output_tokens":3})"));
}

TEST(MessageStreamTest, ThinkingThenToolUseSequence) {
  ChatRequest r = Request("Paris please");
  r.tool_to_call = "get_weather";
  Directives d;
  d.reasoning = 2;
  const Completion c = BuildCompletion(r, d, 8, 1, kIds);
  const std::vector<Event> events = Parsed(MessageStreamEvents(c));
  EXPECT_THAT(Names(events),
              ElementsAre("message_start", "content_block_start", "ping", "content_block_delta",
                          "content_block_delta", "content_block_delta", "content_block_stop",
                          "content_block_start", "content_block_delta", "content_block_delta",
                          "content_block_delta", "content_block_delta", "content_block_stop",
                          "message_delta", "message_stop"));
  EXPECT_EQ(events[1].data.at("content_block").at("type"), "thinking");
  EXPECT_EQ(events[3].data.at("delta").at("type"), "thinking_delta");
  EXPECT_EQ(events[5].data.at("delta").at("type"), "signature_delta");
  const json::object& tool = events[7].data;
  EXPECT_EQ(tool.at("index"), 1);
  EXPECT_EQ(tool.at("content_block"),
            json::parse(R"({"type":"tool_use","id":"toolu_8","name":"get_weather","input":{}})"));
  std::string partial;
  for (size_t i = 8; i <= 11; ++i) {
    EXPECT_EQ(events[i].data.at("index"), 1);
    EXPECT_EQ(events[i].data.at("delta").at("type"), "input_json_delta");
    partial += events[i].data.at("delta").at("partial_json").as_string();
  }
  EXPECT_EQ(events[8].data.at("delta").at("partial_json"), "") << "Anthropic starts with \"\"";
  EXPECT_EQ(json::parse(partial), json::parse(R"({"query":"Paris"})"));
  EXPECT_EQ(events[13].data.at("delta").at("stop_reason"), "tool_use");
  EXPECT_EQ(events[13].data.at("usage").at("output_tokens"), c.usage.completion_tokens);
}

TEST(MessageStreamTest, EmptyAnswerStillPingsAndFinishes) {
  Directives d;
  d.tokens = 0;
  const std::vector<Event> events =
      Parsed(MessageStreamEvents(BuildCompletion(Request("x"), d, 1, 1, kIds)));
  EXPECT_THAT(Names(events), ElementsAre("message_start", "ping", "message_delta", "message_stop"));
  EXPECT_EQ(events[0].data.at("message").at("usage").at("output_tokens"), 0);
}

// ---- errors -----------------------------------------------------------------------------------

TEST(AnthropicErrorTest, TypesPerStatusAndBodyShape) {
  const std::vector<std::pair<int, std::string>> expected = {
      {400, "invalid_request_error"}, {401, "authentication_error"},
      {402, "billing_error"},         {403, "permission_error"},
      {404, "not_found_error"},       {413, "request_too_large"},
      {429, "rate_limit_error"},      {500, "api_error"},
      {504, "timeout_error"},         {529, "overloaded_error"},
      {418, "invalid_request_error"}, {502, "api_error"}};
  for (const auto& [status, type] : expected) {
    EXPECT_EQ(AnthropicForcedError(status, "m", 0).type, type) << status;
  }
  const AnthropicError overloaded = AnthropicForcedError(529, "m", 0);
  EXPECT_EQ(overloaded.message, "Overloaded");
  EXPECT_EQ(overloaded.retry_after_s, 0);
  EXPECT_EQ(AnthropicForcedError(429, "m", 0).retry_after_s, 1);
  EXPECT_EQ(AnthropicForcedError(429, "m", 4).retry_after_s, 4);
  EXPECT_EQ(AnthropicForcedError(404, "claude-x", 0).message, "model: claude-x");
  EXPECT_EQ(RenderAnthropicErrorJson(overloaded, "req_1"),
            R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},)"
            R"("request_id":"req_1"})");
  EXPECT_EQ(RenderAnthropicErrorJson(overloaded, ""),
            R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})");
}

}  // namespace
}  // namespace tollgate::tools::mock
