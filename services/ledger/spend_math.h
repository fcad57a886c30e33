#pragma once
// Exact decimal arithmetic for spend answers: derived columns (cost per 1k tokens, per request,
// share of total) and the comparison with the previous period. Costs travel as decimal strings
// with up to 12 fractional digits (pico-dollars); they are computed here in 128-bit integers,
// never in floating point. Ratios are rounded half away from zero. Pure and thread-safe.

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "tollgate/v1/ledger.pb.h"

namespace tollgate::ledger {

// "-12.5", "0.000000000001", "3" -> pico-dollars. Errors: kInvalidArgument for malformed text or
// more than 12 fractional digits, kOutOfRange beyond ~10^26 USD.
absl::StatusOr<__int128> ParseDecimalPico(std::string_view text);

// round(num / den) half away from zero; den != 0.
__int128 DivRound(__int128 num, __int128 den);

// `scaled` / 10^digits as a decimal string with exactly `digits` fractional digits.
std::string FormatScaled(__int128 scaled, int digits);

// Fills cost_per_1k_tokens_usd, cost_per_request_usd and share_of_total of every row and of the
// total (share relative to response.total()). Errors: a cost string that does not parse.
absl::Status AddDerivedColumns(v1::SpendResponse& response);

// Fills the previous_* and change_* fields of `current`'s rows and total from `previous` (the
// same query over the period shifted back by `shift_s`). Rows match on group values and, when
// `bucketed`, on bucket_start_unix_s - shift_s.
absl::Status AddComparison(v1::SpendResponse& current, const v1::SpendResponse& previous,
                           int64_t shift_s, bool bucketed);

}  // namespace tollgate::ledger
