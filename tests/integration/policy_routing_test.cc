// Issue 6 "Done when", through the real processes: three mock providers with different prices
// and latencies behind one gateway. `auto` and `least-cost` send simple requests to the cheap
// one and hard ones (reasoning, code) to the strong one; killing a provider or the router causes
// no client-visible error; `tollgatectl route explain` says why each choice was made.

#include <boost/json.hpp>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/http_client.h"
#include "tests/testing/process.h"
#include "tests/testing/suite.h"

namespace tollgate::testing {
namespace {

namespace json = boost::json;

// $MOCK is the suite's own mock (cheap, fast); $MID and $STRONG are two more mock processes with
// simulated latency. Quality scores make only `strong` good enough for hard classes.
constexpr const char* kCatalog = R"yaml(
providers:
  - {name: cheap-co, dialect: openai, base_url: "http://127.0.0.1:$MOCK/v1"}
  - {name: mid-co, dialect: openai, base_url: "http://127.0.0.1:$MID/v1"}
  - {name: strong-co, dialect: openai, base_url: "http://127.0.0.1:$STRONG/v1"}
deployments:
  - id: cheap
    provider: cheap-co
    upstream_model: gpt-4o-mini
    prices: {input: "0.10", output: "0.40"}
    capabilities: [chat, stream, tools]
    quality: {simple: 80, general: 60, code: 40, reasoning: 30, tools: 50, long: 40}
  - id: mid
    provider: mid-co
    upstream_model: gpt-4o-mini
    prices: {input: "1.00", output: "4.00"}
    capabilities: [chat, stream, tools]
    quality: {simple: 85, general: 80, code: 70, reasoning: 60, tools: 75, long: 70}
  - id: strong
    provider: strong-co
    upstream_model: gpt-4o
    prices: {input: "5.00", output: "20.00"}
    capabilities: [chat, stream, tools]
    quality: {default: 95}
models:
  - name: auto
    deployments: [strong, mid, cheap]
    policy:
      type: auto
      classes:
        simple: least-cost
        code: {type: cost-quality, min_quality: 90}
        reasoning: {type: cost-quality, min_quality: 90}
        default: {type: cost-quality, min_quality: 60}
  - name: cheapest
    deployments: [strong, mid, cheap]
    policy: least-cost
)yaml";

struct Env {
  std::unique_ptr<Process> mid, strong;
  std::unique_ptr<Suite> suite;
};
Env* g_env = nullptr;

class PolicyEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    env_ = std::make_unique<Env>();
    const int mid_port = PickFreePort();
    const int strong_port = PickFreePort();
    auto start_mock = [&](std::unique_ptr<Process>& slot, int port, int latency_ms,
                          const std::string& name) {
      auto p = Process::Start(
          {Suite::Binary("tollgate-mock-provider"), absl::StrCat("--listen=127.0.0.1:", port),
           absl::StrCat("--latency_ms=", latency_ms)},
          ::testing::TempDir() + "/" + name + ".log");
      ASSERT_TRUE(p.ok()) << p.status();
      slot = std::move(*p);
      ASSERT_TRUE(WaitForPort(port, std::chrono::seconds(10)).ok());
    };
    start_mock(env_->mid, mid_port, 15, "mid");
    start_mock(env_->strong, strong_port, 30, "strong");
    SuiteOptions options;
    options.catalog_template = kCatalog;
    options.catalog_vars = {{"$MID", absl::StrCat(mid_port)},
                            {"$STRONG", absl::StrCat(strong_port)}};
    options.router_flags = {"--health_tick_ms=100", "--watch_heartbeat_ms=500"};
    options.gateway_flags = {"--route_timeout_ms=300", "--retry_backoff_ms=5"};
    auto suite = Suite::Start(options);
    ASSERT_TRUE(suite.ok()) << suite.status();
    env_->suite = std::move(*suite);
    g_env = env_.get();
  }
  void TearDown() override {
    g_env = nullptr;
    env_.reset();
  }

 private:
  std::unique_ptr<Env> env_;
};

const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new PolicyEnvironment);

const char* const kSimplePrompts[] = {"What is the capital of France?", "Say hello politely.",
                                      "Name three colours.", "Translate 'thank you' to German."};
const char* const kHardPrompts[] = {
    "Prove step by step that the square root of 2 is irrational.",
    "Derive the closed form of the sum of the first n cubes and prove it by induction.",
    "Fix this code:\n```python\ndef f(x):\n    return x +\n```\nand explain the bug."};

HttpResponse Chat(const std::string& model, const std::string& prompt, bool stream = false) {
  json::object body{{"model", model},
                    {"messages", json::array{json::object{{"role", "user"}, {"content", prompt}}}}};
  if (stream) body["stream"] = true;
  auto r =
      HttpCall(g_env->suite->gateway_port(), "POST", "/v1/chat/completions", json::serialize(body),
               {{"authorization", std::string("Bearer ") + Suite::kAlphaKey}});
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : HttpResponse{};
}

// Sends `n` rounds of `prompts` to `model` and counts the serving deployments; every answer must
// be a success.
std::map<std::string, int> ServedBy(const std::string& model, const auto& prompts, int rounds) {
  std::map<std::string, int> served;
  for (int round = 0; round < rounds; ++round) {
    for (const char* prompt : prompts) {
      const HttpResponse r = Chat(model, prompt, round % 2 == 1);
      EXPECT_EQ(r.status, 200) << r.body << g_env->suite->Logs();
      if (r.status == 200) ++served[r.header("x-tollgate-deployment")];
    }
  }
  return served;
}

TEST(PolicyRouting, AutoSendsSimpleRequestsToTheCheapDeploymentAndHardOnesToTheStrongOne) {
  ASSERT_NE(g_env, nullptr);
  std::map<std::string, int> simple = ServedBy("auto", kSimplePrompts, 5);
  EXPECT_EQ(simple["cheap"], 20) << "simple requests: cheap " << simple["cheap"] << ", mid "
                                 << simple["mid"] << ", strong " << simple["strong"];
  std::map<std::string, int> hard = ServedBy("auto", kHardPrompts, 4);
  EXPECT_EQ(hard["strong"], 12) << "hard requests: cheap " << hard["cheap"] << ", mid "
                                << hard["mid"] << ", strong " << hard["strong"];

  // The route reason names the policy that decided.
  const HttpResponse r = Chat("auto", kHardPrompts[0]);
  EXPECT_NE(r.header("x-tollgate-route-reason").find("cost-quality"), std::string::npos)
      << r.header("x-tollgate-route-reason");
}

TEST(PolicyRouting, LeastCostPrefersTheCheapDeploymentAndTheLedgerShowsTheSaving) {
  ASSERT_NE(g_env, nullptr);
  std::map<std::string, int> served = ServedBy("cheapest", kHardPrompts, 2);
  EXPECT_EQ(served["cheap"], 6);
  // The same prompt costs less on the cheap deployment than on the strong one, as recorded.
  const HttpResponse cheap = Chat("cheapest", kHardPrompts[1]);
  const HttpResponse strong = Chat("auto", kHardPrompts[1]);
  ASSERT_EQ(cheap.header("x-tollgate-deployment"), "cheap");
  ASSERT_EQ(strong.header("x-tollgate-deployment"), "strong");
  EXPECT_LT(std::stod(cheap.header("x-tollgate-cost-usd")),
            std::stod(strong.header("x-tollgate-cost-usd")));
}

TEST(PolicyRouting, RouteExplainTellsWhyEachChoiceWasMade) {
  ASSERT_NE(g_env, nullptr);
  CommandResult hard = g_env->suite->Ctl({"route", "explain", "--model=auto", "--team=alpha",
                                          "--prompt-tokens=40", "--marker=reasoning"});
  ASSERT_EQ(hard.exit_code, 0) << hard.output;
  EXPECT_NE(hard.output.find("reasoning"), std::string::npos) << hard.output;
  EXPECT_NE(hard.output.find("cost-quality"), std::string::npos) << hard.output;
  // strong is the first candidate; cheap and mid are listed with why they rank below it.
  const size_t strong_at = hard.output.find("strong");
  ASSERT_NE(strong_at, std::string::npos) << hard.output;
  EXPECT_LT(strong_at, hard.output.find("cheap")) << hard.output;
  EXPECT_NE(hard.output.find("quality"), std::string::npos) << hard.output;

  CommandResult simple =
      g_env->suite->Ctl({"route", "explain", "--model=auto", "--team=alpha", "--prompt-tokens=10"});
  ASSERT_EQ(simple.exit_code, 0) << simple.output;
  EXPECT_NE(simple.output.find("simple"), std::string::npos) << simple.output;
  EXPECT_NE(simple.output.find("least-cost"), std::string::npos) << simple.output;
  const size_t cheap_at = simple.output.find("cheap");
  ASSERT_NE(cheap_at, std::string::npos) << simple.output;
  EXPECT_LT(cheap_at, simple.output.find("strong")) << simple.output;
}

TEST(PolicyRouting, KillingTheCheapProviderCausesNoClientError) {
  ASSERT_NE(g_env, nullptr);
  g_env->suite->KillMock();
  // Every request succeeds: the gateway falls back past the dead provider at once, and the
  // router's circuit soon stops offering it first.
  std::map<std::string, int> served = ServedBy("auto", kSimplePrompts, 5);
  EXPECT_EQ(served["cheap"], 0);
  EXPECT_EQ(served["mid"] + served["strong"], 20);
  EXPECT_GT(served["mid"], 0) << "the next cheapest deployment takes over";
}

TEST(PolicyRouting, KillingTheRouterCausesNoClientError) {
  ASSERT_NE(g_env, nullptr);
  g_env->suite->KillRouter();
  std::map<std::string, int> simple = ServedBy("auto", kSimplePrompts, 3);
  std::map<std::string, int> hard = ServedBy("cheapest", kHardPrompts, 2);
  int total = 0;
  for (const auto& [deployment, n] : simple) total += n;
  for (const auto& [deployment, n] : hard) total += n;
  EXPECT_EQ(total, 18);
}

}  // namespace
}  // namespace tollgate::testing
