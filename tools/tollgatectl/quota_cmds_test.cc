#include "tools/tollgatectl/quota_cmds.h"

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "tollgate/v1/quota.grpc.pb.h"

namespace tollgate::tools::ctl {
namespace {

using ::testing::HasSubstr;

GetEnv Env(std::map<std::string, std::string> vars) {
  return [vars](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

absl::StatusOr<QuotaCommand> Parse(std::vector<std::string> args) {
  return ParseQuotaCommand(args, Env({{"TOLLGATE_ADMIN_TOKEN", "secret"}}));
}

v1::SetQuotaRequest Request(const std::string& text) {
  v1::SetQuotaRequest r;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &r)) << text;
  return r;
}

// The one SetQuotaRequest that `args` produce, compared with the text-format `expected`.
void ExpectSets(const std::vector<std::string>& args, const std::vector<std::string>& expected) {
  absl::StatusOr<QuotaCommand> cmd = Parse(args);
  ASSERT_TRUE(cmd.ok()) << cmd.status();
  EXPECT_EQ(cmd->kind, QuotaCommand::Kind::kSet);
  ASSERT_EQ(cmd->set.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_TRUE(
        google::protobuf::util::MessageDifferencer::Equals(cmd->set[i], Request(expected[i])))
        << "got: " << cmd->set[i].ShortDebugString() << "\nwant: " << expected[i];
  }
}

std::string ErrorOf(const std::vector<std::string>& args) {
  absl::StatusOr<QuotaCommand> cmd = Parse(args);
  EXPECT_FALSE(cmd.ok()) << args[0] << " " << args[1];
  if (cmd.ok()) return "";
  EXPECT_EQ(cmd.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(cmd.status().message());
}

TEST(QuotaCmds, RecognisesItsCommands) {
  EXPECT_TRUE(IsQuotaCommand({"budgets", "set", "--org", "--usd", "5"}));
  EXPECT_TRUE(IsQuotaCommand({"--ledger_admin=h:1", "limits"}));
  EXPECT_TRUE(IsQuotaCommand({"help", "budgets"}));
  EXPECT_FALSE(IsQuotaCommand({"keys", "list"}));
  EXPECT_FALSE(IsQuotaCommand({"spend"}));
  EXPECT_FALSE(IsQuotaCommand({}));
}

TEST(QuotaCmds, BudgetsSetForEachScope) {
  ExpectSets({"budgets", "set", "--team", "alpha", "--usd", "100", "--period", "month"},
             {R"pb(quota {
                     scope: QUOTA_SCOPE_TEAM
                     team: "alpha"
                     unit: QUOTA_UNIT_USD
                     period: QUOTA_PERIOD_MONTH
                     limit: "100"
                     hard: true
                   })pb"});
  ExpectSets({"budgets", "set", "--team=alpha", "--key=1a2b3c4d", "--tokens=5000000",
              "--period=day", "--soft", "--alerts", "100, 50,80", "--name", "ci key"},
             {R"pb(quota {
                     scope: QUOTA_SCOPE_KEY
                     team: "alpha"
                     subject: "1a2b3c4d"
                     unit: QUOTA_UNIT_TOKENS
                     period: QUOTA_PERIOD_DAY
                     limit: "5000000"
                     hard: false
                     alert_percents: [ 50, 80, 100 ]
                     name: "ci key"
                   })pb"});
  // Feature and customer budgets need no team; the USD limit is sent in canonical form.
  ExpectSets({"budgets", "set", "--feature", "search", "--usd", "12.50", "--period", "week"},
             {R"pb(quota {
                     scope: QUOTA_SCOPE_FEATURE
                     subject: "search"
                     unit: QUOTA_UNIT_USD
                     period: QUOTA_PERIOD_WEEK
                     limit: "12.5"
                     hard: true
                   })pb"});
  ExpectSets({"budgets", "set", "--team", "beta", "--customer", "acme", "--usd", "0.000000000001",
              "--period", "day"},
             {R"pb(quota {
                     scope: QUOTA_SCOPE_CUSTOMER
                     team: "beta"
                     subject: "acme"
                     unit: QUOTA_UNIT_USD
                     period: QUOTA_PERIOD_DAY
                     limit: "0.000000000001"
                     hard: true
                   })pb"});
  ExpectSets({"budgets", "set", "--org", "--usd", "9000000", "--period", "month", "--soft=false"},
             {R"pb(quota {
                     scope: QUOTA_SCOPE_ORG
                     unit: QUOTA_UNIT_USD
                     period: QUOTA_PERIOD_MONTH
                     limit: "9000000"
                     hard: true
                   })pb"});
}

TEST(QuotaCmds, LimitsSetMakesOneRequestPerLimit) {
  ExpectSets({"limits", "set", "--team", "alpha", "--rpm", "600", "--tpm", "200000"},
             {R"pb(quota {
                     scope: QUOTA_SCOPE_TEAM
                     team: "alpha"
                     unit: QUOTA_UNIT_REQUESTS
                     period: QUOTA_PERIOD_MINUTE
                     limit: "600"
                     hard: true
                   })pb",
              R"pb(quota {
                     scope: QUOTA_SCOPE_TEAM
                     team: "alpha"
                     unit: QUOTA_UNIT_TOKENS
                     period: QUOTA_PERIOD_MINUTE
                     limit: "200000"
                     hard: true
                   })pb"});
  ExpectSets({"limits", "set", "--tpm=1000", "--team=alpha", "--key=1a2b3c4d"},
             {R"pb(quota {
                     scope: QUOTA_SCOPE_KEY
                     team: "alpha"
                     subject: "1a2b3c4d"
                     unit: QUOTA_UNIT_TOKENS
                     period: QUOTA_PERIOD_MINUTE
                     limit: "1000"
                     hard: true
                   })pb"});
}

TEST(QuotaCmds, ListDeleteGlobalsAndHelp) {
  auto budgets = ParseQuotaCommand({"--ledger_admin=h:1", "budgets", "--team", "alpha", "--format",
                                    "csv", "--timeout=3s", "--token=t2"},
                                   Env({{"TOLLGATE_ADMIN_TOKEN", "t1"}}));
  ASSERT_TRUE(budgets.ok()) << budgets.status();
  EXPECT_EQ(budgets->kind, QuotaCommand::Kind::kList);
  EXPECT_FALSE(budgets->limits);
  EXPECT_EQ(budgets->list.team(), "alpha");
  EXPECT_FALSE(budgets->list.limits_only());
  EXPECT_FALSE(budgets->list.include_key_limits());
  EXPECT_EQ(budgets->format, Format::kCsv);
  EXPECT_EQ(budgets->global.ledger_admin, "h:1");
  EXPECT_EQ(budgets->global.timeout, absl::Seconds(3));
  EXPECT_EQ(budgets->global.token, "t2");  // the flag beats the environment

  auto limits = Parse({"limits", "list", "--format=json"});
  ASSERT_TRUE(limits.ok()) << limits.status();
  EXPECT_TRUE(limits->limits);
  EXPECT_TRUE(limits->list.limits_only());
  EXPECT_TRUE(limits->list.include_key_limits());
  EXPECT_EQ(limits->list.team(), "");
  EXPECT_EQ(limits->format, Format::kJson);
  EXPECT_EQ(limits->global.token, "secret");

  auto del = Parse({"limits", "delete", "k-1a2b3c4d-rpm"});
  ASSERT_TRUE(del.ok()) << del.status();
  EXPECT_EQ(del->kind, QuotaCommand::Kind::kDelete);
  EXPECT_EQ(del->remove.id(), "k-1a2b3c4d-rpm");

  for (const std::vector<std::string>& help :
       std::vector<std::vector<std::string>>{{"help", "budgets"}, {"limits", "set", "--help"}}) {
    auto h = ParseQuotaCommand(help, Env({}));  // no token needed for help
    ASSERT_TRUE(h.ok()) << h.status();
    EXPECT_EQ(h->kind, QuotaCommand::Kind::kHelp);
  }
  EXPECT_THAT(QuotaUsage(), HasSubstr("tollgatectl budgets set --team T"));
  EXPECT_THAT(QuotaUsage(), HasSubstr("tollgatectl limits set --team T [--key ID]"));
}

TEST(QuotaCmds, ErrorMessagesNameTheProblem) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"budgets", "set", "--team=a", "--usd=1", "--period=day", "--bogus=1"},
       "unknown flag --bogus for budgets set"},
      {{"budgets", "set", "--usd=1", "--period=day"}, "budgets set needs --team T"},
      {{"budgets", "set", "--key=k", "--usd=1", "--period=day"}, "--key needs --team"},
      {{"budgets", "set", "--org", "--team=a", "--usd=1", "--period=day"}, "takes no --team"},
      {{"budgets", "set", "--team=a", "--key=k", "--feature=f", "--usd=1", "--period=day"},
       "at most one of --key, --feature, --customer and --org"},
      {{"budgets", "set", "--team=a", "--usd=1", "--tokens=5", "--period=day"},
       "either --usd or --tokens, not both"},
      {{"budgets", "set", "--team=a", "--period=day"}, "needs --usd AMOUNT or --tokens N"},
      {{"budgets", "set", "--team=a", "--usd=1"}, "needs --period day|week|month"},
      {{"budgets", "set", "--team=a", "--usd=1", "--period=year"}, "bad --period 'year'"},
      {{"budgets", "set", "--team=a", "--tokens=9", "--period=minute"}, "bad --period 'minute'"},
      {{"budgets", "set", "--team=a", "--usd=0", "--period=day"},
       "bad --usd '0': must be greater than zero"},
      {{"budgets", "set", "--team=a", "--usd", "-5", "--period=day"}, "bad --usd '-5'"},
      {{"budgets", "set", "--team=a", "--usd=9000000.01", "--period=day"}, "at most 9000000 USD"},
      {{"budgets", "set", "--team=a", "--tokens=1.5", "--period=day"}, "bad --tokens '1.5'"},
      {{"budgets", "set", "--team=a", "--usd=1", "--period=day", "--alerts=50,x"},
       "bad --alerts '50,x'"},
      {{"budgets", "set", "--team=a", "--usd=1", "--period=day", "--alerts=80,80"},
       "80 given twice"},
      {{"budgets", "set", "--team=", "--usd=1", "--period=day"}, "--team must not be empty"},
      {{"budgets", "set", "--team=a", "--usd=1", "--period=day", "--soft=maybe"},
       "bad --soft 'maybe'"},
      {{"budgets", "set", "--team=a", "--rpm=5"}, "unknown flag --rpm for budgets set"},
      {{"limits", "set", "--rpm=5"}, "limits set needs --team T"},
      {{"limits", "set", "--team=a"}, "needs --rpm N and/or --tpm N"},
      {{"limits", "set", "--team=a", "--rpm=0"}, "bad --rpm '0': must be greater than zero"},
      {{"limits", "set", "--team=a", "--tpm=-3"}, "bad --tpm '-3'"},
      {{"limits", "set", "--team=a", "--usd=5"}, "unknown flag --usd for limits set"},
      {{"limits", "list", "--rpm=5"}, "unknown flag --rpm for limits list"},
      {{"budgets", "list", "--format=yaml"}, "bad --format 'yaml' (use table, csv, json)"},
      {{"budgets", "list", "--timeout=0s"}, "--timeout must be positive"},
      {{"budgets", "delete"}, "usage: tollgatectl budgets delete ID"},
      {{"budgets", "raise"}, "unknown command 'budgets raise'"},
      {{"budgets", "set", "--team"}, "flag --team needs a value"},
  };
  for (const auto& [args, message] : cases) {
    EXPECT_THAT(ErrorOf(args), HasSubstr(message)) << args[0] << " " << args[1];
  }
  auto no_token = ParseQuotaCommand({"budgets", "list"}, Env({}));
  ASSERT_FALSE(no_token.ok());
  EXPECT_THAT(std::string(no_token.status().message()), HasSubstr("TOLLGATE_ADMIN_TOKEN"));
}

// A ListQuotas answer with two budgets, one rate limit of each kind and a quota that is neither
// (a per-minute USD quota, which no command sets): each command shows only its own.
v1::ListQuotasResponse Answer() {
  v1::ListQuotasResponse r;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(
        quotas {
          quota {
            id: "q-0000000a"
            scope: QUOTA_SCOPE_TEAM
            team: "alpha"
            unit: QUOTA_UNIT_USD
            period: QUOTA_PERIOD_MONTH
            limit: "100"
            hard: true
            alert_percents: [ 50, 80, 100 ]
          }
          window_start_unix_s: 1714521600
          window_end_unix_s: 1717200000
          spent: "81.25"
          committed: "83.5"
          remaining: "16.5"
          used_percent: 83
          alerts_fired: [ 50, 80 ]
          active_leases: 2
        }
        quotas {
          quota {
            id: "q-0000000b"
            scope: QUOTA_SCOPE_CUSTOMER
            subject: "acme, inc"
            unit: QUOTA_UNIT_TOKENS
            period: QUOTA_PERIOD_DAY
            limit: "5000000"
            hard: false
          }
          window_end_unix_s: 1714608000
          spent: "0"
          committed: "0"
          remaining: "5000000"
        }
        quotas {
          quota {
            id: "k-1a2b3c4d-rpm"
            scope: QUOTA_SCOPE_KEY
            team: "alpha"
            subject: "1a2b3c4d"
            unit: QUOTA_UNIT_REQUESTS
            period: QUOTA_PERIOD_MINUTE
            limit: "60"
            hard: true
          }
          committed: "12"
          remaining: "48"
          active_leases: 3
        }
        quotas {
          quota {
            id: "q-0000000c"
            scope: QUOTA_SCOPE_TEAM
            team: "alpha"
            unit: QUOTA_UNIT_TOKENS
            period: QUOTA_PERIOD_MINUTE
            limit: "200000"
            hard: true
          }
          committed: "200000"
          remaining: "0"
        }
        quotas {
          quota {
            id: "q-0000000d"
            scope: QUOTA_SCOPE_ORG
            unit: QUOTA_UNIT_USD
            period: QUOTA_PERIOD_MINUTE
            limit: "1"
          }
        }
      )pb",
      &r));
  return r;
}

TEST(QuotaCmds, RendersBudgetsTable) {
  EXPECT_EQ(RenderBudgets(Answer(), Format::kTable),
            "id          scope     team   subject    unit    period    limit  spent  committed"
            "  remaining  used  mode  alerts_fired  window_end\n" +
                std::string(140, '-') + "\n" +  // as wide as the widest row
                "q-0000000a  team      alpha  -          usd     month       100  81.25       83.5"
                "       16.5   83%  hard  50,80         2024-06-01T00:00:00Z\n"
                "q-0000000b  customer  -      acme, inc  tokens  day     5000000      0          0"
                "    5000000    0%  soft  -             2024-05-02T00:00:00Z\n");
  EXPECT_EQ(RenderBudgets(v1::ListQuotasResponse(), Format::kTable), "no budgets\n");
}

TEST(QuotaCmds, RendersBudgetsCsv) {
  EXPECT_EQ(RenderBudgets(Answer(), Format::kCsv),
            "id,scope,team,subject,unit,period,limit,spent,committed,remaining,used_percent,mode,"
            "alerts_fired,window_end\r\n"
            "q-0000000a,team,alpha,,usd,month,100,81.25,83.5,16.5,83,hard,\"50,80\","
            "2024-06-01T00:00:00Z\r\n"
            "q-0000000b,customer,,\"acme, inc\",tokens,day,5000000,0,0,5000000,0,soft,,"
            "2024-05-02T00:00:00Z\r\n");
  // No rows: the header only, so that scripts always see the columns.
  EXPECT_EQ(RenderBudgets(v1::ListQuotasResponse(), Format::kCsv),
            "id,scope,team,subject,unit,period,limit,spent,committed,remaining,used_percent,mode,"
            "alerts_fired,window_end\r\n");
}

TEST(QuotaCmds, RendersLimits) {
  EXPECT_EQ(RenderLimits(Answer(), Format::kTable),
            "id              scope  team   subject   kind   limit  committed  remaining  leases\n"
            "----------------------------------------------------------------------------------\n"
            "k-1a2b3c4d-rpm  key    alpha  1a2b3c4d  rpm       60         12         48       3\n"
            "q-0000000c      team   alpha  -         tpm   200000     200000          0       0\n");
  EXPECT_EQ(RenderLimits(Answer(), Format::kCsv),
            "id,scope,team,subject,kind,limit,committed,remaining,leases\r\n"
            "k-1a2b3c4d-rpm,key,alpha,1a2b3c4d,rpm,60,12,48,3\r\n"
            "q-0000000c,team,alpha,,tpm,200000,200000,0,0\r\n");
  EXPECT_EQ(RenderLimits(v1::ListQuotasResponse(), Format::kTable), "no rate limits\n");
}

TEST(QuotaCmds, RendersJsonOfTheShownQuotasOnly) {
  const std::string budgets = RenderBudgets(Answer(), Format::kJson);
  EXPECT_THAT(budgets, HasSubstr("\"id\":\"q-0000000a\""));
  EXPECT_THAT(budgets, HasSubstr("\"used_percent\":83"));
  EXPECT_THAT(budgets, HasSubstr("\"alerts_fired\":[50,80]"));
  EXPECT_EQ(budgets.find("k-1a2b3c4d-rpm"), std::string::npos);
  EXPECT_EQ(budgets.find("q-0000000d"), std::string::npos);
  const std::string limits = RenderLimits(Answer(), Format::kJson);
  EXPECT_THAT(limits, HasSubstr("\"id\":\"k-1a2b3c4d-rpm\""));
  EXPECT_THAT(limits, HasSubstr("\"active_leases\":3"));
  EXPECT_EQ(limits.find("q-0000000a"), std::string::npos);
  EXPECT_EQ(limits.back(), '\n');
}

TEST(QuotaCmds, RendersSetQuotas) {
  v1::Quota q = Answer().quotas(0).quota();
  q.set_name("monthly");
  EXPECT_EQ(
      RenderQuotas({q}, Format::kTable),
      "id          scope  team   subject  unit  period  limit  mode  alerts     name\n" +
          std::string(80, '-') + "\n" +
          "q-0000000a  team   alpha  -        usd   month     100  hard  50,80,100  monthly\n");
  EXPECT_EQ(RenderQuotas({q}, Format::kCsv),
            "id,scope,team,subject,unit,period,limit,mode,alerts,name\r\n"
            "q-0000000a,team,alpha,,usd,month,100,hard,\"50,80,100\",monthly\r\n");
  const std::string json = RenderQuotas({q, Answer().quotas(2).quota()}, Format::kJson);
  EXPECT_EQ(std::count(json.begin(), json.end(), '\n'), 2) << json;
  EXPECT_THAT(json, HasSubstr("\"scope\":\"QUOTA_SCOPE_TEAM\""));
}

// ---- RunQuotaCommand against an in-process fake Quotas service ---------------------------------

// Records every call with its bearer metadata; refuses TOKENS quotas of team "full".
class FakeQuotas final : public v1::Quotas::Service {
 public:
  grpc::Status SetQuota(grpc::ServerContext* context, const v1::SetQuotaRequest* request,
                        v1::Quota* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    Record(*context, absl::StrCat("SetQuota ", request->ShortDebugString()));
    const v1::Quota& q = request->quota();
    if (q.team() == "full" && q.unit() == v1::QUOTA_UNIT_TOKENS) {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "not\nyours");
    }
    *response = q;
    response->set_id(absl::StrCat("q-", 10 + sets_++));
    return grpc::Status::OK;
  }
  grpc::Status ListQuotas(grpc::ServerContext* context, const v1::ListQuotasRequest* request,
                          v1::ListQuotasResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    Record(*context, absl::StrCat("ListQuotas ", request->ShortDebugString()));
    *response = Answer();
    return grpc::Status::OK;
  }
  grpc::Status DeleteQuota(grpc::ServerContext* context, const v1::DeleteQuotaRequest* request,
                           v1::Quota* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    Record(*context, absl::StrCat("DeleteQuota ", request->ShortDebugString()));
    *response = Answer().quotas(0).quota();
    return grpc::Status::OK;
  }
  std::vector<std::string> calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  void Record(const grpc::ServerContext& context, std::string call)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto auth = context.client_metadata().find("authorization");
    const std::string bearer = auth == context.client_metadata().end()
                                   ? "(none)"
                                   : std::string(auth->second.data(), auth->second.size());
    calls_.push_back(absl::StrCat(bearer, " | ", call));
  }

  std::mutex mu_;
  std::vector<std::string> calls_ ABSL_GUARDED_BY(mu_);
  int sets_ ABSL_GUARDED_BY(mu_) = 0;
};

class QuotaRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&quotas_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }
  void TearDown() override { server_->Shutdown(); }

  int Run(std::vector<std::string> args) {
    args.push_back(absl::StrCat("--ledger_admin=127.0.0.1:", port_));
    return RunQuotaCommand(args, Env({{"TOLLGATE_ADMIN_TOKEN", "tok"}}), out_, err_);
  }

  FakeQuotas quotas_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::ostringstream out_, err_;
};

TEST_F(QuotaRunTest, LimitsSetCallsOncePerLimitWithTheToken) {
  ASSERT_EQ(Run({"limits", "set", "--team", "alpha", "--rpm", "600", "--tpm", "200000"}), 0)
      << err_.str();
  const std::vector<std::string> calls = quotas_.calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_THAT(calls[0], HasSubstr("Bearer tok | SetQuota"));
  EXPECT_THAT(calls[0], HasSubstr("unit: QUOTA_UNIT_REQUESTS"));
  EXPECT_THAT(calls[1], HasSubstr("unit: QUOTA_UNIT_TOKENS"));
  EXPECT_THAT(out_.str(), HasSubstr("q-10  team   alpha  -        requests  minute     600"));
  EXPECT_THAT(out_.str(), HasSubstr("q-11  team   alpha  -        tokens    minute  200000"));
  EXPECT_EQ(err_.str(), "");
}

TEST_F(QuotaRunTest, ASecondCallsFailureKeepsTheFirstAndExitsOne) {
  EXPECT_EQ(Run({"limits", "set", "--team", "full", "--rpm", "5", "--tpm", "9"}), 1);
  EXPECT_THAT(out_.str(), HasSubstr("q-10"));  // the rpm limit was set
  EXPECT_EQ(err_.str(), absl::StrCat("tollgatectl: ledger at 127.0.0.1:", port_,
                                     ": PERMISSION_DENIED: not yours\n"));
}

TEST_F(QuotaRunTest, ListAndDelete) {
  ASSERT_EQ(Run({"limits", "list", "--team=alpha", "--format=csv"}), 0) << err_.str();
  EXPECT_THAT(quotas_.calls().back(),
              HasSubstr("ListQuotas team: \"alpha\" limits_only: true include_key_limits: true"));
  EXPECT_EQ(out_.str(), RenderLimits(Answer(), Format::kCsv));
  out_.str("");
  ASSERT_EQ(Run({"budgets", "delete", "q-0000000a"}), 0) << err_.str();
  EXPECT_THAT(quotas_.calls().back(), HasSubstr("DeleteQuota id: \"q-0000000a\""));
  EXPECT_EQ(out_.str(), "deleted q-0000000a\n");
}

TEST_F(QuotaRunTest, UsageErrorsExitTwoWithoutACall) {
  EXPECT_EQ(Run({"budgets", "set", "--team=a", "--usd=0", "--period=day"}), 2);
  EXPECT_THAT(err_.str(), HasSubstr("tollgatectl: bad --usd '0': must be greater than zero\n"));
  EXPECT_THAT(err_.str(), HasSubstr("Budget and rate-limit commands"));
  EXPECT_TRUE(quotas_.calls().empty());
}

}  // namespace
}  // namespace tollgate::tools::ctl
