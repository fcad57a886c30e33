// RunCommand against in-process fake LedgerAdmin / RouterAdmin services.

#include "tools/tollgatectl/ctl_rpc.h"

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
#include "tollgate/v1/ledger.grpc.pb.h"
#include "tollgate/v1/router.grpc.pb.h"

namespace tollgate::tools::ctl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class FakeLedgerAdmin final : public v1::LedgerAdmin::Service {
 public:
  grpc::Status QuerySpend(grpc::ServerContext*, const v1::SpendQuery* query,
                          v1::SpendResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    last_query_ = *query;
    if (query->filters().contains("team") && query->filters().at("team") == "forbidden") {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "no\nway");
    }
    *response->mutable_group_by() = query->group_by();
    auto* row = response->add_rows();
    row->add_group_values("search");
    row->set_requests(2);
    row->mutable_tokens()->set_input_tokens(100);
    row->set_cost_usd("0.000150000000");
    *response->mutable_total() = *row;
    response->mutable_total()->clear_group_values();
    return grpc::Status::OK;
  }
  v1::SpendQuery last_query() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_query_;
  }

 private:
  std::mutex mu_;
  v1::SpendQuery last_query_ ABSL_GUARDED_BY(mu_);
};

class FakeRouterAdmin final : public v1::RouterAdmin::Service {
 public:
  grpc::Status ListCatalog(grpc::ServerContext*, const v1::ListCatalogRequest*,
                           v1::ListCatalogResponse* response) override {
    response->set_catalog_version("v1hash");
    auto* m = response->add_models();
    m->set_id("gpt-4o-mini");
    m->add_deployment_ids("mock-gpt-4o-mini");
    auto* d = response->add_deployments();
    d->set_id("mock-gpt-4o-mini");
    d->mutable_prices()->set_input_pico(150'000);
    return grpc::Status::OK;
  }
};

class CtlRpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&ledger_);
    builder.RegisterService(&router_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }
  void TearDown() override { server_->Shutdown(); }

  Command Parse(std::vector<std::string> args) {
    const std::string address = absl::StrCat("127.0.0.1:", port_);
    args.push_back("--ledger_admin=" + address);
    args.push_back("--router_admin=" + address);
    auto cmd = ParseCommandLine(
        args, [](const char*) -> std::optional<std::string> { return std::nullopt; },
        absl::FromUnixSeconds(1'714'564'800));
    EXPECT_TRUE(cmd.ok()) << cmd.status();
    return *cmd;
  }

  FakeLedgerAdmin ledger_;
  FakeRouterAdmin router_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(CtlRpcTest, SpendSendsTheQueryAndPrintsTheAnswer) {
  std::ostringstream out, err;
  EXPECT_EQ(RunCommand(Parse({"spend", "--group-by=team", "--since=1h", "--format=csv"}), out, err),
            0);
  EXPECT_EQ(err.str(), "");
  EXPECT_EQ(out.str(),
            "team,requests,input,cached_input,cache_write,output,reasoning,cost_usd\r\n"
            "search,2,100,0,0,0,0,0.000150000000\r\n");
  const v1::SpendQuery q = ledger_.last_query();
  EXPECT_THAT(q.group_by(), ElementsAre("team"));
  EXPECT_EQ(q.start_unix_s(), 1'714'564'800 - 3600);
}

TEST_F(CtlRpcTest, RpcErrorIsOneLineAndExitOne) {
  std::ostringstream out, err;
  EXPECT_EQ(RunCommand(Parse({"spend", "--filter=team=forbidden"}), out, err), 1);
  EXPECT_EQ(out.str(), "");
  EXPECT_EQ(err.str(), absl::StrCat("tollgatectl: ledger at 127.0.0.1:", port_,
                                    ": PERMISSION_DENIED: no way\n"));
}

TEST_F(CtlRpcTest, Catalog) {
  std::ostringstream out, err;
  EXPECT_EQ(RunCommand(Parse({"catalog"}), out, err), 0);
  EXPECT_THAT(out.str(), HasSubstr("catalog_version: v1hash"));
  EXPECT_THAT(out.str(), HasSubstr("mock-gpt-4o-mini"));
  EXPECT_THAT(out.str(), HasSubstr("0.15"));
}

TEST(CtlRpcUnavailableTest, NothingListening) {
  Command cmd;
  cmd.kind = Command::Kind::kCatalog;
  cmd.global.router_admin = "127.0.0.1:1";
  cmd.global.timeout = absl::Seconds(5);
  std::ostringstream out, err;
  EXPECT_EQ(RunCommand(cmd, out, err), 1);
  EXPECT_THAT(err.str(),
              ::testing::StartsWith("tollgatectl: router at 127.0.0.1:1: UNAVAILABLE: "));
}

}  // namespace
}  // namespace tollgate::tools::ctl
