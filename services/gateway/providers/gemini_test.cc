// Golden translation tests of the gemini dialect, both directions. Inputs and expected outputs
// live in testdata/gemini/ (compared as parsed JSON). To regenerate the expected files after a
// deliberate change, run with TOLLGATE_UPDATE_GOLDEN=1 and review the diff.

#include "services/gateway/providers/gemini.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "boost/json/parse.hpp"
#include "boost/json/serialize.hpp"
#include "gtest/gtest.h"
#include "services/gateway/openai_dialect.h"
#include "services/gateway/sse_parser.h"

namespace tollgate::gateway {
namespace {

namespace json = boost::json;

const std::string kDir = TOLLGATE_SOURCE_DIR "/services/gateway/providers/testdata/gemini/";

std::string ReadFile(const std::string& name) {
  std::ifstream in(kDir + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing " << kDir + name;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool UpdateGolden() {
  const char* v = std::getenv("TOLLGATE_UPDATE_GOLDEN");
  return v != nullptr && std::string(v) == "1";
}

void Pretty(const json::value& v, std::string& out, int indent) {
  const std::string pad(indent * 2, ' ');
  const std::string inner((indent + 1) * 2, ' ');
  if (v.is_object() && !v.get_object().empty()) {
    out += "{\n";
    bool first = true;
    for (const auto& kv : v.get_object()) {
      if (!first) out += ",\n";
      first = false;
      out += inner + json::serialize(json::value(kv.key())) + ": ";
      Pretty(kv.value(), out, indent + 1);
    }
    out += "\n" + pad + "}";
  } else if (v.is_array() && !v.get_array().empty()) {
    out += "[\n";
    bool first = true;
    for (const json::value& e : v.get_array()) {
      if (!first) out += ",\n";
      first = false;
      out += inner;
      Pretty(e, out, indent + 1);
    }
    out += "\n" + pad + "]";
  } else {
    out += json::serialize(v);
  }
}

std::string Pretty(const json::value& v) {
  std::string out;
  Pretty(v, out, 0);
  return out + "\n";
}

// Compares `actual` with the golden file (as parsed JSON), or rewrites it in update mode.
void ExpectGolden(const json::value& actual, const std::string& golden) {
  if (UpdateGolden()) {
    std::ofstream(kDir + golden, std::ios::binary | std::ios::trunc) << Pretty(actual);
    return;
  }
  const json::value expected = json::parse(ReadFile(golden));
  EXPECT_EQ(actual, expected) << golden << " differs; actual:\n" << Pretty(actual);
}

void ExpectGolden(std::string_view actual_json, const std::string& golden) {
  json::error_code ec;
  const json::value actual = json::parse(actual_json, ec);
  ASSERT_FALSE(ec) << "not JSON: " << actual_json;
  ExpectGolden(actual, golden);
}

v1::Deployment TestDeployment() {
  v1::Deployment d;
  d.set_id("gemini-flash-eu");
  d.set_dialect("gemini");
  d.set_upstream_model("gemini-2.5-flash");
  return d;
}

struct Fixture {
  v1::Deployment deployment = TestDeployment();
  ProviderCall call;
  Fixture() {
    call.deployment = &deployment;
    call.base_path = "/v1beta";
    call.api_key = "AIza-test";
    call.request_id = "req42";
    call.created_unix = 1730000000;
    call.client_model = "gemini-flash";
  }
};

const Provider& P() { return GeminiProvider(); }

json::object ParseObject(std::string_view text) {
  json::value v = json::parse(text);
  return v.as_object();
}

TEST(GeminiProviderTest, FindProviderServesTheDialect) {
  EXPECT_EQ(P().dialect(), "gemini");
  EXPECT_EQ(FindProvider("gemini"), &P());
}

// ---------------------------------------------------------------------------------------------
// Requests.

TEST(GeminiRequestTest, FullRequestGolden) {
  Fixture f;
  json::object request = ParseObject(ReadFile("request_full.openai.json"));
  const json::object before = request;
  auto out = P().BuildChatRequest(request, f.call);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->target, "/v1beta/models/gemini-2.5-flash:generateContent");
  ASSERT_EQ(out->headers.size(), 1u);
  EXPECT_EQ(out->headers[0].first, "x-goog-api-key");
  EXPECT_EQ(out->headers[0].second, "AIza-test");
  ExpectGolden(out->body, "request_full.gemini.json");
  EXPECT_EQ(request, before) << "the request must not be mutated (reused across fallbacks)";
}

TEST(GeminiRequestTest, StreamTargetMinimalFeaturesAndNoKey) {
  Fixture f;
  f.call.stream = true;
  f.call.api_key = "";
  f.call.base_path = "";
  json::object request = ParseObject(ReadFile("request_minimal.openai.json"));
  auto out = P().BuildChatRequest(request, f.call);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->target, "/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
  EXPECT_TRUE(out->headers.empty());
  ExpectGolden(out->body, "request_minimal.gemini.json");
}

TEST(GeminiRequestTest, ToolChoiceModes) {
  Fixture f;
  const std::string tools =
      R"("tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object",)"
      R"("properties":{"a":{"type":"string"}}}}}])";
  struct Case {
    std::string choice;
    std::string expected_config;
  };
  for (const Case& c : std::vector<Case>{{R"("auto")", R"({"mode":"AUTO"})"},
                                         {R"("none")", R"({"mode":"NONE"})"},
                                         {R"("required")", R"({"mode":"ANY"})"},
                                         {R"({"type":"function","function":{"name":"f"}})",
                                          R"({"mode":"ANY","allowedFunctionNames":["f"]})"}}) {
    json::object request =
        ParseObject(absl::StrCat(R"({"model":"m","messages":[{"role":"user","content":"hi"}],)",
                                 tools, R"(,"tool_choice":)", c.choice, "}"));
    auto out = P().BuildChatRequest(request, f.call);
    ASSERT_TRUE(out.ok()) << c.choice << ": " << out.status();
    const json::value body = json::parse(out->body);
    EXPECT_EQ(body.at("toolConfig").at("functionCallingConfig"), json::parse(c.expected_config))
        << c.choice;
    EXPECT_EQ(body.at("tools").at(0).at("functionDeclarations").at(0).at("name"), "f");
  }
}

TEST(GeminiRequestTest, ReasoningEffortBudgets) {
  Fixture f;
  for (const auto& [effort, budget] : std::vector<std::pair<std::string, int64_t>>{
           {"none", 0}, {"minimal", 512}, {"low", 1024}, {"medium", 8192}, {"high", 24576}}) {
    json::object request = ParseObject(absl::StrCat(
        R"({"model":"m","messages":[{"role":"user","content":"hi"}],"reasoning_effort":")", effort,
        R"("})"));
    auto out = P().BuildChatRequest(request, f.call);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(json::parse(out->body).at("generationConfig").at("thinkingConfig"),
              json::parse(absl::StrCat(R"({"thinkingBudget":)", budget, "}")))
        << effort;
  }
}

TEST(GeminiRequestTest, DeploymentOptionsSelectSchemaFieldAndThoughts) {
  Fixture f;
  (*f.deployment.mutable_options())["json_schema_field"] = "responseSchema";
  (*f.deployment.mutable_options())["include_thoughts"] = "true";
  json::object request = ParseObject(
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":
      "json_schema","json_schema":{"name":"x","schema":{"type":"object","additionalProperties":
      false,"properties":{"n":{"type":["integer","null"]}}}}}})");
  auto out = P().BuildChatRequest(request, f.call);
  ASSERT_TRUE(out.ok()) << out.status();
  const json::value config = json::parse(out->body).at("generationConfig");
  EXPECT_EQ(config, json::parse(R"({"responseMimeType":"application/json","responseSchema":
      {"type":"object","properties":{"n":{"type":"integer","nullable":true}}},
      "thinkingConfig":{"includeThoughts":true}})"));
}

TEST(GeminiRequestTest, ToolResultThatIsNotAJsonObjectIsWrapped) {
  Fixture f;
  json::object request = ParseObject(R"({"model":"m","messages":[
      {"role":"user","content":"go"},
      {"role":"assistant","tool_calls":[{"id":"x1","type":"function",
                                         "function":{"name":"f","arguments":"{}"}}]},
      {"role":"tool","tool_call_id":"x1","content":"[1,2]"}]})");
  auto out = P().BuildChatRequest(request, f.call);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(json::parse(out->body).at("contents").at(2),
            json::parse(R"({"role":"user","parts":[{"functionResponse":{"name":"f",
                "response":{"content":"[1,2]"}}}]})"));
}

TEST(GeminiRequestTest, SystemPartsStaySeparateAndRefusalsStayText) {
  Fixture f;
  json::object request = ParseObject(R"({"model":"m","messages":[
      {"role":"system","content":[{"type":"text","text":"one"},{"type":"text","text":"two"}]},
      {"role":"user","content":"q"},
      {"role":"assistant","content":[{"type":"refusal","refusal":"I can't."}]},
      {"role":"user","content":"why?"},
      {"role":"assistant","content":null,"refusal":"Still no."}]})");
  auto out = P().BuildChatRequest(request, f.call);
  ASSERT_TRUE(out.ok()) << out.status();
  const json::value body = json::parse(out->body);
  EXPECT_EQ(body.at("systemInstruction"),
            json::parse(R"({"parts":[{"text":"one"},{"text":"two"}]})"));
  EXPECT_EQ(body.at("contents").at(1),
            json::parse(R"({"role":"model","parts":[{"text":"I can't."}]})"));
  EXPECT_EQ(body.at("contents").at(3),
            json::parse(R"({"role":"model","parts":[{"text":"Still no."}]})"));
  EXPECT_EQ(body.at("contents").as_array().size(), 4u);
}

TEST(GeminiRequestTest, SchemaConversionErrorsNameTheParameter) {
  for (const char* schema :
       {R"({"$ref":"#/$defs/Missing"})", R"({"allOf":[{},{}]})",
        R"({"type":"array","items":[{"type":"string"}]})", R"({"$ref":"#"})"}) {
    auto out = GeminiSchema(json::parse(schema), "tools[0].function.parameters");
    ASSERT_FALSE(out.ok()) << schema;
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(ParamOf(out.status()), "tools[0].function.parameters");
  }
  auto ok = GeminiSchema(json::parse(R"({"allOf":[{"type":"string","format":"uri"}]})"), "p");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, json::parse(R"({"type":"string"})"));
}

// Every parameter Gemini cannot honour is a 400 naming it, the dialect and the deployment.
TEST(GeminiRequestTest, UnsupportedParametersAre400NamingTheParameter) {
  Fixture f;
  struct Case {
    std::string extra;  // JSON members added to a valid request
    std::string param;
  };
  const std::string base = R"("model":"m","messages":[{"role":"user","content":"hi"}])";
  for (const Case& c : std::vector<Case>{
           {R"("logprobs":true)", "logprobs"},
           {R"("top_logprobs":3)", "top_logprobs"},
           {R"("logit_bias":{"50256":-100})", "logit_bias"},
           {R"("thinking":{"type":"enabled","budget_tokens":2048})", "thinking"},
           {R"("audio":{"voice":"alloy","format":"wav"})", "audio"},
           {R"("modalities":["text","audio"])", "modalities"},
           {R"("functions":[{"name":"f"}])", "functions"},
           {R"("web_search_options":{})", "web_search_options"},
           {R"("min_p":0.1)", "min_p"},
           {R"("max_tokens":0)", "max_tokens"},
           {R"("temperature":"hot")", "temperature"},
           {R"("n":0)", "n"},
           {R"("reasoning_effort":"extreme")", "reasoning_effort"},
           {R"("response_format":{"type":"grammar"})", "response_format.type"},
           {R"("stop":[1])", "stop"},
           {R"("tools":[{"type":"code_interpreter"}])", "tools[0].type"},
           {R"("tool_choice":{"type":"function","function":{"name":"nope"}})",
            "tool_choice.function.name"},
       }) {
    json::object request = ParseObject(absl::StrCat("{", base, ",", c.extra, "}"));
    ASSERT_TRUE(ParseChatRequest(json::value(request)).ok()) << c.extra;
    auto out = P().BuildChatRequest(request, f.call);
    ASSERT_FALSE(out.ok()) << c.extra;
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << c.extra;
    EXPECT_EQ(ParamOf(out.status()), c.param) << c.extra;
    EXPECT_TRUE(absl::StrContains(out.status().message(), "gemini")) << out.status();
    EXPECT_TRUE(absl::StrContains(out.status().message(), "gemini-flash-eu")) << out.status();
  }
}

TEST(GeminiRequestTest, MessageErrorsNameTheField) {
  Fixture f;
  struct Case {
    std::string messages;
    std::string param;
  };
  for (const Case& c : std::vector<Case>{
           {R"([{"role":"user","content":"a"},{"role":"assistant","tool_calls":[{"id":"1",
               "type":"function","function":{"name":"f","arguments":"{not json"}}]}])",
            "messages[1].tool_calls[0].function.arguments"},
           {R"([{"role":"user","content":"a"},{"role":"assistant","tool_calls":[{"id":"1",
               "type":"function","function":{"name":"f","arguments":"[1]"}}]}])",
            "messages[1].tool_calls[0].function.arguments"},
           {R"([{"role":"user","content":"a"},{"role":"tool","tool_call_id":"zz","content":"x"}])",
            "messages[1].tool_call_id"},
           {R"([{"role":"user","content":[{"type":"image_url",
              "image_url":{"url":"ftp://x/y.png"}}]}])",
            "messages[0].content[0].image_url.url"},
           {R"([{"role":"user","content":[{"type":"image_url",
              "image_url":{"url":"data:image/png,abc"}}]}])",
            "messages[0].content[0].image_url.url"},
           {R"([{"role":"user","content":[{"type":"file","file":{"file_id":"file-1"}}]}])",
            "messages[0].content[0].file.file_id"},
           {R"([{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x"}}]},
               {"role":"user","content":"a"}])",
            "messages[0].content[0]"},
           {R"([{"role":"critic","content":"a"}])", "messages[0].role"},
           {R"([{"role":"system","content":"only a system prompt"}])", "messages"},
       }) {
    json::object request =
        ParseObject(absl::StrCat(R"({"model":"m","messages":)", c.messages, "}"));
    auto out = P().BuildChatRequest(request, f.call);
    ASSERT_FALSE(out.ok()) << c.messages;
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(ParamOf(out.status()), c.param) << c.messages << " -> " << out.status();
  }
}

// ---------------------------------------------------------------------------------------------
// Responses.

TEST(GeminiResponseTest, TextThoughtsAndCandidatesGolden) {
  Fixture f;
  auto out = P().TranslateChatResponse(ReadFile("response_text.gemini.json"), f.call);
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectGolden(out->body, "response_text.openai.json");
  EXPECT_EQ(out->output_bytes, 24 + 9 + 14 + 9);
}

// promptTokenCount already includes cachedContentTokenCount; thoughts are output tokens.
TEST(GeminiResponseTest, UsageMappingIsExact) {
  Fixture f;
  auto out = P().TranslateChatResponse(ReadFile("response_text.gemini.json"), f.call);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_TRUE(out->usage.has_value());
  EXPECT_EQ(out->usage->input_tokens(), 127);  // 120 prompt (100 of them cached) + 7 tool use
  EXPECT_EQ(out->usage->cached_input_tokens(), 100);
  EXPECT_EQ(out->usage->output_tokens(), 45);  // 5 candidates + 40 thoughts
  EXPECT_EQ(out->usage->reasoning_tokens(), 40);
  EXPECT_EQ(out->usage->cache_write_5m_tokens(), 0);
  EXPECT_EQ(out->usage->cache_write_1h_tokens(), 0);
  EXPECT_FALSE(out->usage->estimated());
  const json::value usage = json::parse(out->body).at("usage");
  EXPECT_EQ(usage, json::parse(R"({"prompt_tokens":127,"completion_tokens":45,
      "total_tokens":172,"prompt_tokens_details":{"cached_tokens":100},
      "completion_tokens_details":{"reasoning_tokens":40}})"));

  // No cache, no thoughts; a cached count above the prompt is clamped.
  auto plain = P().TranslateChatResponse(
      R"({"candidates":[{"content":{"parts":[{"text":"x"}]},"finishReason":"STOP"}],
          "usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":3,
          "cachedContentTokenCount":50}})",
      f.call);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->usage->input_tokens(), 10);
  EXPECT_EQ(plain->usage->cached_input_tokens(), 10);
  EXPECT_EQ(plain->usage->output_tokens(), 3);
  EXPECT_EQ(plain->usage->reasoning_tokens(), 0);

  auto none = P().TranslateChatResponse(
      R"({"candidates":[{"content":{"parts":[{"text":"abc"}]},"finishReason":"STOP"}]})", f.call);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->usage.has_value());
  EXPECT_FALSE(json::parse(none->body).as_object().contains("usage"));
  EXPECT_EQ(none->output_bytes, 3);
}

TEST(GeminiResponseTest, FunctionCallsGolden) {
  Fixture f;
  auto out = P().TranslateChatResponse(ReadFile("response_tools.gemini.json"), f.call);
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectGolden(out->body, "response_tools.openai.json");
}

TEST(GeminiResponseTest, BlockedPromptGolden) {
  Fixture f;
  auto out = P().TranslateChatResponse(ReadFile("response_blocked.gemini.json"), f.call);
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectGolden(out->body, "response_blocked.openai.json");
  EXPECT_EQ(out->usage->input_tokens(), 9);
  EXPECT_EQ(out->usage->output_tokens(), 0);
}

TEST(GeminiResponseTest, SafetyAndOtherFinishReasonsGolden) {
  Fixture f;
  auto out = P().TranslateChatResponse(ReadFile("response_safety.gemini.json"), f.call);
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectGolden(out->body, "response_safety.openai.json");
}

TEST(GeminiResponseTest, FinishReasonTable) {
  Fixture f;
  for (const auto& [gemini, openai] :
       std::vector<std::pair<std::string, std::string>>{{"STOP", "stop"},
                                                        {"MAX_TOKENS", "length"},
                                                        {"SAFETY", "content_filter"},
                                                        {"RECITATION", "content_filter"},
                                                        {"BLOCKLIST", "content_filter"},
                                                        {"PROHIBITED_CONTENT", "content_filter"},
                                                        {"SPII", "content_filter"},
                                                        {"IMAGE_SAFETY", "content_filter"},
                                                        {"LANGUAGE", "stop"},
                                                        {"OTHER", "stop"},
                                                        {"MALFORMED_FUNCTION_CALL", "stop"},
                                                        {"SOMETHING_NEW", "stop"}}) {
    auto out = P().TranslateChatResponse(
        absl::StrCat(R"({"candidates":[{"content":{"parts":[{"text":"x"}]},"finishReason":")",
                     gemini, R"("}]})"),
        f.call);
    ASSERT_TRUE(out.ok());
    EXPECT_EQ(json::parse(out->body).at("choices").at(0).at("finish_reason"), json::value(openai))
        << gemini;
  }
}

TEST(GeminiResponseTest, NotAGeminiResponseIsAnError) {
  Fixture f;
  for (const char* body : {"", "not json", "[1,2]", R"({"candidates":"x"})",
                           R"({"error":{"code":500,"message":"boom"}})"}) {
    auto out = P().TranslateChatResponse(body, f.call);
    EXPECT_FALSE(out.ok()) << body;
  }
}

// ---------------------------------------------------------------------------------------------
// Streams.

struct StreamResult {
  std::string out;
  StreamProgress progress;
  std::vector<bool> has_output;  // per data event
};

// Feeds `bytes` through an SseParser in the given pieces, then Finish()es.
StreamResult RunStream(const ProviderCall& call, std::string_view bytes,
                       const std::vector<size_t>& cuts) {
  StreamResult r;
  auto translator = P().NewStreamTranslator(call);
  SseParser parser(1 << 20);
  auto on_event = [&](const SseEvent& e) {
    translator->OnEvent(e, r.out);
    if (e.has_data) r.has_output.push_back(translator->progress().has_output);
  };
  size_t start = 0;
  for (size_t cut : cuts) {
    EXPECT_TRUE(parser.Feed(bytes.substr(start, cut - start), on_event).ok());
    start = cut;
  }
  EXPECT_TRUE(parser.Feed(bytes.substr(start), on_event).ok());
  parser.Finish(on_event);
  translator->Finish(r.out);
  r.progress = translator->progress();
  return r;
}

// The OpenAI SSE output as a JSON array of events (parsed chunks, "[DONE]" as a string).
json::value Events(std::string_view out) {
  json::array events;
  while (!out.empty()) {
    const size_t end = out.find("\n\n");
    EXPECT_NE(end, std::string_view::npos) << "unterminated event: " << out;
    if (end == std::string_view::npos) break;
    std::string_view event = out.substr(0, end);
    out.remove_prefix(end + 2);
    EXPECT_TRUE(event.starts_with("data: ")) << event;
    event.remove_prefix(6);
    if (event == "[DONE]") {
      events.push_back("[DONE]");
    } else {
      events.push_back(json::parse(event));
    }
  }
  return events;
}

void ExpectStreamGolden(const std::string& input, const std::string& golden, bool wants_usage,
                        StreamResult* result = nullptr) {
  Fixture f;
  f.call.stream = true;
  f.call.client_wants_usage = wants_usage;
  const std::string bytes = ReadFile(input);
  StreamResult whole = RunStream(f.call, bytes, {});
  ExpectGolden(Events(whole.out), golden);
  // Split at every byte boundary, and byte by byte: identical output and progress.
  for (size_t cut = 1; cut < bytes.size(); ++cut) {
    StreamResult split = RunStream(f.call, bytes, {cut});
    ASSERT_EQ(split.out, whole.out) << input << " split at " << cut;
    ASSERT_EQ(split.progress.done, whole.progress.done);
    ASSERT_EQ(split.progress.error, whole.progress.error);
    ASSERT_EQ(split.progress.output_bytes, whole.progress.output_bytes);
  }
  std::vector<size_t> every;
  for (size_t cut = 1; cut < bytes.size(); ++cut) every.push_back(cut);
  StreamResult bytewise = RunStream(f.call, bytes, every);
  EXPECT_EQ(bytewise.out, whole.out) << input << " fed byte by byte";
  EXPECT_EQ(bytewise.has_output, whole.has_output);
  if (result != nullptr) *result = whole;
}

TEST(GeminiStreamTest, TextWithThoughtsAndUsageGolden) {
  StreamResult r;
  ExpectStreamGolden("stream_text.sse", "stream_text.openai.json", /*wants_usage=*/true, &r);
  EXPECT_TRUE(r.progress.done);
  EXPECT_FALSE(r.progress.error);
  // Last-wins cumulative usage: 20 prompt (8 cached), 2 candidates + 3 thoughts.
  ASSERT_TRUE(r.progress.usage.has_value());
  EXPECT_EQ(r.progress.usage->input_tokens(), 20);
  EXPECT_EQ(r.progress.usage->cached_input_tokens(), 8);
  EXPECT_EQ(r.progress.usage->output_tokens(), 5);
  EXPECT_EQ(r.progress.usage->reasoning_tokens(), 3);
  EXPECT_EQ(r.progress.output_bytes, 11 + 5 + 7);
  // has_output per data event: thought, text, text, the empty final chunk.
  EXPECT_EQ(r.has_output, (std::vector<bool>{true, true, true, false}));
}

TEST(GeminiStreamTest, WithoutIncludeUsageNoUsageChunk) {
  Fixture f;
  f.call.stream = true;
  const StreamResult r = RunStream(f.call, ReadFile("stream_text.sse"), {});
  EXPECT_TRUE(r.progress.done);
  EXPECT_FALSE(absl::StrContains(r.out, "\"usage\""));
  EXPECT_TRUE(absl::EndsWith(r.out, "data: [DONE]\n\n"));
  EXPECT_TRUE(r.progress.usage.has_value());  // still recorded for the ledger
}

TEST(GeminiStreamTest, FunctionCallsGolden) {
  StreamResult r;
  ExpectStreamGolden("stream_tools.sse", "stream_tools.openai.json", /*wants_usage=*/true, &r);
  EXPECT_TRUE(r.progress.done);
  EXPECT_EQ(r.progress.usage->input_tokens(), 30);
  EXPECT_EQ(r.progress.usage->output_tokens(), 14);
}

TEST(GeminiStreamTest, MidStreamErrorGolden) {
  StreamResult r;
  ExpectStreamGolden("stream_error.sse", "stream_error.openai.json", /*wants_usage=*/true, &r);
  EXPECT_TRUE(r.progress.error);
  EXPECT_FALSE(r.progress.done);
}

TEST(GeminiStreamTest, BlockedPromptGolden) {
  StreamResult r;
  ExpectStreamGolden("stream_blocked.sse", "stream_blocked.openai.json", /*wants_usage=*/true, &r);
  EXPECT_TRUE(r.progress.done);
  EXPECT_EQ(r.progress.usage->input_tokens(), 11);
}

TEST(GeminiStreamTest, SeveralCandidatesGolden) {
  StreamResult r;
  ExpectStreamGolden("stream_multi.sse", "stream_multi.openai.json", /*wants_usage=*/false, &r);
  EXPECT_TRUE(r.progress.done);
}

// usageMetadata may come in a chunk after the one with finishReason: last wins, and nothing more
// is emitted for a finished choice.
TEST(GeminiStreamTest, UsageAfterFinishReasonWins) {
  Fixture f;
  f.call.stream = true;
  f.call.client_wants_usage = true;
  const std::string bytes =
      "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]},"
      "\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":4}}\n\n"
      "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"late\"}]}}],"
      "\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":1,"
      "\"thoughtsTokenCount\":2}}\n\n";
  const StreamResult r = RunStream(f.call, bytes, {});
  EXPECT_TRUE(r.progress.done);
  EXPECT_FALSE(absl::StrContains(r.out, "late")) << r.out;
  ASSERT_TRUE(r.progress.usage.has_value());
  EXPECT_EQ(r.progress.usage->output_tokens(), 3);
  const json::value events = Events(r.out);
  ASSERT_EQ(events.as_array().size(), 5u);  // role, "Hi", finish, usage, [DONE]
  EXPECT_EQ(events.at(3).at("usage").at("completion_tokens"), 3);
  EXPECT_EQ(events.at(4), "[DONE]");
}

TEST(GeminiStreamTest, EofWithoutFinishReasonIsBroken) {
  Fixture f;
  f.call.stream = true;
  f.call.client_wants_usage = true;
  const std::string bytes = ReadFile("stream_text.sse");
  // Everything but the last (finishReason) event.
  const size_t last = bytes.rfind("data: ");
  const StreamResult r = RunStream(f.call, bytes.substr(0, last), {});
  EXPECT_FALSE(r.progress.done);
  EXPECT_FALSE(r.progress.error);
  EXPECT_FALSE(absl::StrContains(r.out, "[DONE]"));
  EXPECT_FALSE(absl::StrContains(r.out, "finish_reason\":\"stop"));
  ASSERT_TRUE(r.progress.usage.has_value());  // what was seen, for the estimate
  EXPECT_EQ(r.progress.usage->output_tokens(), 5);
}

TEST(GeminiStreamTest, MalformedEventIsAnError) {
  Fixture f;
  f.call.stream = true;
  const StreamResult r = RunStream(f.call, "data: {\"candidates\":[\n\n", {});
  EXPECT_TRUE(r.progress.error);
  EXPECT_FALSE(r.progress.done);
  const json::value events = Events(r.out);
  ASSERT_EQ(events.as_array().size(), 1u);
  EXPECT_TRUE(events.at(0).as_object().contains("error"));
}

TEST(GeminiStreamTest, FinishIsIdempotent) {
  Fixture f;
  f.call.stream = true;
  auto t = P().NewStreamTranslator(f.call);
  SseParser parser(1 << 20);
  std::string out;
  ASSERT_TRUE(
      parser.Feed(ReadFile("stream_tools.sse"), [&](const SseEvent& e) { t->OnEvent(e, out); })
          .ok());
  t->Finish(out);
  const std::string once = out;
  t->Finish(out);
  EXPECT_EQ(out, once);
}

// ---------------------------------------------------------------------------------------------
// Errors.

TEST(GeminiErrorTest, GoogleStatusesGolden) {
  const json::value cases = json::parse(ReadFile("errors.gemini.json"));
  json::array actual;
  for (const json::value& c : cases.as_array()) {
    const json::value& body = c.at("body");
    const std::string raw =
        body.is_string() ? std::string(body.get_string()) : json::serialize(body);
    const ProviderError e =
        P().TranslateError(static_cast<unsigned>(c.at("status").to_number<int64_t>()), raw);
    actual.push_back(json::object{{"status", c.at("status")},
                                  {"body", json::parse(e.body)},
                                  {"context_length_exceeded", e.context_length_exceeded}});
  }
  ExpectGolden(actual, "errors.openai.json");
  // The first case is the context-window overflow the gateway falls back on.
  EXPECT_TRUE(actual[0].at("context_length_exceeded").as_bool());
  EXPECT_EQ(actual[0].at("body").at("error").at("code"), "context_length_exceeded");
  for (size_t i = 1; i < actual.size(); ++i) {
    EXPECT_FALSE(actual[i].at("context_length_exceeded").as_bool()) << i;
  }
}

// ---------------------------------------------------------------------------------------------
// Embeddings.

TEST(GeminiErrorTest, RetryDelayInTheBodyBecomesARetryAfter) {
  // The 429 of PROVIDERS.md: Gemini sends no retry-after header, only google.rpc.RetryInfo.
  EXPECT_EQ(P().RetryAfterMsFromBody(
                R"({"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED","details":[)"
                R"({"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[]},)"
                R"({"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}})"),
            37000);
  EXPECT_EQ(P().RetryAfterMsFromBody(
                R"([{"error":{"code":429,"details":[{"@type":"type.googleapis.com/google.rpc.)"
                R"(RetryInfo","retryDelay":"1.2504s"}]}}])"),
            1251);  // rounded up to the millisecond
  for (const char* none :
       {"", "not json", R"({"error":{"code":429}})",
        R"({"error":{"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo"}]}})",
        R"({"error":{"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"-3s"}]}})",
        R"({"error":{"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"99999h"}]}})"}) {
    EXPECT_EQ(P().RetryAfterMsFromBody(none), 0) << none;
  }
}

TEST(GeminiEmbeddingsTest, RequestGolden) {
  Fixture f;
  f.deployment.set_upstream_model("gemini-embedding-001");
  json::object request = ParseObject(ReadFile("embeddings_request.openai.json"));
  auto out = P().BuildEmbeddingsRequest(request, f.call);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->target, "/v1beta/models/gemini-embedding-001:batchEmbedContents");
  ASSERT_EQ(out->headers.size(), 1u);
  EXPECT_EQ(out->headers[0].first, "x-goog-api-key");
  ExpectGolden(out->body, "embeddings_request.gemini.json");

  json::object single = ParseObject(R"({"model":"e","input":"one"})");
  auto one = P().BuildEmbeddingsRequest(single, f.call);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(json::parse(one->body),
            json::parse(R"({"requests":[{"model":"models/gemini-embedding-001",
                "content":{"parts":[{"text":"one"}]}}]})"));
}

TEST(GeminiEmbeddingsTest, UnsupportedInputsAre400) {
  Fixture f;
  for (const auto& [body, param] : std::vector<std::pair<std::string, std::string>>{
           {R"({"model":"e","input":[1,2,3]})", "input"},
           {R"({"model":"e","input":[[1,2],[3]]})", "input"},
           {R"({"model":"e","input":[]})", "input"},
           {R"({"model":"e"})", "input"},
           {R"({"model":"e","input":"x","encoding_format":"base64"})", "encoding_format"},
           {R"({"model":"e","input":"x","dimensions":0})", "dimensions"},
           {R"({"model":"e","input":"x","truncate":"END"})", "truncate"}}) {
    json::object request = ParseObject(body);
    auto out = P().BuildEmbeddingsRequest(request, f.call);
    ASSERT_FALSE(out.ok()) << body;
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(ParamOf(out.status()), param) << body;
    EXPECT_TRUE(absl::StrContains(out.status().message(), "gemini")) << out.status();
  }
}

TEST(GeminiEmbeddingsTest, ResponseGolden) {
  Fixture f;
  f.deployment.set_upstream_model("gemini-embedding-001");
  auto out = P().TranslateEmbeddingsResponse(ReadFile("embeddings_response.gemini.json"), f.call);
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectGolden(out->body, "embeddings_response.openai.json");
  EXPECT_FALSE(out->usage.has_value());  // Gemini reports none: the gateway estimates
  EXPECT_EQ(out->output_bytes, 0);
  for (const char* bad :
       {"", "{}", R"({"embeddings":[{"values":["x"]}]})", R"({"embeddings":[{}]})"}) {
    EXPECT_FALSE(P().TranslateEmbeddingsResponse(bad, f.call).ok()) << bad;
  }
}

}  // namespace
}  // namespace tollgate::gateway
