#pragma once
// Validation of usage events before they reach PostgreSQL.
//
// The ledger refuses to store an event it could not account for exactly: its cost must be what
// PriceUsage() says for its own token counts and unit prices (DESIGN.md "Accounting model"), its
// time must be representable, and its text must be storable (valid UTF-8, no NUL bytes).
//
// Pure functions; thread-safe.

#include <cstdint>

#include "absl/status/status.h"
#include "tollgate/v1/ledger.pb.h"

namespace tollgate::ledger {

// Latest accepted event time: 9999-12-31T23:59:59.999999Z (timestamptz and the spend queries'
// time range handle it; beyond that is a sender bug).
inline constexpr int64_t kMaxEventTimeUnixUs = 253'402'300'799'999'999;

// OK when `event` can be stored as it is. Errors: kInvalidArgument whose message starts with
// `event "<event_id>": ` and says what is wrong (empty id, time out of range, negative price,
// token subsets exceeding totals, cost_pico differing from PriceUsage, text that is not UTF-8
// or contains NUL).
absl::Status ValidateUsageEvent(const v1::UsageEvent& event);

// True when `text` is well-formed UTF-8 without NUL bytes (PostgreSQL text cannot hold NUL).
bool IsStorableText(std::string_view text);

}  // namespace tollgate::ledger
