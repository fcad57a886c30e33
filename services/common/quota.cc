#include "services/common/quota.h"

#include <algorithm>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "services/common/money.h"

namespace tollgate {
namespace {

constexpr int64_t kMaxUsdUnits = 9'000'000 * kPicoPerUsd;

int64_t ToUnix(absl::CivilSecond civil) {
  return absl::ToUnixSeconds(absl::FromCivil(civil, absl::UTCTimeZone()));
}

}  // namespace

QuotaWindow WindowAt(v1::QuotaPeriod period, int64_t unix_s) {
  const absl::CivilSecond now = absl::ToCivilSecond(absl::FromUnixSeconds(unix_s),
                                                    absl::UTCTimeZone());
  switch (period) {
    case v1::QUOTA_PERIOD_MINUTE: {
      const absl::CivilMinute m(now);
      return {ToUnix(m), ToUnix(m + 1)};
    }
    case v1::QUOTA_PERIOD_DAY: {
      const absl::CivilDay d(now);
      return {ToUnix(d), ToUnix(d + 1)};
    }
    case v1::QUOTA_PERIOD_WEEK: {
      const absl::CivilDay d(now);
      const absl::CivilDay monday = absl::PrevWeekday(d + 1, absl::Weekday::monday);
      return {ToUnix(monday), ToUnix(monday + 7)};
    }
    case v1::QUOTA_PERIOD_MONTH: {
      const absl::CivilMonth m(now);
      return {ToUnix(m), ToUnix(m + 1)};
    }
    default:
      return {};
  }
}

absl::StatusOr<int64_t> ParseQuotaLimit(v1::QuotaUnit unit, std::string_view raw) {
  const std::string text(absl::StripAsciiWhitespace(absl::string_view(raw.data(), raw.size())));
  if (text.empty()) return absl::InvalidArgumentError("limit: missing");
  int64_t units = 0;
  if (unit == v1::QUOTA_UNIT_USD) {
    absl::StatusOr<int64_t> pico = ParseUsd(text);
    if (!pico.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("limit: '", text, "' is not a USD amount (e.g. 250 or 0.50)"));
    }
    if (*pico > kMaxUsdUnits) {
      return absl::InvalidArgumentError("limit: at most 9000000 USD");
    }
    units = *pico;
  } else if (unit == v1::QUOTA_UNIT_TOKENS || unit == v1::QUOTA_UNIT_REQUESTS) {
    if (!absl::SimpleAtoi(text, &units) || text.front() == '+') {
      return absl::InvalidArgumentError(
          absl::StrCat("limit: '", text, "' is not a whole number of ", std::string(UnitName(unit))));
    }
  } else {
    return absl::InvalidArgumentError("unit: must be usd, tokens or requests");
  }
  if (units <= 0) return absl::InvalidArgumentError("limit: must be greater than zero");
  return units;
}

std::string FormatQuotaUnits(v1::QuotaUnit unit, int64_t units) {
  if (unit != v1::QUOTA_UNIT_USD) return absl::StrCat(units);
  std::string text = FormatPicoUsd(units);
  while (!text.empty() && text.back() == '0') text.pop_back();
  if (!text.empty() && text.back() == '.') text.pop_back();
  return text;
}

bool QuotaApplies(const v1::Quota& quota, const QuotaSubject& who) {
  switch (quota.scope()) {
    case v1::QUOTA_SCOPE_ORG:
      return true;
    case v1::QUOTA_SCOPE_TEAM:
      return quota.team() == who.team;
    case v1::QUOTA_SCOPE_KEY:
      return quota.subject() == who.key_id;
    case v1::QUOTA_SCOPE_FEATURE:
      return quota.subject() == who.feature && (quota.team().empty() || quota.team() == who.team);
    case v1::QUOTA_SCOPE_CUSTOMER:
      return quota.subject() == who.customer &&
             (quota.team().empty() || quota.team() == who.team);
    default:
      return false;
  }
}

std::string_view PeriodName(v1::QuotaPeriod period) {
  switch (period) {
    case v1::QUOTA_PERIOD_MINUTE: return "minute";
    case v1::QUOTA_PERIOD_DAY: return "day";
    case v1::QUOTA_PERIOD_WEEK: return "week";
    case v1::QUOTA_PERIOD_MONTH: return "month";
    default: return "unspecified";
  }
}

std::string_view UnitName(v1::QuotaUnit unit) {
  switch (unit) {
    case v1::QUOTA_UNIT_USD: return "usd";
    case v1::QUOTA_UNIT_TOKENS: return "tokens";
    case v1::QUOTA_UNIT_REQUESTS: return "requests";
    default: return "unspecified";
  }
}

std::string_view ScopeName(v1::QuotaScope scope) {
  switch (scope) {
    case v1::QUOTA_SCOPE_ORG: return "org";
    case v1::QUOTA_SCOPE_TEAM: return "team";
    case v1::QUOTA_SCOPE_KEY: return "key";
    case v1::QUOTA_SCOPE_FEATURE: return "feature";
    case v1::QUOTA_SCOPE_CUSTOMER: return "customer";
    default: return "unspecified";
  }
}

v1::QuotaPeriod ParsePeriod(std::string_view text) {
  for (v1::QuotaPeriod p : {v1::QUOTA_PERIOD_MINUTE, v1::QUOTA_PERIOD_DAY, v1::QUOTA_PERIOD_WEEK,
                            v1::QUOTA_PERIOD_MONTH}) {
    if (text == PeriodName(p)) return p;
  }
  return v1::QUOTA_PERIOD_UNSPECIFIED;
}

v1::QuotaUnit ParseUnit(std::string_view text) {
  for (v1::QuotaUnit u : {v1::QUOTA_UNIT_USD, v1::QUOTA_UNIT_TOKENS, v1::QUOTA_UNIT_REQUESTS}) {
    if (text == UnitName(u)) return u;
  }
  return v1::QUOTA_UNIT_UNSPECIFIED;
}

v1::QuotaScope ParseScope(std::string_view text) {
  for (v1::QuotaScope s : {v1::QUOTA_SCOPE_ORG, v1::QUOTA_SCOPE_TEAM, v1::QUOTA_SCOPE_KEY,
                           v1::QUOTA_SCOPE_FEATURE, v1::QUOTA_SCOPE_CUSTOMER}) {
    if (text == ScopeName(s)) return s;
  }
  return v1::QUOTA_SCOPE_UNSPECIFIED;
}

}  // namespace tollgate
