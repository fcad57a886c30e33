#include "services/gateway/route_cache.h"

#include <atomic>
#include <map>
#include <random>

#include "gtest/gtest.h"

namespace tollgate::gateway {
namespace {

using Clock = RouteCache::Clock;

v1::RouteRequest Request(const std::string& team = "alpha", bool stream = false) {
  v1::RouteRequest r;
  r.set_model("smart");
  r.mutable_attribution()->set_team(team);
  r.set_estimated_input_tokens(100);
  r.add_required_capabilities("chat");
  r.set_stream(stream);
  return r;
}

v1::Candidate* AddCandidate(v1::RouteResponse& answer, const std::string& id, int64_t weight,
                            int64_t context_window = 100000) {
  v1::Candidate* c = answer.add_candidates();
  c->mutable_deployment()->set_id(id);
  c->mutable_deployment()->set_context_window(context_window);
  c->set_weight(weight);
  c->set_reason("r-" + id);
  return c;
}

v1::RouteResponse Answer(const v1::RouteRequest& request, int64_t ttl_ms = 500) {
  v1::RouteResponse a;
  a.set_model("gpt");
  a.set_policy("priority");
  a.set_request_class("simple");
  a.set_cache_ttl_ms(ttl_ms);
  v1::RouteCacheScope* scope = a.mutable_cache_scope();
  scope->set_model(request.model());
  scope->set_team(request.attribution().team());
  scope->set_request_class("simple");
  std::vector<std::string> caps(request.required_capabilities().begin(),
                                request.required_capabilities().end());
  if (request.stream()) caps.push_back("stream");
  std::sort(caps.begin(), caps.end());
  for (const auto& c : caps) scope->add_required_capabilities(c);
  AddCandidate(a, "a", 1);
  AddCandidate(a, "b", 1);
  return a;
}

class RouteCacheTest : public ::testing::Test {
 protected:
  std::atomic<uint64_t> generation_{1};
  Clock::time_point now_ = Clock::time_point() + std::chrono::hours(1);
  RouteCache cache_{&generation_, [this] { return now_; }};
  std::mt19937_64 rng_{42};
};

TEST_F(RouteCacheTest, HitWithinTtlMissAfter) {
  const v1::RouteRequest request = Request();
  EXPECT_FALSE(cache_.Lookup(request, "simple", rng_).has_value());
  ASSERT_TRUE(cache_.Insert(request, Answer(request), cache_.generation()));
  auto hit = cache_.Lookup(request, "simple", rng_);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->candidates(0).deployment().id(), "a");
  now_ += std::chrono::milliseconds(499);
  EXPECT_TRUE(cache_.Lookup(request, "simple", rng_).has_value());
  now_ += std::chrono::milliseconds(1);
  EXPECT_FALSE(cache_.Lookup(request, "simple", rng_).has_value());
}

TEST_F(RouteCacheTest, ScopeKeysOnTeamClassCapabilitiesAndModel) {
  const v1::RouteRequest request = Request();
  ASSERT_TRUE(cache_.Insert(request, Answer(request), cache_.generation()));
  EXPECT_FALSE(cache_.Lookup(Request("beta"), "simple", rng_).has_value());
  EXPECT_FALSE(cache_.Lookup(request, "code", rng_).has_value());
  EXPECT_FALSE(cache_.Lookup(Request("alpha", /*stream=*/true), "simple", rng_).has_value());
  v1::RouteRequest tools = request;
  tools.add_required_capabilities("tools");
  EXPECT_FALSE(cache_.Lookup(tools, "simple", rng_).has_value());
  v1::RouteRequest other = request;
  other.set_model("cheap");
  EXPECT_FALSE(cache_.Lookup(other, "simple", rng_).has_value());
  // A key limited to regions never reuses an answer computed for other regions (or none).
  v1::RouteRequest eu = request;
  eu.add_allowed_regions("eu");
  EXPECT_FALSE(cache_.Lookup(eu, "simple", rng_).has_value());
  ASSERT_TRUE(cache_.Insert(eu, Answer(eu), cache_.generation()));
  EXPECT_TRUE(cache_.Lookup(eu, "simple", rng_).has_value());
  v1::RouteRequest eu_us = request, us_eu = request;
  eu_us.add_allowed_regions("eu");
  eu_us.add_allowed_regions("us");
  us_eu.add_allowed_regions("us");
  us_eu.add_allowed_regions("eu");
  ASSERT_TRUE(cache_.Insert(eu_us, Answer(eu_us), cache_.generation()));
  EXPECT_TRUE(cache_.Lookup(us_eu, "simple", rng_).has_value());
  // Capability order does not matter.
  v1::RouteRequest a = request, b = request;
  a.add_required_capabilities("vision");
  a.add_required_capabilities("json");
  b.add_required_capabilities("json");
  b.add_required_capabilities("vision");
  EXPECT_EQ(RouteCache::PrimaryKey(a, "simple"), RouteCache::PrimaryKey(b, "simple"));
}

TEST_F(RouteCacheTest, AttributionFieldsInScopeMustMatch) {
  v1::RouteRequest request = Request();
  request.mutable_attribution()->set_feature("search");
  (*request.mutable_attribution()->mutable_tags())["tier"] = "gold";
  v1::RouteResponse answer = Answer(request);
  (*answer.mutable_cache_scope()->mutable_attribution())["feature"] = "search";
  (*answer.mutable_cache_scope()->mutable_attribution())["tag:tier"] = "gold";
  ASSERT_TRUE(cache_.Insert(request, answer, cache_.generation()));
  EXPECT_TRUE(cache_.Lookup(request, "simple", rng_).has_value());
  v1::RouteRequest other_feature = request;
  other_feature.mutable_attribution()->set_feature("chat");
  EXPECT_FALSE(cache_.Lookup(other_feature, "simple", rng_).has_value());
  v1::RouteRequest other_tag = request;
  (*other_tag.mutable_attribution()->mutable_tags())["tier"] = "free";
  EXPECT_FALSE(cache_.Lookup(other_tag, "simple", rng_).has_value());
  // A field outside the scope does not matter.
  v1::RouteRequest other_customer = request;
  other_customer.mutable_attribution()->set_customer("c1");
  EXPECT_TRUE(cache_.Lookup(other_customer, "simple", rng_).has_value());
}

TEST_F(RouteCacheTest, BudgetThresholdsInScopeSplitRequestsByBudgetUse) {
  v1::RouteRequest request = Request();
  request.set_budget_used_percent(85);
  v1::RouteResponse answer = Answer(request);
  (*answer.mutable_cache_scope()->mutable_attribution())["budget:80"] = "1";
  ASSERT_TRUE(cache_.Insert(request, answer, cache_.generation()));
  v1::RouteRequest still_above = request;
  still_above.set_budget_used_percent(99);
  EXPECT_TRUE(cache_.Lookup(still_above, "simple", rng_).has_value());
  v1::RouteRequest below = request;
  below.set_budget_used_percent(79);
  EXPECT_FALSE(cache_.Lookup(below, "simple", rng_).has_value());
  // A scope field this gateway does not know makes the answer uncacheable.
  v1::RouteResponse unknown = Answer(request);
  (*unknown.mutable_cache_scope()->mutable_attribution())["budget:x"] = "1";
  EXPECT_FALSE(cache_.Insert(request, unknown, cache_.generation()));
}

TEST_F(RouteCacheTest, GenerationChangeInvalidates) {
  const v1::RouteRequest request = Request();
  ASSERT_TRUE(cache_.Insert(request, Answer(request), cache_.generation()));
  generation_.fetch_add(1);
  EXPECT_FALSE(cache_.Lookup(request, "simple", rng_).has_value());
  EXPECT_EQ(cache_.size(), 0u);
  // An answer computed before the invalidation is not stored.
  EXPECT_FALSE(cache_.Insert(request, Answer(request), cache_.generation() - 1));
  EXPECT_TRUE(cache_.Insert(request, Answer(request), cache_.generation()));
}

TEST_F(RouteCacheTest, NeverCachesProbesOrZeroTtl) {
  const v1::RouteRequest request = Request();
  v1::RouteResponse probe = Answer(request);
  probe.mutable_candidates(1)->set_probe(true);
  EXPECT_FALSE(cache_.Insert(request, probe, cache_.generation()));
  EXPECT_FALSE(cache_.Insert(request, Answer(request, 0), cache_.generation()));
  EXPECT_FALSE(cache_.Lookup(request, "simple", rng_).has_value());
}

TEST_F(RouteCacheTest, DropsCandidatesWhoseContextWindowIsTooSmall) {
  v1::RouteRequest request = Request();
  v1::RouteResponse answer = Answer(request);
  answer.mutable_candidates(0)->mutable_deployment()->set_context_window(1000);
  ASSERT_TRUE(cache_.Insert(request, answer, cache_.generation()));
  v1::RouteRequest big = request;
  big.set_estimated_input_tokens(900);
  big.set_max_output_tokens(200);
  auto hit = cache_.Lookup(big, "simple", rng_);
  ASSERT_TRUE(hit.has_value());
  ASSERT_EQ(hit->candidates_size(), 1);
  EXPECT_EQ(hit->candidates(0).deployment().id(), "b");
  big.set_estimated_input_tokens(200000);
  EXPECT_FALSE(cache_.Lookup(big, "simple", rng_).has_value());
}

TEST_F(RouteCacheTest, WeightedDrawFollowsWeights) {
  const v1::RouteRequest request = Request();
  v1::RouteResponse answer = Answer(request);
  answer.clear_candidates();
  AddCandidate(answer, "a", 1);
  AddCandidate(answer, "b", 3);
  AddCandidate(answer, "c", 0);
  answer.set_draw_weighted(true);
  ASSERT_TRUE(cache_.Insert(request, answer, cache_.generation()));
  std::map<std::string, int> first;
  constexpr int kDraws = 8000;
  for (int i = 0; i < kDraws; ++i) {
    auto hit = cache_.Lookup(request, "simple", rng_);
    ASSERT_TRUE(hit.has_value());
    ASSERT_EQ(hit->candidates_size(), 3);
    first[hit->candidates(0).deployment().id()]++;
    // The others keep their listed order.
    if (hit->candidates(0).deployment().id() == "b") {
      EXPECT_EQ(hit->candidates(1).deployment().id(), "a");
      EXPECT_EQ(hit->candidates(2).deployment().id(), "c");
    }
  }
  EXPECT_EQ(first["c"], 0);
  EXPECT_NEAR(first["a"] / static_cast<double>(kDraws), 0.25, 0.03);
  EXPECT_NEAR(first["b"] / static_cast<double>(kDraws), 0.75, 0.03);
}

TEST_F(RouteCacheTest, WithoutDrawKeepsListedOrder) {
  const v1::RouteRequest request = Request();
  v1::RouteResponse answer = Answer(request);
  answer.mutable_candidates(1)->set_weight(100);
  ASSERT_TRUE(cache_.Insert(request, answer, cache_.generation()));
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(cache_.Lookup(request, "simple", rng_)->candidates(0).deployment().id(), "a");
  }
}

TEST_F(RouteCacheTest, RejectsScopeThatDoesNotMatchTheRequest) {
  const v1::RouteRequest request = Request();
  v1::RouteResponse answer = Answer(request);
  answer.mutable_cache_scope()->set_team("beta");
  EXPECT_FALSE(cache_.Insert(request, answer, cache_.generation()));
  answer = Answer(request);
  (*answer.mutable_cache_scope()->mutable_attribution())["unknown_field"] = "x";
  EXPECT_FALSE(cache_.Insert(request, answer, cache_.generation()));
}

}  // namespace
}  // namespace tollgate::gateway
