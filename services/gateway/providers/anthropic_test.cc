#include "services/gateway/providers/anthropic.h"

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "boost/json/parse.hpp"
#include "boost/json/serialize.hpp"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/gateway/openai_dialect.h"
#include "services/gateway/sse_parser.h"

namespace tollgate::gateway {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;

constexpr char kTestdata[] = TOLLGATE_SOURCE_DIR "/services/gateway/providers/testdata/anthropic/";

std::string ReadFile(const std::string& name) {
  std::ifstream in(std::string(kTestdata) + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing golden file " << name;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json::value ParseOrDie(std::string_view text) {
  json::error_code ec;
  json::value v = json::parse(text, ec);
  EXPECT_FALSE(ec) << "not JSON: " << text;
  return v;
}

// Each "data: X" event of an OpenAI SSE stream: X parsed as JSON, or the string "[DONE]".
std::vector<json::value> SseEvents(std::string_view stream) {
  std::vector<json::value> events;
  SseParser parser(1 << 20);
  auto on_event = [&](const SseEvent& e) {
    EXPECT_TRUE(e.has_data) << e.raw;
    if (e.data == "[DONE]") {
      events.emplace_back("[DONE]");
    } else {
      events.push_back(ParseOrDie(e.data));
    }
  };
  EXPECT_TRUE(parser.Feed(stream, on_event).ok());
  parser.Finish(on_event);
  return events;
}

class AnthropicTest : public ::testing::Test {
 protected:
  AnthropicTest() {
    deployment_.set_id("claude-dep");
    deployment_.set_provider("anthropic");
    deployment_.set_dialect("anthropic");
    deployment_.set_upstream_model("claude-sonnet-4-20250514");
    deployment_.set_max_output_tokens(64000);
    call_.deployment = &deployment_;
    call_.base_path = "/v1";
    call_.request_id = "req-1";
    call_.created_unix = 1730000000;
    call_.client_model = "claude-sonnet";
  }

  const Provider& provider() const { return AnthropicProvider(); }

  absl::StatusOr<ProviderRequest> Build(std::string_view openai_json) {
    json::value request = ParseOrDie(openai_json);
    return provider().BuildChatRequest(request.as_object(), call_);
  }

  // Builds `name`.openai.json and compares target, headers and body with `name`.anthropic.json.
  void ExpectRequestGolden(const std::string& name) {
    SCOPED_TRACE(name);
    json::value request = ParseOrDie(ReadFile(name + ".openai.json"));
    const std::string before = json::serialize(request);
    absl::StatusOr<ProviderRequest> out = provider().BuildChatRequest(request.as_object(), call_);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(json::serialize(request), before) << "the request must not be mutated";
    const json::value expected = ParseOrDie(ReadFile(name + ".anthropic.json"));
    EXPECT_EQ(out->target, expected.at("target").as_string());
    json::object headers;
    for (const auto& [k, v] : out->headers) {
      EXPECT_FALSE(headers.contains(k)) << "duplicate header " << k;
      headers[k] = v;
    }
    EXPECT_EQ(json::value(headers), expected.at("headers")) << json::serialize(headers);
    const json::value body = ParseOrDie(out->body);
    EXPECT_EQ(body, expected.at("body")) << "got:      " << json::serialize(body)
                                         << "\nexpected: " << json::serialize(expected.at("body"));
  }

  void ExpectResponseGolden(const std::string& name) {
    SCOPED_TRACE(name);
    absl::StatusOr<ProviderResponse> out =
        provider().TranslateChatResponse(ReadFile(name + ".anthropic.json"), call_);
    ASSERT_TRUE(out.ok()) << out.status();
    const json::value got = ParseOrDie(out->body);
    const json::value expected = ParseOrDie(ReadFile(name + ".openai.json"));
    EXPECT_EQ(got, expected) << "got:      " << json::serialize(got)
                             << "\nexpected: " << json::serialize(expected);
  }

  // Feeds `stream` to a fresh translator through an SseParser, in the given pieces.
  std::string Translate(const std::vector<std::string_view>& pieces,
                        StreamProgress* progress = nullptr) {
    std::unique_ptr<StreamTranslator> t = provider().NewStreamTranslator(call_);
    std::string out;
    SseParser parser(1 << 20);
    auto on_event = [&](const SseEvent& e) { t->OnEvent(e, out); };
    for (std::string_view piece : pieces) EXPECT_TRUE(parser.Feed(piece, on_event).ok());
    parser.Finish(on_event);
    t->Finish(out);
    if (progress != nullptr) *progress = t->progress();
    return out;
  }

  void ExpectStreamGolden(const std::string& name) {
    SCOPED_TRACE(name);
    const std::string out = Translate({ReadFile(name + ".sse")});
    const std::vector<json::value> got = SseEvents(out);
    const std::vector<json::value> expected = SseEvents(ReadFile(name + ".openai.sse"));
    ASSERT_EQ(got.size(), expected.size()) << out;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i], expected[i]) << "event " << i << "\ngot:      " << json::serialize(got[i])
                                     << "\nexpected: " << json::serialize(expected[i]);
    }
  }

  v1::Deployment deployment_;
  ProviderCall call_;
};

TEST_F(AnthropicTest, Dialect) {
  EXPECT_EQ(provider().dialect(), "anthropic");
  EXPECT_EQ(FindProvider("anthropic"), &provider());
}

// ------------------------------------------------------------------------------------------
// Requests.

TEST_F(AnthropicTest, RequestBasicGolden) { ExpectRequestGolden("request_basic"); }

TEST_F(AnthropicTest, RequestFullGolden) {
  call_.api_key = "sk-ant-test";
  call_.stream = true;
  (*deployment_.mutable_options())["anthropic_beta"] = "prompt-caching-2024-07-31";
  ExpectRequestGolden("request_full");
}

TEST_F(AnthropicTest, RequestJsonSchemaGolden) { ExpectRequestGolden("request_json_schema"); }

TEST_F(AnthropicTest, RequestJsonObjectWithClientToolsGolden) {
  ExpectRequestGolden("request_json_object_with_tools");
}

TEST_F(AnthropicTest, VersionOptionAndBasePath) {
  (*deployment_.mutable_options())["anthropic_version"] = "2023-01-01";
  call_.base_path = "/proxy/v1/";
  auto out = Build(R"({"model":"m","messages":[{"role":"user","content":"x"}]})");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->target, "/proxy/v1/messages");
  ASSERT_EQ(out->headers.size(), 1u);  // no key: no x-api-key
  EXPECT_EQ(out->headers[0].first, "anthropic-version");
  EXPECT_EQ(out->headers[0].second, "2023-01-01");
}

TEST_F(AnthropicTest, MaxTokensDefaults) {
  auto max_tokens = [&](std::string_view extra) -> int64_t {
    auto out = Build(absl::StrCat(R"({"model":"m","messages":[{"role":"user","content":"x"}])",
                                  std::string(extra), "}"));
    EXPECT_TRUE(out.ok()) << out.status();
    if (!out.ok()) return -1;
    return ParseOrDie(out->body).at("max_tokens").as_int64();
  };
  EXPECT_EQ(max_tokens(""), 4096);
  EXPECT_EQ(max_tokens(R"(,"max_tokens":77)"), 77);
  EXPECT_EQ(max_tokens(R"(,"max_tokens":77,"max_completion_tokens":55)"), 55);
  EXPECT_EQ(max_tokens(R"(,"max_completion_tokens":null,"max_tokens":77)"), 77);
  deployment_.set_max_output_tokens(1000);
  EXPECT_EQ(max_tokens(""), 1000);
  deployment_.set_max_output_tokens(0);
  EXPECT_EQ(max_tokens(""), 4096);
  // The default must exceed a thinking budget.
  EXPECT_EQ(max_tokens(R"(,"thinking":{"type":"enabled","budget_tokens":8000})"), 12096);
  deployment_.set_max_output_tokens(10000);
  EXPECT_EQ(max_tokens(R"(,"thinking":{"type":"enabled","budget_tokens":8000})"), 10000);
}

TEST_F(AnthropicTest, StopAndToolChoiceVariants) {
  auto body = [&](std::string_view extra) -> json::value {
    auto out = Build(absl::StrCat(
        R"({"model":"m","messages":[{"role":"user","content":"x"}],)"
        R"("tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}])",
        std::string(extra), "}"));
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? ParseOrDie(out->body) : json::value();
  };
  EXPECT_EQ(body(R"(,"stop":"END")").at("stop_sequences"), ParseOrDie(R"(["END"])"));
  EXPECT_FALSE(body("").as_object().contains("tool_choice"));
  EXPECT_EQ(body(R"(,"tool_choice":"auto")").at("tool_choice"), ParseOrDie(R"({"type":"auto"})"));
  EXPECT_EQ(body(R"(,"tool_choice":"required")").at("tool_choice"),
            ParseOrDie(R"({"type":"any"})"));
  EXPECT_EQ(body(R"(,"tool_choice":"none")").at("tool_choice"), ParseOrDie(R"({"type":"none"})"));
  EXPECT_EQ(body(R"(,"tool_choice":"none","parallel_tool_calls":false)").at("tool_choice"),
            ParseOrDie(R"({"type":"none"})"));
  EXPECT_EQ(body(R"(,"parallel_tool_calls":false)").at("tool_choice"),
            ParseOrDie(R"({"type":"auto","disable_parallel_tool_use":true})"));
  EXPECT_EQ(body(R"(,"tool_choice":"required","parallel_tool_calls":false)").at("tool_choice"),
            ParseOrDie(R"({"type":"any","disable_parallel_tool_use":true})"));
  EXPECT_FALSE(body(R"(,"parallel_tool_calls":true)").as_object().contains("tool_choice"));
  // response_format with a forced client tool: the model must call it, no JSON tool is added.
  const json::value forced = body(R"(,"tool_choice":{"type":"function","function":{"name":"f"}},)"
                                  R"("response_format":{"type":"json_object"})");
  EXPECT_EQ(forced.at("tools").as_array().size(), 1u);
  EXPECT_EQ(forced.at("tool_choice"), ParseOrDie(R"({"type":"tool","name":"f"})"));
  // tool_choice none + json: the JSON tool is forced, client tools stay declared.
  const json::value none =
      body(R"(,"tool_choice":"none","response_format":{"type":"json_object"})");
  EXPECT_EQ(none.at("tools").as_array().size(), 2u);
  EXPECT_EQ(none.at("tool_choice"), ParseOrDie(R"({"type":"tool","name":"tollgate_json_object",)"
                                               R"("disable_parallel_tool_use":true})"));
  // response_format text changes nothing.
  EXPECT_EQ(body(R"(,"response_format":{"type":"text"})").at("tools").as_array().size(), 1u);
}

TEST_F(AnthropicTest, ToolResultIsErrorAndConsecutiveTurnsMerge) {
  auto out = Build(R"({"model":"m","messages":[
      {"role":"user","content":"a"},{"role":"user","content":"b"},
      {"role":"assistant","tool_calls":[{"id":"t1","type":"function",
        "function":{"name":"f","arguments":"{}"}}]},
      {"role":"tool","tool_call_id":"t1","content":"boom","is_error":true}]})");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(ParseOrDie(out->body).at("messages"), ParseOrDie(R"([
      {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
      {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},
      {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"boom",
                                 "is_error":true}]}])"));
}

TEST_F(AnthropicTest, ToolChoiceWithoutTools) {
  auto out =
      Build(R"({"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"auto"})");
  ASSERT_TRUE(out.ok());
  EXPECT_FALSE(ParseOrDie(out->body).as_object().contains("tool_choice"));
  out =
      Build(R"({"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"required"})");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(ParamOf(out.status()), "tool_choice");
}

struct RejectCase {
  const char* extra;  // added to a valid request's top level
  const char* param;  // ParamOf the error
};

TEST_F(AnthropicTest, UnsupportedParametersAre400NamingThem) {
  const RejectCase cases[] = {
      {R"("n":2)", "n"},
      {R"("logprobs":true)", "logprobs"},
      {R"("top_logprobs":3)", "top_logprobs"},
      {R"("logit_bias":{"50256":-100})", "logit_bias"},
      {R"("frequency_penalty":0.5)", "frequency_penalty"},
      {R"("presence_penalty":-1)", "presence_penalty"},
      {R"("audio":{"voice":"alloy","format":"wav"})", "audio"},
      {R"("modalities":["text","audio"])", "modalities"},
      {R"("functions":[{"name":"f"}])", "functions"},
      {R"("function_call":"auto")", "function_call"},
      {R"("reasoning_effort":"high")", "reasoning_effort"},
      {R"("verbosity":"low")", "verbosity"},
      {R"("web_search_options":{})", "web_search_options"},
      {R"("response_format":{"type":"grammar"})", "response_format.type"},
      {R"("tools":[{"type":"custom","custom":{"name":"x"}}])", "tools[0].type"},
      {R"("temperature":1.5)", "temperature"},
      {R"("response_format":{"type":"json_schema","json_schema":{"name":"a b","schema":{}}})",
       "response_format.json_schema.name"},
      {R"("tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"any")",
       "tool_choice"},
  };
  for (const RejectCase& c : cases) {
    SCOPED_TRACE(c.extra);
    auto out = Build(
        absl::StrCat(R"({"model":"m","messages":[{"role":"user","content":"x"}],)", c.extra, "}"));
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(ParamOf(out.status()), c.param);
    EXPECT_THAT(std::string(out.status().message()), HasSubstr(c.param));
    EXPECT_THAT(std::string(out.status().message()), HasSubstr("anthropic"));
  }
  auto out = Build(R"({"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":true})");
  EXPECT_EQ(out.status().message(),
            "parameter 'logprobs' is not supported by the anthropic dialect (deployment "
            "'claude-dep')");
}

TEST_F(AnthropicTest, InvalidMessagesAre400NamingThem) {
  const RejectCase cases[] = {
      {R"({"role":"assistant","tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{bad"}}]})",
       "messages[0].tool_calls[0].function.arguments"},
      {R"({"role":"assistant","tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"[1]"}}]})",
       "messages[0].tool_calls[0].function.arguments"},
      {R"({"role":"user","content":[{"type":"input_audio","input_audio":{"data":"x","format":"wav"}}]})",
       "messages[0].content[0]"},
      {R"({"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x/y.png"}}]})",
       "messages[0].content[0].image_url.url"},
      {R"({"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]})",
       "messages[0].content[0].image_url.url"},
      {R"({"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]})",
       "messages[0].content[0]"},
      {R"({"role":"function","name":"f","content":"x"})", "messages[0].role"},
      {R"({"role":"tool","content":"x"})", "messages[0].tool_call_id"},
      {R"({"role":"wizard","content":"x"})", "messages[0].role"},
      {R"({"role":"user","content":[{"type":"file","file":{"file_id":"file-1"}}]})",
       "messages[0].content[0]"},
  };
  for (const RejectCase& c : cases) {
    SCOPED_TRACE(c.extra);
    auto out = Build(absl::StrCat(R"({"model":"m","messages":[)", c.extra, "]}"));
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(ParamOf(out.status()), c.param) << out.status();
  }
}

TEST_F(AnthropicTest, ReservedToolNamesAndJsonWithThinking) {
  auto out = Build(R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "tools":[{"type":"function","function":{"name":"tollgate_json_x"}}]})");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(ParamOf(out.status()), "tools[0].function.name");
  out = Build(R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "thinking":{"type":"enabled","budget_tokens":2000},"response_format":{"type":"json_object"}})");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(ParamOf(out.status()), "response_format");
}

TEST_F(AnthropicTest, IgnoredParametersDoNotChangeTheBody) {
  auto plain = Build(R"({"model":"m","messages":[{"role":"user","content":"x"}]})");
  auto extra = Build(R"({"model":"m","messages":[{"role":"user","content":"x"}],"seed":1,
      "metadata":{"a":"b"},"store":true,"service_tier":"auto","stream_options":{"include_usage":true},
      "n":1,"logprobs":false,"logit_bias":{},"frequency_penalty":0,"modalities":["text"],
      "parallel_tool_calls":true,"user":""})");
  ASSERT_TRUE(plain.ok());
  ASSERT_TRUE(extra.ok()) << extra.status();
  EXPECT_EQ(ParseOrDie(plain->body), ParseOrDie(extra->body));
}

// ------------------------------------------------------------------------------------------
// Responses.

TEST_F(AnthropicTest, ResponseTextGolden) { ExpectResponseGolden("response_text"); }
TEST_F(AnthropicTest, ResponseToolsAndThinkingGolden) {
  ExpectResponseGolden("response_tools_thinking");
}
TEST_F(AnthropicTest, ResponseJsonToolBecomesContent) { ExpectResponseGolden("response_json"); }
TEST_F(AnthropicTest, ResponseRefusal) { ExpectResponseGolden("response_refusal"); }

TEST_F(AnthropicTest, ResponseStopReasons) {
  const std::pair<const char*, const char*> cases[] = {
      {"end_turn", "stop"},       {"stop_sequence", "stop"},
      {"max_tokens", "length"},   {"model_context_window_exceeded", "length"},
      {"tool_use", "tool_calls"}, {"refusal", "content_filter"},
      {"pause_turn", "stop"},
  };
  for (const auto& [anthropic, openai] : cases) {
    auto out = provider().TranslateChatResponse(
        absl::StrCat(R"({"type":"message","model":"x","content":[{"type":"text","text":"a"}],)",
                     R"("stop_reason":")", anthropic, R"("})"),
        call_);
    ASSERT_TRUE(out.ok());
    EXPECT_EQ(ParseOrDie(out->body).at("choices").at(0).at("finish_reason"), openai) << anthropic;
    EXPECT_FALSE(out->usage.has_value());
    EXPECT_EQ(out->output_bytes, 1);
  }
}

TEST_F(AnthropicTest, MatchedStopSequenceIsCarriedForTheMessagesIngress) {
  auto out = provider().TranslateChatResponse(
      R"({"type":"message","model":"x","content":[{"type":"text","text":"a"}],)"
      R"("stop_reason":"stop_sequence","stop_sequence":"END"})",
      call_);
  ASSERT_TRUE(out.ok());
  const json::value body = ParseOrDie(out->body);
  EXPECT_EQ(body.at("choices").at(0).at("finish_reason"), "stop");
  EXPECT_EQ(body.at("choices").at(0).at("stop_sequence"), "END");
  auto plain = provider().TranslateChatResponse(
      R"({"type":"message","content":[],"stop_reason":"end_turn","stop_sequence":null})", call_);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(ParseOrDie(plain->body).at("choices").at(0).as_object().contains("stop_sequence"));

  std::unique_ptr<StreamTranslator> t = provider().NewStreamTranslator(call_);
  std::string stream;
  SseEvent e;
  e.has_data = true;
  e.data = R"({"type":"message_start","message":{"model":"m","usage":{"input_tokens":5}}})";
  t->OnEvent(e, stream);
  e.data = R"({"type":"message_delta","delta":{"stop_reason":"stop_sequence",)"
           R"("stop_sequence":"END"},"usage":{"output_tokens":3}})";
  t->OnEvent(e, stream);
  EXPECT_THAT(stream, HasSubstr(R"("finish_reason":"stop","stop_sequence":"END")"));
}

TEST_F(AnthropicTest, ResponseWithoutModelUsesClientModel) {
  auto out = provider().TranslateChatResponse(R"({"content":[],"stop_reason":"end_turn"})", call_);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(ParseOrDie(out->body).at("model"), "claude-sonnet");
}

TEST_F(AnthropicTest, ResponseThatIsNotAMessageIsDataLoss) {
  for (const char* body : {"", "nope", "[]", R"({"type":"error","error":{}})", R"({"id":"x"})"}) {
    auto out = provider().TranslateChatResponse(body, call_);
    ASSERT_FALSE(out.ok()) << body;
    EXPECT_EQ(out.status().code(), absl::StatusCode::kDataLoss);
  }
}

// Usage mapping, every token type, exact.
TEST_F(AnthropicTest, UsageEveryTokenType) {
  struct Case {
    const char* usage;
    int64_t input, cached, w5m, w1h, output;
  };
  const Case cases[] = {
      // Plain.
      {R"({"input_tokens":11,"output_tokens":7})", 11, 0, 0, 0, 7},
      // Cache read: input_tokens EXCLUDES it.
      {R"({"input_tokens":100,"cache_read_input_tokens":900,"output_tokens":5})", 1000, 900, 0, 0,
       5},
      // Cache write without the split: all 5m.
      {R"({"input_tokens":100,"cache_creation_input_tokens":400,"output_tokens":5})", 500, 0, 400,
       0, 5},
      // 5m / 1h split.
      {R"({"input_tokens":3,"cache_creation_input_tokens":1500,"cache_read_input_tokens":20,)"
       R"("cache_creation":{"ephemeral_5m_input_tokens":500,"ephemeral_1h_input_tokens":1000},)"
       R"("output_tokens":9})",
       1523, 20, 500, 1000, 9},
      // 1h only.
      {R"({"input_tokens":1,"cache_creation_input_tokens":64,)"
       R"("cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":64},)"
       R"("output_tokens":2})",
       65, 0, 0, 64, 2},
      // Thinking is output (reasoning_tokens stays 0: not reported apart).
      {R"({"input_tokens":10,"output_tokens":3000})", 10, 0, 0, 0, 3000},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.usage);
    auto out = provider().TranslateChatResponse(
        absl::StrCat(R"({"type":"message","content":[{"type":"thinking","thinking":"hm",)"
                     R"("signature":"s"}],"stop_reason":"end_turn","usage":)",
                     c.usage, "}"),
        call_);
    ASSERT_TRUE(out.ok());
    ASSERT_TRUE(out->usage.has_value());
    EXPECT_EQ(out->usage->input_tokens(), c.input);
    EXPECT_EQ(out->usage->cached_input_tokens(), c.cached);
    EXPECT_EQ(out->usage->cache_write_5m_tokens(), c.w5m);
    EXPECT_EQ(out->usage->cache_write_1h_tokens(), c.w1h);
    EXPECT_EQ(out->usage->output_tokens(), c.output);
    EXPECT_EQ(out->usage->reasoning_tokens(), 0);
    EXPECT_FALSE(out->usage->estimated());
    const json::value usage = ParseOrDie(out->body).at("usage");
    EXPECT_EQ(usage.at("prompt_tokens").as_int64(), c.input);
    EXPECT_EQ(usage.at("completion_tokens").as_int64(), c.output);
    EXPECT_EQ(usage.at("total_tokens").as_int64(), c.input + c.output);
    EXPECT_EQ(usage.at("prompt_tokens_details").at("cached_tokens").as_int64(), c.cached);
  }
}

// ------------------------------------------------------------------------------------------
// Streams.

TEST_F(AnthropicTest, StreamTextGolden) {
  call_.client_wants_usage = true;
  ExpectStreamGolden("stream_text");
}

TEST_F(AnthropicTest, StreamThinkingAndToolsGolden) {
  call_.client_wants_usage = true;
  ExpectStreamGolden("stream_tools");
}

TEST_F(AnthropicTest, StreamJsonToolBecomesContentGolden) { ExpectStreamGolden("stream_json"); }

TEST_F(AnthropicTest, StreamErrorEventGolden) {
  ExpectStreamGolden("stream_error");
  StreamProgress p;
  Translate({ReadFile("stream_error.sse")}, &p);
  EXPECT_TRUE(p.error);
  EXPECT_FALSE(p.done);
}

TEST_F(AnthropicTest, StreamUsageChunkOnlyWhenAsked) {
  call_.client_wants_usage = false;
  const std::vector<json::value> events = SseEvents(Translate({ReadFile("stream_text.sse")}));
  ASSERT_EQ(events.size(), 5u);  // role, 2 content, finish, [DONE]
  for (const json::value& e : events) {
    if (e.is_object()) {
      EXPECT_FALSE(e.as_object().contains("usage"));
      EXPECT_EQ(e.at("choices").as_array().size(), 1u);
    }
  }
  EXPECT_EQ(events.back(), "[DONE]");
}

TEST_F(AnthropicTest, StreamProgressUsageLastWins) {
  StreamProgress p;
  Translate({ReadFile("stream_tools.sse")}, &p);
  EXPECT_TRUE(p.done);
  EXPECT_FALSE(p.error);
  ASSERT_TRUE(p.usage.has_value());
  // message_start: input 50, read 300, writes 500 (5m) + 1000 (1h); message_delta: output 700.
  EXPECT_EQ(p.usage->input_tokens(), 1850);
  EXPECT_EQ(p.usage->cached_input_tokens(), 300);
  EXPECT_EQ(p.usage->cache_write_5m_tokens(), 500);
  EXPECT_EQ(p.usage->cache_write_1h_tokens(), 1000);
  EXPECT_EQ(p.usage->output_tokens(), 700);
  EXPECT_EQ(p.usage->reasoning_tokens(), 0);
  // Output: thinking + text + tool names + arguments.
  EXPECT_EQ(p.output_bytes,
            static_cast<int64_t>(std::string("The user wants weather.").size() +
                                 std::string("Checking.").size() +
                                 std::string("get_weather{\"city\":\"Paris\"}").size() +
                                 std::string("get_time{}").size()));

  // Two message_delta events: the last cumulative value wins, not the sum.
  std::unique_ptr<StreamTranslator> t = provider().NewStreamTranslator(call_);
  std::string out;
  auto feed = [&](std::string_view data) {
    SseEvent e;
    e.data = data;
    e.has_data = true;
    t->OnEvent(e, out);
  };
  feed(
      R"({"type":"message_start","message":{"model":"m","usage":{"input_tokens":5,"output_tokens":1}}})");
  EXPECT_EQ(t->progress().usage->output_tokens(), 1);
  feed(R"({"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":10}})");
  feed(
      R"({"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":30,"input_tokens":5}})");
  EXPECT_EQ(t->progress().usage->output_tokens(), 30);
  EXPECT_EQ(t->progress().usage->input_tokens(), 5);
  EXPECT_THAT(out, HasSubstr(R"("finish_reason":"length")"));
}

TEST_F(AnthropicTest, StreamHasOutputPerEvent) {
  std::unique_ptr<StreamTranslator> t = provider().NewStreamTranslator(call_);
  std::string out;
  std::vector<bool> has_output;
  SseParser parser(1 << 20);
  ASSERT_TRUE(parser
                  .Feed(ReadFile("stream_text.sse"),
                        [&](const SseEvent& e) {
                          t->OnEvent(e, out);
                          has_output.push_back(t->progress().has_output);
                        })
                  .ok());
  // message_start, block start, ping, delta, comment, delta, block stop, message_delta, stop.
  EXPECT_EQ(has_output,
            (std::vector<bool>{false, false, false, true, false, true, false, false, false}));
}

TEST_F(AnthropicTest, StreamCutBeforeMessageStopClaimsNothing) {
  call_.client_wants_usage = true;
  const std::string full = ReadFile("stream_text.sse");
  const std::string cut = full.substr(0, full.find("event: message_stop"));
  StreamProgress p;
  const std::string out = Translate({cut}, &p);
  EXPECT_FALSE(p.done);
  EXPECT_FALSE(p.error);
  EXPECT_THAT(out, ::testing::Not(HasSubstr("[DONE]")));
  EXPECT_THAT(out, ::testing::Not(HasSubstr(R"("choices":[])")));
  ASSERT_TRUE(p.usage.has_value());  // what was seen is kept for the ledger
  EXPECT_EQ(p.usage->output_tokens(), 15);
  EXPECT_EQ(p.usage->input_tokens(), 135);

  // Cut before any message_delta: message_start's counts.
  const std::string early = full.substr(0, full.find("event: content_block_stop"));
  Translate({early}, &p);
  EXPECT_FALSE(p.done);
  EXPECT_EQ(p.usage->output_tokens(), 1);
  EXPECT_EQ(p.output_bytes, static_cast<int64_t>(std::string("Hello wörld").size()));
}

TEST_F(AnthropicTest, StreamRefusalFinishesWithContentFilter) {
  const std::string out = Translate(
      {"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"m\"}}\n\n"
       "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
       "\"refusal\"},\"usage\":{\"output_tokens\":2}}\n\n"
       "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"});
  EXPECT_THAT(out, HasSubstr(R"("finish_reason":"content_filter")"));
}

TEST_F(AnthropicTest, StreamErrorEventWithoutJsonStillEndsTheStream) {
  StreamProgress p;
  const std::string out = Translate({"event: error\ndata: upstream exploded\n\n"
                                     "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"},
                                    &p);
  EXPECT_TRUE(p.error);
  EXPECT_FALSE(p.done);
  const std::vector<json::value> events = SseEvents(out);
  ASSERT_EQ(events.size(), 1u) << out;
  EXPECT_EQ(events[0].at("error").at("message"), "upstream exploded");
  EXPECT_EQ(events[0].at("error").at("type"), "server_error");
}

TEST_F(AnthropicTest, StreamIgnoresUnknownEventsAndGarbage) {
  StreamProgress p;
  const std::string out = Translate({": comment only\n\n"
                                     "data: not json\n\n"
                                     "event: future_event\ndata: {\"type\":\"future_event\"}\n\n"},
                                    &p);
  EXPECT_EQ(out, "");
  EXPECT_FALSE(p.done);
  EXPECT_FALSE(p.error);
  EXPECT_FALSE(p.usage.has_value());
}

// The stream split at every byte boundary (and fed byte by byte, and with CRLF line ends)
// translates to exactly the same bytes.
TEST_F(AnthropicTest, StreamSplitAtEveryByteIsIdentical) {
  call_.client_wants_usage = true;
  for (const char* name :
       {"stream_text.sse", "stream_tools.sse", "stream_json.sse", "stream_error.sse"}) {
    SCOPED_TRACE(name);
    const std::string stream = ReadFile(name);
    const std::string whole = Translate({stream});
    ASSERT_FALSE(whole.empty());
    for (size_t k = 0; k <= stream.size(); ++k) {
      const std::string_view s(stream);
      ASSERT_EQ(Translate({s.substr(0, k), s.substr(k)}), whole) << "split at " << k;
    }
    std::vector<std::string_view> bytes;
    for (size_t k = 0; k < stream.size(); ++k)
      bytes.push_back(std::string_view(stream).substr(k, 1));
    EXPECT_EQ(Translate(bytes), whole);
    const std::string crlf = absl::StrReplaceAll(stream, {{"\n", "\r\n"}});
    EXPECT_EQ(Translate({crlf}), whole);
    for (size_t k = 0; k <= crlf.size(); k += 7) {
      const std::string_view s(crlf);
      ASSERT_EQ(Translate({s.substr(0, k), s.substr(k)}), whole) << "crlf split at " << k;
    }
  }
}

// ------------------------------------------------------------------------------------------
// Errors.

TEST_F(AnthropicTest, ErrorGoldens) {
  for (const auto& [name, status, context] : std::vector<std::tuple<std::string, unsigned, bool>>{
           {"error_rate_limit", 429, false}, {"error_prompt_too_long", 400, true}}) {
    SCOPED_TRACE(name);
    const ProviderError e = provider().TranslateError(status, ReadFile(name + ".anthropic.json"));
    EXPECT_EQ(ParseOrDie(e.body), ParseOrDie(ReadFile(name + ".openai.json")));
    EXPECT_EQ(e.context_length_exceeded, context);
  }
}

TEST_F(AnthropicTest, ErrorTypes) {
  struct Case {
    unsigned status;
    const char* type;
    const char* message;
    const char* openai_type;
    const char* code;  // "" = null
    bool context;
  };
  const Case cases[] = {
      {400, "invalid_request_error", "messages: bad", "invalid_request_error", "", false},
      {400, "invalid_request_error", "Prompt is too long", "invalid_request_error",
       "context_length_exceeded", true},
      {400, "invalid_request_error",
       "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000",
       "invalid_request_error", "context_length_exceeded", true},
      {401, "authentication_error", "invalid x-api-key", "authentication_error", "invalid_api_key",
       false},
      {402, "billing_error", "credit balance too low", "insufficient_quota", "insufficient_quota",
       false},
      {403, "permission_error", "no", "permission_error", "permission_denied", false},
      {404, "not_found_error", "model: claude-9", "invalid_request_error", "model_not_found",
       false},
      {413, "request_too_large", "too big", "invalid_request_error", "request_too_large", false},
      {429, "rate_limit_error", "slow down", "rate_limit_error", "rate_limit_exceeded", false},
      {500, "api_error", "Internal server error", "server_error", "", false},
      {504, "timeout_error", "timed out", "server_error", "timeout", false},
      {529, "overloaded_error", "Overloaded", "server_error", "overloaded", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.type);
    const ProviderError e = provider().TranslateError(
        c.status, absl::StrCat(R"({"type":"error","error":{"type":")", c.type, R"(","message":")",
                               c.message, R"("},"request_id":"req_1"})"));
    const json::value body = ParseOrDie(e.body);
    EXPECT_EQ(body.at("error").at("message"), c.message);
    EXPECT_EQ(body.at("error").at("type"), c.openai_type);
    EXPECT_TRUE(body.at("error").at("param").is_null());
    if (*c.code == '\0') {
      EXPECT_TRUE(body.at("error").at("code").is_null());
    } else {
      EXPECT_EQ(body.at("error").at("code"), c.code);
    }
    EXPECT_EQ(e.context_length_exceeded, c.context);
  }
}

TEST_F(AnthropicTest, ErrorBodyThatIsNotAnthropicJson) {
  ProviderError e = provider().TranslateError(502, "<html>bad gateway \xff</html>");
  json::value body = ParseOrDie(e.body);
  EXPECT_EQ(body.at("error").at("type"), "server_error");
  EXPECT_THAT(std::string(body.at("error").at("message").as_string()),
              HasSubstr("HTTP 502: <html>bad gateway"));
  e = provider().TranslateError(429, "");
  body = ParseOrDie(e.body);
  EXPECT_EQ(body.at("error").at("code"), "rate_limit_exceeded");
  EXPECT_FALSE(e.context_length_exceeded);
}

}  // namespace
}  // namespace tollgate::gateway
