// Label bounds of the gateway's metrics: capped features, opt-in customer / API-key families.

#include "services/gateway/gateway_metrics.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/metrics.h"

namespace tollgate::gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kOneCent = 10'000'000'000;  // pico-dollars

TEST(GatewayMetricsTest, FeatureLabelsAreCappedAndTheRestIsOther) {
  auto registry = std::make_shared<prometheus::Registry>();
  GatewayMetrics metrics(registry, /*feature_label_limit=*/2);
  for (const char* feature : {"search", "chat", "summaries", "search"}) {
    metrics.RecordCost(kOneCent, "alpha", feature, "gpt-4o", "openai");
  }
  const std::string text = SerializeMetrics(*registry);
  EXPECT_THAT(text, HasSubstr(R"(feature="search")"));
  EXPECT_THAT(text, HasSubstr(R"(feature="chat")"));
  EXPECT_THAT(text, HasSubstr(R"(feature="other")"));
  EXPECT_THAT(text, Not(HasSubstr(R"(feature="summaries")")));
}

TEST(GatewayMetricsTest, CustomerAndKeyFamiliesAreOffByDefault) {
  auto registry = std::make_shared<prometheus::Registry>();
  GatewayMetrics metrics(registry, 10);
  metrics.RecordCost(kOneCent, "alpha", "f", "gpt-4o", "openai", "acme", "key-1");
  const std::string text = SerializeMetrics(*registry);
  EXPECT_THAT(text, Not(HasSubstr("customer_cost_usd_total")));
  EXPECT_THAT(text, Not(HasSubstr("api_key_cost_usd_total")));
  EXPECT_THAT(text, Not(HasSubstr("acme")));
}

TEST(GatewayMetricsTest, OptInCustomerAndKeyFamiliesAreCapped) {
  auto registry = std::make_shared<prometheus::Registry>();
  GatewayMetrics metrics(registry, 10);
  metrics.EnableAttributionLabels(/*customer=*/true, /*api_key=*/true, /*limit=*/1);
  metrics.RecordCost(kOneCent, "alpha", "f", "gpt-4o", "openai", "acme", "key-1");
  metrics.RecordCost(kOneCent, "alpha", "f", "gpt-4o", "openai", "globex", "key-2");
  metrics.RecordCost(kOneCent, "alpha", "f", "gpt-4o", "openai", "acme", "key-1");
  const std::string text = SerializeMetrics(*registry);
  EXPECT_THAT(text, HasSubstr(R"(tollgate_gateway_customer_cost_usd_total{customer="acme"} 0.02)"));
  EXPECT_THAT(text,
              HasSubstr(R"(tollgate_gateway_customer_cost_usd_total{customer="other"} 0.01)"));
  EXPECT_THAT(text, HasSubstr(R"(tollgate_gateway_api_key_cost_usd_total{api_key="key-1"} 0.02)"));
  EXPECT_THAT(text, HasSubstr(R"(tollgate_gateway_api_key_cost_usd_total{api_key="other"} 0.01)"));
  EXPECT_THAT(text, Not(HasSubstr("globex")));
}

}  // namespace
}  // namespace tollgate::gateway
