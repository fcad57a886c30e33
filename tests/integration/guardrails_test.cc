// Guardrails through the real gateway (issue 8 item 4): a blocked prompt never reaches the
// provider, a redacted one reaches it redacted, payload logging follows the team policy, and
// every action is counted.

#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "tests/testing/http_client.h"
#include "tests/testing/suite.h"
#include "tests/testing/suite_environment.h"

namespace tollgate::testing {
namespace {

namespace json = boost::json;

Suite* g_suite = nullptr;

SuiteOptions Options() {
  SuiteOptions options;
  options.gateway_config_extra = R"yaml(
guardrails:
  defaults:
    blocked_patterns:
      - name: codename
        regex: '(?i)project\s+falcon'
    pii:
      email: redact
      card: block
      secret: block
      phone: log
  teams:
    alpha:
      log_payloads: true
  keys:
    beta-key:
      max_request_bytes: 2000
)yaml";
  return options;
}

const auto* const kEnv =
    ::testing::AddGlobalTestEnvironment(new SuiteEnvironment(&g_suite, Options()));

std::string ChatBody(const std::string& prompt) {
  return json::serialize(
      json::object{{"model", "gpt-4o-mini"},
                   {"messages", json::array{json::object{{"role", "user"}, {"content", prompt}}}}});
}

HttpResponse Post(const std::string& key, const std::string& body,
                  const std::string& path = "/v1/chat/completions") {
  auto r =
      HttpCall(g_suite->gateway_port(), "POST", path, body, {{"authorization", "Bearer " + key}});
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : HttpResponse{};
}

int64_t MockRequests() {
  auto r = HttpCall(g_suite->mock_port(), "GET", "/_mock/stats");
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return -1;
  return json::parse(r->body).at("requests").to_number<int64_t>();
}

std::string GatewayLog() {
  std::ifstream in(g_suite->dir() + "/gateway.log");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Waits (bounded) until the gateway's log contains `needle`; returns the log.
std::string WaitForLog(const std::string& needle) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::string log = GatewayLog();
  while (log.find(needle) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    log = GatewayLog();
  }
  return log;
}

std::string ErrorCode(const HttpResponse& r) {
  try {
    return std::string(json::parse(r.body).at("error").at("code").as_string());
  } catch (const std::exception&) {
    return "";
  }
}

TEST(Guardrails, BlockedPromptsNeverReachTheProvider) {
  const int64_t before = MockRequests();
  HttpResponse pattern = Post(Suite::kAlphaKey, ChatBody("What is the status of Project  FALCON?"));
  EXPECT_EQ(pattern.status, 400) << pattern.body;
  EXPECT_EQ(ErrorCode(pattern), "content_blocked");
  EXPECT_NE(pattern.body.find("'codename'"), std::string::npos) << pattern.body;
  EXPECT_EQ(pattern.body.find("FALCON"), std::string::npos) << "never echo the matched text";

  HttpResponse card = Post(Suite::kBetaKey, ChatBody("charge 4111 1111 1111 1111 please"));
  EXPECT_EQ(card.status, 400) << card.body;
  EXPECT_EQ(ErrorCode(card), "pii_detected");
  EXPECT_NE(card.body.find("'card'"), std::string::npos) << card.body;

  HttpResponse secret = Post(Suite::kBetaKey, ChatBody("my key is AKIAIOSFODNN7EXAMPLE"));
  EXPECT_EQ(secret.status, 400) << secret.body;
  EXPECT_EQ(ErrorCode(secret), "pii_detected");

  // The Anthropic ingress converts to the same internal form first.
  const std::string messages = json::serialize(json::object{
      {"model", "gpt-4o-mini"},
      {"max_tokens", 50},
      {"messages",
       json::array{json::object{{"role", "user"}, {"content", "card 4111111111111111"}}}}});
  HttpResponse anthropic = Post(Suite::kAlphaKey, messages, "/v1/messages");
  EXPECT_EQ(anthropic.status, 400) << anthropic.body;
  EXPECT_NE(anthropic.body.find("'card'"), std::string::npos) << anthropic.body;

  // Request size limit of beta-key only.
  const std::string big = ChatBody(std::string(2500, 'x'));
  HttpResponse too_large = Post(Suite::kBetaKey, big);
  EXPECT_EQ(too_large.status, 413) << too_large.body;
  EXPECT_EQ(ErrorCode(too_large), "request_too_large");
  EXPECT_EQ(Post(Suite::kAlphaKey, big).status, 200);

  // Only the alpha request of the right size reached the provider.
  EXPECT_EQ(MockRequests(), before + 1);
}

TEST(Guardrails, RedactedPromptReachesTheProviderRedacted) {
  // The mock's answer and prompt token count are functions of the prompt it received: the
  // redacted request must get exactly the answer of a request written redacted.
  HttpResponse redacted =
      Post(Suite::kBetaKey, ChatBody("Please email jane.doe@example.com the summary."));
  ASSERT_EQ(redacted.status, 200) << redacted.body;
  HttpResponse reference =
      Post(Suite::kBetaKey, ChatBody("Please email [REDACTED:EMAIL] the summary."));
  ASSERT_EQ(reference.status, 200) << reference.body;

  const json::value a = json::parse(redacted.body), b = json::parse(reference.body);
  EXPECT_EQ(a.at("choices").at(0).at("message").at("content"),
            b.at("choices").at(0).at("message").at("content"));
  EXPECT_EQ(a.at("usage").at("prompt_tokens"), b.at("usage").at("prompt_tokens"));
}

TEST(Guardrails, PayloadLoggingFollowsTheTeamPolicy) {
  // beta: payload logging off (the default); alpha: on.
  HttpResponse beta = Post(Suite::kBetaKey, ChatBody("beta-marker-7Q call +1 415 555 0123"));
  ASSERT_EQ(beta.status, 200) << beta.body;
  HttpResponse alpha = Post(Suite::kAlphaKey, ChatBody("alpha-marker-9Z mail bob@corp.example"));
  ASSERT_EQ(alpha.status, 200) << alpha.body;
  const std::string alpha_id = alpha.header("x-tollgate-request-id");
  const std::string beta_id = beta.header("x-tollgate-request-id");
  ASSERT_FALSE(alpha_id.empty());

  const std::string log = WaitForLog("alpha-marker-9Z");
  size_t line_start = log.find("alpha-marker-9Z");
  ASSERT_NE(line_start, std::string::npos) << "alpha's payload was not logged";
  line_start = log.rfind('\n', line_start) + 1;
  const std::string line = log.substr(line_start, log.find('\n', line_start) - line_start);
  EXPECT_NE(line.find("request payload"), std::string::npos) << line;
  EXPECT_NE(line.find(alpha_id), std::string::npos) << line;
  EXPECT_NE(line.find("[REDACTED:EMAIL]"), std::string::npos) << "post-redaction: " << line;
  EXPECT_EQ(log.find("bob@corp.example"), std::string::npos);

  EXPECT_EQ(log.find("beta-marker-7Q"), std::string::npos) << "beta's payload must not be logged";
  // beta's phone number was only logged as a detection: name and count, never the value.
  EXPECT_EQ(log.find("555 0123"), std::string::npos);
  const size_t detection = log.find("\"request_id\":\"" + beta_id + "\",\"team\":\"beta\"");
  ASSERT_NE(detection, std::string::npos) << log;
}

// Runs after the tests above (declaration order) and reads the actions they caused.
TEST(Guardrails, ActionsAreCounted) {
  auto r = HttpCall(g_suite->gateway_port(), "GET", "/metrics");
  ASSERT_TRUE(r.ok()) << r.status();
  for (
      const char* series :
      {R"(tollgate_gateway_guardrail_actions_total{action="block",detector="pattern:codename",team="alpha"})",
       R"(tollgate_gateway_guardrail_actions_total{action="block",detector="card",team="beta"})",
       R"(tollgate_gateway_guardrail_actions_total{action="block",detector="max_request_bytes",team="beta"})",
       R"(tollgate_gateway_guardrail_actions_total{action="redact",detector="email",team="beta"})",
       R"(tollgate_gateway_guardrail_actions_total{action="log",detector="phone",team="beta"})"}) {
    EXPECT_NE(r->body.find(series), std::string::npos) << series;
  }
}

}  // namespace
}  // namespace tollgate::testing
