#include "tools/mock_provider/openai_dialect.h"

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

ChatRequest MustParse(std::string_view body) {
  ChatRequest request;
  auto error = ParseChatRequest(body, request);
  EXPECT_FALSE(error.has_value()) << (error ? RenderErrorJson(*error) : "");
  return request;
}

ApiError MustFail(std::string_view body) {
  ChatRequest request;
  auto error = ParseChatRequest(body, request);
  EXPECT_TRUE(error.has_value()) << body;
  return error.value_or(ApiError{});
}

// ---- request validation -----------------------------------------------------------------------

TEST(ParseChatRequestTest, ExtractsWhatTheMockNeeds) {
  ChatRequest r =
      MustParse(R"({"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},
      "n":2,"max_tokens":50,"messages":[{"role":"system","content":"sys"},
      {"role":"user","content":[{"type":"text","text":"first"},{"type":"text","text":" part"}]},
      {"role":"assistant","content":"ok"}]})");
  EXPECT_EQ(r.model, "gpt-4o");
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.n, 2);
  EXPECT_EQ(r.max_completion_tokens, 50);
  EXPECT_EQ(r.last_user_text, "first part");
  EXPECT_EQ(r.prompt_tokens, 3 + (4 + 1) + (4 + 3) + (4 + 1));
  EXPECT_TRUE(r.tool_to_call.empty());
}

TEST(ParseChatRequestTest, MalformedJsonIsInvalidRequest) {
  ApiError e = MustFail(R"({"model":"gpt-4o",)");
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.type, "invalid_request_error");
  EXPECT_THAT(e.message, StartsWith("We could not parse the JSON body of your request."));
}

TEST(ParseChatRequestTest, MissingModelAndMessagesNameTheParam) {
  ApiError e = MustFail(R"({"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(e.param, "model");
  EXPECT_EQ(e.message, "you must provide a model parameter");
  e = MustFail(R"({"model":"m"})");
  EXPECT_EQ(e.param, "messages");
  EXPECT_EQ(e.code, "missing_required_parameter");
  EXPECT_EQ(e.message, "Missing required parameter: 'messages'.");
  e = MustFail(R"({"model":"m","messages":[]})");
  EXPECT_EQ(e.code, "empty_array");
}

TEST(ParseChatRequestTest, RejectsWhatOpenAiRejects) {
  EXPECT_EQ(MustFail(R"({"model":"m","messages":[{"role":"robot","content":"x"}]})").param,
            "messages[0].role");
  EXPECT_EQ(MustFail(R"({"model":"m","messages":[{"role":"user"}]})").param, "messages[0].content");
  EXPECT_EQ(MustFail(R"({"model":"m","messages":[{"role":"user","content":"x"}],"foo":1})").message,
            "Unrecognized request argument supplied: foo");
  EXPECT_EQ(MustFail(R"({"model":"m","messages":[{"role":"user","content":"x"}],
                         "stream_options":{"include_usage":true}})")
                .param,
            "stream_options");
  EXPECT_EQ(MustFail(R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":0})").code,
            "integer_below_min_value");
  EXPECT_EQ(MustFail(R"({"model":"m","messages":[{"role":"user","content":"x"}],
                         "tool_choice":"auto"})")
                .param,
            "tool_choice");
  EXPECT_EQ(MustFail(R"({"model":5,"messages":[{"role":"user","content":"x"}]})").code,
            "invalid_type");
}

TEST(ParseChatRequestTest, ToolMessagesMustAnswerToolCalls) {
  EXPECT_THAT(MustFail(R"({"model":"m","messages":[{"role":"user","content":"x"},
                           {"role":"tool","tool_call_id":"call_1","content":"r"}]})")
                  .message,
              HasSubstr("must be a response to a preceeding message with 'tool_calls'"));
  EXPECT_THAT(MustFail(R"({"model":"m","messages":[{"role":"user","content":"x"},
      {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
        "function":{"name":"f","arguments":"{}"}}]},
      {"role":"user","content":"y"}]})")
                  .message,
              HasSubstr("did not have response messages: call_1"));
  ChatRequest r = MustParse(R"({"model":"m","tools":[{"type":"function","function":{"name":"f"}}],
      "messages":[{"role":"user","content":"x"},
      {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
        "function":{"name":"f","arguments":"{}"}}]},
      {"role":"tool","tool_call_id":"call_1","content":"result"}]})");
  EXPECT_TRUE(r.tool_to_call.empty()) << "the last message is a tool answer: reply with text";
}

TEST(ParseChatRequestTest, ChoosesTheToolToCall) {
  constexpr std::string_view kTools =
      R"("tools":[{"type":"function","function":{"name":"search"}},
                  {"type":"function","function":{"name":"weather"}}],)";
  auto body = [&](std::string_view choice) {
    return absl::StrCat("{", std::string(kTools), std::string(choice),
                        R"("model":"m","messages":[{"role":"user","content":"Paris now"}]})");
  };
  EXPECT_EQ(MustParse(body("")).tool_to_call, "search");
  EXPECT_EQ(MustParse(body(R"("tool_choice":"required",)")).tool_to_call, "search");
  EXPECT_EQ(MustParse(body(R"("tool_choice":"none",)")).tool_to_call, "");
  EXPECT_EQ(MustParse(body(R"("tool_choice":{"type":"function","function":{"name":"weather"}},)"))
                .tool_to_call,
            "weather");
  EXPECT_EQ(
      MustFail(body(R"("tool_choice":{"type":"function","function":{"name":"nope"}},)")).param,
      "tool_choice");
}

ChatRequest Request(std::string prompt) {
  ChatRequest r;
  r.model = "gpt-4o-mini";
  r.prompt_tokens = 20;
  r.last_user_text = std::move(prompt);
  return r;
}

TEST(RenderCompletionJsonTest, MatchesOpenAiShape) {
  Directives d;
  d.cached = 4;
  d.reasoning = 2;
  const Completion c = BuildCompletion(Request("Say hello"), d, 42, 1730000000);
  const json::object v = json::parse(RenderCompletionJson(c)).as_object();
  EXPECT_EQ(v.at("id"), "chatcmpl-42");
  EXPECT_EQ(v.at("object"), "chat.completion");
  EXPECT_EQ(v.at("created"), 1730000000);
  EXPECT_EQ(v.at("model"), "gpt-4o-mini");
  EXPECT_EQ(v.at("system_fingerprint"), "fp_mock");
  const json::object& choice = v.at("choices").as_array().at(0).as_object();
  EXPECT_EQ(choice.at("index"), 0);
  EXPECT_EQ(choice.at("finish_reason"), "stop");
  EXPECT_TRUE(choice.at("logprobs").is_null());
  const json::object& message = choice.at("message").as_object();
  EXPECT_EQ(message.at("role"), "assistant");
  EXPECT_EQ(message.at("content"), json::value(c.choices[0].content));
  EXPECT_TRUE(message.at("refusal").is_null());
  EXPECT_FALSE(message.contains("tool_calls"));
  const json::object& usage = v.at("usage").as_object();
  EXPECT_EQ(usage.at("prompt_tokens"), 20);
  EXPECT_EQ(usage.at("completion_tokens"), c.choices[0].words + 2);
  EXPECT_EQ(usage.at("total_tokens"), 20 + c.choices[0].words + 2);
  EXPECT_EQ(usage.at("prompt_tokens_details").at("cached_tokens"), 4);
  EXPECT_EQ(usage.at("completion_tokens_details").at("reasoning_tokens"), 2);
}

TEST(RenderCompletionJsonTest, ToolCallShape) {
  ChatRequest r = Request("Paris \"weather\" [[mock: tokens=3]]");
  r.tool_to_call = "get_weather";
  const Completion c = BuildCompletion(r, {}, 7, 1);
  const json::object v = json::parse(RenderCompletionJson(c)).as_object();
  const json::object& choice = v.at("choices").as_array().at(0).as_object();
  EXPECT_EQ(choice.at("finish_reason"), "tool_calls");
  const json::object& message = choice.at("message").as_object();
  EXPECT_TRUE(message.at("content").is_null());
  const json::object& call = message.at("tool_calls").as_array().at(0).as_object();
  EXPECT_EQ(call.at("id"), "call_7");
  EXPECT_EQ(call.at("type"), "function");
  EXPECT_EQ(call.at("function").at("name"), "get_weather");
  const std::string args(call.at("function").at("arguments").as_string());
  EXPECT_EQ(args, R"({"query":"Paris"})");
  EXPECT_EQ(v.at("usage").at("completion_tokens"), ToolCallTokens("get_weather", args));
}

TEST(RenderErrorJsonTest, OpenAiErrorShapes) {
  const json::value e429 = json::parse(RenderErrorJson(ForcedError(429, "gpt-4o", 2)));
  EXPECT_EQ(e429.at("error").at("code"), "rate_limit_exceeded");
  EXPECT_TRUE(e429.at("error").at("param").is_null());
  EXPECT_THAT(std::string(e429.at("error").at("message").as_string()),
              HasSubstr("Please try again in 2s"));
  EXPECT_EQ(ForcedError(429, "m", 0).retry_after_s, 1);
  EXPECT_EQ(ForcedError(401, "m", 0).code, "invalid_api_key");
  EXPECT_EQ(ForcedError(404, "m", 0).code, "model_not_found");
  EXPECT_EQ(ForcedError(400, "m", 0).type, "invalid_request_error");
  EXPECT_EQ(ForcedError(500, "m", 0).type, "server_error");
  const ApiError e503 = ForcedError(503, "m", 3);
  EXPECT_EQ(e503.code, "overloaded");
  EXPECT_THAT(e503.message, StartsWith("The server is overloaded"));
  EXPECT_EQ(e503.retry_after_s, 3);
}

// ---- streaming --------------------------------------------------------------------------------

std::vector<EventKind> Kinds(const std::vector<std::pair<EventKind, std::string>>& events) {
  std::vector<EventKind> kinds;
  for (const auto& e : events) kinds.push_back(e.first);
  return kinds;
}

json::object Payload(const std::string& event) {
  EXPECT_THAT(event, StartsWith("data: "));
  EXPECT_EQ(event.substr(event.size() - 2), "\n\n");
  return json::parse(event.substr(6, event.size() - 8)).as_object();
}

TEST(StreamEventsTest, SequenceWithoutUsage) {
  Directives d;
  d.tokens = 3;
  const Completion c = BuildCompletion(Request("hello"), d, 5, 99);
  const auto events = StreamEvents(c, /*include_usage=*/false);
  EXPECT_THAT(Kinds(events),
              ElementsAre(EventKind::kRole, EventKind::kContent, EventKind::kContent,
                          EventKind::kContent, EventKind::kFinish, EventKind::kDone));
  const json::object role = Payload(events[0].second);
  EXPECT_EQ(role.at("id"), "chatcmpl-5");
  EXPECT_EQ(role.at("object"), "chat.completion.chunk");
  EXPECT_EQ(role.at("created"), 99);
  EXPECT_FALSE(role.contains("usage"));
  EXPECT_EQ(role.at("choices").at(0).at("delta").at("role"), "assistant");
  EXPECT_EQ(role.at("choices").at(0).at("delta").at("content"), "");
  EXPECT_TRUE(role.at("choices").at(0).at("finish_reason").is_null());
  std::string text;
  for (int i = 1; i <= 3; ++i) {
    const std::string piece(
        Payload(events[i].second).at("choices").at(0).at("delta").at("content").as_string());
    EXPECT_EQ(piece.front() == ' ', i > 1) << piece;
    text += piece;
  }
  EXPECT_EQ(text, c.choices[0].content);
  const json::object finish = Payload(events[4].second);
  EXPECT_TRUE(finish.at("choices").at(0).at("delta").as_object().empty());
  EXPECT_EQ(finish.at("choices").at(0).at("finish_reason"), "stop");
  EXPECT_EQ(events[5].second, "data: [DONE]\n\n");
}

TEST(StreamEventsTest, SequenceWithUsage) {
  Directives d;
  d.tokens = 2;
  d.cached = 3;
  d.reasoning = 1;
  const Completion c = BuildCompletion(Request("hello"), d, 5, 99);
  const auto events = StreamEvents(c, /*include_usage=*/true);
  EXPECT_THAT(Kinds(events), ElementsAre(EventKind::kRole, EventKind::kContent, EventKind::kContent,
                                         EventKind::kFinish, EventKind::kUsage, EventKind::kDone));
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(Payload(events[i].second).at("usage").is_null()) << i;
  }
  const json::object usage_chunk = Payload(events[4].second);
  EXPECT_TRUE(usage_chunk.at("choices").as_array().empty());
  EXPECT_EQ(usage_chunk.at("usage").at("prompt_tokens"), 20);
  EXPECT_EQ(usage_chunk.at("usage").at("completion_tokens"), 3);
  EXPECT_EQ(usage_chunk.at("usage").at("total_tokens"), 23);
  EXPECT_EQ(usage_chunk.at("usage").at("prompt_tokens_details").at("cached_tokens"), 3);
  EXPECT_EQ(usage_chunk.at("usage").at("completion_tokens_details").at("reasoning_tokens"), 1);
}

TEST(StreamEventsTest, ToolCallFragments) {
  ChatRequest r = Request("Paris please");
  r.tool_to_call = "get_weather";
  const Completion c = BuildCompletion(r, {}, 3, 1);
  const auto events = StreamEvents(c, false);
  ASSERT_THAT(Kinds(events), ElementsAre(EventKind::kRole, EventKind::kContent, EventKind::kContent,
                                         EventKind::kContent, EventKind::kContent,
                                         EventKind::kFinish, EventKind::kDone));
  const json::object first =
      Payload(events[1].second).at("choices").at(0).at("delta").at("tool_calls").at(0).as_object();
  EXPECT_EQ(first.at("index"), 0);
  EXPECT_EQ(first.at("id"), "call_3");
  EXPECT_EQ(first.at("type"), "function");
  EXPECT_EQ(first.at("function").at("name"), "get_weather");
  EXPECT_EQ(first.at("function").at("arguments"), "");
  std::string args;
  for (int i = 2; i <= 4; ++i) {
    const json::object frag = Payload(events[i].second)
                                  .at("choices")
                                  .at(0)
                                  .at("delta")
                                  .at("tool_calls")
                                  .at(0)
                                  .as_object();
    EXPECT_FALSE(frag.contains("id"));
    EXPECT_FALSE(frag.at("function").as_object().contains("name"));
    args += frag.at("function").at("arguments").as_string();
  }
  EXPECT_EQ(args, R"({"query":"Paris"})");
  EXPECT_EQ(Payload(events[5].second).at("choices").at(0).at("finish_reason"), "tool_calls");
}

// ---- Azure flavor -------------------------------------------------------------------------------

TEST(ParseChatRequestTest, DefaultModelAllowsAMissingModel) {
  ChatRequest r;
  ASSERT_FALSE(
      ParseChatRequest(R"({"messages":[{"role":"user","content":"x"}]})", r, "my-dep").has_value());
  EXPECT_EQ(r.model, "my-dep");
  ASSERT_FALSE(
      ParseChatRequest(R"({"model":"gpt-4o","messages":[{"role":"user","content":"x"}]})", r, "d")
          .has_value());
  EXPECT_EQ(r.model, "gpt-4o");
}

TEST(AzureRenderTest, NonStreamCarriesContentFilterResults) {
  const Completion c = BuildCompletion(Request("Say hello"), {}, 4, 1730000000);
  const json::object v = json::parse(RenderCompletionJson(c, OpenAiFlavor::kAzure)).as_object();
  const json::object& prompt_filter = v.at("prompt_filter_results").at(0).as_object();
  EXPECT_EQ(prompt_filter.at("prompt_index"), 0);
  EXPECT_EQ(prompt_filter.at("content_filter_results").at("violence").at("filtered"), false);
  const json::object& choice = v.at("choices").at(0).as_object();
  EXPECT_EQ(choice.at("content_filter_results").at("hate").at("severity"), "safe");
  EXPECT_EQ(choice.at("message").at("content"), json::value(c.choices[0].content));
  EXPECT_FALSE(v.contains("service_tier"));
  EXPECT_EQ(v.at("usage").at("completion_tokens"), c.usage.completion_tokens);
}

TEST(AzureRenderTest, StreamOpensWithAPromptFilterChunk) {
  Directives d;
  d.tokens = 2;
  const Completion c = BuildCompletion(Request("hello"), d, 5, 99);
  const auto events = StreamEvents(c, /*include_usage=*/true, OpenAiFlavor::kAzure);
  EXPECT_THAT(Kinds(events), ElementsAre(EventKind::kRole, EventKind::kRole, EventKind::kContent,
                                         EventKind::kContent, EventKind::kFinish, EventKind::kUsage,
                                         EventKind::kDone));
  const json::object first = Payload(events[0].second);
  EXPECT_EQ(first.at("id"), "");
  EXPECT_EQ(first.at("object"), "");
  EXPECT_EQ(first.at("model"), "");
  EXPECT_EQ(first.at("created"), 0);
  EXPECT_TRUE(first.at("choices").as_array().empty());
  EXPECT_EQ(first.at("prompt_filter_results").at(0).at("prompt_index"), 0);
  EXPECT_TRUE(first.at("usage").is_null());
  const json::object role = Payload(events[1].second);
  EXPECT_EQ(role.at("id"), "chatcmpl-5");
  EXPECT_TRUE(role.at("choices").at(0).at("content_filter_results").as_object().empty());
  const json::object word = Payload(events[2].second);
  EXPECT_EQ(word.at("choices").at(0).at("content_filter_results").at("sexual").at("filtered"),
            false);
  EXPECT_TRUE(Payload(events[4].second)
                  .at("choices")
                  .at(0)
                  .at("content_filter_results")
                  .as_object()
                  .empty());
  EXPECT_EQ(Payload(events[5].second).at("usage").at("completion_tokens"), 2);
  EXPECT_EQ(events[6].second, "data: [DONE]\n\n");
}

}  // namespace
}  // namespace tollgate::tools::mock
