#include "services/router/health.h"

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/metrics.h"
#include "services/router/route_engine.h"
#include "services/router/router_metrics.h"

namespace tollgate::router {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kCatalog[] = R"yaml(
providers:
  - name: p
    dialect: openai
    base_url: http://127.0.0.1:9/v1
deployments:
  - id: a
    provider: p
    upstream_model: m
    prices: {input: "1", output: "1"}
    limits: {rpm: 10, tpm: 1000}
  - id: b
    provider: p
    upstream_model: m
    prices: {input: "1", output: "1"}
  - id: c
    provider: p
    upstream_model: m
    prices: {input: "1", output: "1"}
models:
  - name: prio
    deployments: [a, b, c]
  - name: fast
    deployments: [a, b, c]
    policy: {type: least-latency, exploration: "0.1"}
)yaml";

std::string EventName(const v1::HealthEvent& e) {
  return absl::StrCat(v1::HealthEvent::Kind_Name(e.kind()), ":", e.deployment_id());
}

class HealthTest : public testing::Test {
 protected:
  void SetUp() override {
    registry_ = std::make_shared<prometheus::Registry>();
    metrics_ = *RouterMetrics::Create(*registry_);
    auto catalog = LoadCatalogFromString(kCatalog, "health.yaml");
    ASSERT_TRUE(catalog.ok()) << catalog.status();
    catalog_ = *catalog;
    HealthOptions options;
    options.failure_threshold = 3;
    options.open_duration = absl::Seconds(30);
    options.probe_hold = absl::Seconds(10);
    options.default_cooldown = absl::Seconds(2);
    options.max_cooldown = absl::Seconds(60);
    options.ewma_alpha = 0.5;
    tracker_ = std::make_unique<HealthTracker>(options, &clock_, metrics_.get());
    tracker_->AddListener([this](const std::vector<v1::HealthEvent>& events) {
      for (const v1::HealthEvent& e : events) events_.push_back(EventName(e));
    });
    tracker_->SetCatalog(*catalog_);
  }

  v1::Outcome Outcome(const std::string& id, int status,
                      v1::OutcomeErrorKind kind = v1::OUTCOME_ERROR_NONE) {
    v1::Outcome o;
    o.set_deployment_id(id);
    o.set_http_status(status);
    o.set_error_kind(kind);
    o.set_time_unix_ms(absl::ToUnixMillis(clock_.Now()));
    return o;
  }

  ReportCounts Report(std::vector<v1::Outcome> outcomes) {
    google::protobuf::RepeatedPtrField<v1::Outcome> batch(outcomes.begin(), outcomes.end());
    return tracker_->Report(batch);
  }

  const DeploymentHealthView& View(const std::string& id) {
    snapshot_ = tracker_->Get();
    return snapshot_->views[snapshot_->index_by_id.at(id)];
  }

  std::vector<std::string> Route(const std::string& model) {
    snapshot_ = tracker_->Get();
    RouteEnv env;
    env.health = snapshot_.get();
    env.now = clock_.Now();
    env.rng = &rng_;
    v1::RouteRequest request;
    request.set_model(model);
    RouteDecision decision;
    absl::Status status = DecideRoute(*catalog_, request, env, &decision);
    EXPECT_TRUE(status.ok()) << status;
    std::vector<std::string> ids;
    for (const RankedCandidate& c : decision.candidates) ids.push_back(c.deployment->id());
    return ids;
  }

  std::vector<std::string> TakeEvents() { return std::exchange(events_, {}); }
  std::string Metrics() { return SerializeMetrics(*registry_); }

  FakeClock clock_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<RouterMetrics> metrics_;
  std::shared_ptr<const Catalog> catalog_;
  std::unique_ptr<HealthTracker> tracker_;
  std::shared_ptr<const HealthSnapshot> snapshot_;
  std::vector<std::string> events_;
  std::mt19937_64 rng_{7};
};

TEST_F(HealthTest, CircuitOpensHalfOpensAndCloses) {
  // Two failures: still closed. A success resets the count.
  Report({Outcome("a", 503), Outcome("a", 0, v1::OUTCOME_ERROR_CONNECT)});
  EXPECT_EQ(View("a").circuit, v1::CIRCUIT_CLOSED);
  EXPECT_EQ(View("a").consecutive_failures, 2);
  Report({Outcome("a", 200)});
  EXPECT_EQ(View("a").consecutive_failures, 0);
  Report({Outcome("a", 500), Outcome("a", 0, v1::OUTCOME_ERROR_TIMEOUT)});
  EXPECT_THAT(TakeEvents(), IsEmpty());

  // Third consecutive failure: open.
  Report({Outcome("a", 0, v1::OUTCOME_ERROR_RESET)});
  EXPECT_EQ(View("a").circuit, v1::CIRCUIT_OPEN);
  EXPECT_EQ(View("a").open_until, clock_.Now() + absl::Seconds(30));
  EXPECT_THAT(TakeEvents(), ElementsAre("CIRCUIT_OPENED:a"));
  EXPECT_THAT(Route("prio"), ElementsAre("b", "c"));
  EXPECT_THAT(Metrics(),
              HasSubstr(R"(tollgate_router_deployment_circuit_state{deployment="a"} 2)"));

  // A late success of an attempt that started before the circuit opened changes nothing.
  v1::Outcome late = Outcome("a", 200);
  late.set_time_unix_ms(absl::ToUnixMillis(clock_.Now() - absl::Seconds(1)));
  Report({late});
  EXPECT_EQ(View("a").circuit, v1::CIRCUIT_OPEN);

  // The open period ends: half-open, announced on the next tick; one probe at a time.
  clock_.Advance(absl::Seconds(30));
  tracker_->Tick();
  EXPECT_THAT(TakeEvents(), ElementsAre("CIRCUIT_HALF_OPENED:a"));
  EXPECT_EQ(View("a").circuit, v1::CIRCUIT_HALF_OPEN);
  EXPECT_THAT(Route("prio"), ElementsAre("a", "b", "c"));  // the probe
  EXPECT_THAT(Route("prio"), ElementsAre("b", "c"));       // probe in flight

  // The probe fails: open again for a full period.
  clock_.Advance(absl::Seconds(1));
  Report({Outcome("a", 502)});
  EXPECT_THAT(TakeEvents(), ElementsAre("CIRCUIT_OPENED:a"));
  EXPECT_EQ(View("a").open_until, clock_.Now() + absl::Seconds(30));
  EXPECT_THAT(Route("prio"), ElementsAre("b", "c"));

  // Next probe succeeds: closed, routed normally, the count is reset.
  clock_.Advance(absl::Seconds(31));
  EXPECT_THAT(Route("prio"), ElementsAre("a", "b", "c"));  // probe (no tick needed to route)
  Report({Outcome("a", 200)});
  EXPECT_THAT(TakeEvents(), ElementsAre("CIRCUIT_CLOSED:a"));
  EXPECT_EQ(View("a").circuit, v1::CIRCUIT_CLOSED);
  EXPECT_EQ(View("a").consecutive_failures, 0);
  EXPECT_THAT(Route("prio"), ElementsAre("a", "b", "c"));
  EXPECT_THAT(Route("prio"), ElementsAre("a", "b", "c"));
  const std::string metrics = Metrics();
  EXPECT_THAT(metrics, HasSubstr(R"(tollgate_router_deployment_circuit_state{deployment="a"} 0)"));
  EXPECT_THAT(
      metrics,
      HasSubstr(
          R"(tollgate_router_deployment_circuit_transitions_total{deployment="a",to="open"} 2)"));
  EXPECT_THAT(
      metrics,
      HasSubstr(
          R"(tollgate_router_deployment_circuit_transitions_total{deployment="a",to="closed"} 1)"));
}

TEST_F(HealthTest, NeutralOutcomesDoNotMoveTheCircuit) {
  Report({Outcome("b", 500), Outcome("b", 500)});
  Report({Outcome("b", 400), Outcome("b", 404), Outcome("b", 400, v1::OUTCOME_ERROR_CONTEXT_LENGTH),
          Outcome("b", 0, v1::OUTCOME_ERROR_CANCELLED),
          Outcome("b", 200, v1::OUTCOME_ERROR_CLIENT)});
  EXPECT_EQ(View("b").consecutive_failures, 2);
  Report({Outcome("b", 429)});  // rate limiting is not a failure either
  EXPECT_EQ(View("b").consecutive_failures, 2);
  EXPECT_EQ(View("b").circuit, v1::CIRCUIT_CLOSED);
  Report({Outcome("b", 200, v1::OUTCOME_ERROR_OVERLOADED)});  // the kind wins over the status
  EXPECT_EQ(View("b").circuit, v1::CIRCUIT_OPEN);
}

TEST_F(HealthTest, RateLimitCooldownHonoursRetryAfter) {
  v1::Outcome limited = Outcome("b", 429);
  limited.set_retry_after_ms(5000);
  Report({limited});
  EXPECT_THAT(TakeEvents(), ElementsAre("COOLDOWN_STARTED:b"));
  EXPECT_EQ(View("b").cooldown_until, clock_.Now() + absl::Seconds(5));
  EXPECT_THAT(Route("prio"), ElementsAre("a", "c"));
  EXPECT_THAT(Metrics(), HasSubstr(R"(tollgate_router_deployment_cooldown{deployment="b"} 1)"));

  // A shorter retry-after never shortens it.
  clock_.Advance(absl::Seconds(1));
  v1::Outcome shorter = Outcome("b", 429);
  shorter.set_retry_after_ms(1000);
  Report({shorter});
  EXPECT_EQ(View("b").cooldown_until, clock_.Now() + absl::Seconds(4));

  clock_.Advance(absl::Seconds(4));
  EXPECT_THAT(Route("prio"), ElementsAre("a", "b", "c"));  // over, even before the tick
  tracker_->Tick();
  EXPECT_THAT(TakeEvents(), ElementsAre("COOLDOWN_ENDED:b"));
  EXPECT_THAT(Metrics(),
              HasSubstr(R"(tollgate_router_deployment_cooldowns_total{deployment="b"} 1)"));

  // No retry-after: the default; a huge one: capped.
  Report({Outcome("c", 0, v1::OUTCOME_ERROR_RATE_LIMITED)});
  EXPECT_EQ(View("c").cooldown_until, clock_.Now() + absl::Seconds(2));
  v1::Outcome huge = Outcome("a", 429);
  huge.set_retry_after_ms(3600 * 1000);
  Report({huge});
  EXPECT_EQ(View("a").cooldown_until, clock_.Now() + absl::Seconds(60));
}

TEST_F(HealthTest, EwmasFollowSuccessfulAttempts) {
  v1::Outcome o = Outcome("a", 200);
  o.set_latency_us(100000);
  o.set_ttft_us(20000);
  Report({o});
  EXPECT_EQ(View("a").latency_ewma_us, 100000);  // the first sample as is
  EXPECT_EQ(View("a").ttft_ewma_us, 20000);
  o.set_latency_us(200000);
  o.set_ttft_us(0);  // not measured: TTFT unchanged
  Report({o});
  EXPECT_EQ(View("a").latency_ewma_us, 150000);  // alpha 0.5
  EXPECT_EQ(View("a").ttft_ewma_us, 20000);
  v1::Outcome failed = Outcome("a", 500);
  failed.set_latency_us(9000000);
  Report({failed});
  EXPECT_EQ(View("a").latency_ewma_us, 150000);  // failures do not count
  EXPECT_DOUBLE_EQ(View("a").error_rate, 0.5);
  EXPECT_THAT(Metrics(),
              HasSubstr(R"(tollgate_router_deployment_latency_ewma_seconds{deployment="a"} 0.15)"));
}

TEST_F(HealthTest, LeastLatencyConvergesOnReportedLatencies) {
  // Before any report: catalog order, with exploration.
  std::map<std::string, int> first;
  for (int i = 0; i < 1000; ++i) ++first[Route("fast")[0]];
  EXPECT_GT(first["a"], 850);

  // c is fastest, then b, then a; each report moves the EWMAs.
  const std::map<std::string, int64_t> latency = {{"a", 300000}, {"b", 120000}, {"c", 40000}};
  for (int round = 0; round < 5; ++round) {
    std::vector<v1::Outcome> batch;
    for (const auto& [id, us] : latency) {
      v1::Outcome o = Outcome(id, 200);
      o.set_latency_us(us + round * 1000);
      batch.push_back(o);
    }
    Report(batch);
  }
  first.clear();
  constexpr int kDraws = 10000;
  for (int i = 0; i < kDraws; ++i) {
    const std::vector<std::string> ids = Route("fast");
    ++first[ids[0]];
    if (ids[0] == "c") {
      EXPECT_THAT(ids, ElementsAre("c", "b", "a"));
    }
  }
  EXPECT_NEAR(first["c"] / double{kDraws}, 0.90, 0.015);
  EXPECT_NEAR(first["b"] / double{kDraws}, 0.05, 0.01);

  // c slows down: the order follows.
  for (int i = 0; i < 6; ++i) {
    v1::Outcome o = Outcome("c", 200);
    o.set_latency_us(900000);
    Report({o});
  }
  first.clear();
  for (int i = 0; i < kDraws; ++i) ++first[Route("fast")[0]];
  EXPECT_NEAR(first["b"] / double{kDraws}, 0.90, 0.015);
}

TEST_F(HealthTest, RateLimitUseRoutesAwayBeforeTheLimit) {
  // a: rpm 10, tpm 1000, headroom 90%: 9 requests are "near".
  std::vector<v1::Outcome> batch;
  for (int i = 0; i < 8; ++i) {
    v1::Outcome o = Outcome("a", 200);
    o.set_input_tokens(10);
    o.set_output_tokens(5);
    batch.push_back(o);
  }
  Report(batch);
  EXPECT_EQ(View("a").rpm_used, 8);
  EXPECT_EQ(View("a").tpm_used, 120);
  EXPECT_FALSE(View("a").near_limit);
  EXPECT_THAT(Route("prio"), ElementsAre("a", "b", "c"));

  clock_.Advance(absl::Seconds(30));
  Report({Outcome("a", 200)});
  EXPECT_TRUE(View("a").near_limit);
  EXPECT_THAT(TakeEvents(), ElementsAre("LIMIT_NEAR:a"));
  EXPECT_THAT(Route("prio"), ElementsAre("b", "c", "a"));

  // The first 8 leave the 60 s window.
  clock_.Advance(absl::Seconds(31));
  tracker_->Tick();
  EXPECT_EQ(View("a").rpm_used, 1);
  EXPECT_THAT(TakeEvents(), ElementsAre("LIMIT_CLEARED:a"));
  EXPECT_THAT(Route("prio"), ElementsAre("a", "b", "c"));

  // Tokens count too: 900 of 1000.
  v1::Outcome big = Outcome("a", 200);
  big.set_input_tokens(800);
  big.set_output_tokens(100);
  Report({big});
  EXPECT_TRUE(View("a").near_limit);
  EXPECT_THAT(Metrics(), HasSubstr(R"(tollgate_router_deployment_tpm_used{deployment="a"} 900)"));

  // Connect failures never reached the provider: no use.
  Report({Outcome("b", 0, v1::OUTCOME_ERROR_CONNECT)});
  EXPECT_EQ(View("b").rpm_used, 0);
}

TEST_F(HealthTest, CountsUnknownAndMalformedOutcomes) {
  v1::Outcome negative = Outcome("a", 200);
  negative.set_latency_us(-1);
  v1::Outcome status = Outcome("a", 1000);
  const ReportCounts counts =
      Report({Outcome("a", 200), Outcome("gone", 200), Outcome("", 200), negative, status});
  EXPECT_EQ(counts.accepted, 1);
  EXPECT_EQ(counts.unknown_deployment, 1);
  EXPECT_EQ(counts.rejected, 3);
  const std::string metrics = Metrics();
  EXPECT_THAT(metrics, HasSubstr(R"(tollgate_router_outcomes_total{result="accepted"} 1)"));
  EXPECT_THAT(metrics, HasSubstr(R"(tollgate_router_outcomes_total{result="rejected"} 3)"));
  EXPECT_THAT(metrics,
              HasSubstr(R"(tollgate_router_outcomes_total{result="unknown_deployment"} 1)"));
}

TEST_F(HealthTest, CatalogChangesKeepStateOfSurvivingDeployments) {
  Report({Outcome("a", 500), Outcome("a", 500), Outcome("a", 500)});
  Report({Outcome("c", 500)});
  std::string text = kCatalog;
  // Drop c, add d.
  text.replace(text.find("  - id: c"), std::string("  - id: c").size(), "  - id: d");
  for (size_t at; (at = text.find("[a, b, c]")) != std::string::npos;) {
    text.replace(at, 9, "[a, b, d]");
  }
  auto changed = LoadCatalogFromString(text, "changed.yaml");
  ASSERT_TRUE(changed.ok()) << changed.status();
  tracker_->SetCatalog(**changed);
  const std::shared_ptr<const HealthSnapshot> snapshot = tracker_->Get();
  EXPECT_EQ(snapshot->catalog_version, (*changed)->version());
  ASSERT_EQ(snapshot->views.size(), 3u);
  EXPECT_EQ(snapshot->views[0].id, "a");
  EXPECT_EQ(snapshot->views[0].circuit, v1::CIRCUIT_OPEN);
  EXPECT_EQ(snapshot->views[2].id, "d");
  EXPECT_EQ(snapshot->views[2].consecutive_failures, 0);
  EXPECT_FALSE(snapshot->index_by_id.contains("c"));
  const std::string metrics = Metrics();
  EXPECT_THAT(metrics, Not(HasSubstr(R"(deployment="c")")));
  EXPECT_THAT(metrics, HasSubstr(R"(tollgate_router_deployment_circuit_state{deployment="d"} 0)"));
}

TEST_F(HealthTest, ViewToProto) {
  v1::Outcome limited = Outcome("b", 429);
  limited.set_retry_after_ms(1500);
  Report({limited});
  v1::DeploymentHealth proto;
  View("b").ToProto(clock_.Now(), &proto);
  EXPECT_EQ(proto.deployment_id(), "b");
  EXPECT_EQ(proto.circuit(), v1::CIRCUIT_CLOSED);
  EXPECT_EQ(proto.cooldown_until_unix_ms(), absl::ToUnixMillis(clock_.Now()) + 1500);
  EXPECT_FALSE(proto.available());
  EXPECT_EQ(proto.rpm_used(), 1);
  View("b").ToProto(clock_.Now() + absl::Seconds(2), &proto);
  EXPECT_EQ(proto.cooldown_until_unix_ms(), 0);
  EXPECT_TRUE(proto.available());
  View("a").ToProto(clock_.Now(), &proto);
  EXPECT_EQ(proto.rpm_limit(), 10);
  EXPECT_EQ(proto.tpm_limit(), 1000);
}

}  // namespace
}  // namespace tollgate::router
