#include "tools/mock_provider/mock_handler.h"

#include <string>

#include "boost/asio/buffer.hpp"
#include "boost/beast/http/parser.hpp"
#include "boost/json/parse.hpp"
#include "boost/json/serialize.hpp"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tollgate::tools::mock {
namespace {

namespace http = boost::beast::http;
namespace json = boost::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

MockHandler::Request Post(std::string body, std::string target = "/v1/chat/completions") {
  MockHandler::Request req(http::verb::post, target, 11);
  req.set(http::field::content_type, "application/json");
  req.body() = std::move(body);
  req.prepare_payload();
  return req;
}

std::string Chat(std::string_view prompt, std::string_view extra = "") {
  json::object body;
  body["model"] = "gpt-4o-mini";
  body["messages"] = json::array{json::object{{"role", "user"}, {"content", prompt}}};
  std::string s = json::serialize(body);
  if (!extra.empty()) s = s.substr(0, s.size() - 1) + "," + std::string(extra) + "}";
  return s;
}

// The whole response as a client sees it (chunked bodies decoded).
http::response<http::string_body> Parse(const ResponsePlan& plan) {
  http::response_parser<http::string_body> parser;
  parser.eager(true);
  boost::beast::error_code ec;
  size_t used = parser.put(boost::asio::buffer(plan.bytes), ec);
  EXPECT_FALSE(ec) << ec.message() << "\n" << plan.bytes;
  EXPECT_EQ(used, plan.bytes.size());
  EXPECT_TRUE(parser.is_done());
  return parser.release();
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
  auto res = Parse(plan);
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
  auto res = Parse(plan);
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
  auto res = Parse(plan);
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
  EXPECT_EQ(Parse(handler.Handle(req)).result_int(), 503);
  auto bad = Post(Chat("x"));
  bad.set("x-mock-tokenz", "3");
  auto res = Parse(handler.Handle(bad));
  EXPECT_EQ(res.result_int(), 400);
  EXPECT_THAT(res.body(), HasSubstr("unknown mock directive 'tokenz'"));
}

TEST(MockHandlerTest, UnknownDirectiveIsA400) {
  MockHandler handler({});
  auto res = Parse(handler.Handle(Post(Chat("x [[mock: stauts=500]]"))));
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
  EXPECT_EQ(json::parse(Parse(handler.Handle(get)).body()).at("requests"), 4);
  handler.Handle(Post("", "/_mock/reset"));
  EXPECT_EQ(json::parse(handler.stats().ToJson()),
            json::parse(R"({"requests":0,"streams":0,"disconnects":0,"by_status":{},
                "prompt_tokens":0,"completion_tokens":0,"cached_tokens":0,"reasoning_tokens":0})"));
}

TEST(MockHandlerTest, RequireKey) {
  MockHandler handler(
      {.latency_ms = 0, .ttft_ms = 0, .inter_token_ms = 0, .require_key = "sk-secret-123456"});
  auto missing = Parse(handler.Handle(Post(Chat("x"))));
  EXPECT_EQ(missing.result_int(), 401);
  EXPECT_THAT(missing.body(), HasSubstr("You didn't provide an API key"));
  auto wrong_req = Post(Chat("x"));
  wrong_req.set(http::field::authorization, "Bearer sk-wrong-999999");
  auto wrong = Parse(handler.Handle(wrong_req));
  EXPECT_EQ(wrong.result_int(), 401);
  EXPECT_EQ(json::parse(wrong.body()).at("error").at("code"), "invalid_api_key");
  auto ok_req = Post(Chat("x"));
  ok_req.set(http::field::authorization, "Bearer sk-secret-123456");
  EXPECT_EQ(Parse(handler.Handle(ok_req)).result_int(), 200);
}

TEST(MockHandlerTest, ModelsAndUnknownRoutes) {
  MockHandler handler({});
  auto models = Parse(handler.Handle(MockHandler::Request(http::verb::get, "/v1/models", 11)));
  const json::value list = json::parse(models.body());
  EXPECT_EQ(list.at("object"), "list");
  EXPECT_EQ(list.at("data").at(0).at("object"), "model");
  auto one = Parse(handler.Handle(MockHandler::Request(http::verb::get, "/v1/models/gpt-4o", 11)));
  EXPECT_EQ(json::parse(one.body()).at("id"), "gpt-4o");
  auto missing =
      Parse(handler.Handle(MockHandler::Request(http::verb::get, "/v1/models/nope", 11)));
  EXPECT_EQ(missing.result_int(), 404);
  auto route = Parse(handler.Handle(MockHandler::Request(http::verb::get, "/v2/foo", 11)));
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

}  // namespace
}  // namespace tollgate::tools::mock
