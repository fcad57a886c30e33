#include "services/router/router_service.h"

#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "services/common/metrics.h"

namespace tollgate::router {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// gpt-4o: two deployments in priority order; the fallback has a smaller window and no tools.
constexpr char kCatalog[] = R"yaml(
providers:
  - name: primary
    dialect: openai
    base_url: https://primary.example/v1
    api_key_env: PRIMARY_KEY
  - name: mock
    dialect: openai
    base_url: http://127.0.0.1:9090/v1
deployments:
  - id: primary-gpt-4o
    provider: primary
    upstream_model: gpt-4o
    prices: {input: "2.50", cached_input: "1.25", output: "10.00"}
    capabilities: [chat, stream, tools]
    context_window: 128000
    max_output_tokens: 16384
  - id: mock-gpt-4o
    provider: mock
    upstream_model: gpt-4o
    region: local
    prices: {input: "2.50", output: "10.00"}
    capabilities: [chat, stream]
    context_window: 32000
    max_output_tokens: 4096
  - id: mock-batch
    provider: mock
    upstream_model: batch-model
    prices: {input: "1", output: "1"}
    capabilities: [chat]
models:
  - name: gpt-4o
    aliases: [best]
    owned_by: openai
    deployments: [primary-gpt-4o, mock-gpt-4o]
  - name: batch
    deployments: [mock-batch]
)yaml";

std::vector<std::string> CandidateIds(const v1::RouteResponse& response) {
  std::vector<std::string> ids;
  for (const v1::Candidate& c : response.candidates()) ids.push_back(c.deployment().id());
  return ids;
}

std::vector<std::string> CandidateReasons(const v1::RouteResponse& response) {
  std::vector<std::string> reasons;
  for (const v1::Candidate& c : response.candidates()) reasons.push_back(c.reason());
  return reasons;
}

// Starts the real services in process on free ports and talks to them through real stubs.
class RouterServiceTest : public testing::Test {
 protected:
  void SetUp() override {
    registry_ = std::make_shared<prometheus::Registry>();
    auto metrics = RouterMetrics::Create(*registry_);
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    metrics_ = *std::move(metrics);
    auto catalog = LoadCatalogFromString(kCatalog, "test.yaml");
    ASSERT_TRUE(catalog.ok()) << catalog.status();
    store_ = std::make_unique<CatalogStore>(*catalog, metrics_.get());
    router_ = std::make_unique<RouterService>(store_.get(), metrics_.get());
    admin_ = std::make_unique<RouterAdminService>(store_.get());

    auto data = StartGrpcServer("127.0.0.1:0", {router_.get()}, /*with_health=*/true);
    ASSERT_TRUE(data.ok()) << data.status();
    data_ = *std::move(data);
    auto control = StartGrpcServer("127.0.0.1:0", {admin_.get()}, /*with_health=*/false);
    ASSERT_TRUE(control.ok()) << control.status();
    control_ = *std::move(control);
    ASSERT_NE(data_.port, control_.port);

    router_stub_ = v1::Router::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", data_.port),
                                                           grpc::InsecureChannelCredentials()));
    admin_stub_ = v1::RouterAdmin::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", control_.port), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (data_.server) data_.server->Shutdown();
    if (control_.server) control_.server->Shutdown();
  }

  grpc::Status Route(const v1::RouteRequest& request, v1::RouteResponse* response) {
    grpc::ClientContext context;
    return router_stub_->Route(&context, request, response);
  }

  v1::RouteRequest Request(const std::string& model) {
    v1::RouteRequest request;
    request.set_request_id("req-1");
    request.set_model(model);
    return request;
  }

  std::string Metrics() { return SerializeMetrics(*registry_); }

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<RouterMetrics> metrics_;
  std::unique_ptr<CatalogStore> store_;
  std::unique_ptr<RouterService> router_;
  std::unique_ptr<RouterAdminService> admin_;
  StartedServer data_;
  StartedServer control_;
  std::unique_ptr<v1::Router::Stub> router_stub_;
  std::unique_ptr<v1::RouterAdmin::Stub> admin_stub_;
};

TEST_F(RouterServiceTest, UnknownModelIsNotFound) {
  v1::RouteResponse response;
  grpc::Status status = Route(Request("gpt-5-turbo"), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "model 'gpt-5-turbo' not found");
  EXPECT_THAT(
      Metrics(),
      HasSubstr(R"(tollgate_router_route_requests_total{model="<unknown>",result="not_found"} 1)"));
}

TEST_F(RouterServiceTest, EmptyModelIsInvalid) {
  v1::RouteResponse response;
  EXPECT_EQ(Route(Request(""), &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::RouteRequest negative = Request("gpt-4o");
  negative.set_max_output_tokens(-1);
  EXPECT_EQ(Route(negative, &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(RouterServiceTest, ReturnsCandidatesInPriorityOrder) {
  v1::RouteResponse response;
  ASSERT_TRUE(Route(Request("gpt-4o"), &response).ok());
  EXPECT_EQ(response.model(), "gpt-4o");
  EXPECT_EQ(response.policy(), "priority");
  EXPECT_EQ(response.cache_ttl_ms(), 500);  // routing.cache_ttl_ms default: caching is on
  EXPECT_THAT(CandidateIds(response), ElementsAre("primary-gpt-4o", "mock-gpt-4o"));
  EXPECT_THAT(CandidateReasons(response), ElementsAre("priority 1 of 2", "priority 2 of 2"));

  const v1::Deployment& first = response.candidates(0).deployment();
  EXPECT_EQ(first.provider(), "primary");
  EXPECT_EQ(first.dialect(), "openai");
  EXPECT_EQ(first.base_url(), "https://primary.example/v1");
  EXPECT_EQ(first.api_key_env(), "PRIMARY_KEY");
  EXPECT_EQ(first.upstream_model(), "gpt-4o");
  EXPECT_EQ(first.region(), "global");
  EXPECT_EQ(first.prices().input_pico(), 2500000);
  EXPECT_EQ(first.prices().cached_input_pico(), 1250000);
  EXPECT_EQ(first.prices().output_pico(), 10000000);
  EXPECT_EQ(first.prices().price_card_version(), store_->catalog()->version());
  EXPECT_EQ(first.context_window(), 128000);
  EXPECT_THAT(Metrics(),
              HasSubstr(R"(tollgate_router_route_requests_total{model="gpt-4o",result="ok"} 1)"));
  EXPECT_THAT(Metrics(), HasSubstr("tollgate_router_route_duration_seconds_count 1"));
}

TEST_F(RouterServiceTest, AliasResolvesToCanonicalModel) {
  v1::RouteResponse response;
  ASSERT_TRUE(Route(Request("best"), &response).ok());
  EXPECT_EQ(response.model(), "gpt-4o");
  EXPECT_THAT(CandidateIds(response), ElementsAre("primary-gpt-4o", "mock-gpt-4o"));
}

TEST_F(RouterServiceTest, CapabilityFilterDropsDeployments) {
  v1::RouteRequest request = Request("gpt-4o");
  request.add_required_capabilities("tools");
  v1::RouteResponse response;
  ASSERT_TRUE(Route(request, &response).ok());
  EXPECT_THAT(CandidateIds(response), ElementsAre("primary-gpt-4o"));
  EXPECT_THAT(CandidateReasons(response), ElementsAre("priority 1 of 1"));

  request.add_required_capabilities("vision");
  response.Clear();
  grpc::Status status = Route(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("no deployment of model 'gpt-4o'"));
  EXPECT_THAT(status.error_message(),
              HasSubstr("deployment 'primary-gpt-4o' lacks capability 'vision'"));
  EXPECT_THAT(status.error_message(),
              HasSubstr("deployment 'mock-gpt-4o' lacks capability 'tools'"));
  EXPECT_EQ(response.candidates_size(), 0);
  EXPECT_THAT(
      Metrics(),
      HasSubstr(
          R"(tollgate_router_route_requests_total{model="gpt-4o",result="no_candidates"} 1)"));
}

TEST_F(RouterServiceTest, StreamingRequiresStreamCapability) {
  v1::RouteRequest request = Request("batch");
  v1::RouteResponse response;
  ASSERT_TRUE(Route(request, &response).ok());
  request.set_stream(true);
  grpc::Status status = Route(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(),
              HasSubstr("deployment 'mock-batch' lacks capability 'stream'"));
}

TEST_F(RouterServiceTest, ContextWindowFilterDropsSmallDeployments) {
  v1::RouteRequest request = Request("gpt-4o");
  v1::RouteResponse response;

  request.set_estimated_input_tokens(28000);
  request.set_max_output_tokens(4000);  // 32000: fits both windows exactly
  ASSERT_TRUE(Route(request, &response).ok());
  EXPECT_THAT(CandidateIds(response), ElementsAre("primary-gpt-4o", "mock-gpt-4o"));

  request.set_max_output_tokens(4001);  // 32001: too big for the mock
  response.Clear();
  ASSERT_TRUE(Route(request, &response).ok());
  EXPECT_THAT(CandidateIds(response), ElementsAre("primary-gpt-4o"));

  request.set_max_output_tokens(0);  // not given: input alone counts
  request.set_estimated_input_tokens(40000);
  response.Clear();
  ASSERT_TRUE(Route(request, &response).ok());
  EXPECT_THAT(CandidateIds(response), ElementsAre("primary-gpt-4o"));

  request.set_estimated_input_tokens(200000);
  response.Clear();
  grpc::Status status = Route(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(),
              HasSubstr("deployment 'primary-gpt-4o' context window 128000 < 200000 tokens"));
  EXPECT_THAT(status.error_message(),
              HasSubstr("deployment 'mock-gpt-4o' context window 32000 < 200000 tokens"));
}

TEST_F(RouterServiceTest, ListModels) {
  grpc::ClientContext context;
  v1::ListModelsResponse response;
  ASSERT_TRUE(router_stub_->ListModels(&context, v1::ListModelsRequest(), &response).ok());
  ASSERT_EQ(response.models_size(), 2);
  const v1::ModelInfo& gpt = response.models(0);
  EXPECT_EQ(gpt.id(), "gpt-4o");
  EXPECT_EQ(gpt.owned_by(), "openai");
  EXPECT_GT(gpt.created(), 0);
  EXPECT_THAT(gpt.aliases(), ElementsAre("best"));
  EXPECT_THAT(gpt.deployment_ids(), ElementsAre("primary-gpt-4o", "mock-gpt-4o"));
  EXPECT_EQ(response.models(1).id(), "batch");
  EXPECT_EQ(response.models(1).owned_by(), "tollgate");
}

TEST_F(RouterServiceTest, ListCatalogOnAdminPlane) {
  grpc::ClientContext context;
  v1::ListCatalogResponse response;
  ASSERT_TRUE(admin_stub_->ListCatalog(&context, v1::ListCatalogRequest(), &response).ok());
  EXPECT_EQ(response.catalog_version(), ContentHash(kCatalog));
  ASSERT_EQ(response.providers_size(), 2);
  EXPECT_EQ(response.providers(0).name(), "primary");
  EXPECT_EQ(response.providers(0).dialect(), "openai");
  EXPECT_EQ(response.providers(0).base_url(), "https://primary.example/v1");
  EXPECT_EQ(response.providers(0).api_key_env(), "PRIMARY_KEY");
  ASSERT_EQ(response.deployments_size(), 3);
  EXPECT_EQ(response.deployments(1).id(), "mock-gpt-4o");
  EXPECT_EQ(response.deployments(1).region(), "local");
  EXPECT_EQ(response.models_size(), 2);
  EXPECT_THAT(Metrics(), HasSubstr("tollgate_router_catalog_deployments 3"));
}

TEST_F(RouterServiceTest, PlanesAreSeparate) {
  // The admin service is not on the data plane and vice versa.
  auto cross_admin = v1::RouterAdmin::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", data_.port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  v1::ListCatalogResponse response;
  EXPECT_EQ(cross_admin->ListCatalog(&context, v1::ListCatalogRequest(), &response).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_NE(data_.server->GetHealthCheckService(), nullptr);
  EXPECT_EQ(control_.server->GetHealthCheckService(), nullptr);
}

TEST_F(RouterServiceTest, BusyPortIsAnError) {
  RouterAdminService another(store_.get());
  auto busy = StartGrpcServer(absl::StrCat("127.0.0.1:", data_.port), {&another}, false);
  EXPECT_EQ(busy.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(busy.status().message()), HasSubstr("cannot listen on"));
}

class CatalogReloaderTest : public RouterServiceTest {
 protected:
  void SetUp() override {
    RouterServiceTest::SetUp();
    path_ = absl::StrCat(testing::TempDir(), "router_reload_test_", getpid(), ".yaml");
    Write(kCatalog);
  }

  void Write(const std::string& text) {
    FILE* f = fopen(path_.c_str(), "w");
    ASSERT_NE(f, nullptr);
    fputs(text.c_str(), f);
    fclose(f);
  }

  std::string path_;
};

TEST_F(CatalogReloaderTest, InstallsValidChangesAndKeepsGoodCatalogOnErrors) {
  CatalogReloader reloader(path_, store_.get(), metrics_.get());
  // Same content as the live catalog: nothing to do.
  absl::StatusOr<bool> result = reloader.CheckOnce();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(*result);

  // A valid change: the mock becomes the only gpt-4o deployment.
  std::string changed = kCatalog;
  const std::string order = "deployments: [primary-gpt-4o, mock-gpt-4o]";
  changed.replace(changed.find(order), order.size(), "deployments: [mock-gpt-4o]");
  Write(changed);
  result = reloader.CheckOnce();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(*result);
  EXPECT_EQ(store_->catalog()->version(), ContentHash(changed));
  v1::RouteResponse response;
  ASSERT_TRUE(Route(Request("gpt-4o"), &response).ok());
  EXPECT_THAT(CandidateIds(response), ElementsAre("mock-gpt-4o"));

  // An invalid file is reported once and never replaces the good catalog.
  Write(changed + "typo: true\n");
  result = reloader.CheckOnce();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("unknown key 'typo'"));
  EXPECT_EQ(reloader.CheckOnce().status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->catalog()->version(), ContentHash(changed));
  response.Clear();
  ASSERT_TRUE(Route(Request("gpt-4o"), &response).ok());
  EXPECT_THAT(CandidateIds(response), ElementsAre("mock-gpt-4o"));

  // A missing file is a failure too.
  std::remove(path_.c_str());
  EXPECT_EQ(reloader.CheckOnce().status().code(), absl::StatusCode::kUnavailable);

  // Back to the original: installed again.
  Write(kCatalog);
  result = reloader.CheckOnce();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(*result);

  const std::string metrics = Metrics();
  EXPECT_THAT(metrics, HasSubstr(R"(tollgate_router_catalog_reloads_total{result="success"} 2)"));
  EXPECT_THAT(metrics, HasSubstr(R"(tollgate_router_catalog_reloads_total{result="failure"} 2)"));
}

TEST_F(CatalogReloaderTest, StartAndStop) {
  CatalogReloader reloader(path_, store_.get(), metrics_.get());
  reloader.Start(absl::Hours(1));
  reloader.Stop();  // must return promptly although the interval has not elapsed
  reloader.Start(absl::Milliseconds(1));
  // The destructor stops the thread.
}

}  // namespace
}  // namespace tollgate::router

namespace tollgate::router {
namespace {

// The services wired as in main: health from outcome reports, Watch, an injected clock.
constexpr char kRoutingCatalog[] = R"yaml(
providers:
  - name: mock
    dialect: openai
    base_url: http://127.0.0.1:9090/v1
deployments:
  - id: cheap
    provider: mock
    upstream_model: small
    region: us
    prices: {input: "0.15", output: "0.60"}
    quality: {default: 60, simple: 85}
    limits: {rpm: 100}
  - id: strong
    provider: mock
    upstream_model: large
    region: eu
    prices: {input: "2.50", output: "10.00"}
    quality: {default: 95}
models:
  - name: auto
    deployments: [cheap, strong]
    policy:
      type: auto
      classes:
        simple: least-cost
        default: {type: cost-quality, min_quality: 90}
  - name: split
    deployments: [cheap, strong]
    policy: {type: weighted, weights: {cheap: 1, strong: 1}}
rules:
  - name: eu
    when: {team: research}
    regions: [eu]
)yaml";

class RoutingServiceTest : public testing::Test {
 protected:
  void SetUp() override {
    registry_ = std::make_shared<prometheus::Registry>();
    metrics_ = *RouterMetrics::Create(*registry_);
    auto catalog = LoadCatalogFromString(kRoutingCatalog, "routing.yaml");
    ASSERT_TRUE(catalog.ok()) << catalog.status();
    store_ = std::make_unique<CatalogStore>(*catalog, metrics_.get());
    HealthOptions options;
    options.failure_threshold = 2;
    health_ = std::make_unique<HealthTracker>(options, &clock_, metrics_.get());
    watch_ = std::make_unique<WatchHub>(store_.get(), health_.get(), &clock_, metrics_.get());
    ConnectRouterParts(store_.get(), health_.get(), watch_.get());
    const RouterDeps deps{health_.get(), watch_.get()};
    router_ = std::make_unique<RouterService>(store_.get(), metrics_.get(), deps);
    admin_ = std::make_unique<RouterAdminService>(store_.get(), deps);
    auto data = StartGrpcServer("127.0.0.1:0", {router_.get()}, /*with_health=*/true);
    ASSERT_TRUE(data.ok()) << data.status();
    data_ = *std::move(data);
    auto control = StartGrpcServer("127.0.0.1:0", {admin_.get()}, /*with_health=*/false);
    ASSERT_TRUE(control.ok()) << control.status();
    control_ = *std::move(control);
    router_stub_ = v1::Router::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", data_.port),
                                                           grpc::InsecureChannelCredentials()));
    admin_stub_ = v1::RouterAdmin::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", control_.port), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (watch_) watch_->CloseAll();
    if (data_.server) data_.server->Shutdown();
    if (control_.server) control_.server->Shutdown();
  }

  v1::RouteRequest Request(const std::string& model) {
    v1::RouteRequest request;
    request.set_model(model);
    return request;
  }

  grpc::Status Route(const v1::RouteRequest& request, v1::RouteResponse* response) {
    grpc::ClientContext context;
    return router_stub_->Route(&context, request, response);
  }

  v1::ReportOutcomesResponse Report(const std::vector<v1::Outcome>& outcomes) {
    v1::ReportOutcomesRequest request;
    for (const v1::Outcome& o : outcomes) *request.add_outcomes() = o;
    grpc::ClientContext context;
    v1::ReportOutcomesResponse response;
    const grpc::Status status = router_stub_->ReportOutcomes(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  v1::Outcome Outcome(const std::string& id, int status) {
    v1::Outcome o;
    o.set_deployment_id(id);
    o.set_http_status(status);
    return o;
  }

  std::string Metrics() { return SerializeMetrics(*registry_); }

  std::unique_ptr<grpc::ClientContext> WatchContext() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return context;
  }

  FakeClock clock_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<RouterMetrics> metrics_;
  std::unique_ptr<CatalogStore> store_;
  std::unique_ptr<HealthTracker> health_;
  std::unique_ptr<WatchHub> watch_;
  std::unique_ptr<RouterService> router_;
  std::unique_ptr<RouterAdminService> admin_;
  StartedServer data_;
  StartedServer control_;
  std::unique_ptr<v1::Router::Stub> router_stub_;
  std::unique_ptr<v1::RouterAdmin::Stub> admin_stub_;
};

TEST_F(RoutingServiceTest, RouteAnswersCarryPolicyClassScopeAndScores) {
  v1::RouteRequest request = Request("auto");
  request.set_estimated_input_tokens(100);
  request.set_max_output_tokens(50);
  request.mutable_attribution()->set_team("core");
  v1::RouteResponse response;
  ASSERT_TRUE(Route(request, &response).ok());
  EXPECT_EQ(response.model(), "auto");
  EXPECT_EQ(response.policy(), "least-cost");
  EXPECT_EQ(response.policy_path(), "auto > class simple > least-cost");
  EXPECT_EQ(response.request_class(), "simple");
  EXPECT_THAT(CandidateIds(response), ElementsAre("cheap", "strong"));
  EXPECT_EQ(response.candidates(0).estimated_cost_pico(), 100 * 150000 + 50 * 600000);
  EXPECT_EQ(response.candidates(0).quality(), 85);
  EXPECT_EQ(response.candidates(0).deployment().limits().rpm(), 100);
  EXPECT_EQ(response.cache_ttl_ms(), 500);
  EXPECT_EQ(response.cache_scope().team(), "core");
  EXPECT_EQ(response.cache_scope().request_class(), "simple");
  EXPECT_EQ(response.catalog_version(), store_->catalog()->version());

  request.add_content_markers("code");  // code: quality >= 90 -> strong first
  ASSERT_TRUE(Route(request, &response).ok());
  EXPECT_EQ(response.request_class(), "code");
  EXPECT_THAT(CandidateIds(response), ElementsAre("strong", "cheap"));

  request.mutable_attribution()->set_team("research");  // rule: EU only
  ASSERT_TRUE(Route(request, &response).ok());
  EXPECT_THAT(CandidateIds(response), ElementsAre("strong"));
  EXPECT_THAT(response.rules(), ElementsAre("eu"));

  ASSERT_TRUE(Route(Request("split"), &response).ok());
  EXPECT_TRUE(response.draw_weighted());
  EXPECT_EQ(response.candidates(0).weight(), 1);
  EXPECT_EQ(response.candidates(1).weight(), 1);
}

TEST_F(RoutingServiceTest, ReportedFailuresOpenTheCircuitAndRouteAway) {
  const v1::ReportOutcomesResponse counts =
      Report({Outcome("cheap", 503), Outcome("cheap", 502), Outcome("nope", 200)});
  EXPECT_EQ(counts.accepted(), 2);
  EXPECT_EQ(counts.unknown_deployment(), 1);
  EXPECT_EQ(counts.rejected(), 0);

  v1::RouteResponse response;
  ASSERT_TRUE(Route(Request("auto"), &response).ok());
  EXPECT_THAT(CandidateIds(response), ElementsAre("strong"));

  grpc::ClientContext context;
  v1::ListDeploymentsResponse deployments;
  ASSERT_TRUE(
      admin_stub_->ListDeployments(&context, v1::ListDeploymentsRequest(), &deployments).ok());
  ASSERT_EQ(deployments.health_size(), 2);
  EXPECT_EQ(deployments.deployments(0).id(), "cheap");
  EXPECT_EQ(deployments.health(0).circuit(), v1::CIRCUIT_OPEN);
  EXPECT_FALSE(deployments.health(0).available());
  EXPECT_EQ(deployments.health(0).consecutive_failures(), 2);
  EXPECT_EQ(deployments.health(0).circuit_open_until_unix_ms(),
            absl::ToUnixMillis(clock_.Now() + absl::Seconds(30)));
  EXPECT_EQ(deployments.health(0).rpm_used(), 2);
  EXPECT_EQ(deployments.health(0).rpm_limit(), 100);
  EXPECT_EQ(deployments.health(1).circuit(), v1::CIRCUIT_CLOSED);
  EXPECT_TRUE(deployments.health(1).available());
  EXPECT_EQ(deployments.catalog_version(), store_->catalog()->version());

  // After the open period, one request probes; its success closes the circuit.
  clock_.Advance(absl::Seconds(30));
  ASSERT_TRUE(Route(Request("auto"), &response).ok());
  EXPECT_THAT(CandidateIds(response), ElementsAre("cheap", "strong"));
  EXPECT_TRUE(response.candidates(0).probe());
  EXPECT_EQ(response.cache_ttl_ms(), 0);
  Report({Outcome("cheap", 200)});
  ASSERT_TRUE(Route(Request("auto"), &response).ok());
  EXPECT_FALSE(response.candidates(0).probe());
  EXPECT_GT(response.cache_ttl_ms(), 0);
  EXPECT_THAT(Metrics(),
              HasSubstr(R"(tollgate_router_deployment_circuit_state{deployment="cheap"} 0)"));
}

TEST_F(RoutingServiceTest, ExplainRouteShowsCandidatesRemovalsAndScores) {
  Report({Outcome("strong", 429)});
  v1::RouteRequest request = Request("auto");
  request.set_estimated_input_tokens(5000);  // general -> cost-quality 90
  grpc::ClientContext context;
  v1::ExplainRouteResponse explained;
  ASSERT_TRUE(admin_stub_->ExplainRoute(&context, request, &explained).ok());
  EXPECT_EQ(explained.error_code(), 0);
  EXPECT_EQ(explained.request_class(), "general");
  EXPECT_EQ(explained.policy(), "cost-quality");
  EXPECT_EQ(explained.policy_path(), "auto > class general > cost-quality");
  ASSERT_EQ(explained.removed_size(), 1);
  EXPECT_EQ(explained.removed(0).deployment_id(), "strong");
  EXPECT_EQ(explained.removed(0).filter(), "cooldown");
  EXPECT_THAT(explained.removed(0).detail(), HasSubstr("cooling down for 1.0 s"));
  ASSERT_EQ(explained.decision().candidates_size(), 1);
  const v1::Candidate& cheap = explained.decision().candidates(0);
  EXPECT_EQ(cheap.deployment().id(), "cheap");
  EXPECT_EQ(cheap.quality(), 60);
  EXPECT_EQ(cheap.estimated_cost_pico(), 5000 * 150000 + 1024 * 600000);
  EXPECT_THAT(cheap.reason(), HasSubstr("quality 60 < 90 for general: fallback"));
  ASSERT_EQ(explained.health_size(), 2);
  EXPECT_FALSE(explained.health(1).available());
  EXPECT_EQ(explained.catalog_version(), store_->catalog()->version());

  // A failing decision is explained too, not returned as an RPC error.
  request.mutable_attribution()->set_team("research");
  grpc::ClientContext context2;
  ASSERT_TRUE(admin_stub_->ExplainRoute(&context2, request, &explained).ok());
  EXPECT_EQ(explained.error_code(), 0);  // last resort: strong is only cooling down
  EXPECT_THAT(explained.decision().candidates(0).reason(), HasSubstr("last resort"));
  request.add_required_capabilities("vision");
  grpc::ClientContext context3;
  explained.Clear();
  ASSERT_TRUE(admin_stub_->ExplainRoute(&context3, request, &explained).ok());
  EXPECT_EQ(explained.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(explained.error(), HasSubstr("no deployment of model 'auto'"));
  ASSERT_EQ(explained.removed_size(), 2);
  EXPECT_EQ(explained.removed(0).filter(), "rule_region");
  EXPECT_EQ(explained.removed(1).filter(), "capability");
  EXPECT_EQ(explained.decision().candidates_size(), 0);

  // Explaining takes no half-open probe slot.
  Report({Outcome("cheap", 500), Outcome("cheap", 500)});
  clock_.Advance(absl::Seconds(31));
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext c;
    ASSERT_TRUE(admin_stub_->ExplainRoute(&c, Request("auto"), &explained).ok());
    EXPECT_TRUE(explained.decision().candidates(0).probe());
  }
  v1::RouteResponse routed;
  ASSERT_TRUE(Route(Request("auto"), &routed).ok());
  EXPECT_TRUE(routed.candidates(0).probe());
}

TEST_F(RoutingServiceTest, WatchPushesSnapshotsHealthChangesAndHeartbeats) {
  auto context = WatchContext();
  v1::WatchRequest watch_request;
  watch_request.set_client("test");
  std::unique_ptr<grpc::ClientReader<v1::WatchEvent>> reader =
      router_stub_->Watch(context.get(), watch_request);
  v1::WatchEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.sequence(), 1);
  ASSERT_TRUE(event.has_snapshot());
  const v1::RouterSnapshot& snapshot = event.snapshot();
  EXPECT_EQ(snapshot.catalog_version(), store_->catalog()->version());
  ASSERT_EQ(snapshot.deployments_size(), 2);
  ASSERT_EQ(snapshot.models_size(), 2);
  EXPECT_EQ(snapshot.models(0).id(), "auto");
  EXPECT_THAT(snapshot.models(0).deployment_ids(), ElementsAre("cheap", "strong"));
  ASSERT_EQ(snapshot.health_size(), 2);
  EXPECT_TRUE(snapshot.health(0).available());
  EXPECT_EQ(snapshot.classifier().long_input_tokens(), 32000);
  EXPECT_EQ(watch_->streams(), 1u);

  // Health changes arrive as they happen.
  v1::Outcome limited = Outcome("strong", 429);
  limited.set_retry_after_ms(2000);
  Report({limited});
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.sequence(), 2);
  ASSERT_TRUE(event.has_health());
  EXPECT_EQ(event.health().kind(), v1::HealthEvent::COOLDOWN_STARTED);
  EXPECT_EQ(event.health().deployment_id(), "strong");
  EXPECT_EQ(event.health().health().cooldown_until_unix_ms(),
            absl::ToUnixMillis(clock_.Now()) + 2000);

  Report({Outcome("cheap", 500), Outcome("cheap", 500)});
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.health().kind(), v1::HealthEvent::CIRCUIT_OPENED);
  EXPECT_EQ(event.health().deployment_id(), "cheap");

  clock_.Advance(absl::Seconds(30));
  health_->Tick();
  std::vector<std::string> kinds;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(reader->Read(&event));
    kinds.push_back(absl::StrCat(v1::HealthEvent::Kind_Name(event.health().kind()), ":",
                                 event.health().deployment_id()));
  }
  EXPECT_THAT(kinds, ElementsAre("CIRCUIT_HALF_OPENED:cheap", "COOLDOWN_ENDED:strong"));

  // A catalog change sends a new snapshot.
  std::string changed = kRoutingCatalog;
  changed += "routing: {cache_ttl_ms: 100}\n";
  store_->Install(*LoadCatalogFromString(changed, "changed.yaml"));
  ASSERT_TRUE(reader->Read(&event));
  ASSERT_TRUE(event.has_snapshot());
  EXPECT_EQ(event.snapshot().catalog_version(), ContentHash(changed));

  watch_->Heartbeat();
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_TRUE(event.has_heartbeat());
  EXPECT_EQ(event.sequence(), 7);
  EXPECT_THAT(Metrics(), HasSubstr("tollgate_router_watch_streams 1"));

  // Shutting down ends the stream with UNAVAILABLE.
  watch_->CloseAll();
  EXPECT_FALSE(reader->Read(&event));
  const grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(), "router shutting down");
}

TEST_F(RoutingServiceTest, WatchOnTheControlPlaneAndClientCancel) {
  auto context = WatchContext();
  std::unique_ptr<grpc::ClientReader<v1::WatchEvent>> reader =
      admin_stub_->Watch(context.get(), v1::WatchRequest());
  v1::WatchEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_TRUE(event.has_snapshot());
  context->TryCancel();
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

}  // namespace
}  // namespace tollgate::router
