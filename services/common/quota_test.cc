#include "services/common/quota.h"

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace tollgate {
namespace {

int64_t At(int y, int mo, int d, int h = 0, int mi = 0, int s = 0) {
  return absl::ToUnixSeconds(
      absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s), absl::UTCTimeZone()));
}

TEST(WindowAt, CalendarAlignedUtc) {
  const int64_t t = At(2026, 11, 22, 6, 45, 17);  // a Sunday
  EXPECT_EQ(WindowAt(v1::QUOTA_PERIOD_MINUTE, t).start_unix_s, At(2026, 11, 22, 6, 45));
  EXPECT_EQ(WindowAt(v1::QUOTA_PERIOD_MINUTE, t).end_unix_s, At(2026, 11, 22, 6, 46));
  EXPECT_EQ(WindowAt(v1::QUOTA_PERIOD_DAY, t).start_unix_s, At(2026, 11, 22));
  EXPECT_EQ(WindowAt(v1::QUOTA_PERIOD_DAY, t).end_unix_s, At(2026, 11, 23));
  // ISO week: Monday 16 November to Monday 23 November.
  EXPECT_EQ(WindowAt(v1::QUOTA_PERIOD_WEEK, t).start_unix_s, At(2026, 11, 16));
  EXPECT_EQ(WindowAt(v1::QUOTA_PERIOD_WEEK, t).end_unix_s, At(2026, 11, 23));
  // A Monday at midnight starts its own week.
  EXPECT_EQ(WindowAt(v1::QUOTA_PERIOD_WEEK, At(2026, 11, 23)).start_unix_s, At(2026, 11, 23));
  EXPECT_EQ(WindowAt(v1::QUOTA_PERIOD_MONTH, t).start_unix_s, At(2026, 11, 1));
  EXPECT_EQ(WindowAt(v1::QUOTA_PERIOD_MONTH, t).end_unix_s, At(2026, 12, 1));
  // December rolls into January; February 2028 has 29 days.
  EXPECT_EQ(WindowAt(v1::QUOTA_PERIOD_MONTH, At(2026, 12, 31, 23, 59, 59)).end_unix_s,
            At(2027, 1, 1));
  EXPECT_EQ(WindowAt(v1::QUOTA_PERIOD_MONTH, At(2028, 2, 10)).end_unix_s, At(2028, 3, 1));
  EXPECT_EQ(WindowAt(v1::QUOTA_PERIOD_UNSPECIFIED, t).end_unix_s, 0);
}

TEST(ParseQuotaLimit, UsdIsExactPicoDollars) {
  EXPECT_EQ(*ParseQuotaLimit(v1::QUOTA_UNIT_USD, "250"), 250'000'000'000'000);
  EXPECT_EQ(*ParseQuotaLimit(v1::QUOTA_UNIT_USD, "0.000000000001"), 1);
  EXPECT_EQ(*ParseQuotaLimit(v1::QUOTA_UNIT_USD, "9000000"), 9'000'000'000'000'000'000);
  EXPECT_FALSE(ParseQuotaLimit(v1::QUOTA_UNIT_USD, "9000000.01").ok());
  EXPECT_FALSE(ParseQuotaLimit(v1::QUOTA_UNIT_USD, "0").ok());
  EXPECT_FALSE(ParseQuotaLimit(v1::QUOTA_UNIT_USD, "-5").ok());
  EXPECT_FALSE(ParseQuotaLimit(v1::QUOTA_UNIT_USD, "1e3").ok());
  EXPECT_FALSE(ParseQuotaLimit(v1::QUOTA_UNIT_USD, "").ok());
}

TEST(ParseQuotaLimit, CountsAreWholePositiveNumbers) {
  EXPECT_EQ(*ParseQuotaLimit(v1::QUOTA_UNIT_REQUESTS, "60"), 60);
  EXPECT_EQ(*ParseQuotaLimit(v1::QUOTA_UNIT_TOKENS, " 100000 "), 100000);
  EXPECT_FALSE(ParseQuotaLimit(v1::QUOTA_UNIT_TOKENS, "1.5").ok());
  EXPECT_FALSE(ParseQuotaLimit(v1::QUOTA_UNIT_REQUESTS, "+3").ok());
  EXPECT_FALSE(ParseQuotaLimit(v1::QUOTA_UNIT_REQUESTS, "0").ok());
  EXPECT_FALSE(ParseQuotaLimit(v1::QUOTA_UNIT_UNSPECIFIED, "5").ok());
}

TEST(FormatQuotaUnits, RoundTrips) {
  EXPECT_EQ(FormatQuotaUnits(v1::QUOTA_UNIT_USD, 250'000'000'000'000), "250");
  EXPECT_EQ(FormatQuotaUnits(v1::QUOTA_UNIT_USD, 500'000'000'000), "0.5");
  EXPECT_EQ(FormatQuotaUnits(v1::QUOTA_UNIT_USD, 0), "0");
  EXPECT_EQ(FormatQuotaUnits(v1::QUOTA_UNIT_TOKENS, 1234), "1234");
  EXPECT_EQ(*ParseQuotaLimit(v1::QUOTA_UNIT_USD,
                             FormatQuotaUnits(v1::QUOTA_UNIT_USD, 123'456'789'012'345)),
            123'456'789'012'345);
}

TEST(QuotaApplies, MatchesScopes) {
  const QuotaSubject who{.team = "alpha", .key_id = "1a2b3c4d", .feature = "chat",
                         .customer = "acme"};
  v1::Quota q;
  q.set_scope(v1::QUOTA_SCOPE_ORG);
  EXPECT_TRUE(QuotaApplies(q, who));
  q.set_scope(v1::QUOTA_SCOPE_TEAM);
  q.set_team("alpha");
  EXPECT_TRUE(QuotaApplies(q, who));
  q.set_team("beta");
  EXPECT_FALSE(QuotaApplies(q, who));
  q.set_scope(v1::QUOTA_SCOPE_KEY);
  q.set_subject("1a2b3c4d");
  EXPECT_TRUE(QuotaApplies(q, who));
  q.set_scope(v1::QUOTA_SCOPE_FEATURE);
  q.set_subject("chat");
  EXPECT_FALSE(QuotaApplies(q, who));  // team beta's feature "chat"
  q.set_team("");
  EXPECT_TRUE(QuotaApplies(q, who));  // "chat" of any team
  q.set_scope(v1::QUOTA_SCOPE_CUSTOMER);
  EXPECT_FALSE(QuotaApplies(q, who));
  q.set_subject("acme");
  EXPECT_TRUE(QuotaApplies(q, who));
  q.set_scope(v1::QUOTA_SCOPE_UNSPECIFIED);
  EXPECT_FALSE(QuotaApplies(q, who));
}

TEST(QuotaNames, RoundTrip) {
  EXPECT_EQ(ParsePeriod(PeriodName(v1::QUOTA_PERIOD_WEEK)), v1::QUOTA_PERIOD_WEEK);
  EXPECT_EQ(ParseUnit("tokens"), v1::QUOTA_UNIT_TOKENS);
  EXPECT_EQ(ParseScope("customer"), v1::QUOTA_SCOPE_CUSTOMER);
  EXPECT_EQ(ParsePeriod("fortnight"), v1::QUOTA_PERIOD_UNSPECIFIED);
  EXPECT_EQ(ParseUnit("eur"), v1::QUOTA_UNIT_UNSPECIFIED);
}

}  // namespace
}  // namespace tollgate
