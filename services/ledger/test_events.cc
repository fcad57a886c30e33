#include "services/ledger/test_events.h"

#include "services/common/money.h"

namespace tollgate::ledger {

v1::UnitPrices TestPrices() {
  v1::UnitPrices p;
  p.set_input_pico(2'500'000);
  p.set_cached_input_pico(1'250'000);
  p.set_output_pico(10'000'000);
  p.set_price_card_version("test-1");
  return p;
}

v1::UsageEvent MakeTestEvent(const std::string& id, const std::string& team,
                             const std::string& feature, int64_t input_tokens,
                             int64_t output_tokens, int64_t time_unix_us) {
  v1::UsageEvent e;
  e.set_event_id(id);
  e.set_request_id("req-" + id);
  e.set_time_unix_us(time_unix_us);
  e.mutable_attribution()->set_team(team);
  e.mutable_attribution()->set_feature(feature);
  e.mutable_attribution()->set_api_key_id("key-1");
  e.mutable_attribution()->set_environment("test");
  e.set_endpoint("/v1/chat/completions");
  e.set_requested_model("gpt-4o");
  e.set_served_deployment("openai-gpt-4o");
  e.set_provider("openai");
  e.set_upstream_model("gpt-4o-2024-08-06");
  e.set_region("us");
  e.mutable_usage()->set_input_tokens(input_tokens);
  e.mutable_usage()->set_output_tokens(output_tokens);
  *e.mutable_prices() = TestPrices();
  e.set_latency_us(1500);
  e.set_http_status(200);
  Reprice(e);
  return e;
}

void Reprice(v1::UsageEvent& event) {
  absl::StatusOr<int64_t> cost = PriceUsage(event.usage(), event.prices());
  event.set_cost_pico(cost.ok() ? *cost : -1);
}

}  // namespace tollgate::ledger
