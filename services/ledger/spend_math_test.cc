#include "services/ledger/spend_math.h"

#include "gtest/gtest.h"

namespace tollgate::ledger {
namespace {

v1::SpendRow Row(std::vector<std::string> groups, const std::string& cost, int64_t requests,
                 int64_t input, int64_t output, int64_t bucket = 0) {
  v1::SpendRow r;
  for (auto& g : groups) r.add_group_values(g);
  r.set_cost_usd(cost);
  r.set_requests(requests);
  r.mutable_tokens()->set_input_tokens(input);
  r.mutable_tokens()->set_output_tokens(output);
  r.set_bucket_start_unix_s(bucket);
  return r;
}

TEST(SpendMathTest, ParsesAndFormatsExactly) {
  EXPECT_EQ(*ParseDecimalPico("0.000000000001"), 1);
  EXPECT_EQ(*ParseDecimalPico("-12.5"), -12'500'000'000'000);
  EXPECT_EQ(*ParseDecimalPico("3"), 3'000'000'000'000);
  // Beyond int64 pico-dollars (9.2 million USD) still exact.
  EXPECT_EQ(FormatScaled(*ParseDecimalPico("123456789012.123456789012"), 12),
            "123456789012.123456789012");
  EXPECT_FALSE(ParseDecimalPico("1.0000000000001").ok());
  EXPECT_FALSE(ParseDecimalPico("1e3").ok());
  EXPECT_FALSE(ParseDecimalPico(".5").ok());
  EXPECT_FALSE(ParseDecimalPico("").ok());
  EXPECT_EQ(FormatScaled(5, 6), "0.000005");
  EXPECT_EQ(FormatScaled(-1234567, 6), "-1.234567");
  EXPECT_EQ(FormatScaled(42, 0), "42");
}

TEST(SpendMathTest, RoundsHalfAwayFromZero) {
  EXPECT_EQ(DivRound(5, 2), 3);
  EXPECT_EQ(DivRound(-5, 2), -3);
  EXPECT_EQ(DivRound(4, 3), 1);
  EXPECT_EQ(DivRound(5, 3), 2);
  EXPECT_EQ(DivRound(-5, 3), -2);
  EXPECT_EQ(DivRound(7, -2), -4);
}

TEST(SpendMathTest, DerivedColumns) {
  v1::SpendResponse r;
  *r.add_rows() = Row({"a"}, "0.100000000000", 3, 1000, 0);
  *r.add_rows() = Row({"b"}, "0.200000000000", 0, 0, 0);
  *r.mutable_total() = Row({}, "0.300000000000", 3, 1000, 0);
  ASSERT_TRUE(AddDerivedColumns(r).ok());
  EXPECT_EQ(r.rows(0).cost_per_1k_tokens_usd(), "0.100000000000");
  EXPECT_EQ(r.rows(0).cost_per_request_usd(), "0.033333333333");
  EXPECT_EQ(r.rows(0).share_of_total(), "0.333333");
  EXPECT_EQ(r.rows(1).cost_per_1k_tokens_usd(), "");
  EXPECT_EQ(r.rows(1).cost_per_request_usd(), "");
  EXPECT_EQ(r.rows(1).share_of_total(), "0.666667");
  EXPECT_EQ(r.total().share_of_total(), "1.000000");
}

TEST(SpendMathTest, ComparesWithThePreviousPeriod) {
  v1::SpendResponse now, before;
  *now.add_rows() = Row({"a"}, "0.300000000000", 3, 0, 0, 7200);
  *now.add_rows() = Row({"new"}, "0.000000000001", 1, 0, 0, 7200);
  *now.mutable_total() = Row({}, "0.300000000001", 4, 0, 0);
  *before.add_rows() = Row({"a"}, "0.200000000000", 2, 0, 0, 3600);
  *before.add_rows() = Row({"a"}, "9.000000000000", 2, 0, 0, 0);  // other bucket
  *before.mutable_total() = Row({}, "9.200000000000", 4, 0, 0);
  ASSERT_TRUE(AddComparison(now, before, 3600, /*bucketed=*/true).ok());
  EXPECT_EQ(now.rows(0).previous_cost_usd(), "0.200000000000");
  EXPECT_EQ(now.rows(0).previous_requests(), 2);
  EXPECT_EQ(now.rows(0).change_usd(), "0.100000000000");
  EXPECT_EQ(now.rows(0).change_ratio(), "0.500000");
  EXPECT_EQ(now.rows(1).previous_cost_usd(), "0.000000000000");
  EXPECT_EQ(now.rows(1).change_usd(), "0.000000000001");
  EXPECT_EQ(now.rows(1).change_ratio(), "");
  EXPECT_EQ(now.total().change_usd(), "-8.899999999999");
  EXPECT_EQ(now.total().change_ratio(), "-0.967391");
}

}  // namespace
}  // namespace tollgate::ledger
