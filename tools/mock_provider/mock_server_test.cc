// End-to-end: the real server on a loopback port, driven by a synchronous Beast client.

#include "tools/mock_provider/mock_server.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "boost/asio/connect.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/http/read.hpp"
#include "boost/beast/http/string_body.hpp"
#include "boost/beast/http/write.hpp"
#include "boost/json/parse.hpp"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tollgate::tools::mock {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = net::ip::tcp;
using ::testing::HasSubstr;

class Client {
 public:
  explicit Client(int port) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)));
  }

  // Sends one request on the connection and reads the response. `ec` reports read errors.
  http::response<http::string_body> Call(
      http::verb method, const std::string& target, const std::string& body, beast::error_code& ec,
      const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    http::request<http::string_body> req(method, target, 11);
    req.set(http::field::host, "127.0.0.1");
    for (const auto& [k, v] : headers) req.set(k, v);
    if (!body.empty()) req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    http::write(socket_, req);
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 << 20);
    http::read(socket_, buffer_, parser, ec);
    return parser.release();
  }

  http::response<http::string_body> Call(http::verb method, const std::string& target,
                                         const std::string& body = "") {
    beast::error_code ec;
    auto res = Call(method, target, body, ec);
    EXPECT_FALSE(ec) << ec.message();
    return res;
  }

 private:
  net::io_context ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

std::string Chat(const std::string& prompt, const std::string& extra = "") {
  return R"({"model":"gpt-4o","messages":[{"role":"user","content":")" + prompt + "\"}]" +
         (extra.empty() ? "" : "," + extra) + "}";
}

std::vector<std::string> SseData(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    const size_t end = body.find("\n\n", pos);
    out.push_back(body.substr(pos + 6, end - pos - 6));
    pos = end;
  }
  return out;
}

class MockServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = MockServer::Start("127.0.0.1:0", 2, MockOptions{});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    ASSERT_GT(server_->port(), 0);
  }
  std::unique_ptr<MockServer> server_;
};

TEST_F(MockServerTest, NonStreamThenStreamsOnOneKeepAliveConnection) {
  Client client(server_->port());
  auto res =
      client.Call(http::verb::post, "/v1/chat/completions", Chat("hello [[mock: tokens=6]]"));
  ASSERT_EQ(res.result_int(), 200);
  const json::value completion = json::parse(res.body());
  EXPECT_EQ(completion.at("model"), "gpt-4o");
  EXPECT_EQ(completion.at("usage").at("completion_tokens"), 6);
  const std::string content(completion.at("choices").at(0).at("message").at("content").as_string());

  res = client.Call(http::verb::post, "/v1/chat/completions",
                    Chat("hello [[mock: tokens=6]]", R"("stream":true)"));
  ASSERT_EQ(res.result_int(), 200);
  EXPECT_TRUE(res.chunked());
  auto events = SseData(res.body());
  ASSERT_EQ(events.size(), 1u + 6 + 1 + 1);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string streamed;
  for (size_t i = 1; i <= 6; ++i) {
    const json::value chunk = json::parse(events[i]);
    EXPECT_FALSE(chunk.as_object().contains("usage"));
    streamed += chunk.at("choices").at(0).at("delta").at("content").as_string();
  }
  EXPECT_EQ(streamed, content);

  res = client.Call(
      http::verb::post, "/v1/chat/completions",
      Chat("hello [[mock: tokens=6]]", R"("stream":true,"stream_options":{"include_usage":true})"));
  events = SseData(res.body());
  ASSERT_EQ(events.size(), 1u + 6 + 1 + 1 + 1);
  EXPECT_TRUE(json::parse(events[7]).at("usage").is_null());
  const json::value usage_chunk = json::parse(events[8]);
  EXPECT_TRUE(usage_chunk.at("choices").as_array().empty());
  EXPECT_EQ(usage_chunk.at("usage").at("completion_tokens"), 6);

  const json::value stats = json::parse(client.Call(http::verb::get, "/_mock/stats").body());
  EXPECT_EQ(stats.at("requests"), 3);
  EXPECT_EQ(stats.at("by_status").at("200"), 3);
  EXPECT_EQ(stats.at("completion_tokens"), 18);
}

TEST_F(MockServerTest, RateLimitDirective) {
  Client client(server_->port());
  auto res = client.Call(http::verb::post, "/v1/chat/completions",
                         Chat("x [[mock: status=429 retry_after=3]]"));
  EXPECT_EQ(res.result_int(), 429);
  EXPECT_EQ(res["retry-after"], "3");
  EXPECT_EQ(json::parse(res.body()).at("error").at("code"), "rate_limit_exceeded");
  // The connection stays usable after an error.
  EXPECT_EQ(client.Call(http::verb::post, "/v1/chat/completions", Chat("x")).result_int(), 200);
}

TEST_F(MockServerTest, TimeToFirstTokenIsHonoured) {
  Client client(server_->port());
  const auto start = std::chrono::steady_clock::now();
  auto res =
      client.Call(http::verb::post, "/v1/chat/completions",
                  Chat("x [[mock: tokens=3 ttft_ms=60 inter_token_ms=10]]", R"("stream":true)"));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_GE(elapsed, std::chrono::milliseconds(80));
}

TEST_F(MockServerTest, StreamDisconnectCutsTheBody) {
  Client client(server_->port());
  beast::error_code ec;
  auto res = client.Call(http::verb::post, "/v1/chat/completions",
                         Chat("x [[mock: tokens=5 disconnect_after=2]]", R"("stream":true)"), ec);
  EXPECT_EQ(ec, http::error::partial_message) << ec.message();
  const json::value stats =
      json::parse(Client(server_->port()).Call(http::verb::get, "/_mock/stats").body());
  EXPECT_EQ(stats.at("disconnects"), 1);
}

TEST_F(MockServerTest, BadJsonAndUnknownRoute) {
  Client client(server_->port());
  auto res = client.Call(http::verb::post, "/v1/chat/completions", "{oops");
  EXPECT_EQ(res.result_int(), 400);
  EXPECT_EQ(json::parse(res.body()).at("error").at("type"), "invalid_request_error");
  res = client.Call(http::verb::get, "/nope");
  EXPECT_EQ(res.result_int(), 404);
  EXPECT_THAT(res.body(), HasSubstr("Invalid URL"));
}

// ---- the other dialects on a real port ---------------------------------------------------------

using Headers = std::vector<std::pair<std::string, std::string>>;

http::response<http::string_body> CallOk(Client& client, http::verb method,
                                         const std::string& target, const std::string& body,
                                         const Headers& headers) {
  beast::error_code ec;
  auto res = client.Call(method, target, body, ec, headers);
  EXPECT_FALSE(ec) << ec.message();
  return res;
}

std::vector<std::string> EventNames(const std::string& body) {
  std::vector<std::string> out;
  for (size_t pos = 0; (pos = body.find("event: ", pos)) != std::string::npos; ++pos) {
    out.push_back(body.substr(pos + 7, body.find('\n', pos) - pos - 7));
  }
  return out;
}

TEST_F(MockServerTest, AnthropicStreamThenMessageOnOneConnection) {
  Client client(server_->port());
  const Headers headers = {{"anthropic-version", "2023-06-01"}};
  const std::string body = R"({"model":"claude-sonnet-4-20250514","max_tokens":64,"stream":true,)"
                           R"("messages":[{"role":"user","content":"hello [[mock: tokens=3]]"}]})";
  auto res = CallOk(client, http::verb::post, "/v1/messages", body, headers);
  ASSERT_EQ(res.result_int(), 200);
  EXPECT_TRUE(res.chunked());
  EXPECT_EQ(
      EventNames(res.body()),
      (std::vector<std::string>{"message_start", "content_block_start", "ping",
                                "content_block_delta", "content_block_delta", "content_block_delta",
                                "content_block_stop", "message_delta", "message_stop"}));
  res = CallOk(client, http::verb::post, "/v1/messages",
               R"({"model":"claude-sonnet-4-20250514","max_tokens":64,)"
               R"("messages":[{"role":"user","content":"hello [[mock: tokens=3]]"}]})",
               headers);
  ASSERT_EQ(res.result_int(), 200);
  EXPECT_EQ(json::parse(res.body()).at("usage").at("output_tokens"), 3);
  // A stream that fails after its 200 still ends cleanly; the connection stays usable.
  res = CallOk(client, http::verb::post, "/v1/messages",
               R"({"model":"m","max_tokens":64,"stream":true,"messages":[{"role":"user",)"
               R"("content":"x [[mock: tokens=4 stream_error=overloaded_error]]"}]})",
               headers);
  EXPECT_EQ(EventNames(res.body()).back(), "error");
  res = CallOk(client, http::verb::post, "/v1/messages",
               R"({"model":"m","max_tokens":64,"messages":[{"role":"user","content":"x"}]})", {});
  EXPECT_EQ(res.result_int(), 400);
  const json::value stats = json::parse(client.Call(http::verb::get, "/_mock/stats").body());
  EXPECT_EQ(stats.at("by_dialect").at("anthropic").at("requests"), 4);
  EXPECT_EQ(stats.at("by_dialect").at("anthropic").at("stream_errors"), 1);
  EXPECT_EQ(stats.at("by_dialect").at("anthropic").at("completion_tokens"), 6);
}

TEST_F(MockServerTest, GeminiSseStreamWithAltAsTheLastQueryParameter) {
  Client client(server_->port());
  auto res = CallOk(client, http::verb::post,
                    "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                    R"({"contents":[{"parts":[{"text":"hi [[mock: tokens=2 cached=3]]"}]}]})", {});
  ASSERT_EQ(res.result_int(), 200);
  EXPECT_EQ(res[http::field::content_type], "text/event-stream");
  const std::string& body = res.body();
  ASSERT_EQ(std::count(body.begin(), body.end(), '\r'), 6);
  const size_t last = body.rfind("data: ");
  const json::value final_chunk = json::parse(body.substr(last + 6, body.size() - last - 10));
  EXPECT_EQ(final_chunk.at("candidates").at(0).at("finishReason"), "STOP");
  EXPECT_EQ(final_chunk.at("usageMetadata").at("cachedContentTokenCount"), 3);
}

TEST_F(MockServerTest, AzureDeploymentWithApiVersionAsTheLastQueryParameter) {
  Client client(server_->port());
  auto res = CallOk(client, http::verb::post,
                    "/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21",
                    R"({"messages":[{"role":"user","content":"hi [[mock: tokens=2]]"}]})", {});
  ASSERT_EQ(res.result_int(), 200);
  const json::value completion = json::parse(res.body());
  EXPECT_EQ(completion.at("model"), "prod-4o");
  EXPECT_EQ(completion.at("choices").at(0).at("content_filter_results").at("hate").at("filtered"),
            false);
}

TEST(MockServerKeyTest, EveryDialectDemandsItsOwnKeyHeader) {
  MockOptions options;
  options.require_key = "secret-key-12345";
  auto server = MockServer::Start("127.0.0.1:0", 1, options);
  ASSERT_TRUE(server.ok()) << server.status();
  Client client((*server)->port());
  const std::string chat = R"({"model":"m","messages":[{"role":"user","content":"x"}]})";
  const std::string messages =
      R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}]})";
  const std::string gemini = R"({"contents":[{"parts":[{"text":"x"}]}]})";
  const std::string gemini_path = "/v1beta/models/gemini-2.5-flash:generateContent";
  const std::string azure_path = "/openai/deployments/d/chat/completions?api-version=2024-10-21";
  EXPECT_EQ(CallOk(client, http::verb::post, "/v1/chat/completions", chat,
                   {{"Authorization", "Bearer secret-key-12345"}})
                .result_int(),
            200);
  EXPECT_EQ(CallOk(client, http::verb::post, "/v1/messages", messages,
                   {{"anthropic-version", "2023-06-01"}, {"x-api-key", "secret-key-12345"}})
                .result_int(),
            200);
  EXPECT_EQ(CallOk(client, http::verb::post, gemini_path + "?key=secret-key-12345", gemini, {})
                .result_int(),
            200);
  EXPECT_EQ(CallOk(client, http::verb::post, azure_path, chat, {{"api-key", "secret-key-12345"}})
                .result_int(),
            200);
  // Each with another dialect's header fails as that provider fails.
  EXPECT_EQ(CallOk(client, http::verb::post, "/v1/messages", messages,
                   {{"anthropic-version", "2023-06-01"}, {"api-key", "secret-key-12345"}})
                .result_int(),
            401);
  EXPECT_EQ(
      CallOk(client, http::verb::post, gemini_path, gemini, {{"x-api-key", "secret-key-12345"}})
          .result_int(),
      403);
  EXPECT_EQ(CallOk(client, http::verb::post, gemini_path, gemini, {{"x-goog-api-key", "wrong"}})
                .result_int(),
            400);
  EXPECT_EQ(CallOk(client, http::verb::post, azure_path, chat, {{"x-api-key", "secret-key-12345"}})
                .result_int(),
            401);
}

TEST(MockServerStartTest, PortInUseIsUnavailable) {
  auto first = MockServer::Start("127.0.0.1:0", 1, MockOptions{});
  ASSERT_TRUE(first.ok());
  auto second =
      MockServer::Start("127.0.0.1:" + std::to_string((*first)->port()), 1, MockOptions{});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(MockServer::Start("nonsense", 1, MockOptions{}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tollgate::tools::mock
