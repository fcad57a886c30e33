// End-to-end tests of the walking skeleton: real PostgreSQL, real ledger, router, mock provider
// and gateway processes on loopback, driven over HTTP like any OpenAI client would.

#include <boost/json.hpp>
#include <chrono>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "services/common/money.h"
#include "tests/testing/http_client.h"
#include "tests/testing/suite.h"
#include "tests/testing/suite_environment.h"

namespace tollgate::testing {
namespace {

namespace json = boost::json;

Suite* g_suite = nullptr;

const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new SuiteEnvironment(&g_suite));

std::string ChatBody(const std::string& model, const std::string& prompt, bool stream = false,
                     bool include_usage = false) {
  json::object body{{"model", model},
                    {"messages", json::array{json::object{{"role", "user"}, {"content", prompt}}}}};
  if (stream) body["stream"] = true;
  if (include_usage) body["stream_options"] = json::object{{"include_usage", true}};
  return json::serialize(body);
}

std::map<std::string, std::string> Auth(const std::string& key, const std::string& feature = "") {
  std::map<std::string, std::string> h{{"authorization", "Bearer " + key}};
  if (!feature.empty()) h["x-tollgate-feature"] = feature;
  return h;
}

HttpResponse Post(const std::string& body, const std::map<std::string, std::string>& headers) {
  auto r = HttpCall(g_suite->gateway_port(), "POST", "/v1/chat/completions", body, headers);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : HttpResponse{};
}

struct Tokens {
  int64_t input = 0, cached = 0, output = 0, reasoning = 0;
  bool operator==(const Tokens&) const = default;
};

Tokens UsageOf(const json::value& usage) {
  Tokens t;
  const auto& u = usage.as_object();
  t.input = u.at("prompt_tokens").to_number<int64_t>();
  t.output = u.at("completion_tokens").to_number<int64_t>();
  if (auto* d = u.if_contains("prompt_tokens_details"); d && d->is_object()) {
    if (auto* c = d->as_object().if_contains("cached_tokens")) t.cached = c->to_number<int64_t>();
  }
  if (auto* d = u.if_contains("completion_tokens_details"); d && d->is_object()) {
    if (auto* r = d->as_object().if_contains("reasoning_tokens")) t.reasoning = r->to_number<int64_t>();
  }
  return t;
}

// gpt-4o-mini list prices in pico-dollars per token.
int64_t MiniCost(const Tokens& t) {
  v1::UnitPrices p;
  p.set_input_pico(150'000);
  p.set_cached_input_pico(75'000);
  p.set_output_pico(600'000);
  v1::TokenUsage u;
  u.set_input_tokens(t.input);
  u.set_cached_input_tokens(t.cached);
  u.set_output_tokens(t.output);
  u.set_reasoning_tokens(t.reasoning);
  return *PriceUsage(u, p);
}

void ExpectOpenAiError(const HttpResponse& r, int status, const std::string& code = "") {
  EXPECT_EQ(r.status, status) << r.body;
  json::error_code ec;
  json::value v = json::parse(r.body, ec);
  ASSERT_FALSE(ec) << "error body is not JSON: " << r.body;
  ASSERT_TRUE(v.is_object() && v.as_object().contains("error")) << r.body;
  const auto& err = v.at("error").as_object();
  ASSERT_TRUE(err.contains("message") && err.at("message").is_string()) << r.body;
  EXPECT_FALSE(err.at("message").as_string().empty());
  EXPECT_TRUE(err.contains("type")) << r.body;
  if (!code.empty()) {
    ASSERT_TRUE(err.contains("code") && err.at("code").is_string()) << r.body;
    EXPECT_EQ(err.at("code").as_string(), code) << r.body;
  }
}

// Polls the ledger's table until `sql` returns `expected` or 20 s pass; returns the last value.
std::string WaitForSql(const std::string& sql, const std::string& expected) {
  std::string last;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = g_suite->Sql(sql);
    if (r.ok()) {
      last = *r;
      if (last == expected) return last;
    } else {
      last = std::string(r.status().message());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return last;
}

std::string InList(const std::vector<std::string>& ids) {
  std::vector<std::string> quoted;
  for (const auto& id : ids) quoted.push_back("'" + id + "'");
  return absl::StrJoin(quoted, ",");
}

TEST(Gateway, NonStreamingCompletionIsServedPricedAndRecorded) {
  HttpResponse r = Post(ChatBody("gpt-4o-mini", "Tell me about toll gates. [[mock: cached=8]]"),
                        Auth(Suite::kAlphaKey, "search"));
  ASSERT_EQ(r.status, 200) << r.body << g_suite->Logs();
  json::value v = json::parse(r.body);
  EXPECT_EQ(v.at("object").as_string(), "chat.completion");
  const auto& msg = v.at("choices").at(0).at("message");
  EXPECT_EQ(msg.at("role").as_string(), "assistant");
  EXPECT_FALSE(msg.at("content").as_string().empty());
  Tokens t = UsageOf(v.at("usage"));
  EXPECT_GT(t.input, 0);
  EXPECT_GT(t.output, 0);
  EXPECT_EQ(t.cached, 8);

  const std::string request_id = r.header("x-tollgate-request-id");
  ASSERT_FALSE(request_id.empty());
  EXPECT_EQ(r.header("x-tollgate-deployment"), "mock-gpt-4o-mini");
  EXPECT_EQ(r.header("x-tollgate-provider"), "mock");
  EXPECT_EQ(r.header("x-tollgate-cost-usd"), FormatPicoUsd(MiniCost(t)));

  const std::string row = WaitForSql(
      absl::StrCat("SELECT team, feature, api_key_id, requested_model, served_deployment, provider,"
                   " input_tokens, cached_input_tokens, output_tokens, cost_usd, http_status, stream"
                   " FROM usage_events WHERE request_id = '", request_id, "'"),
      absl::StrCat("alpha|search|alpha-key|gpt-4o-mini|mock-gpt-4o-mini|mock|", t.input, "|",
                   t.cached, "|", t.output, "|", FormatPicoUsd(MiniCost(t)), "|200|f"));
  EXPECT_EQ(row, absl::StrCat("alpha|search|alpha-key|gpt-4o-mini|mock-gpt-4o-mini|mock|", t.input,
                              "|", t.cached, "|", t.output, "|", FormatPicoUsd(MiniCost(t)),
                              "|200|f"));
}

TEST(Gateway, StreamingWithoutIncludeUsageHidesTheUsageChunkButRecordsIt) {
  const std::string prompt = "Stream a short poem about ledgers.";
  HttpResponse plain = Post(ChatBody("gpt-4o-mini", prompt), Auth(Suite::kBetaKey));
  ASSERT_EQ(plain.status, 200) << plain.body;
  json::value pv = json::parse(plain.body);
  const std::string expected_text(pv.at("choices").at(0).at("message").at("content").as_string());
  const Tokens expected = UsageOf(pv.at("usage"));

  HttpResponse r = Post(ChatBody("gpt-4o-mini", prompt, /*stream=*/true),
                        Auth(Suite::kBetaKey, "poems"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.header("content-type").find("text/event-stream"), std::string::npos);
  std::vector<std::string> events = SseDataEvents(r.body);
  ASSERT_GE(events.size(), 3u) << r.body;
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    json::value chunk = json::parse(events[i]);
    EXPECT_EQ(chunk.at("object").as_string(), "chat.completion.chunk");
    const auto& choices = chunk.at("choices").as_array();
    ASSERT_FALSE(choices.empty()) << "the usage-only chunk leaked to a client that did not ask: "
                                  << events[i];
    if (auto* u = chunk.as_object().if_contains("usage")) {
      EXPECT_TRUE(u->is_null()) << events[i];
    }
    const auto& delta = choices[0].at("delta").as_object();
    if (auto* c = delta.if_contains("content"); c && c->is_string()) text += c->as_string();
  }
  EXPECT_EQ(text, expected_text);

  const std::string request_id = r.header("x-tollgate-request-id");
  const std::string want = absl::StrCat("beta|poems|", expected.input, "|", expected.output, "|",
                                        FormatPicoUsd(MiniCost(expected)), "|t|f");
  EXPECT_EQ(WaitForSql(absl::StrCat("SELECT team, feature, input_tokens, output_tokens, cost_usd,"
                                    " stream, usage_estimated FROM usage_events WHERE request_id = '",
                                    request_id, "'"),
                       want),
            want);
}

TEST(Gateway, StreamingWithIncludeUsageForwardsTheUsageChunk) {
  HttpResponse r = Post(ChatBody("mini", "Count to five.", true, /*include_usage=*/true),
                        Auth(Suite::kAlphaKey));
  ASSERT_EQ(r.status, 200) << r.body;
  std::vector<std::string> events = SseDataEvents(r.body);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.back(), "[DONE]");
  json::value last = json::parse(events[events.size() - 2]);
  EXPECT_TRUE(last.at("choices").as_array().empty());
  Tokens t = UsageOf(last.at("usage"));
  EXPECT_GT(t.output, 0);
  const std::string want = absl::StrCat(t.input, "|", t.output, "|", FormatPicoUsd(MiniCost(t)));
  EXPECT_EQ(WaitForSql(absl::StrCat("SELECT input_tokens, output_tokens, cost_usd FROM usage_events"
                                    " WHERE request_id = '", r.header("x-tollgate-request-id"), "'"),
                       want),
            want);
}

TEST(Gateway, ErrorsAreOpenAiShaped) {
  ExpectOpenAiError(Post(ChatBody("no-such-model", "hi"), Auth(Suite::kAlphaKey)), 404,
                    "model_not_found");
  ExpectOpenAiError(Post(ChatBody("gpt-4o-mini", "hi"), Auth("tg-wrong-key")), 401,
                    "invalid_api_key");
  ExpectOpenAiError(Post(ChatBody("gpt-4o-mini", "hi"), {}), 401);
  ExpectOpenAiError(Post("{\"model\": \"gpt-4o-mini\", \"messages\": [", Auth(Suite::kAlphaKey)),
                    400);
  ExpectOpenAiError(Post(R"({"model": 42, "messages": []})", Auth(Suite::kAlphaKey)), 400);
  ExpectOpenAiError(Post(R"({"model": "gpt-4o-mini", "messages": "hi"})", Auth(Suite::kAlphaKey)),
                    400);
  ExpectOpenAiError(Post(ChatBody("gpt-4o-mini", "boom [[mock: status=500]]"),
                         Auth(Suite::kAlphaKey)),
                    502);
  auto r = HttpCall(g_suite->gateway_port(), "GET", "/v1/no-such-route", "", Auth(Suite::kAlphaKey));
  ASSERT_TRUE(r.ok());
  ExpectOpenAiError(*r, 404);
}

TEST(Gateway, GeminiRetryDelayInTheBodyBecomesTheClientsRetryAfter) {
  // Gemini's 429 carries no retry-after header, only google.rpc.RetryInfo in the body; the only
  // candidate failing so, the client gets 429 with the provider's delay.
  HttpResponse r = Post(ChatBody("gemini-2.5-flash", "slow down [[mock: status=429 retry_after=7]]"),
                        Auth(Suite::kAlphaKey));
  ExpectOpenAiError(r, 429, "rate_limit_exceeded");
  EXPECT_EQ(r.header("retry-after"), "7");
}

TEST(Gateway, FallsBackToTheNextDeploymentOnConnectError) {
  HttpResponse r = Post(ChatBody("resilient", "Are you there?"), Auth(Suite::kAlphaKey));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-tollgate-deployment"), "mock-gpt-4o-mini");
  const std::string want = "resilient|mock-gpt-4o-mini|2";
  EXPECT_EQ(WaitForSql(absl::StrCat("SELECT requested_model, served_deployment,"
                                    " jsonb_array_length(attempts) FROM usage_events"
                                    " WHERE request_id = '", r.header("x-tollgate-request-id"), "'"),
                       want),
            want);
}

TEST(Gateway, ModelsComeFromTheRouterCatalog) {
  auto r = HttpCall(g_suite->gateway_port(), "GET", "/v1/models", "", Auth(Suite::kAlphaKey));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->status, 200) << r->body;
  json::value v = json::parse(r->body);
  EXPECT_EQ(v.at("object").as_string(), "list");
  std::set<std::string> ids;
  for (const auto& m : v.at("data").as_array()) ids.insert(std::string(m.at("id").as_string()));
  EXPECT_TRUE(ids.count("gpt-4o-mini"));
  EXPECT_TRUE(ids.count("gpt-4o"));
  EXPECT_TRUE(ids.count("resilient"));
}

TEST(Gateway, HealthReadinessAndMetrics) {
  auto health = HttpCall(g_suite->gateway_port(), "GET", "/healthz");
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->status, 200);
  auto ready = HttpCall(g_suite->gateway_port(), "GET", "/readyz");
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->status, 200);
  ASSERT_EQ(Post(ChatBody("gpt-4o-mini", "metrics please"), Auth(Suite::kAlphaKey)).status, 200);
  auto metrics = HttpCall(g_suite->gateway_port(), "GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->body.find("tollgate_gateway_requests_total"), std::string::npos);
  EXPECT_NE(metrics->body.find("tollgate_gateway_tokens_total"), std::string::npos);
}

// The spend query's totals equal the sum of the usage the clients received, to the digit.
TEST(Spend, TotalsEqualWhatClientsReceived) {
  const std::string feature = "spend-check";
  Tokens sum;
  int64_t cost = 0;
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) {
    const bool stream = i % 3 == 2;
    HttpResponse r = Post(ChatBody("gpt-4o-mini", absl::StrCat("question number ", i,
                                                                 " [[mock: cached=", i, "]]"),
                                   stream, /*include_usage=*/stream),
                          Auth(Suite::kBetaKey, feature));
    ASSERT_EQ(r.status, 200) << r.body;
    ids.push_back(r.header("x-tollgate-request-id"));
    Tokens t;
    if (stream) {
      auto events = SseDataEvents(r.body);
      ASSERT_GE(events.size(), 2u);
      t = UsageOf(json::parse(events[events.size() - 2]).at("usage"));
    } else {
      t = UsageOf(json::parse(r.body).at("usage"));
    }
    sum.input += t.input;
    sum.cached += t.cached;
    sum.output += t.output;
    cost += MiniCost(t);
  }
  ASSERT_EQ(WaitForSql(absl::StrCat("SELECT count(*) FROM usage_events WHERE request_id IN (",
                                    InList(ids), ")"),
                       "12"),
            "12");
  CommandResult ctl = g_suite->Ctl({"spend", "--group-by", "team,feature", "--since", "1h",
                                    "--filter", "feature=" + feature, "--format", "json"});
  ASSERT_EQ(ctl.exit_code, 0) << ctl.output;
  json::value v = json::parse(ctl.output);
  const auto& rows = v.at("rows").as_array();
  ASSERT_EQ(rows.size(), 1u) << ctl.output;
  const auto& row = rows[0].as_object();
  EXPECT_EQ(row.at("team").as_string(), "beta") << ctl.output;
  EXPECT_EQ(row.at("feature").as_string(), feature);
  EXPECT_EQ(row.at("requests").to_number<int64_t>(), 12);
  EXPECT_EQ(row.at("input").to_number<int64_t>(), sum.input) << ctl.output;
  EXPECT_EQ(row.at("cached_input").to_number<int64_t>(), sum.cached) << ctl.output;
  EXPECT_EQ(row.at("output").to_number<int64_t>(), sum.output) << ctl.output;
  EXPECT_EQ(row.at("cost_usd").as_string(), FormatPicoUsd(cost)) << ctl.output;
}

// A provider refusing Tollgate's provider key (401/403) is the deployment's failure, not the
// client's: it is never passed through as if the client's key were wrong.
TEST(Gateway, UpstreamAuthFailureIsABadGatewayNotAClientAuthError) {
  HttpResponse r = Post(ChatBody("gpt-4o-mini", "hi [[mock: status=401]]"), Auth(Suite::kAlphaKey));
  ExpectOpenAiError(r, 502, "upstream_error");
  EXPECT_NE(r.body.find("credentials"), std::string::npos) << r.body;
}

// POST /v1/embeddings, OpenAI and Gemini upstreams: OpenAI-shaped answers, usage recorded (the
// Gemini API reports none, so the gateway's estimate is recorded and flagged estimated).
TEST(Embeddings, OpenAiAndGeminiUpstreamsAreServedAndRecorded) {
  const std::string body =
      R"({"model":"text-embedding-3-small","input":["the quick brown fox","jumps"],"dimensions":4})";
  auto r = HttpCall(g_suite->gateway_port(), "POST", "/v1/embeddings", body,
                    Auth(Suite::kAlphaKey, "embed"));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 200) << r->body << g_suite->Logs();
  json::value v = json::parse(r->body);
  ASSERT_EQ(v.at("data").as_array().size(), 2u);
  EXPECT_EQ(v.at("data").at(1).at("index").to_number<int64_t>(), 1);
  EXPECT_EQ(v.at("data").at(0).at("embedding").as_array().size(), 4u);
  const int64_t prompt = v.at("usage").at("prompt_tokens").to_number<int64_t>();
  ASSERT_GT(prompt, 0);
  // text-embedding-3-small: $0.02 per million input tokens = 20,000 pico-dollars per token.
  const std::string want =
      absl::StrCat("/v1/embeddings|mock-text-embedding-3-small|", prompt, "|0|f|",
                   FormatPicoUsd(prompt * 20'000));
  EXPECT_EQ(WaitForSql(absl::StrCat("SELECT endpoint, served_deployment, input_tokens, "
                                    "output_tokens, usage_estimated, cost_usd FROM usage_events WHERE "
                                    "request_id = '",
                                    r->header("x-tollgate-request-id"), "'"),
                       want),
            want);

  auto g = HttpCall(g_suite->gateway_port(), "POST", "/v1/embeddings",
                    R"({"model":"gemini-embedding-001","input":"hello world"})",
                    Auth(Suite::kAlphaKey, "embed"));
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_EQ(g->status, 200) << g->body << g_suite->Logs();
  json::value gv = json::parse(g->body);
  EXPECT_EQ(gv.at("object").as_string(), "list");
  EXPECT_EQ(gv.at("data").at(0).at("object").as_string(), "embedding");
  EXPECT_EQ(WaitForSql(absl::StrCat("SELECT served_deployment, usage_estimated, input_tokens > 0 FROM "
                                    "usage_events WHERE request_id = '",
                                    g->header("x-tollgate-request-id"), "'"),
                       "mock-gemini-embedding-001|t|t"),
            "mock-gemini-embedding-001|t|t");

  // A chat model cannot serve embeddings, and bad input names the field.
  auto chat_model = HttpCall(g_suite->gateway_port(), "POST", "/v1/embeddings",
                             R"({"model":"gpt-4o-mini","input":"x"})", Auth(Suite::kAlphaKey));
  ASSERT_TRUE(chat_model.ok());
  ExpectOpenAiError(*chat_model, 400);
  auto bad = HttpCall(g_suite->gateway_port(), "POST", "/v1/embeddings",
                      R"({"model":"text-embedding-3-small","input":[]})", Auth(Suite::kAlphaKey));
  ASSERT_TRUE(bad.ok());
  ExpectOpenAiError(*bad, 400);
  EXPECT_EQ(json::parse(bad->body).at("error").at("param").as_string(), "input");
}

// A parameter a dialect cannot honour is a 400 naming it (never silently dropped), and the
// Anthropic ingress answers in Anthropic's error shape, with x-api-key accepted.
TEST(Dialects, UnsupportedParametersAndMessagesErrors) {
  auto r = Post(R"({"model":"claude-sonnet-4","messages":[{"role":"user","content":"hi"}],
                    "logprobs":true})",
                Auth(Suite::kAlphaKey));
  ExpectOpenAiError(r, 400, "unsupported_parameter");
  EXPECT_EQ(json::parse(r.body).at("error").at("param").as_string(), "logprobs");
  EXPECT_NE(r.body.find("anthropic"), std::string::npos) << r.body;

  auto bad_key = HttpCall(g_suite->gateway_port(), "POST", "/v1/messages",
                          R"({"model":"claude-sonnet-4","max_tokens":10,
                              "messages":[{"role":"user","content":"hi"}]})",
                          {{"x-api-key", "nope"}, {"anthropic-version", "2023-06-01"}});
  ASSERT_TRUE(bad_key.ok());
  EXPECT_EQ(bad_key->status, 401);
  json::value e = json::parse(bad_key->body);
  EXPECT_EQ(e.at("type").as_string(), "error");
  EXPECT_EQ(e.at("error").at("type").as_string(), "authentication_error");

  auto missing = HttpCall(g_suite->gateway_port(), "POST", "/v1/messages",
                          R"({"model":"claude-sonnet-4","messages":[{"role":"user","content":"hi"}]})",
                          {{"x-api-key", Suite::kAlphaKey}, {"anthropic-version", "2023-06-01"}});
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 400);
  EXPECT_EQ(json::parse(missing->body).at("error").at("type").as_string(),
            "invalid_request_error");
  EXPECT_NE(missing->body.find("max_tokens"), std::string::npos) << missing->body;
}

TEST(Tollgatectl, CatalogListsModelsAndPrices) {
  CommandResult ctl = g_suite->Ctl({"catalog"});
  ASSERT_EQ(ctl.exit_code, 0) << ctl.output;
  EXPECT_NE(ctl.output.find("gpt-4o-mini"), std::string::npos) << ctl.output;
  EXPECT_NE(ctl.output.find("mock-gpt-4o"), std::string::npos) << ctl.output;
  EXPECT_NE(ctl.output.find("0.15"), std::string::npos) << ctl.output;
}

// The ledger is killed under traffic: requests keep succeeding and, once it is back, every event
// arrives exactly once.
TEST(Durability, LedgerRestartLosesAndDoublesNothing) {
  std::vector<std::string> ids;
  auto send = [&](int n, const std::string& tag) {
    for (int i = 0; i < n; ++i) {
      HttpResponse r = Post(ChatBody("gpt-4o-mini", absl::StrCat(tag, " ", i)),
                            Auth(Suite::kAlphaKey, "durability"));
      ASSERT_EQ(r.status, 200) << r.body;
      ids.push_back(r.header("x-tollgate-request-id"));
    }
  };
  send(10, "before");
  g_suite->KillLedger();
  send(20, "during");
  ASSERT_TRUE(g_suite->StartLedger().ok()) << g_suite->Logs();
  send(10, "after");
  const std::string want = absl::StrCat(ids.size(), "|", ids.size());
  EXPECT_EQ(WaitForSql(absl::StrCat("SELECT count(*), count(DISTINCT request_id) FROM usage_events"
                                    " WHERE request_id IN (", InList(ids), ")"),
                       want),
            want)
      << g_suite->Logs();
}

}  // namespace
}  // namespace tollgate::testing
