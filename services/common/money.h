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

// The cost of `usage` at `prices`, in pico-dollars:
//   (input - cached - cache_write_5m - cache_write_1h) * input
//   + cached * cached_input + cache_write_5m * cache_write_5m + cache_write_1h * cache_write_1h
//   + (output - reasoning) * output + reasoning * (reasoning price, or output price when 0)
// Errors: kInvalidArgument when the subsets exceed their totals or a count is negative,
// kOutOfRange on overflow.
absl::StatusOr<int64_t> PriceUsage(const v1::TokenUsage& usage, const v1::UnitPrices& prices);

}  // namespace tollgate
