// Parsing and rendering of `route explain` and `deployments`, and their RPCs against a fake
// RouterAdmin.

#include "tools/tollgatectl/route_cmd.h"

#include <map>
#include <memory>
#include <mutex>
#include <sstream>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "tollgate/v1/router.grpc.pb.h"

namespace tollgate::tools::ctl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

GetEnv Env(std::map<std::string, std::string> vars = {}) {
  return [vars = std::move(vars)](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(RouteCmdTest, RecognisesItsCommands) {
  EXPECT_TRUE(IsRouteCommand({"route", "explain", "--model", "m"}));
  EXPECT_TRUE(IsRouteCommand({"--router_admin", "h:1", "deployments"}));
  EXPECT_TRUE(IsRouteCommand({"--stream", "route", "explain"}));
  EXPECT_TRUE(IsRouteCommand({"help", "route"}));
  EXPECT_FALSE(IsRouteCommand({"--router_admin", "route", "catalog"}));  // "route" is a value
  EXPECT_FALSE(IsRouteCommand({"spend", "--group-by", "team"}));
  EXPECT_FALSE(IsRouteCommand({"help"}));
  EXPECT_FALSE(IsRouteCommand({}));
}

TEST(RouteCmdTest, ParsesExplain) {
  auto cmd = ParseRouteCommand({"route",
                                "explain",
                                "--model=auto",
                                "--team",
                                "research",
                                "--prompt-tokens",
                                "3000",
                                "--max_tokens=200",
                                "--stream",
                                "--tools=false",
                                "--tag",
                                "tier=gold",
                                "--capability",
                                "vision",
                                "--marker",
                                "code",
                                "--class",
                                "code",
                                "--feature=f",
                                "--customer=c",
                                "--environment=prod",
                                "--api-key-id=k1",
                                "--format",
                                "json",
                                "--timeout",
                                "2s"},
                               Env({{"TOLLGATE_ROUTER_ADMIN", "router:7002"}}));
  ASSERT_TRUE(cmd.ok()) << cmd.status();
  EXPECT_EQ(cmd->kind, RouteCommand::Kind::kExplain);
  EXPECT_EQ(cmd->global.router_admin, "router:7002");
  EXPECT_EQ(cmd->global.timeout, absl::Seconds(2));
  EXPECT_EQ(cmd->format, Format::kJson);
  const v1::RouteRequest& r = cmd->request;
  EXPECT_EQ(r.model(), "auto");
  EXPECT_EQ(r.attribution().team(), "research");
  EXPECT_EQ(r.attribution().feature(), "f");
  EXPECT_EQ(r.attribution().customer(), "c");
  EXPECT_EQ(r.attribution().environment(), "prod");
  EXPECT_EQ(r.attribution().api_key_id(), "k1");
  EXPECT_EQ(r.attribution().tags().at("tier"), "gold");
  EXPECT_EQ(r.estimated_input_tokens(), 3000);
  EXPECT_EQ(r.max_output_tokens(), 200);
  EXPECT_TRUE(r.stream());
  EXPECT_FALSE(r.has_tools());
  EXPECT_THAT(r.required_capabilities(), ElementsAre("vision"));
  EXPECT_THAT(r.content_markers(), ElementsAre("code"));
  EXPECT_EQ(r.class_hint(), "code");
}

TEST(RouteCmdTest, RejectsBadUsage) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"route", "explain"}, "route explain needs --model"},
      {{"route"}, "route needs a subcommand: explain"},
      {{"route", "show", "--model=m"}, "unknown route subcommand 'show'"},
      {{"route", "explain", "--model=m", "--prompt-tokens=-1"}, "bad --prompt-tokens '-1'"},
      {{"route", "explain", "--model=m", "--tag=novalue"}, "bad --tag 'novalue'"},
      {{"route", "explain", "--model=m", "--stream=maybe"}, "bad --stream 'maybe'"},
      {{"route", "explain", "--model=m", "--format=csv"}, "bad --format 'csv'"},
      {{"route", "explain", "--model=m", "--group-by=team"}, "unknown flag --group-by"},
      {{"deployments", "--model=m"}, "unknown flag --model for deployments"},
      {{"deployments", "extra"}, "unexpected argument 'extra'"},
      {{"route", "explain", "--model"}, "flag --model needs a value"},
  };
  for (const auto& [args, error] : cases) {
    auto cmd = ParseRouteCommand(args, Env());
    ASSERT_FALSE(cmd.ok()) << error;
    EXPECT_THAT(std::string(cmd.status().message()), HasSubstr(error));
  }
  auto help = ParseRouteCommand({"deployments", "--help"}, Env());
  ASSERT_TRUE(help.ok());
  EXPECT_EQ(help->kind, RouteCommand::Kind::kHelp);
  EXPECT_EQ(help->help_topic, "deployments");
  EXPECT_THAT(RouteUsage("route"), HasSubstr("--prompt-tokens"));
  EXPECT_THAT(RouteUsage("deployments"), HasSubstr("ListDeployments"));
}

v1::ExplainRouteResponse SampleExplain() {
  v1::ExplainRouteResponse e;
  v1::RouteResponse* d = e.mutable_decision();
  d->set_model("auto");
  d->set_cache_ttl_ms(500);
  v1::Candidate* c = d->add_candidates();
  c->mutable_deployment()->set_id("mid");
  c->mutable_deployment()->set_provider("mock");
  c->mutable_deployment()->set_region("eu");
  c->set_reason("quality 88 >= 85 for code, est. cost $0.001");
  c->set_estimated_cost_pico(1000000000);
  c->set_latency_ewma_us(12500);
  c->set_quality(88);
  e.set_request_class("code");
  e.set_policy("cost-quality");
  e.set_policy_path("auto > class code > cost-quality");
  e.add_rules("research-eu");
  v1::RemovedDeployment* r = e.add_removed();
  r->set_deployment_id("cheap");
  r->set_filter("rule_region");
  r->set_detail("region 'us' is not allowed by rule 'research-eu' (allowed: eu)");
  v1::DeploymentHealth* h = e.add_health();
  h->set_deployment_id("mid");
  h->set_circuit(v1::CIRCUIT_CLOSED);
  h->set_available(true);
  h->set_rpm_used(3);
  h->set_rpm_limit(100);
  e.set_catalog_version("abc");
  return e;
}

TEST(RouteCmdTest, RendersExplain) {
  const std::string table = RenderExplainTable(SampleExplain(), absl::UnixEpoch());
  EXPECT_THAT(table, HasSubstr("class:    code\n"));
  EXPECT_THAT(table, HasSubstr("policy:   auto > class code > cost-quality\n"));
  EXPECT_THAT(table, HasSubstr("rules:    research-eu\n"));
  EXPECT_THAT(table, HasSubstr("cache:    500 ms\n"));
  EXPECT_THAT(
      table,
      HasSubstr("1  mid         mock      eu      0.001000000000        12.5        -       88"));
  EXPECT_THAT(table, HasSubstr("quality 88 >= 85 for code"));
  EXPECT_THAT(table, HasSubstr("cheap       rule_region  region 'us' is not allowed"));
  EXPECT_THAT(table, HasSubstr("3/100"));

  v1::ExplainRouteResponse failed = SampleExplain();
  failed.clear_decision();
  failed.set_error_code(9);
  failed.set_error("no deployment of model 'auto' can serve this request");
  EXPECT_THAT(RenderExplainTable(failed, absl::UnixEpoch()),
              HasSubstr("result:   Route fails with FAILED_PRECONDITION: no deployment"));

  const std::string json = RenderExplainJson(SampleExplain());
  EXPECT_THAT(json, HasSubstr(R"("request_class":"code")"));
  EXPECT_THAT(json, HasSubstr(R"("estimated_cost_usd":"0.001000000000")"));
  EXPECT_THAT(json, HasSubstr(R"("filter":"rule_region")"));
  EXPECT_THAT(json, HasSubstr(R"("latency_ewma_us":12500)"));
}

TEST(RouteCmdTest, RendersDeployments) {
  v1::ListDeploymentsResponse response;
  response.set_catalog_version("abc");
  v1::Deployment* d = response.add_deployments();
  d->set_id("cheap");
  d->set_provider("mock");
  d->set_upstream_model("gpt-4o-mini");
  d->set_region("us");
  v1::DeploymentHealth* h = response.add_health();
  h->set_deployment_id("cheap");
  h->set_circuit(v1::CIRCUIT_OPEN);
  h->set_circuit_open_until_unix_ms(12000);
  h->set_consecutive_failures(5);
  h->set_error_rate(0.5);
  h->set_cooldown_until_unix_ms(11500);
  h->set_tpm_used(900);
  h->set_tpm_limit(1000);
  h->set_near_limit(true);
  const std::string table = RenderDeploymentsTable(response, absl::FromUnixSeconds(10));
  EXPECT_THAT(table, HasSubstr("catalog_version: abc"));
  EXPECT_THAT(table, HasSubstr("cheap  mock      gpt-4o-mini     us      open (2.0s)  no"));
  EXPECT_THAT(table, HasSubstr("0.500"));
  EXPECT_THAT(table, HasSubstr("1.5s"));
  EXPECT_THAT(table, HasSubstr("900/1000  yes"));
  const std::string json = RenderDeploymentsJson(response);
  EXPECT_THAT(json, HasSubstr(R"("id":"cheap")"));
  EXPECT_THAT(json, HasSubstr(R"("circuit":"open")"));
  EXPECT_THAT(json, HasSubstr(R"("near_limit":true)"));
  EXPECT_THAT(json, HasSubstr(R"("upstream_model":"gpt-4o-mini")"));
}

class FakeRouterAdmin final : public v1::RouterAdmin::Service {
 public:
  grpc::Status ExplainRoute(grpc::ServerContext*, const v1::RouteRequest* request,
                            v1::ExplainRouteResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    last_ = *request;
    if (request->model() == "broken") {
      return grpc::Status(grpc::StatusCode::INTERNAL, "boom");
    }
    *response = SampleExplain();
    return grpc::Status::OK;
  }
  grpc::Status ListDeployments(grpc::ServerContext*, const v1::ListDeploymentsRequest*,
                               v1::ListDeploymentsResponse* response) override {
    response->set_catalog_version("v9");
    response->add_deployments()->set_id("d1");
    response->add_health()->set_deployment_id("d1");
    return grpc::Status::OK;
  }
  v1::RouteRequest last() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_;
  }

 private:
  std::mutex mu_;
  v1::RouteRequest last_ ABSL_GUARDED_BY(mu_);
};

class RouteCmdRpcTest : public testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&admin_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override { server_->Shutdown(); }

  int Run(std::vector<std::string> args) {
    args.insert(args.begin(), absl::StrCat("--router_admin=127.0.0.1:", port_));
    out_.str("");
    err_.str("");
    return RunRouteCommand(args, Env(), out_, err_);
  }

  FakeRouterAdmin admin_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(RouteCmdRpcTest, ExplainAndDeployments) {
  EXPECT_EQ(Run({"route", "explain", "--model", "auto", "--team", "t", "--prompt-tokens", "7"}), 0);
  EXPECT_THAT(out_.str(), HasSubstr("policy:   auto > class code > cost-quality"));
  EXPECT_EQ(admin_.last().attribution().team(), "t");
  EXPECT_EQ(admin_.last().estimated_input_tokens(), 7);

  EXPECT_EQ(Run({"deployments", "--format=json"}), 0);
  EXPECT_THAT(out_.str(), HasSubstr(R"("catalog_version":"v9")"));

  EXPECT_EQ(Run({"route", "explain", "--model", "broken"}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("tollgatectl: router at 127.0.0.1:"));
  EXPECT_THAT(err_.str(), HasSubstr("INTERNAL: boom"));

  EXPECT_EQ(Run({"route", "explain"}), 2);
  EXPECT_THAT(err_.str(), HasSubstr("route explain needs --model"));
  EXPECT_THAT(err_.str(), HasSubstr("Usage: tollgatectl route explain"));
  EXPECT_EQ(Run({"help", "deployments"}), 0);
  EXPECT_THAT(out_.str(), HasSubstr("Usage: tollgatectl deployments"));
  EXPECT_THAT(out_.str(), Not(HasSubstr("tollgatectl:")));
}

}  // namespace
}  // namespace tollgate::tools::ctl
