#include "services/ledger/spend_query.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tollgate::ledger {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

v1::SpendQuery Query(std::vector<std::string> group_by) {
  v1::SpendQuery q;
  for (auto& g : group_by) q.add_group_by(g);
  return q;
}

// The raw-events SQL (the default picks rollups for hour-aligned, tag-free queries).
absl::StatusOr<SpendSql> BuildRaw(const v1::SpendQuery& q) {
  return BuildSpendSql(q, SpendSource::kEvents);
}

TEST(BuildSpendSqlTest, GroupsByWhitelistedColumns) {
  v1::SpendQuery q = Query({"team", "feature"});
  q.set_start_unix_s(1'700'000'000);
  q.set_end_unix_s(1'700'086'400);
  absl::StatusOr<SpendSql> sql = BuildRaw(q);
  ASSERT_TRUE(sql.ok()) << sql.status();
  EXPECT_EQ(sql->group_columns, 2);
  EXPECT_FALSE(sql->bucketed);
  EXPECT_THAT(sql->rows_sql, HasSubstr("SELECT team, feature, count(*)"));
  EXPECT_THAT(sql->rows_sql, HasSubstr("GROUP BY 1, 2"));
  EXPECT_THAT(sql->rows_sql,
              HasSubstr("ORDER BY sum((cost_usd + COALESCE(correction_usd, 0))) DESC, 1, 2"));
  EXPECT_THAT(sql->rows_sql, HasSubstr("::numeric(38,12)::text"));
  EXPECT_THAT(sql->rows_params, ElementsAre("1700000000", "1700086400"));
  EXPECT_EQ(sql->total_params, sql->rows_params);
  EXPECT_THAT(sql->total_sql, Not(HasSubstr("GROUP BY 1, 2")));
}

TEST(BuildSpendSqlTest, RejectsUnknownDimensionListingValidOnes) {
  absl::StatusOr<SpendSql> sql = BuildRaw(Query({"team", "password"}));
  ASSERT_EQ(sql.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(sql.status().message());
  EXPECT_THAT(message, HasSubstr("\"password\""));
  for (const std::string& d : SpendDimensions()) EXPECT_THAT(message, HasSubstr(d));
  EXPECT_THAT(message, HasSubstr("tag:<key>"));
}

TEST(BuildSpendSqlTest, RejectsSqlInDimensionNames) {
  EXPECT_EQ(BuildRaw(Query({"team; DROP TABLE usage_events"})).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::SpendQuery q;
  (*q.mutable_filters())["1=1 OR team"] = "x";
  EXPECT_EQ(BuildRaw(q).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(BuildSpendSqlTest, RejectsRepeatedAndEmptyTagDimensions) {
  EXPECT_EQ(BuildRaw(Query({"team", "team"})).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BuildRaw(Query({"tag:"})).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(BuildSpendSqlTest, BindsFilterValuesAndTagKeysAsParameters) {
  v1::SpendQuery q = Query({"tag:project"});
  (*q.mutable_filters())["team"] = "o'brien'; DROP TABLE usage_events; --";
  (*q.mutable_filters())["tag:env"] = "prod";
  absl::StatusOr<SpendSql> sql = BuildRaw(q);
  ASSERT_TRUE(sql.ok()) << sql.status();
  EXPECT_THAT(sql->rows_sql, Not(HasSubstr("o'brien")));
  EXPECT_THAT(sql->rows_sql, Not(HasSubstr("project")));
  EXPECT_THAT(sql->rows_sql, Not(HasSubstr("prod")));
  // Filters sorted by dimension ("tag:env" < "team"); the group's tag key comes last.
  EXPECT_THAT(sql->rows_params,
              ElementsAre("env", "prod", "o'brien'; DROP TABLE usage_events; --", "project"));
  EXPECT_THAT(sql->total_params,
              ElementsAre("env", "prod", "o'brien'; DROP TABLE usage_events; --"));
  EXPECT_THAT(sql->rows_sql, HasSubstr("COALESCE(tags ->> $1::text, '') = $2::text"));
  EXPECT_THAT(sql->rows_sql, HasSubstr("team = $3::text"));
  EXPECT_THAT(sql->rows_sql, HasSubstr("SELECT COALESCE(tags ->> $4::text, '')"));
}

TEST(BuildSpendSqlTest, RejectsNulInFilterValue) {
  v1::SpendQuery q;
  (*q.mutable_filters())["team"] = std::string("a\0", 2);
  EXPECT_EQ(BuildRaw(q).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(BuildSpendSqlTest, BucketsInUtc) {
  v1::SpendQuery q = Query({"team"});
  q.set_bucket(v1::BUCKET_DAY);
  absl::StatusOr<SpendSql> sql = BuildRaw(q);
  ASSERT_TRUE(sql.ok());
  EXPECT_TRUE(sql->bucketed);
  EXPECT_THAT(sql->rows_sql, HasSubstr("date_trunc('day', ts, 'UTC')"));
  EXPECT_THAT(sql->rows_sql, HasSubstr("GROUP BY 1, 2"));
  q.set_bucket(v1::BUCKET_HOUR);
  EXPECT_THAT(BuildRaw(q)->rows_sql, HasSubstr("date_trunc('hour', ts, 'UTC')"));
  q.set_bucket(static_cast<v1::Bucket>(7));
  EXPECT_EQ(BuildRaw(q).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(BuildSpendSqlTest, UngroupedQueryReturnsNoRowForNoEvents) {
  absl::StatusOr<SpendSql> sql = BuildRaw(v1::SpendQuery());
  ASSERT_TRUE(sql.ok());
  EXPECT_THAT(sql->rows_sql, HasSubstr("HAVING count(*) > 0"));
  EXPECT_THAT(sql->rows_sql, Not(HasSubstr("WHERE")));
  EXPECT_TRUE(sql->rows_params.empty());
}

TEST(BuildSpendSqlTest, AppliesLimit) {
  v1::SpendQuery q = Query({"customer"});
  q.set_limit(10);
  EXPECT_THAT(BuildRaw(q)->rows_sql, HasSubstr(" LIMIT 10"));
  q.set_limit(-1);
  EXPECT_EQ(BuildRaw(q).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(BuildSpendSqlTest, ValidatesTimeRange) {
  v1::SpendQuery q;
  q.set_start_unix_s(100);
  q.set_end_unix_s(100);
  EXPECT_EQ(BuildRaw(q).status().code(), absl::StatusCode::kInvalidArgument);
  q.set_end_unix_s(50);
  EXPECT_EQ(BuildRaw(q).status().code(), absl::StatusCode::kInvalidArgument);
  q.set_start_unix_s(-1);
  q.set_end_unix_s(0);
  EXPECT_EQ(BuildRaw(q).status().code(), absl::StatusCode::kInvalidArgument);
  q.set_start_unix_s(0);
  q.set_end_unix_s(kMaxQueryUnixS + 1);
  EXPECT_EQ(BuildRaw(q).status().code(), absl::StatusCode::kInvalidArgument);
  // end 0 = now: only a lower bound.
  q.set_start_unix_s(100);
  q.set_end_unix_s(0);
  absl::StatusOr<SpendSql> sql = BuildRaw(q);
  ASSERT_TRUE(sql.ok());
  EXPECT_THAT(sql->rows_sql, HasSubstr("ts >= to_timestamp($1::bigint)"));
  EXPECT_THAT(sql->rows_sql, Not(HasSubstr("ts <")));
}

TEST(BuildSpendSqlTest, AutoUsesRollupsOnlyForHourAlignedTagFreeQueries) {
  v1::SpendQuery q = Query({"team"});
  q.set_start_unix_s(1'700'000'000 - 1'700'000'000 % 3600);
  q.set_end_unix_s(q.start_unix_s() + 86400);
  absl::StatusOr<SpendSql> rollups = BuildSpendSql(q);
  ASSERT_TRUE(rollups.ok()) << rollups.status();
  EXPECT_TRUE(rollups->from_rollups);
  EXPECT_THAT(rollups->rows_sql, HasSubstr("FROM usage_rollups_hourly"));
  EXPECT_THAT(rollups->rows_sql, HasSubstr("sum(requests)"));
  EXPECT_THAT(rollups->total_sql, HasSubstr("FROM usage_rollups_hourly"));

  v1::SpendQuery unaligned = q;
  unaligned.set_end_unix_s(unaligned.end_unix_s() + 1);
  EXPECT_FALSE(BuildSpendSql(unaligned)->from_rollups);
  EXPECT_EQ(BuildSpendSql(unaligned, SpendSource::kRollups).status().code(),
            absl::StatusCode::kInvalidArgument);

  v1::SpendQuery tagged = q;
  (*tagged.mutable_filters())["tag:project"] = "x";
  EXPECT_FALSE(BuildSpendSql(tagged)->from_rollups);
  v1::SpendQuery tag_group = Query({"tag:project"});
  EXPECT_FALSE(BuildSpendSql(tag_group)->from_rollups);
  EXPECT_THAT(BuildSpendSql(tag_group)->rows_sql, HasSubstr("FROM usage_events"));
  EXPECT_FALSE(BuildSpendSql(q, SpendSource::kEvents)->from_rollups);
}

TEST(BuildSpendSqlTest, AutoUsesDailyRollupsForDayAlignedRangesWithoutHourBuckets) {
  v1::SpendQuery q = Query({"team", "feature"});
  q.set_start_unix_s(1'709'251'200);  // 2024-03-01T00:00:00Z
  q.set_end_unix_s(q.start_unix_s() + 30 * 86400);
  absl::StatusOr<SpendSql> daily = BuildSpendSql(q);
  ASSERT_TRUE(daily.ok()) << daily.status();
  EXPECT_TRUE(daily->from_rollups);
  EXPECT_TRUE(daily->from_daily_rollups);
  EXPECT_THAT(daily->rows_sql, HasSubstr("FROM usage_rollups_daily"));
  EXPECT_THAT(daily->rows_sql, HasSubstr("day >= to_timestamp($1::bigint)"));
  EXPECT_THAT(daily->total_sql, HasSubstr("FROM usage_rollups_daily"));
  for (v1::Bucket b : {v1::BUCKET_DAY, v1::BUCKET_WEEK, v1::BUCKET_MONTH}) {
    v1::SpendQuery bucketed = q;
    bucketed.set_bucket(b);
    EXPECT_TRUE(BuildSpendSql(bucketed)->from_daily_rollups) << b;
  }
  // Hour buckets or an hour-aligned bound: hourly rollups; a forced daily source is refused.
  v1::SpendQuery hourly = q;
  hourly.set_bucket(v1::BUCKET_HOUR);
  EXPECT_FALSE(BuildSpendSql(hourly)->from_daily_rollups);
  EXPECT_TRUE(BuildSpendSql(hourly)->from_rollups);
  EXPECT_EQ(BuildSpendSql(hourly, SpendSource::kDailyRollups).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::SpendQuery partial_day = q;
  partial_day.set_end_unix_s(q.end_unix_s() - 3600);
  EXPECT_FALSE(BuildSpendSql(partial_day)->from_daily_rollups);
  EXPECT_THAT(BuildSpendSql(partial_day)->rows_sql, HasSubstr("FROM usage_rollups_hourly"));
  // Forcing hourly rollups still reads them.
  EXPECT_THAT(BuildSpendSql(q, SpendSource::kRollups)->rows_sql,
              HasSubstr("FROM usage_rollups_hourly"));
  v1::SpendQuery tagged = q;
  (*tagged.mutable_filters())["tag:project"] = "x";
  EXPECT_FALSE(BuildSpendSql(tagged)->from_rollups);
}

TEST(BuildSpendSqlTest, UnalignedTagFreeRangesReadHourlyRollupsInsideAndEventsAtTheEdges) {
  v1::SpendQuery q = Query({"team"});
  q.set_start_unix_s(1'709'251'200 + 1800);         // 00:30
  q.set_end_unix_s(1'709'251'200 + 5 * 3600 + 60);  // 05:01
  absl::StatusOr<SpendSql> sql = BuildSpendSql(q);
  ASSERT_TRUE(sql.ok()) << sql.status();
  EXPECT_FALSE(sql->from_rollups);
  EXPECT_TRUE(sql->split_edges);
  EXPECT_THAT(sql->rows_sql, HasSubstr("FROM usage_rollups_hourly WHERE hour >= to_timestamp($1"));
  EXPECT_THAT(sql->rows_sql, HasSubstr("UNION ALL SELECT ts"));
  EXPECT_THAT(sql->total_sql, HasSubstr("UNION ALL SELECT ts"));
  // The bounds: inner 01:00..05:00, edges [00:30, 01:00) and [05:00, 05:01).
  EXPECT_THAT(sql->rows_params, ::testing::ElementsAre("1709254800", "1709253000", "1709269200",
                                                       "1709269260", "1709253000", "1709269260"));
  // Within one hour there is nothing whole to read from the rollups: raw events only.
  v1::SpendQuery short_range = q;
  short_range.set_end_unix_s(q.start_unix_s() + 600);
  EXPECT_FALSE(BuildSpendSql(short_range)->split_edges);
  // Tags, or an explicit source, never split.
  v1::SpendQuery tagged = q;
  (*tagged.mutable_filters())["tag:project"] = "x";
  EXPECT_FALSE(BuildSpendSql(tagged)->split_edges);
  EXPECT_FALSE(BuildSpendSql(q, SpendSource::kEvents)->split_edges);
}

TEST(BuildSpendSqlTest, UnalignedRangesOverWholeDaysReadTheDailyRollups) {
  const int64_t day = 1'709'251'200;  // 2024-03-01 00:00 UTC
  v1::SpendQuery q = Query({"team"});
  q.set_bucket(v1::BUCKET_DAY);
  q.set_start_unix_s(day + 22 * 3600 + 1800);  // 03-01 22:30
  q.set_end_unix_s(day + 3 * 86400 + 3600 + 60);  // 03-04 01:01
  absl::StatusOr<SpendSql> sql = BuildSpendSql(q);
  ASSERT_TRUE(sql.ok()) << sql.status();
  EXPECT_TRUE(sql->split_edges);
  EXPECT_THAT(sql->rows_sql, HasSubstr("FROM usage_rollups_daily WHERE day >= to_timestamp($2"));
  // Hours 23:00..03-02 00:00 and 03-04 00:00..01:00; days 03-02..03-04; edges 22:30..23:00 and
  // 03-04 01:00..01:01.
  EXPECT_THAT(sql->rows_params,
              ::testing::ElementsAre(absl::StrCat(day + 23 * 3600), absl::StrCat(day + 86400),
                                     absl::StrCat(day + 3 * 86400),
                                     absl::StrCat(day + 22 * 3600 + 1800),
                                     absl::StrCat(day + 3 * 86400 + 3600),
                                     absl::StrCat(day + 3 * 86400 + 3600 + 60),
                                     absl::StrCat(day + 22 * 3600 + 1800),
                                     absl::StrCat(day + 3 * 86400 + 3600 + 60)));
  // Hour buckets cannot use day rows.
  v1::SpendQuery hourly = q;
  hourly.set_bucket(v1::BUCKET_HOUR);
  EXPECT_THAT(BuildSpendSql(hourly)->rows_sql, ::testing::Not(HasSubstr("usage_rollups_daily")));
  // An open end ("--since 30d") reads the days up to today from the daily rollups.
  v1::SpendQuery open = q;
  open.set_end_unix_s(0);
  EXPECT_THAT(BuildSpendSql(open)->rows_sql, HasSubstr("FROM usage_rollups_daily"));
}

}  // namespace
}  // namespace tollgate::ledger
