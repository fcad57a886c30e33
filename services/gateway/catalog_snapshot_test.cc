#include "services/gateway/catalog_snapshot.h"

#include "gtest/gtest.h"

namespace tollgate::gateway {
namespace {

v1::RouterSnapshot Snapshot() {
  v1::RouterSnapshot s;
  s.set_catalog_version("v1");
  auto add = [&](const std::string& id, std::vector<std::string> caps, int64_t window) {
    v1::Deployment* d = s.add_deployments();
    d->set_id(id);
    for (auto& c : caps) d->add_capabilities(c);
    d->set_context_window(window);
    v1::DeploymentHealth* h = s.add_health();
    h->set_deployment_id(id);
    h->set_available(true);
  };
  add("small", {"chat", "stream"}, 8000);
  add("tools", {"chat", "stream", "tools"}, 128000);
  add("big", {"chat"}, 200000);
  v1::ModelInfo* m = s.add_models();
  m->set_id("gpt");
  m->add_aliases("smart");
  m->add_deployment_ids("small");
  m->add_deployment_ids("tools");
  m->add_deployment_ids("big");
  return s;
}

v1::RouteRequest Request(const std::string& model) {
  v1::RouteRequest r;
  r.set_model(model);
  r.add_required_capabilities("chat");
  r.set_estimated_input_tokens(10);
  return r;
}

std::vector<std::string> Ids(const v1::RouteResponse& r) {
  std::vector<std::string> ids;
  for (const auto& c : r.candidates()) ids.push_back(c.deployment().id());
  return ids;
}

TEST(RouteFromSnapshotTest, PriorityOrderByIdOrAlias) {
  auto r = RouteFromSnapshot(Snapshot(), Request("smart"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->model(), "gpt");
  EXPECT_EQ(Ids(*r), (std::vector<std::string>{"small", "tools", "big"}));
  EXPECT_EQ(r->cache_ttl_ms(), 0);
  EXPECT_FALSE(r->candidates(0).reason().empty());
  EXPECT_TRUE(RouteFromSnapshot(Snapshot(), Request("gpt")).ok());
}

TEST(RouteFromSnapshotTest, UnknownModelIsNotFound) {
  EXPECT_EQ(RouteFromSnapshot(Snapshot(), Request("nope")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(RouteFromSnapshotTest, FiltersCapabilitiesStreamAndContextWindow) {
  v1::RouteRequest tools = Request("gpt");
  tools.add_required_capabilities("tools");
  EXPECT_EQ(Ids(*RouteFromSnapshot(Snapshot(), tools)), (std::vector<std::string>{"tools"}));
  v1::RouteRequest stream = Request("gpt");
  stream.set_stream(true);
  EXPECT_EQ(Ids(*RouteFromSnapshot(Snapshot(), stream)),
            (std::vector<std::string>{"small", "tools"}));
  v1::RouteRequest long_request = Request("gpt");
  long_request.set_estimated_input_tokens(150000);
  EXPECT_EQ(Ids(*RouteFromSnapshot(Snapshot(), long_request)), (std::vector<std::string>{"big"}));
  long_request.set_stream(true);
  EXPECT_EQ(RouteFromSnapshot(Snapshot(), long_request).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(RouteFromSnapshotTest, UnavailableDeploymentsGoLast) {
  v1::RouterSnapshot s = Snapshot();
  s.mutable_health(0)->set_available(false);
  EXPECT_EQ(Ids(*RouteFromSnapshot(s, Request("gpt"))),
            (std::vector<std::string>{"tools", "big", "small"}));
}

TEST(SnapshotStoreTest, EventsBumpGenerationAndApplyHealth) {
  SnapshotStore store;
  EXPECT_FALSE(store.has_snapshot());
  EXPECT_EQ(store.Get(), nullptr);
  const uint64_t g0 = store.generation();
  store.Set(std::make_shared<const v1::RouterSnapshot>(Snapshot()));
  EXPECT_TRUE(store.has_snapshot());
  const uint64_t g1 = store.generation();
  EXPECT_GT(g1, g0);
  v1::HealthEvent event;
  event.set_kind(v1::HealthEvent::CIRCUIT_OPENED);
  event.set_deployment_id("small");
  event.mutable_health()->set_deployment_id("small");
  event.mutable_health()->set_available(false);
  store.ApplyHealth(event);
  EXPECT_GT(store.generation(), g1);
  EXPECT_FALSE(store.Get()->health(0).available());
  EXPECT_EQ(Ids(*RouteFromSnapshot(*store.Get(), Request("gpt"))).back(), "small");
}

}  // namespace
}  // namespace tollgate::gateway
