#pragma once
// Usage events for tests: valid by construction (cost_pico = PriceUsage(usage, prices)).

#include <cstdint>
#include <string>

#include "tollgate/v1/ledger.pb.h"

namespace tollgate::ledger {

// Input 2.50 USD/M, cached input 1.25 USD/M, output 10 USD/M (GPT-4o-like), price card "test-1".
v1::UnitPrices TestPrices();

// An event at `time_unix_us` (default 2025-01-15T12:00:00Z) for `team`/`feature` with the given
// token counts at TestPrices(); cost_pico filled in.
v1::UsageEvent MakeTestEvent(const std::string& id, const std::string& team,
                             const std::string& feature, int64_t input_tokens,
                             int64_t output_tokens, int64_t time_unix_us = 1'736'942'400'000'000);

// Recomputes cost_pico after a test changed usage or prices.
void Reprice(v1::UsageEvent& event);

}  // namespace tollgate::ledger
