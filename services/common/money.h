#pragma once
// Exact money arithmetic. Money is never a binary float in Tollgate.
//
// Prices arrive as decimal strings in USD per million tokens ("2.50"); internally a price is an
// integer count of pico-dollars (1e-12 USD) per token, so "2.50" USD/M = 2,500,000 pico/token.
// Prices with more than six fractional digits (finer than one pico-dollar per token) are rejected.
// Costs are integer pico-dollars; on APIs they are decimal strings with 12 fractional digits.
//
// All functions are pure and thread-safe.

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "tollgate/v1/common.pb.h"

namespace tollgate {

inline constexpr int64_t kPicoPerUsd = 1'000'000'000'000;

// Parses a non-negative decimal USD-per-million-tokens string ("0.15", "10", "0.075") into
// pico-dollars per token. Errors: kInvalidArgument for anything that is not such a decimal.
absl::StatusOr<int64_t> ParseUsdPerMillionTokens(std::string_view text);

// Parses a non-negative or negative decimal USD amount ("12.5", "-0.000000000001") into
// pico-dollars. Errors: kInvalidArgument for malformed text or more than 12 fractional digits,
// kOutOfRange when it does not fit.
absl::StatusOr<int64_t> ParseUsd(std::string_view text);

// Formats pico-dollars as a USD decimal string with exactly 12 fractional digits: 1 ->
// "0.000000000001", -2500000 -> "-0.000002500000".
std::string FormatPicoUsd(int64_t pico);
std::string FormatPicoUsd(__int128 pico);

// Formats a pico-dollar-per-token price back as USD per million tokens, trailing zeros trimmed:
// 2500000 -> "2.5".
std::string FormatUsdPerMillionTokens(int64_t pico_per_token);

// True when `prices` has a long-context tier and `input_tokens` (all input, cached and
// cache-write included) is strictly above its threshold: the whole request is then billed at
// prices.long_context().
bool LongContextApplies(const v1::UnitPrices& prices, int64_t input_tokens);

// Suffix of the price_card_version of prices resolved to a long-context tier.
inline constexpr char kLongContextCardSuffix[] = "/long_context";

// The flat prices that apply to a request with `usage`: `prices` fields 1-6, or those of
// prices.long_context() when LongContextApplies(prices, usage.input_tokens()). The result's
// price_card_version is prices.price_card_version(), plus kLongContextCardSuffix when the tier
// applied (so an event says which prices of the card it got, and a FOCUS SkuPriceId built from
// the version names one unit price). The result has no tier (threshold 0, no long_context), so
// PriceUsage(usage, EffectivePrices(p, usage)) == PriceUsage(usage, p), and storing the result
// with a usage event keeps the event's per-token prices flat (the ledger's reprice and its
// cost-reproducible check read flat prices only). Idempotent.
v1::UnitPrices EffectivePrices(const v1::UnitPrices& prices, const v1::TokenUsage& usage);

// The cost of `usage` at `prices`, in pico-dollars, with P = the effective prices (above: the
// long-context tier's when it applies, the base prices otherwise):
//   (input - cached - cache_write_5m - cache_write_1h) * P.input
//   + cached * P.cached_input + cache_write_5m * P.cache_write_5m
//   + cache_write_1h * P.cache_write_1h
//   + (output - reasoning) * P.output + reasoning * (P.reasoning, or P.output when 0)
// Errors: kInvalidArgument when the subsets exceed their totals or a count is negative,
// kOutOfRange on overflow.
absl::StatusOr<int64_t> PriceUsage(const v1::TokenUsage& usage, const v1::UnitPrices& prices);

}  // namespace tollgate
