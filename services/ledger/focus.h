#pragma once
// FOCUS 1.2 (FinOps Open Cost and Usage Specification) rows for LLM usage.
//
// One record per UTC hour x attribution/routing key x unit price x meter, where the meters
// (SkuMeter) are input (uncached input), cached_input, cache_write_5m, cache_write_1h, output
// (non-reasoning output) and reasoning; records with zero tokens are omitted. Costs are exact:
// ListCost = BilledCost = EffectiveCost = ListUnitPrice (USD per 1M tokens, 6 decimals) x
// PricingQuantity (tokens / 10^6, 6 decimals), 12 fractional digits, and the costs of an hour sum
// to its spend exactly (repricing corrections included: the latest correction's prices apply).
// Timestamps are ISO 8601 UTC ("2025-01-15T10:00:00Z"). Pure and thread-safe.

#include <cstdint>
#include <string>
#include <vector>

#include "tollgate/v1/ledger.pb.h"

namespace tollgate::ledger {

// The column names, in output order.
const std::vector<std::string>& FocusColumns();

// Token sums of one hour x key x price group (the FocusRows input).
struct FocusGroup {
  int64_t hour_unix_s = 0;
  std::string team, feature, customer, api_key_id, environment, requested_model, served_deployment,
      provider, upstream_model, region, endpoint, price_card_version;
  // Unit prices in pico-dollars per token; reasoning already resolved (0 -> output price).
  int64_t price_input = 0, price_cached_input = 0, price_cache_write_5m = 0,
          price_cache_write_1h = 0, price_output = 0, price_reasoning = 0;
  // Tokens per meter (uncached input; non-reasoning output).
  int64_t input = 0, cached_input = 0, cache_write_5m = 0, cache_write_1h = 0, output = 0,
          reasoning = 0;
};

// Appends the group's records (one per meter with tokens) to `out`.
void AppendFocusRecords(const FocusGroup& group, v1::FocusChunk& out);

}  // namespace tollgate::ledger
