#include "services/gateway/openai_dialect.h"

#include "boost/json/parse.hpp"
#include "boost/json/serialize.hpp"
#include "gtest/gtest.h"

namespace tollgate::gateway {
namespace {

namespace json = boost::json;

absl::StatusOr<ChatRequestInfo> Parse(std::string_view body) {
  return ParseChatRequest(json::parse(body));
}

constexpr char kMessages[] = R"("messages":[{"role":"user","content":"hi"}])";

TEST(ParseChatRequest, ReadsTheFieldsTheGatewayNeeds) {
  auto info = Parse(std::string(R"({"model":"gpt-4o-mini",)") + kMessages +
                    R"(,"stream":true,"stream_options":{"include_usage":true},"user":"cust-1",)"
                    R"("max_tokens":100,"max_completion_tokens":250})");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->model, "gpt-4o-mini");
  EXPECT_TRUE(info->stream);
  EXPECT_TRUE(info->client_wants_usage);
  EXPECT_EQ(info->user, "cust-1");
  EXPECT_EQ(info->max_output_tokens, 250) << "max_completion_tokens wins over max_tokens";
  EXPECT_EQ(info->required_capabilities, std::vector<std::string>{"chat"});

  info = Parse(std::string(R"({"model":"m",)") + kMessages + R"(,"max_tokens":40,"stream":false})");
  ASSERT_TRUE(info.ok());
  EXPECT_FALSE(info->stream);
  EXPECT_FALSE(info->client_wants_usage);
  EXPECT_EQ(info->max_output_tokens, 40);

  info = Parse(std::string(R"({"model":"m",)") + kMessages +
               R"(,"stream":true,"stream_options":{"include_usage":false},"user":null})");
  ASSERT_TRUE(info.ok());
  EXPECT_FALSE(info->client_wants_usage);
  EXPECT_EQ(info->max_output_tokens, 0);
}

TEST(ParseChatRequest, DerivesRequiredCapabilities) {
  auto info =
      Parse(R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x"},)"
            R"({"type":"image_url","image_url":{"url":"data:image/png;base64,AA"}}]}],)"
            R"("tools":[{"type":"function","function":{"name":"f"}}],)"
            R"("response_format":{"type":"json_schema","json_schema":{"name":"s","schema":{}}}})");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->required_capabilities,
            (std::vector<std::string>{"chat", "tools", "json_schema", "vision"}));
  info = Parse(std::string(R"({"model":"m",)") + kMessages +
               R"(,"tools":[],"response_format":{"type":"json_object"}})");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->required_capabilities, (std::vector<std::string>{"chat", "json"}));
}

TEST(ParseChatRequest, WrongTypesNameTheField) {
  struct Case {
    std::string body;
    std::string param;
  };
  const std::string m = kMessages;
  const std::vector<Case> cases = {
      {R"([1,2])", ""},
      {R"({"messages":[{"role":"user"}]})", "model"},
      {R"({"model":42,"messages":[{"role":"user"}]})", "model"},
      {R"({"model":"","messages":[{"role":"user"}]})", "model"},
      {R"({"model":"m"})", "messages"},
      {R"({"model":"m","messages":"hi"})", "messages"},
      {R"({"model":"m","messages":[]})", "messages"},
      {R"({"model":"m","messages":[{"role":"user"},"x"]})", "messages[1]"},
      {R"({"model":"m",)" + m + R"(,"stream":"yes"})", "stream"},
      {R"({"model":"m",)" + m + R"(,"stream":1})", "stream"},
      {R"({"model":"m",)" + m + R"(,"stream_options":true})", "stream_options"},
      {R"({"model":"m",)" + m + R"(,"stream_options":{"include_usage":"y"}})",
       "stream_options.include_usage"},
      {R"({"model":"m",)" + m + R"(,"max_tokens":-1})", "max_tokens"},
      {R"({"model":"m",)" + m + R"(,"max_tokens":"10"})", "max_tokens"},
      {R"({"model":"m",)" + m + R"(,"max_completion_tokens":1.5})", "max_completion_tokens"},
      {R"({"model":"m",)" + m + R"(,"user":5})", "user"},
  };
  for (const Case& c : cases) {
    auto info = Parse(c.body);
    ASSERT_FALSE(info.ok()) << c.body;
    EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument) << c.body;
    EXPECT_EQ(ParamOf(info.status()), c.param) << c.body;
    EXPECT_FALSE(info.status().message().empty());
  }
}

TEST(RewriteChatRequest, ReplacesModelAndKeepsEverythingElse) {
  json::value body = json::parse(
      R"({"model":"mini","messages":[{"role":"user","content":"hi"}],"temperature":0.5,)"
      R"("tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]})");
  const std::string out = RewriteChatRequest(body.as_object(), "gpt-4o-mini-2024-07-18", false);
  json::value v = json::parse(out);
  EXPECT_EQ(v.at("model").as_string(), "gpt-4o-mini-2024-07-18");
  EXPECT_EQ(v.at("temperature").as_double(), 0.5);
  EXPECT_EQ(v.at("messages"), json::parse(R"([{"role":"user","content":"hi"}])"));
  EXPECT_EQ(v.at("tools").at(0).at("function").at("name").as_string(), "f");
  EXPECT_FALSE(v.as_object().contains("stream_options")) << "non-stream requests are left alone";

  json::value keep = json::parse(R"({"model":"mini","messages":[]})");
  EXPECT_EQ(json::parse(RewriteChatRequest(keep.as_object(), "", false)).at("model").as_string(),
            "mini");
}

TEST(RewriteChatRequest, ForcesIncludeUsageOnStreams) {
  for (const char* options :
       {"", R"(,"stream_options":null)", R"(,"stream_options":{"include_usage":false})",
        R"(,"stream_options":{"include_obfuscation":false})"}) {
    json::value body =
        json::parse(std::string(R"({"model":"m","stream":true,"messages":[])") + options + "}");
    json::value v = json::parse(RewriteChatRequest(body.as_object(), "up", true));
    EXPECT_EQ(v.at("stream_options").at("include_usage"), json::value(true)) << options;
    EXPECT_EQ(v.at("stream"), json::value(true));
    // A second attempt (fallback) rewrites the same object again: idempotent.
    json::value again = json::parse(RewriteChatRequest(body.as_object(), "other", true));
    EXPECT_EQ(again.at("model").as_string(), "other");
    EXPECT_EQ(again.at("stream_options").at("include_usage"), json::value(true));
  }
  json::value body = json::parse(
      R"({"model":"m","stream":true,"messages":[],"stream_options":{"include_obfuscation":false}})");
  json::value v = json::parse(RewriteChatRequest(body.as_object(), "up", true));
  EXPECT_EQ(v.at("stream_options").at("include_obfuscation"), json::value(false))
      << "other stream options are preserved";
}

TEST(Usage, ExtractsCachedAndReasoningTokens) {
  auto usage = UsageFromJson(
      json::parse(R"({"prompt_tokens":82,"completion_tokens":18,"total_tokens":100,)"
                  R"("prompt_tokens_details":{"cached_tokens":64,"audio_tokens":0},)"
                  R"("completion_tokens_details":{"reasoning_tokens":5,"audio_tokens":0}})"));
  ASSERT_TRUE(usage.has_value());
  EXPECT_EQ(usage->input_tokens(), 82);
  EXPECT_EQ(usage->cached_input_tokens(), 64);
  EXPECT_EQ(usage->output_tokens(), 18);
  EXPECT_EQ(usage->reasoning_tokens(), 5);
  EXPECT_FALSE(usage->estimated());

  usage = UsageFromJson(json::parse(R"({"prompt_tokens":10,"completion_tokens":3})"));
  ASSERT_TRUE(usage.has_value());
  EXPECT_EQ(usage->input_tokens(), 10);
  EXPECT_EQ(usage->cached_input_tokens(), 0);
  EXPECT_EQ(usage->reasoning_tokens(), 0);

  // DeepSeek reports cache hits at the top level.
  usage = UsageFromJson(json::parse(
      R"({"prompt_tokens":100,"completion_tokens":3,"prompt_cache_hit_tokens":60,"prompt_cache_miss_tokens":40})"));
  EXPECT_EQ(usage->cached_input_tokens(), 60);

  // Inconsistent or hostile numbers never produce subsets larger than totals or negatives.
  usage = UsageFromJson(json::parse(
      R"({"prompt_tokens":5,"completion_tokens":-3,"prompt_tokens_details":{"cached_tokens":9},)"
      R"("completion_tokens_details":{"reasoning_tokens":2}})"));
  EXPECT_EQ(usage->input_tokens(), 5);
  EXPECT_EQ(usage->cached_input_tokens(), 5);
  EXPECT_EQ(usage->output_tokens(), 0);
  EXPECT_EQ(usage->reasoning_tokens(), 0);

  EXPECT_FALSE(UsageFromJson(json::value(nullptr)).has_value());
  EXPECT_FALSE(UsageFromJson(json::parse("[1]")).has_value());
}

TEST(Usage, FromNonStreamResponse) {
  ChatResponseUsage u = ExtractChatResponseUsage(
      R"({"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":)"
      R"({"role":"assistant","content":"Hello there"}}],)"
      R"("usage":{"prompt_tokens":12,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4}}})");
  EXPECT_TRUE(u.parsed);
  ASSERT_TRUE(u.usage.has_value());
  EXPECT_EQ(u.usage->input_tokens(), 12);
  EXPECT_EQ(u.usage->cached_input_tokens(), 4);
  EXPECT_EQ(u.usage->output_tokens(), 3);
  EXPECT_EQ(u.output_bytes, 11);

  u = ExtractChatResponseUsage(
      R"({"choices":[{"message":{"content":null,"tool_calls":[{"id":"c","type":"function",)"
      R"("function":{"name":"get","arguments":"{\"a\":1}"}}]}}],"usage":null})");
  EXPECT_TRUE(u.parsed);
  EXPECT_FALSE(u.usage.has_value());
  EXPECT_EQ(u.output_bytes, 3 + 7);

  u = ExtractChatResponseUsage("not json at all");
  EXPECT_FALSE(u.parsed);
  EXPECT_FALSE(u.usage.has_value());
  EXPECT_EQ(u.output_bytes, 15);
}

TEST(InspectStreamChunk, ClassifiesChunks) {
  StreamChunkInfo done = InspectStreamChunk("[DONE]");
  EXPECT_TRUE(done.done);
  EXPECT_FALSE(done.parsed);

  StreamChunkInfo role = InspectStreamChunk(
      R"({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null})");
  EXPECT_TRUE(role.parsed);
  EXPECT_FALSE(role.has_output) << "an empty first delta is not the first token";
  EXPECT_FALSE(role.usage.has_value());
  EXPECT_FALSE(role.usage_only);

  StreamChunkInfo text = InspectStreamChunk(
      R"({"choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}],"usage":null})");
  EXPECT_TRUE(text.has_output);
  EXPECT_EQ(text.output_bytes, 5);
  EXPECT_FALSE(text.usage_only);

  StreamChunkInfo tool = InspectStreamChunk(
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}}]})");
  EXPECT_TRUE(tool.has_output);
  EXPECT_EQ(tool.output_bytes, 11);

  StreamChunkInfo finish = InspectStreamChunk(
      R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null})");
  EXPECT_FALSE(finish.has_output);
  EXPECT_FALSE(finish.usage_only);

  StreamChunkInfo usage = InspectStreamChunk(
      R"({"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":82,"completion_tokens":18,"total_tokens":100,"completion_tokens_details":{"reasoning_tokens":4}}})");
  EXPECT_TRUE(usage.usage_only);
  ASSERT_TRUE(usage.usage.has_value());
  EXPECT_EQ(usage.usage->input_tokens(), 82);
  EXPECT_EQ(usage.usage->output_tokens(), 18);
  EXPECT_EQ(usage.usage->reasoning_tokens(), 4);

  // Usage riding on a chunk that still has choices is extracted but is not usage-only.
  StreamChunkInfo mixed = InspectStreamChunk(
      R"({"choices":[{"index":0,"delta":{"content":"x"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}})");
  EXPECT_TRUE(mixed.usage.has_value());
  EXPECT_FALSE(mixed.usage_only);

  StreamChunkInfo error =
      InspectStreamChunk(R"({"error":{"message":"overloaded","type":"server_error"}})");
  EXPECT_TRUE(error.is_error);
  EXPECT_FALSE(error.usage_only);

  StreamChunkInfo garbage = InspectStreamChunk("{not json");
  EXPECT_FALSE(garbage.parsed);
  EXPECT_FALSE(garbage.usage_only);
}

TEST(Errors, OpenAiShapedBodies) {
  json::value v = json::parse(
      ErrorBody("Incorrect API key \"x\"", "invalid_request_error", "", "invalid_api_key"));
  const json::object& e = v.at("error").as_object();
  EXPECT_EQ(e.at("message").as_string(), "Incorrect API key \"x\"");
  EXPECT_EQ(e.at("type").as_string(), "invalid_request_error");
  EXPECT_TRUE(e.at("param").is_null());
  EXPECT_EQ(e.at("code").as_string(), "invalid_api_key");
  EXPECT_EQ(e.size(), 4u);

  v = json::parse(ErrorBody("bad", "invalid_request_error", "messages", ""));
  EXPECT_EQ(v.at("error").at("param").as_string(), "messages");
  EXPECT_TRUE(v.at("error").at("code").is_null());

  const std::string event = StreamErrorEvent("upstream broke", "upstream_error", "upstream_error");
  ASSERT_EQ(event.rfind("data: ", 0), 0u);
  ASSERT_EQ(event.substr(event.size() - 2), "\n\n");
  v = json::parse(event.substr(6, event.size() - 8));
  EXPECT_EQ(v.at("error").at("code").as_string(), "upstream_error");
}

TEST(Errors, ParamPayloadRoundTrips) {
  absl::Status st = InvalidParamError("messages", "'messages' must be an array");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParamOf(st), "messages");
  EXPECT_EQ(ParamOf(absl::InvalidArgumentError("x")), "");
}

TEST(EstimateTokens, RoundsUp) {
  EXPECT_EQ(EstimateTokens(0), 0);
  EXPECT_EQ(EstimateTokens(1), 1);
  EXPECT_EQ(EstimateTokens(4), 1);
  EXPECT_EQ(EstimateTokens(5), 2);
  EXPECT_EQ(EstimateTokens(-3), 0);
}

}  // namespace
}  // namespace tollgate::gateway
