// Teams and virtual keys (issue 8 items 1, 5-7) end to end: real PostgreSQL, ledger, router, mock
// provider and two gateways. Keys are minted and revoked with tollgatectl, used over HTTP, and
// the RBAC boundaries of the TenancyAdmin service are probed with every role.

#include <map>
#include <boost/json.hpp>
#include <chrono>
#include <memory>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "tests/testing/http_client.h"
#include "tests/testing/suite.h"
#include "tollgate/v1/tenancy.grpc.pb.h"

namespace tollgate::testing {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kAdmin = TestTokens::kAdmin;
constexpr const char* kAlphaLead = TestTokens::kAlphaLead;
constexpr const char* kBetaLead = TestTokens::kBetaLead;
constexpr const char* kAlphaViewer = TestTokens::kAlphaViewer;
constexpr const char* kGatewayToken = TestTokens::kGateway;

std::string ChatBody(const std::string& model = "gpt-4o-mini") {
  return json::serialize(json::object{
      {"model", model},
      {"messages", json::array{json::object{{"role", "user"}, {"content", "hello"}}}}});
}

class TenancyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    SuiteOptions options;
    ASSERT_TRUE(TestTokens::Enable(dir_->path(), options).ok());
    auto suite = Suite::Start(options);
    ASSERT_TRUE(suite.ok()) << suite.status();
    suite_ = suite->release();

    // A second gateway, watching the same ledger.
    auto gw2 = suite_->StartExtraGateway("gateway2", &gateway2_port_);
    ASSERT_TRUE(gw2.ok()) << gw2.status();
    gateway2_ = gw2->release();

    for (const char* team : {"alpha", "beta"}) {
      CommandResult r = Ctl(kAdmin, {"teams", "create", team});
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
  }

  static void TearDownTestSuite() {
    // The key watcher must not hold up a graceful stop.
    if (gateway2_ != nullptr) {
      EXPECT_EQ(gateway2_->Stop(), 0) << gateway2_->LogTail();
    }
    delete gateway2_;
    delete suite_;
    delete dir_;
  }

  static CommandResult Ctl(const std::string& token, std::vector<std::string> args) {
    args.push_back("--token=" + token);
    return suite_->Ctl(args);
  }

  // Creates a key with tollgatectl; returns (id, secret).
  static std::pair<std::string, std::string> CreateKey(const std::string& token,
                                                       std::vector<std::string> args) {
    args.insert(args.begin(), {"keys", "create", "--format=json"});
    CommandResult r = Ctl(token, args);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    if (r.exit_code != 0) return {};
    json::error_code ec;
    json::value v = json::parse(r.output, ec);
    EXPECT_FALSE(ec) << r.output;
    if (ec) return {};
    return {std::string(v.at("key").at("id").as_string()), std::string(v.at("secret").as_string())};
  }

  static int Models(int port, const std::string& key) {
    auto r = HttpCall(port, "GET", "/v1/models", "", {{"authorization", "Bearer " + key}}, 5000);
    return r.ok() ? r->status : -1;
  }

  // Polls until `port` answers /v1/models with `status` for `key`; returns the time it took, or
  // nullopt after `limit`.
  static std::optional<std::chrono::milliseconds> Await(int port, const std::string& key,
                                                        int status, Clock::time_point since,
                                                        std::chrono::milliseconds limit) {
    while (Clock::now() - since < limit) {
      if (Models(port, key) == status) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return std::nullopt;
  }

  static TempDir* dir_;
  static Suite* suite_;
  static Process* gateway2_;
  static int gateway2_port_;
};

TempDir* TenancyTest::dir_ = nullptr;
Suite* TenancyTest::suite_ = nullptr;
Process* TenancyTest::gateway2_ = nullptr;
int TenancyTest::gateway2_port_ = 0;

TEST_F(TenancyTest, KeyServesTheTeamAndRevocationReachesEveryGatewayWithinTwoSeconds) {
  auto [id, secret] = CreateKey(kAlphaLead, {"--team=alpha", "--name=ci"});
  ASSERT_FALSE(secret.empty());
  EXPECT_TRUE(absl::StartsWith(secret, "tg-" + id + "-")) << secret;
  // The secret is stored only as a hash.
  absl::StatusOr<std::string> stored =
      suite_->Sql("SELECT encode(key_sha256, 'hex') FROM virtual_keys WHERE id = '" + id + "'");
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->find(secret), std::string::npos);
  CommandResult hash =
      RunCommand({"/bin/sh", "-c", absl::StrCat("printf %s '", secret, "' | sha256sum")});
  EXPECT_EQ(stored->substr(0, 64), hash.output.substr(0, 64));

  const int ports[] = {suite_->gateway_port(), gateway2_port_};
  for (int port : ports) {
    ASSERT_TRUE(Await(port, secret, 200, Clock::now(), std::chrono::seconds(5)))
        << "new key never accepted on port " << port << "\n"
        << suite_->Logs();
  }
  auto chat = HttpCall(suite_->gateway_port(), "POST", "/v1/chat/completions", ChatBody(),
                       {{"authorization", "Bearer " + secret}});
  ASSERT_TRUE(chat.ok()) << chat.status();
  ASSERT_EQ(chat->status, 200) << chat->body;
  auto chat2 = HttpCall(gateway2_port_, "POST", "/v1/chat/completions", ChatBody(),
                        {{"authorization", "Bearer " + secret}});
  ASSERT_TRUE(chat2.ok()) << chat2.status();
  EXPECT_EQ(chat2->status, 200) << chat2->body;

  // The ledger attributes the usage to the key's team.
  std::string rows;
  for (auto until = Clock::now() + std::chrono::seconds(15); Clock::now() < until;) {
    absl::StatusOr<std::string> r = suite_->Sql(
        "SELECT team || ',' || api_key_id FROM usage_events WHERE api_key_id = '" + id + "'");
    ASSERT_TRUE(r.ok()) << r.status();
    rows = *r;
    if (absl::StrContains(rows, "alpha," + id + "\nalpha," + id)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(absl::StrContains(rows, "alpha," + id + "\nalpha," + id)) << rows;

  // Revoke, then measure until every gateway refuses the key.
  const Clock::time_point revoke_start = Clock::now();
  CommandResult revoked = Ctl(kAlphaLead, {"keys", "revoke", "tg-" + id});
  ASSERT_EQ(revoked.exit_code, 0) << revoked.output;
  EXPECT_TRUE(absl::StrContains(revoked.output, "revoked")) << revoked.output;
  for (int port : ports) {
    std::optional<std::chrono::milliseconds> took =
        Await(port, secret, 401, revoke_start, std::chrono::seconds(5));
    ASSERT_TRUE(took.has_value()) << "revoked key still accepted on port " << port;
    std::cout << "revocation reached gateway on port " << port << " after " << took->count()
              << " ms (including the tollgatectl call)\n";
    EXPECT_LT(took->count(), 2000);
  }
  auto refused = HttpCall(gateway2_port_, "POST", "/v1/chat/completions", ChatBody(),
                          {{"authorization", "Bearer " + secret}});
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status, 401);
  EXPECT_FALSE(absl::StrContains(refused->body, secret));
  // Static keys keep working beside ledger keys.
  EXPECT_EQ(Models(suite_->gateway_port(), Suite::kAlphaKey), 200);

  // Revoking twice is refused clearly.
  CommandResult again = Ctl(kAdmin, {"keys", "revoke", id});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(again.output, "FAILED_PRECONDITION")) << again.output;
  EXPECT_TRUE(absl::StrContains(again.output, "already revoked")) << again.output;
}

// A key limited to models and a feature is refused (403) for anything else, on the hot path.
TEST_F(TenancyTest, KeyRestrictionsAreEnforcedByTheGateway) {
  auto [id, secret] = CreateKey(kAdmin, {"--team=alpha", "--models=gpt-4o-mini",
                                         "--feature=search", "--name=restricted"});
  ASSERT_FALSE(secret.empty());
  const std::map<std::string, std::string> headers = {{"authorization", "Bearer " + secret},
                                                      {"x-tollgate-feature", "search"}};
  bool accepted = false;
  for (int i = 0; i < 100 && !accepted; ++i) {  // the key reaches the gateway within ~1 s
    auto r = HttpCall(suite_->gateway_port(), "POST", "/v1/chat/completions", ChatBody(),
                      headers);
    accepted = r.ok() && r->status == 200;
    if (!accepted) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(accepted) << suite_->Logs();
  auto other_model = HttpCall(suite_->gateway_port(), "POST", "/v1/chat/completions",
                              ChatBody("gpt-4o"), headers);
  ASSERT_TRUE(other_model.ok());
  EXPECT_EQ(other_model->status, 403) << other_model->body;
  EXPECT_NE(other_model->body.find("model_not_allowed"), std::string::npos);
  auto other_feature =
      HttpCall(suite_->gateway_port(), "POST", "/v1/chat/completions", ChatBody(),
               {{"authorization", "Bearer " + secret}, {"x-tollgate-feature", "chat"}});
  ASSERT_TRUE(other_feature.ok());
  EXPECT_EQ(other_feature->status, 403) << other_feature->body;
  EXPECT_NE(other_feature->body.find("feature_not_allowed"), std::string::npos);
}

TEST_F(TenancyTest, KeyRegionsKeepRequestsInTheirRegions) {
  // The suite's deployments are all in region "local".
  auto [local_id, local] = CreateKey(kAdmin, {"--team=alpha", "--regions=local", "--name=local"});
  auto [eu_id, eu] = CreateKey(kAdmin, {"--team=alpha", "--regions=eu", "--name=eu-only"});
  ASSERT_FALSE(local.empty());
  ASSERT_FALSE(eu.empty());
  ASSERT_TRUE(Await(suite_->gateway_port(), eu, 200, Clock::now(), std::chrono::seconds(5)));
  auto served = HttpCall(suite_->gateway_port(), "POST", "/v1/chat/completions", ChatBody(),
                         {{"authorization", "Bearer " + local}});
  ASSERT_TRUE(served.ok());
  EXPECT_EQ(served->status, 200) << served->body;
  // Twice: the second answer must not come from a decision cached for another key's regions.
  for (int i = 0; i < 2; ++i) {
    auto refused = HttpCall(suite_->gateway_port(), "POST", "/v1/chat/completions", ChatBody(),
                            {{"authorization", "Bearer " + eu}});
    ASSERT_TRUE(refused.ok());
    EXPECT_EQ(refused->status, 400) << refused->body;
    EXPECT_NE(refused->body.find("not allowed for this API key (allowed: eu)"), std::string::npos)
        << refused->body;
  }
}

TEST_F(TenancyTest, ExpiredKeyIsRefused) {
  const Clock::time_point created = Clock::now();
  auto [id, secret] = CreateKey(kAdmin, {"--team=beta", "--expires=3s"});
  ASSERT_FALSE(secret.empty());
  ASSERT_TRUE(Await(suite_->gateway_port(), secret, 200, created, std::chrono::seconds(3)))
      << "key with a 3s expiry never accepted";
  std::optional<std::chrono::milliseconds> took =
      Await(suite_->gateway_port(), secret, 401, created, std::chrono::seconds(10));
  ASSERT_TRUE(took.has_value()) << "expired key still accepted";
  EXPECT_GE(took->count(), 1500) << "refused long before its expiry";
}

TEST_F(TenancyTest, TeamAdminsAreConfinedToTheirTeam) {
  auto [beta_id, beta_secret] = CreateKey(kBetaLead, {"--team=beta", "--name=beta-svc"});
  ASSERT_FALSE(beta_id.empty());
  auto [alpha_id, alpha_secret] = CreateKey(kAlphaLead, {"--team=alpha"});
  ASSERT_FALSE(alpha_id.empty());

  CommandResult list_b = Ctl(kAlphaLead, {"keys", "list", "--team=beta"});
  EXPECT_EQ(list_b.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(list_b.output, "PERMISSION_DENIED")) << list_b.output;
  EXPECT_FALSE(absl::StrContains(list_b.output, beta_id)) << list_b.output;

  CommandResult mint_b = Ctl(kAlphaLead, {"keys", "create", "--team=beta"});
  EXPECT_EQ(mint_b.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(mint_b.output, "PERMISSION_DENIED")) << mint_b.output;
  EXPECT_TRUE(absl::StrContains(mint_b.output, "another team")) << mint_b.output;

  CommandResult revoke_b = Ctl(kAlphaLead, {"keys", "revoke", beta_id});
  EXPECT_EQ(revoke_b.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(revoke_b.output, "PERMISSION_DENIED")) << revoke_b.output;

  CommandResult create_team = Ctl(kAlphaLead, {"teams", "create", "gamma"});
  EXPECT_TRUE(absl::StrContains(create_team.output, "PERMISSION_DENIED")) << create_team.output;

  // Its own listing never shows another team's keys; beta's key is untouched.
  CommandResult mine = Ctl(kAlphaLead, {"keys", "list", "--all"});
  ASSERT_EQ(mine.exit_code, 0) << mine.output;
  EXPECT_TRUE(absl::StrContains(mine.output, alpha_id)) << mine.output;
  EXPECT_FALSE(absl::StrContains(mine.output, beta_id)) << mine.output;
  CommandResult admin_view = Ctl(kAdmin, {"keys", "list", "--team=beta"});
  ASSERT_EQ(admin_view.exit_code, 0) << admin_view.output;
  EXPECT_TRUE(absl::StrContains(admin_view.output, beta_id)) << admin_view.output;
  EXPECT_TRUE(absl::StrContains(admin_view.output, "active")) << admin_view.output;
  CommandResult teams = Ctl(kAlphaLead, {"teams", "list"});
  ASSERT_EQ(teams.exit_code, 0) << teams.output;
  EXPECT_TRUE(absl::StrContains(teams.output, "alpha"));
  EXPECT_FALSE(absl::StrContains(teams.output, "beta")) << teams.output;
  EXPECT_TRUE(
      Await(suite_->gateway_port(), beta_secret, 200, Clock::now(), std::chrono::seconds(5)));
}

TEST_F(TenancyTest, ViewersCannotWriteAndGatewayTokensOnlyWatch) {
  CommandResult list = Ctl(kAlphaViewer, {"keys", "list"});
  EXPECT_EQ(list.exit_code, 0) << list.output;
  for (const std::vector<std::string>& write :
       {std::vector<std::string>{"keys", "create", "--team=alpha"},
        std::vector<std::string>{"keys", "revoke", "00000000"},
        std::vector<std::string>{"teams", "create", "delta"}}) {
    CommandResult r = Ctl(kAlphaViewer, write);
    EXPECT_EQ(r.exit_code, 1) << write[0] << " " << write[1];
    EXPECT_TRUE(absl::StrContains(r.output, "PERMISSION_DENIED")) << r.output;
  }
  CommandResult viewer_b = Ctl(kAlphaViewer, {"audit", "--team=beta"});
  EXPECT_TRUE(absl::StrContains(viewer_b.output, "PERMISSION_DENIED")) << viewer_b.output;
  CommandResult gw = Ctl(kGatewayToken, {"keys", "list"});
  EXPECT_TRUE(absl::StrContains(gw.output, "PERMISSION_DENIED")) << gw.output;
}

TEST_F(TenancyTest, BadTokensAndMalformedRequestsGetClearErrors) {
  CommandResult bad = Ctl("not-a-token", {"keys", "list"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(bad.output, "UNAUTHENTICATED")) << bad.output;
  EXPECT_TRUE(absl::StrContains(bad.output, "unknown admin token")) << bad.output;

  // No token at all (tollgatectl refuses locally, so call the service directly), and an admin
  // token on WatchKeys.
  auto stub = v1::TenancyAdmin::NewStub(
      grpc::CreateChannel(suite_->ledger_admin_address(), grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext ctx;
    v1::ListKeysResponse r;
    grpc::Status st = stub->ListKeys(&ctx, v1::ListKeysRequest(), &r);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_TRUE(absl::StrContains(st.error_message(), "Bearer")) << st.error_message();
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", std::string("Bearer ") + kAdmin);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    auto reader = stub->WatchKeys(&ctx, v1::KeyWatchRequest());
    v1::KeyWatchEvent event;
    EXPECT_FALSE(reader->Read(&event));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }

  struct Case {
    std::vector<std::string> args;
    const char* code;
    const char* message;
  };
  for (const Case& c : std::vector<Case>{
           {{"keys", "create", "--team=Bad Team"}, "INVALID_ARGUMENT", "not a valid team name"},
           {{"keys", "create", "--team=alpha", "--expires=2020-01-01"},
            "INVALID_ARGUMENT",
            "expires_unix_s"},
           {{"keys", "create", "--team=alpha", "--models=a,,b", "--name=x"}, "", ""},
           {{"keys", "revoke", "xyz"}, "INVALID_ARGUMENT", "key id"},
           {{"keys", "create", "--team=nosuch"}, "NOT_FOUND", "does not exist"},
           {{"teams", "create", "alpha"}, "ALREADY_EXISTS", "exists"},
           {{"teams", "create", "UPPER"}, "INVALID_ARGUMENT", "not a valid team name"},
       }) {
    CommandResult r = Ctl(kAdmin, c.args);
    if (*c.code == '\0') {
      EXPECT_EQ(r.exit_code, 0) << r.output;  // empty list entries are skipped client-side
      continue;
    }
    EXPECT_EQ(r.exit_code, 1) << c.args[1] << ": " << r.output;
    EXPECT_TRUE(absl::StrContains(r.output, c.code)) << r.output;
    EXPECT_TRUE(absl::StrContains(r.output, c.message)) << r.output;
  }
  // Malformed request fields a CLI would never send.
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", std::string("Bearer ") + kAdmin);
  v1::CreateKeyRequest req;
  req.set_team("alpha");
  req.mutable_restrictions()->add_models("");
  req.mutable_restrictions()->set_rpm(-5);
  v1::CreateKeyResponse resp;
  grpc::Status st = stub->CreateKey(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(st.error_message(), "restrictions.models[0]"))
      << st.error_message();
}

TEST_F(TenancyTest, LedgerAdminNeedsATokenAndTeamTokensSeeOnlyTheirSpend) {
  CommandResult anonymous = suite_->Ctl({"spend", "--group-by=team"});
  EXPECT_EQ(anonymous.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(anonymous.output, "UNAUTHENTICATED")) << anonymous.output;
  CommandResult admin = Ctl(kAdmin, {"spend", "--group-by=team"});
  EXPECT_EQ(admin.exit_code, 0) << admin.output;
  CommandResult own = Ctl(kAlphaViewer, {"spend", "--group-by=team", "--filter=team=alpha"});
  EXPECT_EQ(own.exit_code, 0) << own.output;
  CommandResult all = Ctl(kAlphaViewer, {"spend", "--group-by=team"});
  EXPECT_EQ(all.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(all.output, "PERMISSION_DENIED")) << all.output;
  EXPECT_TRUE(absl::StrContains(all.output, "team=alpha")) << all.output;
  CommandResult other = Ctl(kAlphaLead, {"spend", "--group-by=team", "--filter=team=beta"});
  EXPECT_TRUE(absl::StrContains(other.output, "PERMISSION_DENIED")) << other.output;
  CommandResult anomalies = Ctl(kAlphaLead, {"anomalies"});
  EXPECT_TRUE(absl::StrContains(anomalies.output, "PERMISSION_DENIED")) << anomalies.output;
}

TEST_F(TenancyTest, AuditListsEveryChangeScopedToTheCaller) {
  auto [id, secret] = CreateKey(kAlphaLead, {"--team=alpha", "--name=audited"});
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(Ctl(kAlphaLead, {"keys", "revoke", id}).exit_code, 0);

  CommandResult all = Ctl(kAdmin, {"audit", "--format=json", "--limit=1000"});
  ASSERT_EQ(all.exit_code, 0) << all.output;
  json::value v = json::parse(all.output);
  bool team_create = false, created = false, revoked = false, saw_beta = false;
  for (const json::value& e : v.at("entries").as_array()) {
    const std::string action(e.at("action").as_string());
    const std::string target(e.at("target").as_string());
    if (std::string(e.at("team").as_string()) == "beta") saw_beta = true;
    if (action == "team.create" && target == "alpha") {
      team_create = true;
      EXPECT_EQ(std::string(e.at("actor").as_string()), "ops");
    }
    if (target != id) continue;
    EXPECT_EQ(std::string(e.at("actor").as_string()), "alpha-lead");
    if (action == "key.create") {
      created = true;
      EXPECT_EQ(std::string(e.at("before_json").as_string()), "");
      EXPECT_TRUE(absl::StrContains(std::string(e.at("after_json").as_string()), "\"audited\""));
    }
    if (action == "key.revoke") {
      revoked = true;
      EXPECT_FALSE(
          absl::StrContains(std::string(e.at("before_json").as_string()), "revoked_unix_s"));
      EXPECT_TRUE(absl::StrContains(std::string(e.at("after_json").as_string()), "revoked_unix_s"));
    }
    EXPECT_FALSE(absl::StrContains(json::serialize(e), secret.substr(12))) << "secret in audit";
  }
  EXPECT_TRUE(team_create && created && revoked && saw_beta) << all.output;

  CommandResult mine = Ctl(kAlphaLead, {"audit", "--format=json", "--limit=1000"});
  ASSERT_EQ(mine.exit_code, 0) << mine.output;
  const json::value mine_json = json::parse(mine.output);
  ASSERT_GT(mine_json.at("entries").as_array().size(), 0u);
  for (const json::value& e : mine_json.at("entries").as_array()) {
    EXPECT_EQ(std::string(e.at("team").as_string()), "alpha") << json::serialize(e);
  }
  CommandResult table = Ctl(kAdmin, {"audit", "--limit=5"});
  ASSERT_EQ(table.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(table.output, "ACTION")) << table.output;
}

}  // namespace
}  // namespace tollgate::testing
