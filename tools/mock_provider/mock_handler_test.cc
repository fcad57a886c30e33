#include "tools/mock_provider/mock_handler.h"

#include <string>

#include "boost/json/parse.hpp"
#include "boost/json/serialize.hpp"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/mock_provider/mock_test_util.h"

namespace tollgate::tools::mock {
namespace {

namespace http = boost::beast::http;
namespace json = boost::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

MockHandler::Request Post(std::string body, std::string target = "/v1/chat/completions") {
  return PostJson(std::move(body), std::move(target));
}

std::string Chat(std::string_view prompt, std::string_view extra = "") {
  json::object body;
  body["model"] = "gpt-4o-mini";
  body["messages"] = json::array{json::object{{"role", "user"}, {"content", prompt}}};
  std::string s = json::serialize(body);
  if (!extra.empty()) s = s.substr(0, s.size() - 1) + "," + std::string(extra) + "}";
  return s;
}

std::vector<std::string> SseData(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) end = body.size();
    std::string event = body.substr(pos, end - pos);
    if (event.rfind("data: ", 0) == 0) out.push_back(event.substr(6));
    pos = end + 2;
  }
  return out;
}

TEST(MockHandlerTest, NonStreamCompletion) {
  MockHandler handler({});
  const ResponsePlan plan = handler.Handle(Post(Chat("hello [[mock: tokens=4 cached=2]]")));
  EXPECT_EQ(plan.status, 200);
  EXPECT_FALSE(plan.close);
  ASSERT_EQ(plan.steps.size(), 1u);
  EXPECT_EQ(plan.steps[0].delay_ms, 0);
  auto res = ParseResponse(plan);
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res[http::field::content_type], "application/json");
  EXPECT_THAT(std::string(res["x-request-id"]), ::testing::StartsWith("req_"));
  const json::value body = json::parse(res.body());
  EXPECT_EQ(body.at("usage").at("completion_tokens"), 4);
  EXPECT_EQ(body.at("usage").at("prompt_tokens_details").at("cached_tokens"), 2);
}

TEST(MockHandlerTest, StreamPlanDelaysAndFraming) {
  MockHandler handler({.latency_ms = 0, .ttft_ms = 0, .inter_token_ms = 0, .require_key = ""});
  const ResponsePlan plan =
      handler.Handle(Post(Chat("hi [[mock: tokens=3 stall_ms=5 ttft_ms=20 inter_token_ms=7]]",
                               R"("stream":true,"stream_options":{"include_usage":true})")));
  // headers after 5 ms; role + first word after 20 ms; each further word after 7 ms.
  ASSERT_EQ(plan.steps.size(), 4u);
  EXPECT_EQ(plan.steps[0].delay_ms, 5);
  EXPECT_EQ(plan.steps[1].delay_ms, 20);
  EXPECT_EQ(plan.steps[2].delay_ms, 7);
  EXPECT_EQ(plan.steps[3].delay_ms, 7);
  EXPECT_THAT(plan.bytes.substr(0, plan.steps[0].end), HasSubstr("transfer-encoding: chunked"));
  EXPECT_EQ(plan.bytes.substr(plan.bytes.size() - 5), "0\r\n\r\n");
  auto res = ParseResponse(plan);
  EXPECT_EQ(res[http::field::content_type], "text/event-stream; charset=utf-8");
  const auto events = SseData(res.body());
  ASSERT_EQ(events.size(), 7u);  // role, 3 words, finish, usage, [DONE]
  EXPECT_EQ(events.back(), "[DONE]");
  EXPECT_EQ(json::parse(events[5]).at("usage").at("completion_tokens"), 3);
}

TEST(MockHandlerTest, GlobalDelaysApplyUnlessOverridden) {
  MockHandler handler({.latency_ms = 30, .ttft_ms = 11, .inter_token_ms = 3, .require_key = ""});
  EXPECT_EQ(handler.Handle(Post(Chat("x"))).steps[0].delay_ms, 30);
  EXPECT_EQ(handler.Handle(Post(Chat("x [[mock: latency_ms=0 stall_ms=4]]"))).steps[0].delay_ms, 4);
  const ResponsePlan s = handler.Handle(Post(Chat("x [[mock: tokens=2]]", R"("stream":true)")));
  ASSERT_EQ(s.steps.size(), 3u);
  EXPECT_EQ(s.steps[1].delay_ms, 11);
  EXPECT_EQ(s.steps[2].delay_ms, 3);
}

TEST(MockHandlerTest, ForcedRateLimit) {
  MockHandler handler({});
  const ResponsePlan plan = handler.Handle(Post(Chat("x [[mock: status=429 retry_after=2]]")));
  auto res = ParseResponse(plan);
  EXPECT_EQ(res.result_int(), 429);
  EXPECT_EQ(res["retry-after"], "2");
  EXPECT_EQ(res["x-ratelimit-remaining-requests"], "0");
  EXPECT_EQ(res["x-ratelimit-reset-tokens"], "2s");
  EXPECT_EQ(json::parse(res.body()).at("error").at("code"), "rate_limit_exceeded");
  EXPECT_EQ(handler.stats().status_count(429), 1);
}

TEST(MockHandlerTest, HeaderDirectives) {
  MockHandler handler({});
  auto req = Post(Chat("x"));
  req.set("X-Mock-Status", "503");
  EXPECT_EQ(ParseResponse(handler.Handle(req)).result_int(), 503);
  auto bad = Post(Chat("x"));
  bad.set("x-mock-tokenz", "3");
  auto res = ParseResponse(handler.Handle(bad));
  EXPECT_EQ(res.result_int(), 400);
  EXPECT_THAT(res.body(), HasSubstr("unknown mock directive 'tokenz'"));
}

TEST(MockHandlerTest, UnknownDirectiveIsA400) {
  MockHandler handler({});
  auto res = ParseResponse(handler.Handle(Post(Chat("x [[mock: stauts=500]]"))));
  EXPECT_EQ(res.result_int(), 400);
  const json::value e = json::parse(res.body());
  EXPECT_EQ(e.at("error").at("type"), "invalid_request_error");
  EXPECT_EQ(e.at("error").at("code"), "invalid_mock_directive");
}

TEST(MockHandlerTest, FailFirstPerKey) {
  MockHandler handler({});
  const std::string a = Chat("x [[mock: fail_first=2 key=a status=503]]");
  const std::string b = Chat("x [[mock: fail_first=1 key=b]]");
  std::vector<int> statuses;
  for (const auto& body : {a, b, a, b, a, a}) statuses.push_back(handler.Handle(Post(body)).status);
  EXPECT_THAT(statuses, ElementsAre(503, 500, 503, 200, 200, 200));
  // /_mock/reset forgets the counts.
  handler.Handle(Post("", "/_mock/reset"));
  EXPECT_EQ(handler.Handle(Post(a)).status, 503);
}

TEST(MockHandlerTest, StreamDisconnectAfter) {
  MockHandler handler({});
  const ResponsePlan plan =
      handler.Handle(Post(Chat("x [[mock: tokens=5 disconnect_after=2]]",
                               R"("stream":true,"stream_options":{"include_usage":true})")));
  EXPECT_TRUE(plan.close);
  EXPECT_THAT(plan.bytes, Not(HasSubstr("[DONE]")));
  EXPECT_THAT(plan.bytes, Not(HasSubstr("finish_reason\":\"stop")));
  EXPECT_THAT(plan.bytes, Not(HasSubstr("0\r\n\r\n")));
  // role + 2 words remain.
  size_t data_events = 0;
  for (size_t pos = 0; (pos = plan.bytes.find("data: ", pos)) != std::string::npos; ++pos) {
    ++data_events;
  }
  EXPECT_EQ(data_events, 3u);
  const std::string stats = handler.stats().ToJson();
  EXPECT_THAT(stats, HasSubstr("\"disconnects\":1"));
  EXPECT_THAT(stats, HasSubstr("\"completion_tokens\":0"));
}

TEST(MockHandlerTest, NonStreamDisconnectSendsHalfTheBody) {
  MockHandler handler({});
  const ResponsePlan full = handler.Handle(Post(Chat("x [[mock: tokens=9]]")));
  const ResponsePlan cut = handler.Handle(Post(Chat("x [[mock: tokens=9 disconnect_after=0]]")));
  EXPECT_TRUE(cut.close);
  const size_t head_end = cut.bytes.find("\r\n\r\n") + 4;
  const std::string head = cut.bytes.substr(0, head_end);
  const size_t length_pos = head.find("content-length: ") + 16;
  const size_t content_length = std::stoul(head.substr(length_pos));
  EXPECT_EQ(cut.bytes.size() - head_end, content_length / 2);
  EXPECT_GT(content_length, 100u);
  EXPECT_FALSE(full.close);
}

TEST(MockHandlerTest, StatsCountBilledUsageEvenWithoutIncludeUsage) {
  MockHandler handler({});
  handler.Handle(Post(Chat("x [[mock: tokens=4 cached=3 reasoning=2]]", R"("stream":true)")));
  handler.Handle(Post(Chat("x [[mock: tokens=6]]")));
  handler.Handle(Post(Chat("x [[mock: status=500]]")));
  handler.Handle(Post("{not json"));
  const json::value stats = json::parse(handler.stats().ToJson());
  EXPECT_EQ(stats.at("requests"), 4);
  EXPECT_EQ(stats.at("streams"), 1);
  EXPECT_EQ(stats.at("by_status").at("200"), 2);
  EXPECT_EQ(stats.at("by_status").at("500"), 1);
  EXPECT_EQ(stats.at("by_status").at("400"), 1);
  // prompt: 3 + 4 + ceil(len/4) per request
  const int64_t p1 =
      3 + 4 + (std::string("x [[mock: tokens=4 cached=3 reasoning=2]]").size() + 3) / 4;
  const int64_t p2 = 3 + 4 + (std::string("x [[mock: tokens=6]]").size() + 3) / 4;
  EXPECT_EQ(stats.at("prompt_tokens"), p1 + p2);
  EXPECT_EQ(stats.at("completion_tokens"), 4 + 2 + 6);
  EXPECT_EQ(stats.at("cached_tokens"), 3);
  EXPECT_EQ(stats.at("reasoning_tokens"), 2);

  auto get = MockHandler::Request(http::verb::get, "/_mock/stats", 11);
  EXPECT_EQ(json::parse(ParseResponse(handler.Handle(get)).body()).at("requests"), 4);
  handler.Handle(Post("", "/_mock/reset"));
  // The original keys keep their names and values; the keys added with the other dialects too.
  const json::object after = json::parse(handler.stats().ToJson()).as_object();
  for (const char* key :
       {"requests", "streams", "disconnects", "prompt_tokens", "completion_tokens", "cached_tokens",
        "reasoning_tokens", "stream_errors", "cache_write_5m_tokens", "cache_write_1h_tokens"}) {
    EXPECT_EQ(after.at(key), 0) << key;
  }
  EXPECT_TRUE(after.at("by_status").as_object().empty());
  EXPECT_EQ(after.at("by_dialect").at("openai").at("requests"), 0);
}

TEST(MockHandlerTest, RequireKey) {
  MockHandler handler(
      {.latency_ms = 0, .ttft_ms = 0, .inter_token_ms = 0, .require_key = "sk-secret-123456"});
  auto missing = ParseResponse(handler.Handle(Post(Chat("x"))));
  EXPECT_EQ(missing.result_int(), 401);
  EXPECT_THAT(missing.body(), HasSubstr("You didn't provide an API key"));
  auto wrong_req = Post(Chat("x"));
  wrong_req.set(http::field::authorization, "Bearer sk-wrong-999999");
  auto wrong = ParseResponse(handler.Handle(wrong_req));
  EXPECT_EQ(wrong.result_int(), 401);
  EXPECT_EQ(json::parse(wrong.body()).at("error").at("code"), "invalid_api_key");
  auto ok_req = Post(Chat("x"));
  ok_req.set(http::field::authorization, "Bearer sk-secret-123456");
  EXPECT_EQ(ParseResponse(handler.Handle(ok_req)).result_int(), 200);
}

TEST(MockHandlerTest, ModelsAndUnknownRoutes) {
  MockHandler handler({});
  auto models =
      ParseResponse(handler.Handle(MockHandler::Request(http::verb::get, "/v1/models", 11)));
  const json::value list = json::parse(models.body());
  EXPECT_EQ(list.at("object"), "list");
  EXPECT_EQ(list.at("data").at(0).at("object"), "model");
  auto one =
      ParseResponse(handler.Handle(MockHandler::Request(http::verb::get, "/v1/models/gpt-4o", 11)));
  EXPECT_EQ(json::parse(one.body()).at("id"), "gpt-4o");
  auto missing =
      ParseResponse(handler.Handle(MockHandler::Request(http::verb::get, "/v1/models/nope", 11)));
  EXPECT_EQ(missing.result_int(), 404);
  auto route = ParseResponse(handler.Handle(MockHandler::Request(http::verb::get, "/v2/foo", 11)));
  EXPECT_EQ(route.result_int(), 404);
  EXPECT_THAT(route.body(), HasSubstr("Invalid URL (GET /v2/foo)"));
  EXPECT_EQ(handler.stats().requests(), 0);
}

TEST(MockHandlerTest, ConnectionCloseAndHttp10) {
  MockHandler handler({});
  auto req = Post(Chat("x"));
  req.keep_alive(false);
  const ResponsePlan plan = handler.Handle(req);
  EXPECT_TRUE(plan.close);
  EXPECT_THAT(plan.bytes, HasSubstr("connection: close\r\n"));
  auto old = Post(Chat("x [[mock: tokens=2]]", R"("stream":true)"));
  old.version(10);
  const ResponsePlan stream = handler.Handle(old);
  EXPECT_TRUE(stream.close);
  EXPECT_THAT(stream.bytes, Not(HasSubstr("transfer-encoding")));
  EXPECT_THAT(stream.bytes, HasSubstr("\r\n\r\ndata: {"));
}

// ---- shared helpers ---------------------------------------------------------------------------

TEST(DialectHelpersTest, QueryParamOnAViewThatIsNotNulTerminated) {
  // Beast hands out the target as a view into the request line; the last value must stop at the
  // view's end (Boost.URL 1.81 alone reads on into " HTTP/1.1").
  const std::string line = "alt=sse&key=a%2Fb HTTP/1.1\r\n";
  const std::string_view query = std::string_view(line).substr(0, 17);
  EXPECT_EQ(QueryParam(query, "alt"), "sse");
  EXPECT_EQ(QueryParam(query, "key"), "a/b");
  EXPECT_EQ(QueryParam(std::string_view(line).substr(0, 7), "alt"), "sse");
  EXPECT_FALSE(QueryParam(query, "nope").has_value());
  EXPECT_FALSE(QueryParam("", "alt").has_value());
}

// ---- one prompt, every dialect ----------------------------------------------------------------

MockHandler::Request AnthropicPost(std::string body, std::string version = "2023-06-01") {
  MockHandler::Request req = Post(std::move(body), "/v1/messages");
  if (!version.empty()) req.set("anthropic-version", version);
  return req;
}

std::string Messages(std::string_view prompt, std::string_view extra = "") {
  json::object body;
  body["model"] = "claude-sonnet-4-20250514";
  body["max_tokens"] = 1000;
  body["messages"] = json::array{json::object{{"role", "user"}, {"content", prompt}}};
  std::string s = json::serialize(body);
  if (!extra.empty()) s = s.substr(0, s.size() - 1) + "," + std::string(extra) + "}";
  return s;
}

std::string GeminiBody(std::string_view prompt, std::string_view extra = "") {
  json::object body;
  body["contents"] = json::array{
      json::object{{"role", "user"}, {"parts", json::array{json::object{{"text", prompt}}}}}};
  std::string s = json::serialize(body);
  if (!extra.empty()) s = s.substr(0, s.size() - 1) + "," + std::string(extra) + "}";
  return s;
}

// Gemini's SSE data payloads; its events end in CRLF CRLF, which has no "\n\n" in it.
std::vector<std::string> CrlfSseData(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    const size_t end = body.find("\r\n\r\n", pos);
    out.push_back(body.substr(pos + 6, end - pos - 6));
    pos = end;
  }
  return out;
}

constexpr std::string_view kGeminiPath = "/v1beta/models/gemini-2.5-flash:generateContent";
constexpr std::string_view kGeminiStreamPath =
    "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";

// Anthropic SSE events as (name, data) pairs.
std::vector<std::pair<std::string, json::value>> AnthropicEvents(const std::string& body) {
  std::vector<std::pair<std::string, json::value>> out;
  size_t pos = 0;
  while ((pos = body.find("event: ", pos)) != std::string::npos) {
    const size_t nl = body.find('\n', pos);
    const size_t end = body.find("\n\n", nl);
    out.emplace_back(body.substr(pos + 7, nl - pos - 7),
                     json::parse(body.substr(nl + 7, end - nl - 7)));
    pos = end;
  }
  return out;
}

TEST(MockHandlerDialectsTest, OnePromptSameWordsAndTokensInEveryDialect) {
  MockHandler handler({});
  const std::string prompt = "Tell me about toll gates";
  const json::value openai = json::parse(
      ParseResponse(
          handler.Handle(Post(R"({"model":"m","messages":[{"role":"system","content":"Be brief."},
          {"role":"user","content":")" +
                              prompt + R"("}]})")))
          .body());
  const json::value anthropic = json::parse(
      ParseResponse(handler.Handle(AnthropicPost(Messages(prompt, R"("system":"Be brief.")"))))
          .body());
  const json::value gemini = json::parse(
      ParseResponse(
          handler.Handle(
              Post(GeminiBody(prompt, R"("systemInstruction":{"parts":[{"text":"Be brief."}]})"),
                   std::string(kGeminiPath))))
          .body());
  const json::value& text = openai.at("choices").at(0).at("message").at("content");
  EXPECT_EQ(anthropic.at("content").at(0).at("text"), text);
  EXPECT_EQ(gemini.at("candidates").at(0).at("content").at("parts").at(0).at("text"), text);
  const json::value& prompt_tokens = openai.at("usage").at("prompt_tokens");
  EXPECT_EQ(anthropic.at("usage").at("input_tokens"), prompt_tokens);
  EXPECT_EQ(gemini.at("usageMetadata").at("promptTokenCount"), prompt_tokens);
  EXPECT_EQ(anthropic.at("usage").at("output_tokens"), openai.at("usage").at("completion_tokens"));
  EXPECT_EQ(gemini.at("usageMetadata").at("candidatesTokenCount"),
            openai.at("usage").at("completion_tokens"));
}

// ---- Anthropic ---------------------------------------------------------------------------------

TEST(MockHandlerAnthropicTest, VersionHeaderIsRequired) {
  MockHandler handler({});
  auto res = ParseResponse(handler.Handle(AnthropicPost(Messages("x"), "")));
  EXPECT_EQ(res.result_int(), 400);
  const json::value body = json::parse(res.body());
  EXPECT_EQ(body, json::parse(R"({"type":"error","error":{"type":"invalid_request_error",
      "message":"anthropic-version: header is required"},"request_id":")" +
                              std::string(res["request-id"]) + "\"}"));
  EXPECT_THAT(std::string(res["request-id"]), ::testing::StartsWith("req_"));
  res = ParseResponse(handler.Handle(AnthropicPost(Messages("x"), "2099-01-01")));
  EXPECT_EQ(json::parse(res.body()).at("error").at("message"),
            "anthropic-version: \"2099-01-01\" is not a valid version");
  EXPECT_EQ(handler.stats().status_count(DialectId::kAnthropic, 400), 2);
}

TEST(MockHandlerAnthropicTest, RequireKeyUsesXApiKey) {
  MockHandler handler(
      {.latency_ms = 0, .ttft_ms = 0, .inter_token_ms = 0, .require_key = "sk-ant-secret-1234"});
  auto res = ParseResponse(handler.Handle(AnthropicPost(Messages("x"))));
  EXPECT_EQ(res.result_int(), 401);
  EXPECT_EQ(
      json::parse(res.body()).at("error"),
      json::parse(R"({"type":"authentication_error","message":"x-api-key header is required"})"));
  auto wrong = AnthropicPost(Messages("x"));
  wrong.set("x-api-key", "sk-ant-wrong");
  res = ParseResponse(handler.Handle(wrong));
  EXPECT_EQ(res.result_int(), 401);
  EXPECT_EQ(json::parse(res.body()).at("error").at("message"), "invalid x-api-key");
  auto right = AnthropicPost(Messages("x"));
  right.set("x-api-key", "sk-ant-secret-1234");
  EXPECT_EQ(ParseResponse(handler.Handle(right)).result_int(), 200);
  // An OpenAI-style bearer key is not Anthropic's header but Anthropic accepts it for OAuth.
  auto bearer = AnthropicPost(Messages("x"));
  bearer.set(http::field::authorization, "Bearer sk-ant-secret-1234");
  EXPECT_EQ(ParseResponse(handler.Handle(bearer)).result_int(), 200);
}

TEST(MockHandlerAnthropicTest, RateLimitAndOverloadedErrors) {
  MockHandler handler({});
  auto res = ParseResponse(
      handler.Handle(AnthropicPost(Messages("x [[mock: status=429 retry_after=2]]"))));
  EXPECT_EQ(res.result_int(), 429);
  EXPECT_EQ(res["retry-after"], "2");
  EXPECT_EQ(res["anthropic-ratelimit-requests-remaining"], "0");
  EXPECT_FALSE(res["anthropic-ratelimit-requests-reset"].empty());
  const json::value body = json::parse(res.body());
  EXPECT_EQ(body.at("type"), "error");
  EXPECT_EQ(body.at("error").at("type"), "rate_limit_error");
  EXPECT_EQ(body.at("request_id"), json::value(std::string(res["request-id"])));

  res = ParseResponse(handler.Handle(AnthropicPost(Messages("x [[mock: status=529]]"))));
  EXPECT_EQ(res.result_int(), 529);
  EXPECT_EQ(json::parse(res.body()).at("error"),
            json::parse(R"({"type":"overloaded_error","message":"Overloaded"})"));
  EXPECT_EQ(res.count("retry-after"), 0u);
  auto bad = AnthropicPost(Messages("x [[mock: tokns=1]]"));
  res = ParseResponse(handler.Handle(bad));
  EXPECT_EQ(res.result_int(), 400);
  EXPECT_EQ(json::parse(res.body()).at("error").at("type"), "invalid_request_error");
  EXPECT_THAT(res.body(), HasSubstr("unknown mock directive 'tokns'"));
}

TEST(MockHandlerAnthropicTest, StreamAndStatsWithCacheWrites) {
  MockHandler handler({});
  const ResponsePlan plan = handler.Handle(AnthropicPost(
      Messages("hi [[mock: tokens=3 cached=4 cache_write_5m=2 cache_write_1h=1 thinking=2]]",
               R"("stream":true)")));
  auto res = ParseResponse(plan);
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res[http::field::content_type], "text/event-stream; charset=utf-8");
  EXPECT_FALSE(res["request-id"].empty());
  const auto events = AnthropicEvents(res.body());
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.front().first, "message_start");
  EXPECT_EQ(events[2].first, "ping");
  EXPECT_EQ(events.back().first, "message_stop");
  const json::value& delta_usage = events[events.size() - 2].second.at("usage");
  EXPECT_EQ(delta_usage.at("output_tokens"), 5);
  EXPECT_EQ(delta_usage.at("cache_read_input_tokens"), 4);
  EXPECT_EQ(delta_usage.at("cache_creation_input_tokens"), 3);

  const json::value stats = json::parse(handler.stats().ToJson());
  const json::value& a = stats.at("by_dialect").at("anthropic");
  EXPECT_EQ(a.at("requests"), 1);
  EXPECT_EQ(a.at("streams"), 1);
  EXPECT_EQ(a.at("completion_tokens"), 5);
  EXPECT_EQ(a.at("reasoning_tokens"), 2);
  EXPECT_EQ(a.at("cached_tokens"), 4);
  EXPECT_EQ(a.at("cache_write_5m_tokens"), 2);
  EXPECT_EQ(a.at("cache_write_1h_tokens"), 1);
  // prompt_tokens counts all input: input_tokens + cache writes + cache reads.
  EXPECT_EQ(a.at("prompt_tokens").as_int64(),
            events[0].second.at("message").at("usage").at("input_tokens").as_int64() + 3 + 4);
  EXPECT_EQ(stats.at("cache_write_5m_tokens"), 2);
  EXPECT_EQ(stats.at("by_dialect").at("openai").at("requests"), 0);
}

TEST(MockHandlerAnthropicTest, StreamErrorAfterA200) {
  MockHandler handler({});
  auto res = ParseResponse(handler.Handle(AnthropicPost(
      Messages("hi [[mock: tokens=5 stream_error=overloaded_error]]", R"("stream":true)"))));
  EXPECT_EQ(res.result_int(), 200);
  const auto events = AnthropicEvents(res.body());
  std::vector<std::string> names;
  for (const auto& e : events) names.push_back(e.first);
  EXPECT_THAT(names, ElementsAre("message_start", "content_block_start", "ping",
                                 "content_block_delta", "content_block_delta", "error"));
  EXPECT_EQ(events.back().second,
            json::parse(
                R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})"));
  // stream_error_after picks the point; the stream ends cleanly (chunked terminator sent).
  res = ParseResponse(handler.Handle(AnthropicPost(Messages(
      "hi [[mock: tokens=5 stream_error=api_error stream_error_after=0]]", R"("stream":true)"))));
  EXPECT_EQ(AnthropicEvents(res.body()).size(), 4u);
  EXPECT_EQ(AnthropicEvents(res.body()).back().second.at("error").at("type"), "api_error");
  // A non-stream request ignores it.
  EXPECT_EQ(
      ParseResponse(handler.Handle(AnthropicPost(Messages("hi [[mock: stream_error=api_error]]"))))
          .result_int(),
      200);
  const json::value stats = json::parse(handler.stats().ToJson());
  EXPECT_EQ(stats.at("by_dialect").at("anthropic").at("stream_errors"), 2);
  EXPECT_EQ(stats.at("by_dialect").at("anthropic").at("by_status").at("200"), 3);
  EXPECT_EQ(stats.at("stream_errors"), 2);
}

TEST(MockHandlerAnthropicTest, DisconnectAndDelays) {
  MockHandler handler({.latency_ms = 0, .ttft_ms = 11, .inter_token_ms = 3, .require_key = ""});
  const ResponsePlan timed =
      handler.Handle(AnthropicPost(Messages("x [[mock: tokens=2]]", R"("stream":true)")));
  ASSERT_EQ(timed.steps.size(), 3u);
  EXPECT_EQ(timed.steps[1].delay_ms, 11);
  EXPECT_EQ(timed.steps[2].delay_ms, 3);
  const ResponsePlan cut = handler.Handle(
      AnthropicPost(Messages("x [[mock: tokens=5 disconnect_after=1]]", R"("stream":true)")));
  EXPECT_TRUE(cut.close);
  EXPECT_THAT(cut.bytes, Not(HasSubstr("message_delta")));
  EXPECT_THAT(cut.bytes, Not(HasSubstr("0\r\n\r\n")));
  EXPECT_EQ(
      json::parse(handler.stats().ToJson()).at("by_dialect").at("anthropic").at("disconnects"), 1);
}

TEST(MockHandlerAnthropicTest, CacheWritesAndBlockAreIgnoredWhereTheDialectCannotSayThem) {
  MockHandler handler({});
  auto res = ParseResponse(handler.Handle(Post(Chat("x [[mock: cache_write_5m=3 block=SAFETY]]"))));
  EXPECT_EQ(res.result_int(), 200);
  const json::value stats = json::parse(handler.stats().ToJson());
  EXPECT_EQ(stats.at("cache_write_5m_tokens"), 0);
  res = ParseResponse(handler.Handle(AnthropicPost(Messages("x [[mock: block=SAFETY]]"))));
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(json::parse(res.body()).at("stop_reason"), "end_turn");
}

TEST(MockHandlerAnthropicTest, ModelsListWhenTheVersionHeaderIsSent) {
  MockHandler handler({});
  MockHandler::Request req(http::verb::get, "/v1/models", 11);
  req.set("anthropic-version", "2023-06-01");
  const json::value list = json::parse(ParseResponse(handler.Handle(req)).body());
  EXPECT_EQ(list.at("data").at(0).at("type"), "model");
  EXPECT_EQ(list.at("has_more"), false);
  MockHandler::Request one(http::verb::get, "/v1/models/claude-sonnet-4-20250514", 11);
  one.set("anthropic-version", "2023-06-01");
  EXPECT_EQ(json::parse(ParseResponse(handler.Handle(one)).body()).at("display_name"),
            "Claude Sonnet 4");
  MockHandler::Request openai(http::verb::get, "/v1/models", 11);
  EXPECT_EQ(json::parse(ParseResponse(handler.Handle(openai)).body()).at("object"), "list");
}

// ---- Gemini ------------------------------------------------------------------------------------

TEST(MockHandlerGeminiTest, ApiKeyInHeaderOrQuery) {
  MockHandler handler(
      {.latency_ms = 0, .ttft_ms = 0, .inter_token_ms = 0, .require_key = "AIza-secret"});
  auto res = ParseResponse(handler.Handle(Post(GeminiBody("x"), std::string(kGeminiPath))));
  EXPECT_EQ(res.result_int(), 403);
  EXPECT_EQ(json::parse(res.body()).at("error").at("status"), "PERMISSION_DENIED");
  auto wrong = Post(GeminiBody("x"), std::string(kGeminiPath));
  wrong.set("x-goog-api-key", "AIza-wrong");
  res = ParseResponse(handler.Handle(wrong));
  EXPECT_EQ(res.result_int(), 400) << "a bad key is 400, not 401";
  const json::value e = json::parse(res.body()).at("error");
  EXPECT_EQ(e.at("status"), "INVALID_ARGUMENT");
  EXPECT_EQ(e.at("details").at(0).at("reason"), "API_KEY_INVALID");
  auto header = Post(GeminiBody("x"), std::string(kGeminiPath));
  header.set("x-goog-api-key", "AIza-secret");
  EXPECT_EQ(ParseResponse(handler.Handle(header)).result_int(), 200);
  EXPECT_EQ(ParseResponse(handler.Handle(
                              Post(GeminiBody("x"), std::string(kGeminiPath) + "?key=AIza-secret")))
                .result_int(),
            200);
  EXPECT_EQ(ParseResponse(handler.Handle(Post(GeminiBody("x"),
                                              std::string(kGeminiStreamPath) + "&key=AIza-secret")))
                .result_int(),
            200);
}

TEST(MockHandlerGeminiTest, SseStreamAndJsonArrayStream) {
  MockHandler handler({});
  auto res = ParseResponse(
      handler.Handle(Post(GeminiBody("x [[mock: tokens=2]]"), std::string(kGeminiStreamPath))));
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res[http::field::content_type], "text/event-stream");
  EXPECT_TRUE(res.chunked());
  EXPECT_EQ(std::count(res.body().begin(), res.body().end(), '\r'), 2 * 3);
  EXPECT_THAT(res.body(), Not(HasSubstr("[DONE]")));
  EXPECT_EQ(SseData(res.body()).size(), 1u) << "a parser splitting on LF LF sees one event";
  const std::vector<std::string> events = CrlfSseData(res.body());
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(json::parse(events[2]).at("candidates").at(0).at("finishReason"), "STOP");
  res =
      ParseResponse(handler.Handle(Post(GeminiBody("x [[mock: tokens=2]]"),
                                        "/v1beta/models/gemini-2.5-flash:streamGenerateContent")));
  EXPECT_EQ(res[http::field::content_type], "application/json; charset=UTF-8");
  EXPECT_EQ(json::parse(res.body()).as_array().size(), 3u);
  const json::value stats = json::parse(handler.stats().ToJson());
  EXPECT_EQ(stats.at("by_dialect").at("gemini").at("requests"), 2);
  EXPECT_EQ(stats.at("by_dialect").at("gemini").at("streams"), 1);
}

TEST(MockHandlerGeminiTest, RateLimitHasRetryInfoButNoRetryAfterHeader) {
  MockHandler handler({});
  auto res = ParseResponse(handler.Handle(
      Post(GeminiBody("x [[mock: status=429 retry_after=37]]"), std::string(kGeminiPath))));
  EXPECT_EQ(res.result_int(), 429);
  EXPECT_EQ(res.count("retry-after"), 0u);
  EXPECT_THAT(res.body(), HasSubstr(R"("retryDelay":"37s")"));
  res = ParseResponse(
      handler.Handle(Post(GeminiBody("x [[mock: tokenz=3]]"), std::string(kGeminiPath))));
  EXPECT_EQ(res.result_int(), 400);
  EXPECT_EQ(json::parse(res.body()).at("error").at("status"), "INVALID_ARGUMENT");
}

TEST(MockHandlerGeminiTest, BlockedPromptIsA200AndBillsThePrompt) {
  MockHandler handler({});
  auto res = ParseResponse(
      handler.Handle(Post(GeminiBody("x [[mock: block=SAFETY]]"), std::string(kGeminiPath))));
  EXPECT_EQ(res.result_int(), 200);
  const json::value body = json::parse(res.body());
  EXPECT_EQ(body.at("promptFeedback").at("blockReason"), "SAFETY");
  const json::value stats = json::parse(handler.stats().ToJson()).at("by_dialect").at("gemini");
  EXPECT_EQ(stats.at("prompt_tokens"), body.at("usageMetadata").at("promptTokenCount"));
  EXPECT_EQ(stats.at("completion_tokens"), 0);
}

TEST(MockHandlerGeminiTest, StreamErrorIsAnErrorObjectEvent) {
  MockHandler handler({});
  auto res = ParseResponse(
      handler.Handle(Post(GeminiBody("x [[mock: tokens=4 stream_error=overloaded_error]]"),
                          std::string(kGeminiStreamPath))));
  const std::vector<std::string> events = CrlfSseData(res.body());
  ASSERT_EQ(events.size(), 3u);
  const json::value error = json::parse(events[2]);
  EXPECT_EQ(error.at("error").at("code"), 503);
  EXPECT_EQ(error.at("error").at("status"), "UNAVAILABLE");
}

TEST(MockHandlerGeminiTest, ModelsAndUnknownMethods) {
  MockHandler handler({});
  auto list =
      ParseResponse(handler.Handle(MockHandler::Request(http::verb::get, "/v1beta/models", 11)));
  EXPECT_EQ(json::parse(list.body()).at("models").at(0).at("name"), "models/gemini-2.5-flash");
  auto one = ParseResponse(
      handler.Handle(MockHandler::Request(http::verb::get, "/v1beta/models/gemini-2.5-pro", 11)));
  EXPECT_EQ(json::parse(one.body()).at("inputTokenLimit"), 1048576);
  auto missing = ParseResponse(
      handler.Handle(MockHandler::Request(http::verb::get, "/v1beta/models/nope", 11)));
  EXPECT_EQ(missing.result_int(), 404);
  EXPECT_EQ(json::parse(missing.body()).at("error").at("status"), "NOT_FOUND");
  auto method =
      ParseResponse(handler.Handle(Post(GeminiBody("x"), "/v1beta/models/m:countTokenz")));
  EXPECT_EQ(method.result_int(), 404);
}

// ---- Azure OpenAI ------------------------------------------------------------------------------

constexpr std::string_view kAzurePath =
    "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21";

std::string AzureChat(std::string_view prompt, std::string_view extra = "") {
  json::object body;
  body["messages"] = json::array{json::object{{"role", "user"}, {"content", prompt}}};
  std::string s = json::serialize(body);
  if (!extra.empty()) s = s.substr(0, s.size() - 1) + "," + std::string(extra) + "}";
  return s;
}

TEST(MockHandlerAzureTest, ApiVersionAndDeployment) {
  MockHandler handler({});
  auto res = ParseResponse(
      handler.Handle(Post(AzureChat("x"), "/openai/deployments/gpt4o-prod/chat/completions")));
  EXPECT_EQ(res.result_int(), 404);
  EXPECT_EQ(json::parse(res.body()),
            json::parse(R"({"error":{"code":"404","message":"Resource not found"}})"));
  res = ParseResponse(handler.Handle(
      Post(AzureChat("x"), "/openai/deployments/gpt4o-prod/chat/completions?api-version=latest")));
  EXPECT_EQ(res.result_int(), 400);
  res = ParseResponse(handler.Handle(Post(AzureChat("x"), std::string(kAzurePath))));
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_FALSE(res["apim-request-id"].empty());
  const json::value body = json::parse(res.body());
  EXPECT_EQ(body.at("model"), "gpt4o-prod") << "the deployment names the model";
  EXPECT_TRUE(body.as_object().contains("prompt_filter_results"));
  // The v1 path needs no api-version but a model.
  res = ParseResponse(handler.Handle(Post(Chat("x"), "/openai/v1/chat/completions")));
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(json::parse(res.body()).at("model"), "gpt-4o-mini");
  EXPECT_EQ(json::parse(handler.stats().ToJson()).at("by_dialect").at("azure").at("requests"), 4);
}

TEST(MockHandlerAzureTest, ApiKeyHeader) {
  MockHandler handler(
      {.latency_ms = 0, .ttft_ms = 0, .inter_token_ms = 0, .require_key = "azure-key-123456"});
  auto res = ParseResponse(handler.Handle(Post(AzureChat("x"), std::string(kAzurePath))));
  EXPECT_EQ(res.result_int(), 401);
  EXPECT_THAT(res.body(), HasSubstr("Access denied due to missing subscription key"));
  auto wrong = Post(AzureChat("x"), std::string(kAzurePath));
  wrong.set("api-key", "nope");
  res = ParseResponse(handler.Handle(wrong));
  EXPECT_EQ(res.result_int(), 401);
  EXPECT_THAT(res.body(), HasSubstr("invalid subscription key"));
  auto right = Post(AzureChat("x"), std::string(kAzurePath));
  right.set("api-key", "azure-key-123456");
  EXPECT_EQ(ParseResponse(handler.Handle(right)).result_int(), 200);
}

TEST(MockHandlerAzureTest, RateLimitContentFilterAndStream) {
  MockHandler handler({});
  auto res = ParseResponse(handler.Handle(
      Post(AzureChat("x [[mock: status=429 retry_after=6]]"), std::string(kAzurePath))));
  EXPECT_EQ(res.result_int(), 429);
  EXPECT_EQ(res["retry-after"], "6");
  EXPECT_EQ(res["retry-after-ms"], "6000");
  const json::value e = json::parse(res.body()).at("error");
  EXPECT_EQ(e.at("code"), "429");
  EXPECT_THAT(std::string(e.at("message").as_string()),
              HasSubstr("API version 2024-10-21 have exceeded token rate limit"));

  res = ParseResponse(
      handler.Handle(Post(AzureChat("x [[mock: block=SAFETY]]"), std::string(kAzurePath))));
  EXPECT_EQ(res.result_int(), 400);
  const json::value filtered = json::parse(res.body()).at("error");
  EXPECT_EQ(filtered.at("code"), "content_filter");
  EXPECT_EQ(filtered.at("innererror").at("content_filter_result").at("violence").at("filtered"),
            true);

  res = ParseResponse(handler.Handle(
      Post(AzureChat("x [[mock: tokens=2]]", R"("stream":true)"), std::string(kAzurePath))));
  const std::vector<std::string> events = SseData(res.body());
  ASSERT_EQ(events.size(), 6u);
  EXPECT_TRUE(json::parse(events[0]).at("choices").as_array().empty());
  EXPECT_EQ(events.back(), "[DONE]");
}

TEST(MockHandlerStatsTest, TotalsAreTheSumOfTheDialects) {
  MockHandler handler({});
  handler.Handle(Post(Chat("x [[mock: tokens=2]]")));
  handler.Handle(AnthropicPost(Messages("x [[mock: tokens=3]]")));
  handler.Handle(Post(GeminiBody("x [[mock: tokens=4]]"), std::string(kGeminiPath)));
  handler.Handle(Post(AzureChat("x [[mock: tokens=5]]"), std::string(kAzurePath)));
  const json::value stats = json::parse(handler.stats().ToJson());
  EXPECT_EQ(stats.at("requests"), 4);
  EXPECT_EQ(stats.at("completion_tokens"), 2 + 3 + 4 + 5);
  EXPECT_EQ(stats.at("by_status").at("200"), 4);
  int64_t prompt = 0;
  for (const char* d : {"openai", "azure", "anthropic", "gemini"}) {
    EXPECT_EQ(stats.at("by_dialect").at(d).at("requests"), 1) << d;
    prompt += stats.at("by_dialect").at(d).at("prompt_tokens").as_int64();
  }
  EXPECT_EQ(stats.at("prompt_tokens"), prompt);
  EXPECT_EQ(handler.stats().requests(), 4);
  EXPECT_EQ(handler.stats().requests(DialectId::kGemini), 1);
}

}  // namespace
}  // namespace tollgate::tools::mock
