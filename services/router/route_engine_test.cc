#include "services/router/route_engine.h"

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tollgate::router {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Four deployments with different prices, regions, windows and quality; one model per policy.
constexpr char kCatalog[] = R"yaml(
providers:
  - name: p
    dialect: openai
    base_url: http://127.0.0.1:9/v1
deployments:
  - id: cheap
    provider: p
    upstream_model: small
    region: us
    prices: {input: "0.15", output: "0.60"}
    capabilities: [chat, stream, tools]
    context_window: 128000
    quality: {simple: 80, general: 60, code: 50, reasoning: 40, tools: 60, long: 30}
  - id: mid
    provider: p
    upstream_model: medium
    region: eu
    prices: {input: "1.00", output: "4.00"}
    capabilities: [chat, stream, tools]
    context_window: 128000
    quality: {default: 80, code: 88}
  - id: strong
    provider: p
    upstream_model: large
    region: us
    prices: {input: "2.50", output: "10.00"}
    capabilities: [chat, stream, tools, vision]
    context_window: 200000
    quality: {default: 95}
  - id: long
    provider: p
    upstream_model: long
    region: eu
    prices: {input: "2.00", output: "0.50"}
    capabilities: [chat, stream]
    context_window: 1000000
    max_output_tokens: 32768
    quality: {long: 90}
models:
  - name: prio
    deployments: [cheap, mid, strong]
  - name: frugal
    deployments: [strong, mid, cheap]
    rules:
      - name: budget-saver
        when: {budget_used_percent: 80}
        deployments: [cheap]
  - name: weighted
    deployments: [cheap, mid, strong]
    policy: {type: weighted, weights: {cheap: 3, mid: 1, strong: 0}}
  - name: fast
    deployments: [cheap, mid, strong]
    policy: {type: least-latency, exploration: "0.1"}
  - name: fast-greedy
    deployments: [cheap, mid, strong]
    policy: {type: least-latency, exploration: 0, metric: ttft}
  - name: cheapest
    deployments: [strong, mid, cheap]
    policy: least-cost
  - name: cheapest-crossing
    deployments: [strong, long, cheap]
    policy: {type: least-cost, default_output_tokens: 100}
  - name: good-enough
    deployments: [cheap, mid, strong]
    policy: {type: cost-quality, min_quality: 85}
  - name: good-enough-strict
    deployments: [cheap, mid, strong]
    policy: {type: cost-quality, min_quality: 85, strict: true, cache: false}
  - name: auto
    deployments: [cheap, mid, strong, long]
    policy:
      type: auto
      cache_ttl_ms: 250
      classes:
        simple: least-cost
        code: {type: cost-quality, min_quality: 85}
        reasoning: {type: priority, deployments: [strong]}
        long: {type: priority, deployments: [long]}
        default: {type: cost-quality, min_quality: 60, deployments: [cheap, mid, strong]}
    rules:
      - name: gold
        when: {tags: {tier: gold}}
        deployments: [strong]
  - name: residency
    deployments: [cheap, mid, strong, long]
    rules:
      - name: batch
        when: {feature: [batch, offline]}
        policy: least-cost
rules:
  - name: research-eu
    when: {team: research}
    regions: [eu]
teams:
  - name: interns
    allowed_models: [prio, auto]
  - name: legal
    allowed_regions: [us]
routing:
  cache_ttl_ms: 700
)yaml";

class RouteEngineTest : public testing::Test {
 protected:
  void SetUp() override {
    auto catalog = LoadCatalogFromString(kCatalog, "engine.yaml");
    ASSERT_TRUE(catalog.ok()) << catalog.status();
    catalog_ = *catalog;
  }

  v1::RouteRequest Request(const std::string& model) {
    v1::RouteRequest request;
    request.set_model(model);
    return request;
  }

  absl::Status Decide(const v1::RouteRequest& request, RouteDecision* decision) {
    RouteEnv env;
    env.health = health_.get();
    env.now = now_;
    env.rng = &rng_;
    env.grant_probes = grant_probes_;
    return DecideRoute(*catalog_, request, env, decision);
  }

  RouteDecision MustDecide(const v1::RouteRequest& request) {
    RouteDecision decision;
    absl::Status status = Decide(request, &decision);
    EXPECT_TRUE(status.ok()) << status;
    return decision;
  }

  static std::vector<std::string> Ids(const RouteDecision& decision) {
    std::vector<std::string> ids;
    for (const RankedCandidate& c : decision.candidates) ids.push_back(c.deployment->id());
    return ids;
  }

  static std::vector<std::string> Removed(const RouteDecision& decision) {
    std::vector<std::string> out;
    for (const Removal& r : decision.removed) {
      out.push_back(absl::StrCat(r.deployment->id(), ":", RemovalFilterName(r.filter)));
    }
    return out;
  }

  // A health snapshot aligned with the catalog, every deployment healthy and unmeasured.
  std::shared_ptr<HealthSnapshot> Healthy() {
    auto snapshot = std::make_shared<HealthSnapshot>();
    snapshot->catalog_version = catalog_->version();
    for (const v1::Deployment& d : catalog_->deployments()) {
      DeploymentHealthView view;
      view.id = d.id();
      view.probe_gate = std::make_shared<ProbeGate>();
      snapshot->index_by_id[d.id()] = snapshot->views.size();
      snapshot->views.push_back(view);
    }
    return snapshot;
  }

  DeploymentHealthView& View(HealthSnapshot& snapshot, const std::string& id) {
    return snapshot.views[snapshot.index_by_id.at(id)];
  }

  std::shared_ptr<const Catalog> catalog_;
  std::shared_ptr<HealthSnapshot> health_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
  std::mt19937_64 rng_{42};
  bool grant_probes_ = true;
};

TEST_F(RouteEngineTest, PriorityKeepsCatalogOrderAndCaches) {
  v1::RouteRequest request = Request("prio");
  request.mutable_attribution()->set_team("core");
  request.add_required_capabilities("tools");
  request.set_stream(true);
  RouteDecision decision = MustDecide(request);
  EXPECT_THAT(Ids(decision), ElementsAre("cheap", "mid", "strong"));
  EXPECT_EQ(decision.policy, PolicyKind::kPriority);
  EXPECT_EQ(decision.policy_path, "priority");
  EXPECT_EQ(decision.candidates[1].reason, "priority 2 of 3");
  EXPECT_EQ(decision.cache_ttl_ms, 700);  // routing.cache_ttl_ms
  EXPECT_FALSE(decision.draw_weighted);

  v1::RouteResponse response;
  FillRouteResponse(*catalog_, request, decision, &response);
  EXPECT_EQ(response.policy(), "priority");
  EXPECT_EQ(response.cache_ttl_ms(), 700);
  EXPECT_EQ(response.catalog_version(), catalog_->version());
  EXPECT_EQ(response.cache_scope().model(), "prio");
  EXPECT_EQ(response.cache_scope().team(), "core");
  EXPECT_EQ(response.cache_scope().request_class(), "simple");
  EXPECT_THAT(response.cache_scope().required_capabilities(), ElementsAre("stream", "tools"));
  EXPECT_TRUE(response.cache_scope().attribution().empty());  // no rule looks past the team
  // Every candidate carries its scores whatever the policy: 0 input + 1024 assumed output.
  EXPECT_EQ(response.candidates(0).estimated_cost_pico(), int64_t{1024} * 600000);
  EXPECT_EQ(response.candidates(0).quality(), 80);  // simple
}

TEST_F(RouteEngineTest, WeightedDrawFollowsWeights) {
  std::map<std::string, int> first;
  constexpr int kDraws = 10000;
  for (int i = 0; i < kDraws; ++i) {
    RouteDecision decision = MustDecide(Request("weighted"));
    ASSERT_EQ(decision.candidates.size(), 3u);
    ++first[decision.candidates[0].deployment->id()];
    // The zero-weight deployment is only ever a fallback, and comes last.
    EXPECT_EQ(decision.candidates[2].deployment->id(), "strong");
    EXPECT_EQ(decision.candidates[2].weight, 0);
    EXPECT_TRUE(decision.draw_weighted);
  }
  EXPECT_NEAR(first["cheap"] / double{kDraws}, 0.75, 0.02);
  EXPECT_NEAR(first["mid"] / double{kDraws}, 0.25, 0.02);
  EXPECT_EQ(first["strong"], 0);

  RouteDecision decision = MustDecide(Request("weighted"));
  EXPECT_EQ(decision.policy, PolicyKind::kWeighted);
  EXPECT_GT(decision.cache_ttl_ms, 0);
  const RankedCandidate& drawn = decision.candidates[0];
  EXPECT_THAT(drawn.reason, HasSubstr(", drawn"));
  EXPECT_EQ(drawn.weight, drawn.deployment->id() == "cheap" ? 3 : 1);
}

TEST_F(RouteEngineTest, WeightedRenormalisesOverHealthyDeployments) {
  health_ = Healthy();
  View(*health_, "cheap").cooldown_until = now_ + absl::Seconds(5);
  for (int i = 0; i < 100; ++i) {
    RouteDecision decision = MustDecide(Request("weighted"));
    EXPECT_THAT(Ids(decision), ElementsAre("mid", "strong"));
    EXPECT_THAT(Removed(decision), ElementsAre("cheap:cooldown"));
  }
}

TEST_F(RouteEngineTest, LeastLatencyPrefersFastestWithExploration) {
  health_ = Healthy();
  View(*health_, "cheap").latency_ewma_us = 90000;
  View(*health_, "mid").latency_ewma_us = 20000;
  View(*health_, "strong").latency_ewma_us = 50000;
  std::map<std::string, int> first;
  constexpr int kDraws = 10000;
  for (int i = 0; i < kDraws; ++i) {
    RouteDecision decision = MustDecide(Request("fast"));
    ++first[decision.candidates[0].deployment->id()];
  }
  EXPECT_NEAR(first["mid"] / double{kDraws}, 0.90, 0.015);
  EXPECT_NEAR(first["strong"] / double{kDraws}, 0.05, 0.01);
  EXPECT_NEAR(first["cheap"] / double{kDraws}, 0.05, 0.01);

  // The weights let a gateway draw the same distribution locally.
  RouteDecision decision = MustDecide(Request("fast"));
  EXPECT_TRUE(decision.draw_weighted);
  std::map<std::string, int64_t> weights;
  for (const RankedCandidate& c : decision.candidates) weights[c.deployment->id()] = c.weight;
  EXPECT_EQ(weights["mid"], 900000);
  EXPECT_EQ(weights["strong"], 50000);
  EXPECT_EQ(weights["cheap"], 50000);
}

TEST_F(RouteEngineTest, LeastLatencyWithoutExplorationIsSortedAndUsesTtft) {
  health_ = Healthy();
  View(*health_, "cheap").ttft_ewma_us = 3000;
  View(*health_, "cheap").latency_ewma_us = 900000;
  View(*health_, "strong").ttft_ewma_us = 1000;
  RouteDecision decision = MustDecide(Request("fast-greedy"));
  // Measured ones by TTFT, then the unmeasured one.
  EXPECT_THAT(Ids(decision), ElementsAre("strong", "cheap", "mid"));
  EXPECT_EQ(decision.candidates[0].reason, "ttft ewma 1.0 ms (fastest)");
  EXPECT_EQ(decision.candidates[2].reason, "no ttft sample yet");
  EXPECT_FALSE(decision.draw_weighted);
}

TEST_F(RouteEngineTest, LeastCostUsesExactPricesAndTokens) {
  v1::RouteRequest request = Request("cheapest");
  request.set_estimated_input_tokens(1000);
  request.set_max_output_tokens(500);
  RouteDecision decision = MustDecide(request);
  EXPECT_THAT(Ids(decision), ElementsAre("cheap", "mid", "strong"));
  // 1000 * 150000 + 500 * 600000 pico-dollars.
  EXPECT_EQ(decision.candidates[0].cost_pico, 450000000);
  EXPECT_EQ(decision.candidates[0].reason, "est. cost $0.000450000000 (cheapest)");
  EXPECT_EQ(decision.candidates[2].cost_pico, int64_t{1000} * 2500000 + int64_t{500} * 10000000);
  // Dominated prices: the order holds for any token counts, so the answer is cacheable.
  EXPECT_EQ(decision.cache_ttl_ms, 700);
}

TEST_F(RouteEngineTest, LeastCostOrderDependsOnTokensAndIsNotCached) {
  // long: input 2.00, output 0.50; strong: 2.50 / 10.00; cheap: 0.15 / 0.60.
  v1::RouteRequest request = Request("cheapest-crossing");
  request.set_estimated_input_tokens(100);
  request.set_max_output_tokens(20000);
  RouteDecision decision = MustDecide(request);
  // long: 200 + 10000 = 10200 µ$; cheap: 15 + 12000 = 12015 µ$; strong: 200250 µ$.
  EXPECT_THAT(Ids(decision), ElementsAre("long", "cheap", "strong"));
  EXPECT_EQ(decision.candidates[0].cost_pico, int64_t{10200} * 1000000);
  EXPECT_EQ(decision.cache_ttl_ms, 0);  // cheap and long swap for other token ratios

  request.set_estimated_input_tokens(10);
  request.set_max_output_tokens(0);  // policy default_output_tokens: 100
  decision = MustDecide(request);
  // cheap: 1.5 + 60 = 61.5 µ$; long: 20 + 50 = 70 µ$.
  EXPECT_THAT(Ids(decision), ElementsAre("cheap", "long", "strong"));
  EXPECT_EQ(decision.candidates[1].cost_pico, int64_t{10} * 2000000 + int64_t{100} * 500000);
  EXPECT_EQ(decision.cache_ttl_ms, 0);
}

TEST_F(RouteEngineTest, CostQualityThresholds) {
  // min_quality 85: for "simple" only strong (95) qualifies; mid (80) and cheap (80) fall back.
  RouteDecision decision = MustDecide(Request("good-enough"));
  EXPECT_EQ(decision.request_class, RequestClass::kSimple);
  EXPECT_THAT(Ids(decision), ElementsAre("strong", "cheap", "mid"));
  EXPECT_THAT(decision.candidates[0].reason, HasSubstr("quality 95 >= 85 for simple"));
  EXPECT_THAT(decision.candidates[1].reason, HasSubstr("quality 80 < 85 for simple: fallback"));

  // For "code": mid (88) is cheaper than strong (95); cheap (50) falls back.
  v1::RouteRequest code = Request("good-enough");
  code.add_content_markers("code");
  decision = MustDecide(code);
  EXPECT_EQ(decision.request_class, RequestClass::kCode);
  EXPECT_THAT(Ids(decision), ElementsAre("mid", "strong", "cheap"));
  EXPECT_EQ(decision.candidates[0].quality, 88);

  // Strict: below-threshold deployments are removed, with the reason.
  decision = MustDecide(Request("good-enough-strict"));
  EXPECT_THAT(Ids(decision), ElementsAre("strong"));
  EXPECT_THAT(Removed(decision), ElementsAre("cheap:below_quality", "mid:below_quality"));
  EXPECT_EQ(decision.removed[0].detail, "quality 80 < 85 for simple");
  EXPECT_EQ(decision.cache_ttl_ms, 0);  // cache: false
}

TEST_F(RouteEngineTest, StrictCostQualityWithNothingGoodEnoughFails) {
  v1::RouteRequest request = Request("good-enough-strict");
  request.add_required_capabilities("tools");
  request.mutable_attribution()->set_team("legal");  // us only: cheap and strong
  request.add_content_markers("code");               // cheap 50, strong 95
  RouteDecision decision = MustDecide(request);
  EXPECT_THAT(Ids(decision), ElementsAre("strong"));

  request.set_estimated_input_tokens(190000);  // strong's window is 200000
  request.set_max_output_tokens(20000);
  RouteDecision failed;
  absl::Status status = Decide(request, &failed);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("deployment 'mid' region 'eu' is not "
                                                       "allowed for team 'legal' (allowed: us)"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("deployment 'strong' context window"));
}

struct AutoCase {
  std::string name;
  int64_t input_tokens;
  int64_t max_output;
  bool tools;
  std::vector<std::string> markers;
  std::string hint;
  RequestClass expected_class;
  std::vector<std::string> expected_ids;
};

TEST_F(RouteEngineTest, AutoRoutesEachClassByItsRule) {
  const std::vector<AutoCase> cases = {
      {"short chat is simple: cheapest first",
       200,
       100,
       false,
       {},
       "",
       RequestClass::kSimple,
       {"cheap", "long", "mid", "strong"}},
      {"code goes to the cheapest good coder",
       3000,
       0,
       false,
       {"code"},
       "",
       RequestClass::kCode,
       {"mid", "strong", "cheap", "long"}},
      {"reasoning only to the strong model",
       200,
       0,
       false,
       {"math"},
       "",
       RequestClass::kReasoning,
       {"strong"}},
      {"long context only to the long model",
       50000,
       1000,
       false,
       {"code"},
       "",
       RequestClass::kLong,
       {"long"}},
      {"tools use the default class rule",
       200,
       0,
       true,
       {},
       "",
       RequestClass::kTools,
       {"cheap", "mid", "strong"}},
      {"explicit hint wins", 200, 0, false, {}, "reasoning", RequestClass::kReasoning, {"strong"}},
      {"medium chat is general",
       5000,
       0,
       false,
       {},
       "",
       RequestClass::kGeneral,
       {"cheap", "mid", "strong"}},
  };
  for (const AutoCase& c : cases) {
    v1::RouteRequest request = Request("auto");
    request.set_estimated_input_tokens(c.input_tokens);
    request.set_max_output_tokens(c.max_output);
    request.set_has_tools(c.tools);
    for (const std::string& m : c.markers) request.add_content_markers(m);
    request.set_class_hint(c.hint);
    RouteDecision decision;
    absl::Status status = Decide(request, &decision);
    ASSERT_TRUE(status.ok()) << c.name << ": " << status;
    EXPECT_EQ(decision.request_class, c.expected_class) << c.name;
    EXPECT_EQ(Ids(decision), c.expected_ids) << c.name;
    EXPECT_THAT(decision.policy_path,
                HasSubstr(absl::StrCat("auto > class ", RequestClassName(c.expected_class))))
        << c.name;
  }
  v1::RouteRequest request = Request("auto");
  request.add_content_markers("code");
  RouteDecision decision = MustDecide(request);
  EXPECT_EQ(decision.policy_path, "auto > class code > cost-quality");
  EXPECT_EQ(decision.cache_ttl_ms, 250);  // inherited from the auto policy
  v1::RouteResponse response;
  FillRouteResponse(*catalog_, request, decision, &response);
  EXPECT_EQ(response.request_class(), "code");
  EXPECT_EQ(response.cache_scope().request_class(), "code");
  // The model's rule looks at a tag, so the tag belongs to the scope.
  EXPECT_EQ(response.cache_scope().attribution().at("tag:tier"), "");
  EXPECT_EQ(response.cache_scope().attribution().size(), 1u);

  request.set_class_hint("hard");
  EXPECT_EQ(Decide(request, &decision).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RouteEngineTest, BudgetRuleMovesATeamToCheaperDeploymentsPastItsThreshold) {
  v1::RouteRequest request = Request("frugal");
  request.mutable_attribution()->set_team("alpha");
  request.set_budget_used_percent(79);
  RouteDecision decision = MustDecide(request);
  EXPECT_THAT(Ids(decision), ElementsAre("strong", "mid", "cheap"));
  EXPECT_TRUE(decision.rules.empty());
  v1::RouteResponse below;
  FillRouteResponse(*catalog_, request, decision, &below);
  EXPECT_EQ(below.cache_scope().attribution().at("budget:80"), "0");

  request.set_budget_used_percent(80);
  decision = MustDecide(request);
  EXPECT_THAT(Ids(decision), ElementsAre("cheap"));
  EXPECT_THAT(decision.rules, ElementsAre("budget-saver"));
  v1::RouteResponse above;
  FillRouteResponse(*catalog_, request, decision, &above);
  // A cached answer is reused only on the same side of the threshold.
  EXPECT_EQ(above.cache_scope().attribution().at("budget:80"), "1");
}

TEST_F(RouteEngineTest, ConditionalRulesRestrictAndPickPolicies) {
  // Global rule: team research -> EU only.
  v1::RouteRequest request = Request("residency");
  request.mutable_attribution()->set_team("research");
  RouteDecision decision = MustDecide(request);
  EXPECT_THAT(Ids(decision), ElementsAre("mid", "long"));
  EXPECT_THAT(decision.rules, ElementsAre("research-eu"));
  EXPECT_THAT(Removed(decision), ElementsAre("cheap:rule_region", "strong:rule_region"));
  EXPECT_EQ(decision.removed[0].detail,
            "region 'us' is not allowed by rule 'research-eu' (allowed: eu)");

  // Model rule on feature (a list): picks least-cost; combined with the global rule.
  request.mutable_attribution()->set_feature("offline");
  request.set_estimated_input_tokens(1000);
  request.set_max_output_tokens(1000);
  decision = MustDecide(request);
  EXPECT_THAT(decision.rules, ElementsAre("research-eu", "batch"));
  EXPECT_EQ(decision.policy_path, "rule batch > least-cost");
  EXPECT_THAT(Ids(decision), ElementsAre("long", "mid"));  // 2500 µ$ vs 5000 µ$

  // Other team, other feature: no rule.
  request.mutable_attribution()->set_team("core");
  request.mutable_attribution()->set_feature("chat");
  decision = MustDecide(request);
  EXPECT_TRUE(decision.rules.empty());
  EXPECT_THAT(Ids(decision), ElementsAre("cheap", "mid", "strong", "long"));

  // Tag rule on auto: only strong.
  request = Request("auto");
  (*request.mutable_attribution()->mutable_tags())["tier"] = "gold";
  decision = MustDecide(request);
  EXPECT_THAT(Ids(decision), ElementsAre("strong"));
  EXPECT_THAT(decision.rules, ElementsAre("gold"));
  EXPECT_THAT(Removed(decision)[0], "cheap:rule_deployments");
}

TEST_F(RouteEngineTest, TeamSettings) {
  v1::RouteRequest request = Request("weighted");
  request.mutable_attribution()->set_team("interns");
  RouteDecision decision;
  absl::Status status = Decide(request, &decision);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(status.message(), "team 'interns' may not use model 'weighted'");
  request.set_model("prio");
  EXPECT_TRUE(Decide(request, &decision).ok());

  request.mutable_attribution()->set_team("legal");
  decision = MustDecide(request);
  EXPECT_THAT(Ids(decision), ElementsAre("cheap", "strong"));
  EXPECT_THAT(Removed(decision), ElementsAre("mid:team_region"));
}

TEST_F(RouteEngineTest, KeyRegionsRestrictTheCandidates) {
  v1::RouteRequest request = Request("prio");
  request.add_allowed_regions("eu");
  RouteDecision decision = MustDecide(request);
  for (const std::string& id : Ids(decision)) {
    EXPECT_TRUE(id == "mid" || id == "long") << id;
  }
  EXPECT_THAT(Removed(decision), ::testing::Contains("cheap:key_region"));
  // A key limited to a region where the model has no deployment gets a clear refusal.
  request.clear_allowed_regions();
  request.add_allowed_regions("ap");
  absl::Status status = Decide(request, &decision);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("region 'us' is not allowed for this API key (allowed: ap)"));
}

TEST_F(RouteEngineTest, ErrorsAndHardFilters) {
  RouteDecision decision;
  EXPECT_EQ(Decide(Request(""), &decision).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Decide(Request("nope"), &decision).code(), absl::StatusCode::kNotFound);
  v1::RouteRequest request = Request("prio");
  request.add_required_capabilities("vision");
  decision = MustDecide(request);
  EXPECT_THAT(Ids(decision), ElementsAre("strong"));
  EXPECT_THAT(Removed(decision), ElementsAre("cheap:capability", "mid:capability"));

  request.set_estimated_input_tokens(130000);
  decision = RouteDecision();
  decision = MustDecide(request);
  EXPECT_THAT(Ids(decision), ElementsAre("strong"));
  EXPECT_EQ(decision.cache_ttl_ms, 700);  // removed for capability, not for tokens

  request = Request("prio");
  request.set_estimated_input_tokens(130000);
  decision = MustDecide(request);
  EXPECT_THAT(Ids(decision), ElementsAre("strong"));
  EXPECT_THAT(Removed(decision), ElementsAre("cheap:context_window", "mid:context_window"));
  EXPECT_EQ(decision.cache_ttl_ms, 0);  // the answer depends on the token count
}

TEST_F(RouteEngineTest, HealthFiltersAndLastResort) {
  health_ = Healthy();
  DeploymentHealthView& cheap = View(*health_, "cheap");
  cheap.circuit = v1::CIRCUIT_OPEN;
  cheap.open_until = now_ + absl::Seconds(20);
  cheap.consecutive_failures = 5;
  View(*health_, "mid").cooldown_until = now_ + absl::Seconds(3);
  RouteDecision decision = MustDecide(Request("prio"));
  EXPECT_THAT(Ids(decision), ElementsAre("strong"));
  EXPECT_THAT(Removed(decision), ElementsAre("cheap:circuit_open", "mid:cooldown"));
  EXPECT_EQ(decision.removed[0].detail,
            "circuit open for 20.0 s more after 5 consecutive failures");
  EXPECT_EQ(decision.removed[1].detail, "cooling down for 3.0 s more after a 429");

  // Everything unhealthy: the least bad, soonest available first, never cached.
  View(*health_, "strong").cooldown_until = now_ + absl::Seconds(60);
  decision = MustDecide(Request("prio"));
  EXPECT_THAT(Ids(decision), ElementsAre("mid", "cheap", "strong"));
  EXPECT_THAT(decision.candidates[0].reason, HasSubstr("last resort: cooling down"));
  EXPECT_TRUE(decision.candidates[0].last_resort);
  EXPECT_THAT(decision.removed, IsEmpty());
  EXPECT_EQ(decision.cache_ttl_ms, 0);
  EXPECT_EQ(decision.policy_path, "priority > last resort");
}

TEST_F(RouteEngineTest, HalfOpenCircuitGetsOneProbeAtATime) {
  health_ = Healthy();
  DeploymentHealthView& strong = View(*health_, "strong");
  strong.circuit = v1::CIRCUIT_OPEN;
  strong.open_until = now_ - absl::Seconds(1);  // period over: half-open

  // Explain does not take the probe.
  grant_probes_ = false;
  RouteDecision decision = MustDecide(Request("prio"));
  EXPECT_THAT(Ids(decision), ElementsAre("strong", "cheap", "mid"));
  grant_probes_ = true;

  decision = MustDecide(Request("prio"));
  EXPECT_THAT(Ids(decision), ElementsAre("strong", "cheap", "mid"));  // the probe goes first
  EXPECT_TRUE(decision.candidates[0].probe);
  EXPECT_THAT(decision.candidates[0].reason, HasSubstr("half-open circuit probe"));
  EXPECT_EQ(decision.cache_ttl_ms, 0);

  decision = MustDecide(Request("prio"));  // probe in flight: not offered again
  EXPECT_THAT(Ids(decision), ElementsAre("cheap", "mid"));
  EXPECT_THAT(Removed(decision), ElementsAre("strong:probe_busy"));
  EXPECT_GT(decision.cache_ttl_ms, 0);

  now_ += absl::Seconds(11);  // the probe's hold expired without an outcome
  decision = MustDecide(Request("prio"));
  EXPECT_TRUE(decision.candidates[0].probe);
}

TEST_F(RouteEngineTest, NearLimitDeploymentsGoLast) {
  health_ = Healthy();
  DeploymentHealthView& cheap = View(*health_, "cheap");
  cheap.near_limit = true;
  cheap.rpm_used = 95;
  cheap.rpm_limit = 100;
  RouteDecision decision = MustDecide(Request("prio"));
  EXPECT_THAT(Ids(decision), ElementsAre("mid", "strong", "cheap"));
  EXPECT_TRUE(decision.candidates[2].near_limit);
  EXPECT_THAT(decision.candidates[2].reason, HasSubstr("near its rate limit (rpm 95/100)"));

  // All near a limit: the policy's order, flagged.
  View(*health_, "mid").near_limit = true;
  View(*health_, "strong").near_limit = true;
  decision = MustDecide(Request("prio"));
  EXPECT_THAT(Ids(decision), ElementsAre("cheap", "mid", "strong"));
  EXPECT_TRUE(decision.candidates[0].near_limit);
  EXPECT_THAT(decision.candidates[0].reason, HasSubstr("like all; priority 1 of 3"));
  View(*health_, "mid").near_limit = false;
  View(*health_, "strong").near_limit = false;

  // Weighted: a near-limit deployment is never drawn.
  for (int i = 0; i < 200; ++i) {
    decision = MustDecide(Request("weighted"));
    EXPECT_EQ(decision.candidates[0].deployment->id(), "mid");
    EXPECT_EQ(decision.candidates.back().deployment->id(), "cheap");
    EXPECT_EQ(decision.candidates.back().weight, 0);
  }
}

TEST_F(RouteEngineTest, StaleHealthSnapshotIsFoundById) {
  health_ = Healthy();
  health_->catalog_version = "other";
  std::reverse(health_->views.begin(), health_->views.end());
  health_->index_by_id.clear();
  for (size_t i = 0; i < health_->views.size(); ++i) {
    health_->index_by_id[health_->views[i].id] = i;
  }
  View(*health_, "cheap").cooldown_until = now_ + absl::Seconds(1);
  RouteDecision decision = MustDecide(Request("prio"));
  EXPECT_THAT(Ids(decision), ElementsAre("mid", "strong"));
}

TEST(EstimateCostPicoTest, ExactAndSaturating) {
  v1::UnitPrices prices;
  prices.set_input_pico(150000);
  prices.set_output_pico(600000);
  EXPECT_EQ(EstimateCostPico(prices, 3, 7), 3 * 150000 + 7 * 600000);
  EXPECT_EQ(EstimateCostPico(prices, -5, 0), 0);
  EXPECT_EQ(EstimateCostPico(prices, std::numeric_limits<int64_t>::max(), 1),
            std::numeric_limits<int64_t>::max());
}

}  // namespace
}  // namespace tollgate::router
