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

TEST(BuildSpendSqlTest, GroupsByWhitelistedColumns) {
  v1::SpendQuery q = Query({"team", "feature"});
  q.set_start_unix_s(1'700'000'000);
  q.set_end_unix_s(1'700'086'400);
  absl::StatusOr<SpendSql> sql = BuildSpendSql(q);
  ASSERT_TRUE(sql.ok()) << sql.status();
  EXPECT_EQ(sql->group_columns, 2);
  EXPECT_FALSE(sql->bucketed);
  EXPECT_THAT(sql->rows_sql, HasSubstr("SELECT team, feature, count(*)"));
  EXPECT_THAT(sql->rows_sql, HasSubstr("GROUP BY 1, 2"));
  EXPECT_THAT(sql->rows_sql, HasSubstr("ORDER BY sum(cost_usd) DESC, 1, 2"));
  EXPECT_THAT(sql->rows_sql, HasSubstr("::numeric(38,12)::text"));
  EXPECT_THAT(sql->rows_params, ElementsAre("1700000000", "1700086400"));
  EXPECT_EQ(sql->total_params, sql->rows_params);
  EXPECT_THAT(sql->total_sql, Not(HasSubstr("GROUP BY")));
}

TEST(BuildSpendSqlTest, RejectsUnknownDimensionListingValidOnes) {
  absl::StatusOr<SpendSql> sql = BuildSpendSql(Query({"team", "password"}));
  ASSERT_EQ(sql.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(sql.status().message());
  EXPECT_THAT(message, HasSubstr("\"password\""));
  for (const std::string& d : SpendDimensions()) EXPECT_THAT(message, HasSubstr(d));
  EXPECT_THAT(message, HasSubstr("tag:<key>"));
}

TEST(BuildSpendSqlTest, RejectsSqlInDimensionNames) {
  EXPECT_EQ(BuildSpendSql(Query({"team; DROP TABLE usage_events"})).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::SpendQuery q;
  (*q.mutable_filters())["1=1 OR team"] = "x";
  EXPECT_EQ(BuildSpendSql(q).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(BuildSpendSqlTest, RejectsRepeatedAndEmptyTagDimensions) {
  EXPECT_EQ(BuildSpendSql(Query({"team", "team"})).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BuildSpendSql(Query({"tag:"})).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(BuildSpendSqlTest, BindsFilterValuesAndTagKeysAsParameters) {
  v1::SpendQuery q = Query({"tag:project"});
  (*q.mutable_filters())["team"] = "o'brien'; DROP TABLE usage_events; --";
  (*q.mutable_filters())["tag:env"] = "prod";
  absl::StatusOr<SpendSql> sql = BuildSpendSql(q);
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
  EXPECT_EQ(BuildSpendSql(q).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(BuildSpendSqlTest, BucketsInUtc) {
  v1::SpendQuery q = Query({"team"});
  q.set_bucket(v1::BUCKET_DAY);
  absl::StatusOr<SpendSql> sql = BuildSpendSql(q);
  ASSERT_TRUE(sql.ok());
  EXPECT_TRUE(sql->bucketed);
  EXPECT_THAT(sql->rows_sql, HasSubstr("date_trunc('day', ts, 'UTC')"));
  EXPECT_THAT(sql->rows_sql, HasSubstr("GROUP BY 1, 2"));
  q.set_bucket(v1::BUCKET_HOUR);
  EXPECT_THAT(BuildSpendSql(q)->rows_sql, HasSubstr("date_trunc('hour', ts, 'UTC')"));
  q.set_bucket(static_cast<v1::Bucket>(7));
  EXPECT_EQ(BuildSpendSql(q).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(BuildSpendSqlTest, UngroupedQueryReturnsNoRowForNoEvents) {
  absl::StatusOr<SpendSql> sql = BuildSpendSql(v1::SpendQuery());
  ASSERT_TRUE(sql.ok());
  EXPECT_THAT(sql->rows_sql, HasSubstr("HAVING count(*) > 0"));
  EXPECT_THAT(sql->rows_sql, Not(HasSubstr("WHERE")));
  EXPECT_TRUE(sql->rows_params.empty());
}

TEST(BuildSpendSqlTest, AppliesLimit) {
  v1::SpendQuery q = Query({"customer"});
  q.set_limit(10);
  EXPECT_THAT(BuildSpendSql(q)->rows_sql, HasSubstr(" LIMIT 10"));
  q.set_limit(-1);
  EXPECT_EQ(BuildSpendSql(q).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(BuildSpendSqlTest, ValidatesTimeRange) {
  v1::SpendQuery q;
  q.set_start_unix_s(100);
  q.set_end_unix_s(100);
  EXPECT_EQ(BuildSpendSql(q).status().code(), absl::StatusCode::kInvalidArgument);
  q.set_end_unix_s(50);
  EXPECT_EQ(BuildSpendSql(q).status().code(), absl::StatusCode::kInvalidArgument);
  q.set_start_unix_s(-1);
  q.set_end_unix_s(0);
  EXPECT_EQ(BuildSpendSql(q).status().code(), absl::StatusCode::kInvalidArgument);
  q.set_start_unix_s(0);
  q.set_end_unix_s(kMaxQueryUnixS + 1);
  EXPECT_EQ(BuildSpendSql(q).status().code(), absl::StatusCode::kInvalidArgument);
  // end 0 = now: only a lower bound.
  q.set_start_unix_s(100);
  q.set_end_unix_s(0);
  absl::StatusOr<SpendSql> sql = BuildSpendSql(q);
  ASSERT_TRUE(sql.ok());
  EXPECT_THAT(sql->rows_sql, HasSubstr("ts >= to_timestamp($1::bigint)"));
  EXPECT_THAT(sql->rows_sql, Not(HasSubstr("ts <")));
}

}  // namespace
}  // namespace tollgate::ledger
