// Budgets and rate limits across gateway replicas (issue 8 items 2, 3, 6, 7; docs/budgets.md):
// real PostgreSQL, ledger, router, mock provider and three gateways sharing one ledger. Budgets and
// limits are set with tollgatectl, hammered concurrently through every gateway, and the spend the
// ledger recorded is compared with the limit to the pico-dollar.

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/testing/http_client.h"
#include "tests/testing/suite.h"

namespace tollgate::testing {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kAdmin = TestTokens::kAdmin;
constexpr const char* kAlphaLead = TestTokens::kAlphaLead;
constexpr const char* kBetaLead = TestTokens::kBetaLead;
constexpr const char* kAlphaViewer = TestTokens::kAlphaViewer;
constexpr const char* kGatewayToken = TestTokens::kGateway;

std::string ChatBody(int max_tokens, const std::string& prompt = "how much is this?") {
  return json::serialize(json::object{
      {"model", "gpt-4o"},
      {"max_tokens", max_tokens},
      {"messages", json::array{json::object{{"role", "user"}, {"content", prompt}}}}});
}

class BudgetTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    SuiteOptions options;
    ASSERT_TRUE(TestTokens::Enable(dir_->path(), options).ok());
    options.ledger_flags.push_back("--quota_state_interval_ms=200");
    options.gateway_flags.push_back("--quota_report_interval_ms=100");
    // A model whose rule moves a team past half its budget to the cheaper deployment.
    options.catalog_template = Suite::DefaultCatalogTemplate() + R"yaml(  - name: frugal
    deployments: [mock-gpt-4o, mock-gpt-4o-mini]
    rules:
      - name: budget-saver
        when: {budget_used_percent: 50}
        deployments: [mock-gpt-4o-mini]
)yaml";
    auto suite = Suite::Start(options);
    ASSERT_TRUE(suite.ok()) << suite.status();
    suite_ = suite->release();
    ports_.push_back(suite_->gateway_port());
    for (const char* name : {"gateway2", "gateway3"}) {
      int port = 0;
      auto gw = suite_->StartExtraGateway(name, &port);
      ASSERT_TRUE(gw.ok()) << gw.status();
      extra_.push_back(gw->release());
      ports_.push_back(port);
    }
    for (const char* team : {"alpha", "beta", "gamma", "delta"}) {
      CommandResult r = Ctl(kAdmin, {"teams", "create", team});
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
  }

  static void TearDownTestSuite() {
    for (Process* p : extra_) {
      EXPECT_EQ(p->Stop(), 0) << p->LogTail();
      delete p;
    }
    extra_.clear();
    delete suite_;
    delete dir_;
  }

  static CommandResult Ctl(const std::string& token, std::vector<std::string> args) {
    args.push_back("--token=" + token);
    return suite_->Ctl(args);
  }

  // Mints a key with tollgatectl; returns (id, secret).
  static std::pair<std::string, std::string> CreateKey(std::vector<std::string> args) {
    args.insert(args.begin(), {"keys", "create", "--format=json"});
    CommandResult r = Ctl(kAdmin, args);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    json::error_code ec;
    json::value v = json::parse(r.output, ec);
    if (ec || r.exit_code != 0) {
      ADD_FAILURE() << r.output;
      return {};
    }
    return {std::string(v.at("key").at("id").as_string()), std::string(v.at("secret").as_string())};
  }

  // Waits until every gateway holds `n` hard quotas from the ledger's snapshot.
  static void AwaitQuotas(int n) {
    const std::string series = "tollgate_gateway_quota_state{state=\"quotas\"}";
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    for (int port : ports_) {
      while (ScrapeMetric(port, series) != n && Clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      ASSERT_EQ(ScrapeMetric(port, series), n) << "gateway on port " << port;
    }
  }

  // Waits until the ledger holds `n` successful events of `team`.
  static void AwaitEvents(const std::string& team, int n) {
    const std::string sql = absl::StrCat(
        "SELECT count(*) FROM usage_events WHERE team = '", team, "' AND http_status = 200");
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    std::string count;
    while (Clock::now() < deadline) {
      absl::StatusOr<std::string> out = suite_->Sql(sql);
      count = out.ok() ? std::string(absl::StripAsciiWhitespace(*out)) : out.status().ToString();
      if (count == absl::StrCat(n)) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "ledger has " << count << " events of " << team << ", expected " << n;
  }

  // Seconds into the current UTC minute; waits for the next minute when fewer than `need` remain,
  // so a per-minute test stays inside one window.
  static void StayInOneMinute(int need) {
    const std::time_t now = std::time(nullptr);
    if (60 - now % 60 < need) {
      std::this_thread::sleep_for(std::chrono::seconds(60 - now % 60));
    }
  }

  static std::vector<int> ports_;
  static std::vector<Process*> extra_;
  static Suite* suite_;
  static TempDir* dir_;
};

std::vector<int> BudgetTest::ports_;
std::vector<Process*> BudgetTest::extra_;
Suite* BudgetTest::suite_ = nullptr;
TempDir* BudgetTest::dir_ = nullptr;

TEST_F(BudgetTest, HardBudgetHoldsAcrossThreeGatewaysUnderConcurrentLoad) {
  // The three commands of docs/budgets.md: a key, a budget, limits.
  auto [key_id, secret] = CreateKey({"--team", "alpha", "--name", "load"});
  ASSERT_FALSE(secret.empty());
  CommandResult set = Ctl(kAlphaLead, {"budgets", "set", "--team", "alpha", "--usd", "0.05",
                                       "--period", "day"});
  ASSERT_EQ(set.exit_code, 0) << set.output;
  CommandResult limits =
      Ctl(kAlphaLead, {"limits", "set", "--team", "alpha", "--rpm", "100000", "--tpm", "50000000"});
  ASSERT_EQ(limits.exit_code, 0) << limits.output;
  AwaitQuotas(3);

  // 3 gateways x 8 clients, each sending until the budget refuses it three times in a row.
  std::mutex mu;
  std::map<int, int> statuses;
  std::vector<std::string> bad;
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 24; ++c) {
    clients.emplace_back([&, c] {
      const int port = ports_[static_cast<size_t>(c) % ports_.size()];
      int refusals_in_a_row = 0;
      for (int i = 0; i < 400 && refusals_in_a_row < 3; ++i) {
        auto r = HttpCall(port, "POST", "/v1/chat/completions", ChatBody(40),
                          {{"authorization", "Bearer " + secret}}, 10000);
        std::lock_guard lock(mu);
        if (!r.ok()) {
          bad.push_back(r.status().ToString());
          return;
        }
        ++statuses[r->status];
        if (r->status == 200) {
          ++ok;
          refusals_in_a_row = 0;
          continue;
        }
        ++refusals_in_a_row;
        if (r->status != 429 || !absl::StrContains(r->body, "\"budget_exceeded\"") ||
            !absl::StrContains(r->body, "\"insufficient_quota\"") ||
            r->header("x-should-retry") != "false" || r->header("retry-after").empty()) {
          bad.push_back(absl::StrCat(r->status, " ", r->body));
        }
      }
    });
  }
  for (std::thread& t : clients) t.join();
  ASSERT_TRUE(bad.empty()) << bad.size() << " unexpected answers, first: " << bad.front();
  ASSERT_GT(statuses[429], 0) << "the budget never refused";
  AwaitEvents("alpha", ok.load());

  // The spend of record, to the pico-dollar, against the limit.
  absl::StatusOr<std::string> spent_text = suite_->Sql(
      "SELECT (sum(cost_usd) * 1000000000000)::bigint FROM usage_events WHERE team = 'alpha'");
  ASSERT_TRUE(spent_text.ok()) << spent_text.status();
  int64_t spent_pico = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(*spent_text), &spent_pico))
      << *spent_text;
  const int64_t limit_pico = 50'000'000'000;  // 0.05 USD
  std::printf("hard budget 0.05 USD, 3 gateways x 8 clients: %d served, %d refused, spent %.9f USD "
              "(%.1f%% of the budget)\n",
              ok.load(), statuses[429], static_cast<double>(spent_pico) / 1e12,
              100.0 * static_cast<double>(spent_pico) / static_cast<double>(limit_pico));
  EXPECT_LE(spent_pico, limit_pico) << "a hard budget was overrun";
  // Leases only hold back what no pending request could use: most of the budget gets spent.
  EXPECT_GE(spent_pico, limit_pico * 8 / 10);
  // No settlement ever exceeded its reservation: the bound of docs/budgets.md held at zero.
  for (int port : ports_) {
    EXPECT_LE(ScrapeMetric(port, "tollgate_gateway_quota_overrun_units_total{unit=\"usd\"}"), 0);
  }

  // The budget's state as the team sees it.
  CommandResult list = Ctl(kAlphaViewer, {"budgets", "list", "--format=csv"});
  ASSERT_EQ(list.exit_code, 0) << list.output;
  EXPECT_TRUE(absl::StrContains(list.output, "alpha")) << list.output;
  EXPECT_TRUE(absl::StrContains(list.output, "0.05")) << list.output;
}

TEST_F(BudgetTest, KeyRpmHoldsAcrossGatewaysWithOpenAiHeaders) {
  auto [key_id, secret] = CreateKey({"--team", "beta", "--name", "rpm", "--rpm", "12"});
  ASSERT_FALSE(secret.empty());
  AwaitQuotas(4);  // alpha's three + this key's rpm
  StayInOneMinute(20);
  int served = 0;
  int limited = 0;
  for (int i = 0; i < 30; ++i) {
    const int port = ports_[static_cast<size_t>(i) % ports_.size()];
    auto r = HttpCall(port, "POST", "/v1/chat/completions", ChatBody(5),
                      {{"authorization", "Bearer " + secret}}, 10000);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->header("x-ratelimit-limit-requests"), "12") << r->status << " " << r->body;
    EXPECT_FALSE(r->header("x-ratelimit-reset-requests").empty());
    if (r->status == 200) {
      ++served;
      int64_t remaining = -1;
      EXPECT_TRUE(absl::SimpleAtoi(r->header("x-ratelimit-remaining-requests"), &remaining));
      // Each gateway knows the ledger's remainder as of its last lease call plus its own unused
      // lease (docs/budgets.md): never negative, never the whole limit once one was served.
      EXPECT_GE(remaining, 0);
      EXPECT_LT(remaining, 12);
    } else {
      ASSERT_EQ(r->status, 429) << r->body;
      ++limited;
      EXPECT_TRUE(absl::StrContains(r->body, "\"rate_limit_exceeded\"")) << r->body;
      EXPECT_TRUE(absl::StrContains(r->body, "\"type\":\"requests\"")) << r->body;
      int64_t retry_after = 0;
      EXPECT_TRUE(absl::SimpleAtoi(r->header("retry-after"), &retry_after));
      EXPECT_GE(retry_after, 1);
      EXPECT_LE(retry_after, 60);
      EXPECT_EQ(r->header("x-ratelimit-remaining-requests"), "0");
    }
  }
  EXPECT_EQ(served, 12) << "12 requests per minute, shared by three gateways";
  EXPECT_EQ(limited, 18);
}

TEST_F(BudgetTest, TeamTpmHoldsAcrossGateways) {
  auto [key_id, secret] = CreateKey({"--team", "gamma", "--name", "tpm"});
  ASSERT_FALSE(secret.empty());
  CommandResult set = Ctl(kAdmin, {"limits", "set", "--team", "gamma", "--tpm", "3000"});
  ASSERT_EQ(set.exit_code, 0) << set.output;
  AwaitQuotas(5);
  StayInOneMinute(20);
  std::atomic<int> served{0};
  std::atomic<int> limited{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 6; ++c) {
    clients.emplace_back([&, c] {
      const int port = ports_[static_cast<size_t>(c) % ports_.size()];
      for (int i = 0; i < 40; ++i) {
        auto r = HttpCall(port, "POST", "/v1/chat/completions", ChatBody(30),
                          {{"authorization", "Bearer " + secret}}, 10000);
        if (!r.ok()) continue;
        if (r->status == 200) ++served;
        if (r->status == 429 && absl::StrContains(r->body, "\"type\":\"tokens\"")) ++limited;
      }
    });
  }
  for (std::thread& t : clients) t.join();
  ASSERT_GT(limited.load(), 0);
  AwaitEvents("gamma", served.load());
  absl::StatusOr<std::string> tokens = suite_->Sql(
      "SELECT sum(input_tokens + output_tokens) FROM usage_events WHERE team = 'gamma'");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  int64_t used = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(*tokens), &used)) << *tokens;
  std::printf("team tpm 3000, 3 gateways x 2 clients: %d served, %d refused, %lld tokens\n",
              served.load(), limited.load(), static_cast<long long>(used));
  EXPECT_LE(used, 3000);
  EXPECT_GE(used, 3000 / 2);
}

TEST_F(BudgetTest, RoutingMovesATeamToCheaperDeploymentsPastHalfItsBudget) {
  auto [key_id, secret] = CreateKey({"--team", "delta", "--name", "frugal"});
  ASSERT_FALSE(secret.empty());
  CommandResult set = Ctl(kAdmin, {"budgets", "set", "--team", "delta", "--usd", "0.01",
                                   "--period", "day"});
  ASSERT_EQ(set.exit_code, 0) << set.output;
  AwaitQuotas(6);
  std::vector<std::string> served;
  for (int i = 0; i < 300; ++i) {
    auto r = HttpCall(ports_[0], "POST", "/v1/chat/completions",
                      absl::StrReplaceAll(ChatBody(40), {{"gpt-4o", "frugal"}}),
                      {{"authorization", "Bearer " + secret}}, 10000);
    ASSERT_TRUE(r.ok()) << r.status();
    if (r->status == 429) break;
    ASSERT_EQ(r->status, 200) << r->body;
    served.push_back(r->header("x-tollgate-deployment"));
  }
  // Strong model first, then -- once the gateway's leases show half the budget used -- only the
  // cheap one, until the budget is spent.
  ASSERT_FALSE(served.empty());
  EXPECT_EQ(served.front(), "mock-gpt-4o");
  const auto first_cheap = std::find(served.begin(), served.end(), "mock-gpt-4o-mini");
  ASSERT_NE(first_cheap, served.end()) << "never moved to the cheaper deployment";
  EXPECT_EQ(std::count(first_cheap, served.end(), "mock-gpt-4o"), 0);
  const int64_t strong = first_cheap - served.begin();
  AwaitEvents("delta", static_cast<int>(served.size()));
  absl::StatusOr<std::string> spent = suite_->Sql(
      "SELECT (sum(cost_usd) * 1000000000000)::bigint FROM usage_events "
      "WHERE team = 'delta' AND served_deployment = 'mock-gpt-4o'");
  ASSERT_TRUE(spent.ok()) << spent.status();
  int64_t strong_pico = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(*spent), &strong_pico)) << *spent;
  std::printf("budget rule at 50%% of 0.01 USD: %lld requests on mock-gpt-4o (%.1f%% of the "
              "budget), %zu on mock-gpt-4o-mini\n",
              static_cast<long long>(strong), 100.0 * static_cast<double>(strong_pico) / 1e10,
              served.size() - static_cast<size_t>(strong));
  // The switch comes at half the budget, within one request's cost and the lease's rounding.
  EXPECT_GE(strong_pico, 4'000'000'000);  // >= 40% of 0.01 USD
  EXPECT_LE(strong_pico, 6'000'000'000);  // <= 60%
}

TEST_F(BudgetTest, BudgetsAreScopedToTheCallersTeam) {
  // A team-admin sets its own team's budgets only; a viewer sets nothing; gateways list nothing.
  CommandResult other = Ctl(kBetaLead, {"budgets", "set", "--team", "alpha", "--usd", "1",
                                        "--period", "month"});
  EXPECT_NE(other.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(other.output, "PERMISSION_DENIED")) << other.output;
  CommandResult viewer = Ctl(kAlphaViewer, {"budgets", "set", "--team", "alpha", "--usd", "1",
                                            "--period", "month"});
  EXPECT_NE(viewer.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(viewer.output, "PERMISSION_DENIED")) << viewer.output;
  CommandResult org = Ctl(kAlphaLead, {"budgets", "set", "--org", "--usd", "1", "--period",
                                       "month"});
  EXPECT_NE(org.exit_code, 0);
  CommandResult gateway = Ctl(kGatewayToken, {"budgets", "list"});
  EXPECT_NE(gateway.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(gateway.output, "PERMISSION_DENIED")) << gateway.output;
  CommandResult bad = Ctl(kAdmin, {"budgets", "set", "--team", "alpha", "--usd", "-3",
                                   "--period", "month"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(bad.output, "limit")) << bad.output;

  CommandResult beta = Ctl(kBetaLead, {"budgets", "set", "--team", "beta", "--usd", "0.0001",
                                       "--period", "month", "--soft", "--alerts", "50,100"});
  ASSERT_EQ(beta.exit_code, 0) << beta.output;
  CommandResult seen = Ctl(kAlphaViewer, {"budgets", "list", "--format=csv"});
  ASSERT_EQ(seen.exit_code, 0) << seen.output;
  EXPECT_FALSE(absl::StrContains(seen.output, "beta")) << seen.output;
  CommandResult audit = Ctl(kAdmin, {"audit", "--format=json"});
  ASSERT_EQ(audit.exit_code, 0) << audit.output;
  EXPECT_TRUE(absl::StrContains(audit.output, "quota.set")) << audit.output;
}

}  // namespace
}  // namespace tollgate::testing
