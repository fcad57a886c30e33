#pragma once
// What the gateway and the ledger must agree on about quotas (quota.proto): the UTC calendar
// windows, the limit's text form, and which requests a quota applies to.
//
//   QuotaWindow w = WindowAt(v1::QUOTA_PERIOD_MONTH, now_unix_s);   // [start, end)
//   absl::StatusOr<int64_t> units = ParseQuotaLimit(v1::QUOTA_UNIT_USD, "250");  // pico-dollars
//   if (QuotaApplies(quota, {.team = "alpha", .key_id = "1a2b3c4d"})) ...

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "tollgate/v1/quota.pb.h"

namespace tollgate {

struct QuotaWindow {
  int64_t start_unix_s = 0;  // inclusive
  int64_t end_unix_s = 0;    // exclusive
};

// The window of `period` containing `unix_s` (UTC; weeks start on Monday). An unspecified period
// yields {0, 0}.
QuotaWindow WindowAt(v1::QuotaPeriod period, int64_t unix_s);

// The limit text of a quota in lease units: USD decimal -> pico-dollars (at most 9,000,000 USD);
// TOKENS and REQUESTS -> a positive integer. Errors: kInvalidArgument naming the problem (not a
// number, zero or negative, too large, fractional tokens).
absl::StatusOr<int64_t> ParseQuotaLimit(v1::QuotaUnit unit, std::string_view text);

// Lease units as the quota's text form: USD with the trailing zeros trimmed ("0.5", "250"),
// integers otherwise.
std::string FormatQuotaUnits(v1::QuotaUnit unit, int64_t units);

// The attribution of a request that quota scopes match against.
struct QuotaSubject {
  std::string_view team{};
  std::string_view key_id{};
  std::string_view feature{};
  std::string_view customer{};
};

// Whether `quota` counts requests of `who` (QuotaScope's comments).
bool QuotaApplies(const v1::Quota& quota, const QuotaSubject& who);

// "day", "minute", ...; "usd", "tokens", "requests"; "org", "team", ... (for logs, metrics and
// tollgatectl), and the inverse parsers (nullopt-like UNSPECIFIED for unknown text).
std::string_view PeriodName(v1::QuotaPeriod period);
std::string_view UnitName(v1::QuotaUnit unit);
std::string_view ScopeName(v1::QuotaScope scope);
v1::QuotaPeriod ParsePeriod(std::string_view text);
v1::QuotaUnit ParseUnit(std::string_view text);
v1::QuotaScope ParseScope(std::string_view text);

}  // namespace tollgate
