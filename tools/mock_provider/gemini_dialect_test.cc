#include "tools/mock_provider/gemini_dialect.h"

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
using ::testing::Not;
using ::testing::StartsWith;

constexpr IdStyle kIds = {.completion = "mock-", .tool_call = ""};

ChatRequest MustParse(std::string_view body) {
  ChatRequest request;
  auto error = ParseGenerateContentRequest(body, "gemini-2.5-flash", request);
  EXPECT_FALSE(error.has_value()) << (error ? RenderGeminiErrorJson(*error) : "");
  return request;
}

GeminiError MustFail(std::string_view body) {
  ChatRequest request;
  auto error = ParseGenerateContentRequest(body, "gemini-2.5-flash", request);
  EXPECT_TRUE(error.has_value()) << body;
  return error.value_or(GeminiError{});
}

ChatRequest Request(std::string prompt) {
  ChatRequest r;
  r.model = "gemini-2.5-flash";
  r.prompt_tokens = 20;
  r.last_user_text = std::move(prompt);
  return r;
}

// ---- request validation -----------------------------------------------------------------------

TEST(ParseGenerateContentTest, ExtractsWhatTheMockNeeds) {
  const ChatRequest r = MustParse(R"({
      "systemInstruction":{"parts":[{"text":"Be brief."}]},
      "contents":[{"role":"user","parts":[{"text":"first"},{"text":" part"}]},
                  {"role":"model","parts":[{"text":"ok"},{"text":"hidden","thought":true}]},
                  {"role":"user","parts":[{"text":"again please"}]}],
      "generationConfig":{"maxOutputTokens":50,"candidateCount":2,
                          "thinkingConfig":{"thinkingBudget":1024,"includeThoughts":true}}})");
  EXPECT_EQ(r.model, "gemini-2.5-flash");
  EXPECT_FALSE(r.stream);
  EXPECT_EQ(r.n, 2);
  EXPECT_EQ(r.max_completion_tokens, 50);
  EXPECT_TRUE(r.include_thoughts);
  EXPECT_EQ(r.last_user_text, "again please");
  // 3 + (4+3) + (4+1, thought parts excluded) + (4+3) + systemInstruction (4+3)
  EXPECT_EQ(r.prompt_tokens, 3 + 7 + 5 + 7 + 7);
}

TEST(ParseGenerateContentTest, SnakeCaseFieldsAndMissingRoleAreAccepted) {
  const ChatRequest r = MustParse(
      R"({"contents":[{"parts":[{"text":"hi"}]}],"generation_config":{"max_output_tokens":7}})");
  EXPECT_EQ(r.max_completion_tokens, 7);
  EXPECT_EQ(r.last_user_text, "hi");
}

TEST(ParseGenerateContentTest, RejectsWhatGeminiRejects) {
  GeminiError e = MustFail(R"({"contentz":[]})");
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.rpc_status, "INVALID_ARGUMENT");
  EXPECT_EQ(e.message,
            "Invalid JSON payload received. Unknown name \"contentz\": Cannot find field.");
  EXPECT_THAT(e.details, HasSubstr("google.rpc.BadRequest"));
  EXPECT_EQ(MustFail(R"({"contents":[]})").message,
            "* GenerateContentRequest.contents: contents is not specified\n");
  EXPECT_EQ(MustFail(R"({})").message,
            "* GenerateContentRequest.contents: contents is not specified\n");
  EXPECT_EQ(MustFail(R"({"contents":[{"role":"assistant","parts":[{"text":"x"}]}]})").message,
            "Please use a valid role: user, model.");
  EXPECT_EQ(MustFail(R"({"contents":[{"role":"user","parts":[]}]})").message,
            "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.\n");
  EXPECT_THAT(MustFail(R"({"contents":[{"parts":[{"foo":1}]}]})").message,
              HasSubstr("required oneof field 'data' must have one initialized field"));
  EXPECT_THAT(
      MustFail(R"({"contents":[{"parts":[{"text":"x"}]}],"generationConfig":{"candidateCount":9}})")
          .message,
      HasSubstr("candidate_count must be between 1 and 8"));
  EXPECT_THAT(MustFail(R"({"contents":[{"parts":[{"text":"x"}]}],
                         "generationConfig":{"maxTokens":9}})")
                  .message,
              HasSubstr("Unknown name \"maxTokens\" at 'generation_config'"));
  EXPECT_THAT(MustFail(R"({"contents":[{"parts":[{"text":"x"}]}],
                         "toolConfig":{"functionCallingConfig":{"mode":"SOMETIMES"}}})")
                  .message,
              HasSubstr("'tool_config.function_calling_config.mode'"));
  EXPECT_EQ(MustFail("{oops").message, "Invalid JSON payload received. Unexpected token.");
}

TEST(ParseGenerateContentTest, ChoosesTheFunctionToCall) {
  constexpr std::string_view kTools =
      R"("tools":[{"googleSearch":{}},{"functionDeclarations":[{"name":"search"},{"name":"weather"}]}])";
  auto parse = [&](std::string_view config) {
    return MustParse(
        absl::StrCat(R"({"contents":[{"role":"user","parts":[{"text":"Paris now"}]}],)", Av(kTools),
                     config.empty() ? "" : ",", Av(config), "}"));
  };
  EXPECT_EQ(parse("").tool_to_call, "search");
  EXPECT_EQ(parse(R"("toolConfig":{"functionCallingConfig":{"mode":"NONE"}})").tool_to_call, "");
  EXPECT_EQ(parse(R"("toolConfig":{"functionCallingConfig":{"mode":"ANY",
                       "allowedFunctionNames":["weather"]}})")
                .tool_to_call,
            "weather");
  // After a function response the model answers with text; directives come from the question.
  const ChatRequest r = MustParse(absl::StrCat(
      R"({"contents":[{"role":"user","parts":[{"text":"Paris now"}]},
          {"role":"model","parts":[{"functionCall":{"name":"search","args":{"query":"Paris"}}}]},
          {"role":"user","parts":[{"functionResponse":{"name":"search","response":{"t":18}}}]}],)",
      Av(kTools), "}"));
  EXPECT_TRUE(r.tool_to_call.empty());
  EXPECT_EQ(r.last_user_text, "Paris now");
}

// ---- responses --------------------------------------------------------------------------------

TEST(RenderGenerateContentTest, GoldenTextAnswerAndUsageSemantics) {
  Directives d;
  d.tokens = 3;
  d.cached = 5;
  d.reasoning = 4;
  const Completion c = BuildCompletion(Request("Say hello"), d, 42, 1, kIds);
  const std::string expected = absl::StrCat(
      R"({"candidates":[{"content":{"parts":[{"text":")", c.choices[0].content,
      R"("}],"role":"model"},"finishReason":"STOP","index":0}],)",
      // promptTokenCount INCLUDES the cached tokens; candidatesTokenCount EXCLUDES the thoughts.
      R"("usageMetadata":{"promptTokenCount":20,"candidatesTokenCount":3,"totalTokenCount":27,)",
      R"("cachedContentTokenCount":5,"promptTokensDetails":[{"modality":"TEXT","tokenCount":20}],)",
      R"("cacheTokensDetails":[{"modality":"TEXT","tokenCount":5}],"thoughtsTokenCount":4},)",
      R"("modelVersion":"gemini-2.5-flash","responseId":"mock-42"})");
  EXPECT_EQ(RenderGenerateContentJson(c, Request("Say hello")), expected);
}

TEST(RenderGenerateContentTest, ZeroCountsAreOmittedAsProto3JsonDoes) {
  Directives d;
  d.tokens = 2;
  const json::value v =
      json::parse(RenderGenerateContentJson(BuildCompletion(Request("x"), d, 1, 1, kIds), {}));
  const json::object& usage = v.at("usageMetadata").as_object();
  EXPECT_FALSE(usage.contains("cachedContentTokenCount"));
  EXPECT_FALSE(usage.contains("thoughtsTokenCount"));
  EXPECT_FALSE(usage.contains("cacheTokensDetails"));
  EXPECT_EQ(usage.at("totalTokenCount"), 22);
}

TEST(RenderGenerateContentTest, FunctionCallStillFinishesWithStop) {
  ChatRequest r = Request("Paris \"weather\"");
  r.tool_to_call = "get_weather";
  const Completion c = BuildCompletion(r, {}, 7, 1, kIds);
  const json::value v = json::parse(RenderGenerateContentJson(c, r));
  const json::object& candidate = v.at("candidates").at(0).as_object();
  EXPECT_EQ(candidate.at("finishReason"), "STOP");
  EXPECT_EQ(candidate.at("content").at("parts").at(0),
            json::parse(R"({"functionCall":{"name":"get_weather","args":{"query":"Paris"}}})"));
  EXPECT_EQ(v.at("usageMetadata").at("candidatesTokenCount"),
            ToolCallTokens("get_weather", R"({"query":"Paris"})"));
}

TEST(RenderGenerateContentTest, MaxTokensThoughtsAndCandidates) {
  ChatRequest r = Request("x");
  r.max_completion_tokens = 4;
  r.include_thoughts = true;
  r.n = 2;
  Directives d;
  d.tokens = 10;
  d.reasoning = 2;
  const Completion c = BuildCompletion(r, d, 1, 1, kIds);
  const json::value v = json::parse(RenderGenerateContentJson(c, r));
  const json::array& candidates = v.at("candidates").as_array();
  ASSERT_EQ(candidates.size(), 2u);
  EXPECT_EQ(candidates[0].at("finishReason"), "MAX_TOKENS");
  EXPECT_EQ(candidates[1].at("index"), 1);
  const json::array& parts = candidates[0].at("content").at("parts").as_array();
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].at("thought"), true);
  EXPECT_EQ(parts[0].at("text"), json::value(ReasoningText(c)));
  EXPECT_EQ(candidates[1].at("content").at("parts").as_array().size(), 1u);
  EXPECT_EQ(v.at("usageMetadata").at("candidatesTokenCount"), 4);  // 2 words x 2 candidates
  EXPECT_EQ(v.at("usageMetadata").at("thoughtsTokenCount"), 2);
}

TEST(RenderGenerateContentTest, BlockedPromptHasFeedbackAndNoCandidates) {
  Directives d;
  d.block = "SAFETY";
  const json::value v =
      json::parse(RenderGenerateContentJson(BuildCompletion(Request("x"), d, 1, 1, kIds), {}));
  EXPECT_FALSE(v.as_object().contains("candidates"));
  EXPECT_EQ(v.at("promptFeedback").at("blockReason"), "SAFETY");
  EXPECT_EQ(v.at("usageMetadata").at("promptTokenCount"), 20);
  EXPECT_EQ(v.at("usageMetadata").at("totalTokenCount"), 20);
}

// ---- streams ----------------------------------------------------------------------------------

std::vector<json::object> Chunks(const std::vector<std::pair<EventKind, std::string>>& events) {
  std::vector<json::object> out;
  for (const auto& [kind, text] : events) {
    EXPECT_THAT(text, StartsWith("data: "));
    EXPECT_EQ(text.substr(text.size() - 4), "\r\n\r\n") << "Google frames SSE with CRLF";
    json::object chunk = json::parse(text.substr(6, text.size() - 10)).as_object();
    // Every chunk is a complete GenerateContentResponse.
    EXPECT_TRUE(chunk.contains("usageMetadata"));
    EXPECT_EQ(chunk.at("modelVersion"), "gemini-2.5-flash");
    out.push_back(std::move(chunk));
  }
  return out;
}

TEST(GenerateContentStreamTest, WordChunksThenAFinalChunkWithCumulativeUsage) {
  Directives d;
  d.tokens = 3;
  d.cached = 4;
  d.reasoning = 5;
  const ChatRequest r = Request("hello");
  const Completion c = BuildCompletion(r, d, 9, 1, kIds);
  const auto events = GenerateContentStreamEvents(c, r);
  std::vector<EventKind> kinds;
  for (const auto& e : events) kinds.push_back(e.first);
  EXPECT_THAT(kinds, ElementsAre(EventKind::kContent, EventKind::kContent, EventKind::kContent,
                                 EventKind::kFinish));
  const std::vector<json::object> chunks = Chunks(events);
  std::string text;
  for (size_t i = 0; i < 3; ++i) {
    const json::object& candidate = chunks[i].at("candidates").at(0).as_object();
    EXPECT_FALSE(candidate.contains("finishReason"));
    text += candidate.at("content").at("parts").at(0).at("text").as_string();
    // Running totals: the count so far, never a delta.
    EXPECT_EQ(chunks[i].at("usageMetadata").at("candidatesTokenCount"),
              static_cast<int64_t>(i + 1));
    EXPECT_EQ(chunks[i].at("usageMetadata").at("promptTokenCount"), 20);
    EXPECT_EQ(chunks[i].at("responseId"), "mock-9");
  }
  EXPECT_EQ(text, c.choices[0].content);
  const json::object& last = chunks[3];
  EXPECT_EQ(last.at("candidates").at(0).at("finishReason"), "STOP");
  EXPECT_EQ(last.at("candidates").at(0).at("content").at("parts").at(0).at("text"), "");
  EXPECT_EQ(last.at("usageMetadata"),
            json::parse(R"({"promptTokenCount":20,"candidatesTokenCount":3,"totalTokenCount":28,
                "cachedContentTokenCount":4,"promptTokensDetails":[{"modality":"TEXT","tokenCount":20}],
                "cacheTokensDetails":[{"modality":"TEXT","tokenCount":4}],"thoughtsTokenCount":5})"));
  for (const auto& e : events) EXPECT_THAT(e.second, Not(HasSubstr("[DONE]")));
}

TEST(GenerateContentStreamTest, FunctionCallArrivesWholeInTheLastChunk) {
  ChatRequest r = Request("Paris please");
  r.tool_to_call = "get_weather";
  const Completion c = BuildCompletion(r, {}, 3, 1, kIds);
  const auto events = GenerateContentStreamEvents(c, r);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].first, EventKind::kFinish);
  const json::object chunk = Chunks(events)[0];
  const json::object& candidate = chunk.at("candidates").at(0).as_object();
  EXPECT_EQ(candidate.at("finishReason"), "STOP");
  EXPECT_EQ(candidate.at("content").at("parts").at(0).at("functionCall").at("args"),
            json::parse(R"({"query":"Paris"})"));
  EXPECT_EQ(chunk.at("usageMetadata").at("candidatesTokenCount"), c.usage.completion_tokens);
}

TEST(GenerateContentStreamTest, ThoughtPartsComeFirstWhenIncluded) {
  ChatRequest r = Request("x");
  r.include_thoughts = true;
  Directives d;
  d.tokens = 1;
  d.reasoning = 2;
  const std::vector<json::object> chunks =
      Chunks(GenerateContentStreamEvents(BuildCompletion(r, d, 1, 1, kIds), r));
  ASSERT_EQ(chunks.size(), 4u);
  EXPECT_EQ(chunks[0].at("candidates").at(0).at("content").at("parts").at(0).at("thought"), true);
  EXPECT_EQ(chunks[1].at("candidates").at(0).at("content").at("parts").at(0).at("thought"), true);
  EXPECT_FALSE(chunks[2]
                   .at("candidates")
                   .at(0)
                   .at("content")
                   .at("parts")
                   .at(0)
                   .as_object()
                   .contains("thought"));
}

TEST(GenerateContentStreamTest, BlockedPromptIsOneChunk) {
  Directives d;
  d.block = "PROHIBITED_CONTENT";
  const auto events = GenerateContentStreamEvents(BuildCompletion(Request("x"), d, 1, 1, kIds), {});
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(Chunks(events)[0].at("promptFeedback").at("blockReason"), "PROHIBITED_CONTENT");
}

TEST(GenerateContentStreamTest, JsonArrayWithoutAltSse) {
  ChatRequest r = Request("x");
  r.json_array_stream = true;
  Directives d;
  d.tokens = 2;
  const json::array chunks =
      json::parse(RenderGenerateContentJson(BuildCompletion(r, d, 1, 1, kIds), r)).as_array();
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[2].at("candidates").at(0).at("finishReason"), "STOP");
}

// ---- errors -----------------------------------------------------------------------------------

TEST(GeminiErrorTest, GoogleRpcStatusPerHttpStatus) {
  const std::vector<std::pair<int, std::string>> expected = {
      {400, "INVALID_ARGUMENT"}, {401, "UNAUTHENTICATED"},    {403, "PERMISSION_DENIED"},
      {404, "NOT_FOUND"},        {429, "RESOURCE_EXHAUSTED"}, {500, "INTERNAL"},
      {503, "UNAVAILABLE"},      {504, "DEADLINE_EXCEEDED"}};
  for (const auto& [status, rpc] : expected) {
    const json::value e = json::parse(RenderGeminiErrorJson(GeminiForcedError(status, "m", 0)));
    EXPECT_EQ(e.at("error").at("code"), status);
    EXPECT_EQ(e.at("error").at("status"), json::value(rpc));
  }
  const json::value e429 =
      json::parse(RenderGeminiErrorJson(GeminiForcedError(429, "gemini-2.5-flash", 3)));
  const json::array& details = e429.at("error").at("details").as_array();
  bool retry_info = false;
  for (const json::value& detail : details) {
    if (detail.at("@type") == "type.googleapis.com/google.rpc.RetryInfo") {
      EXPECT_EQ(detail.at("retryDelay"), "3s");
      retry_info = true;
    }
  }
  EXPECT_TRUE(retry_info);
  EXPECT_EQ(details.at(0).at("@type"), "type.googleapis.com/google.rpc.QuotaFailure");
  EXPECT_THAT(GeminiForcedError(404, "gemini-x", 0).message,
              StartsWith("models/gemini-x is not found for API version v1beta"));
  EXPECT_EQ(json::parse(RenderGeminiErrorJson(GeminiForcedError(500, "m", 0)))
                .at("error")
                .as_object()
                .contains("details"),
            false);
}

}  // namespace
}  // namespace tollgate::tools::mock
