#include "services/common/money.h"

#include <random>

#include "gtest/gtest.h"

namespace tollgate {
namespace {

TEST(ParseUsdPerMillionTokens, ConvertsToPicoPerToken) {
  EXPECT_EQ(*ParseUsdPerMillionTokens("2.50"), 2'500'000);
  EXPECT_EQ(*ParseUsdPerMillionTokens("0.075"), 75'000);
  EXPECT_EQ(*ParseUsdPerMillionTokens("10"), 10'000'000);
  EXPECT_EQ(*ParseUsdPerMillionTokens("0.000001"), 1);
  EXPECT_EQ(*ParseUsdPerMillionTokens(".5"), 500'000);
  EXPECT_EQ(*ParseUsdPerMillionTokens("0"), 0);
}

TEST(ParseUsdPerMillionTokens, RejectsMalformed) {
  for (const char* bad : {"", "-1", "1.2.3", "abc", "1e3", "0.0000001", ".", "1.", " 1", "1,5"}) {
    EXPECT_EQ(ParseUsdPerMillionTokens(bad).status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_EQ(ParseUsdPerMillionTokens("99999999999999999999").status().code(),
            absl::StatusCode::kOutOfRange);
}

TEST(FormatPicoUsd, TwelveFractionalDigits) {
  EXPECT_EQ(FormatPicoUsd(int64_t{0}), "0.000000000000");
  EXPECT_EQ(FormatPicoUsd(int64_t{1}), "0.000000000001");
  EXPECT_EQ(FormatPicoUsd(int64_t{2'500'000}), "0.000002500000");
  EXPECT_EQ(FormatPicoUsd(int64_t{-2'500'000}), "-0.000002500000");
  EXPECT_EQ(FormatPicoUsd(int64_t{1'234'000'000'000'000}), "1234.000000000000");
  EXPECT_EQ(FormatPicoUsd(std::numeric_limits<int64_t>::min()), "-9223372.036854775808");
}

TEST(FormatUsdPerMillionTokens, RoundTrips) {
  for (const char* price : {"2.5", "0.075", "10", "0.000001", "0"}) {
    EXPECT_EQ(FormatUsdPerMillionTokens(*ParseUsdPerMillionTokens(price)), price);
  }
}

TEST(ParseUsd, RoundTripsThroughFormat) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 10000; ++i) {
    const int64_t pico = static_cast<int64_t>(rng() % 2'000'000'000'000'000) - 1'000'000'000'000'000;
    EXPECT_EQ(*ParseUsd(FormatPicoUsd(pico)), pico);
  }
}

v1::UnitPrices Prices(const char* in, const char* cached, const char* out) {
  v1::UnitPrices p;
  p.set_input_pico(*ParseUsdPerMillionTokens(in));
  p.set_cached_input_pico(*ParseUsdPerMillionTokens(cached));
  p.set_output_pico(*ParseUsdPerMillionTokens(out));
  return p;
}

TEST(PriceUsage, OpenAiExampleFromProvidersDoc) {
  // gpt-4o: 82 prompt tokens of which 64 cached, 18 completion tokens.
  v1::TokenUsage u;
  u.set_input_tokens(82);
  u.set_cached_input_tokens(64);
  u.set_output_tokens(18);
  // (82-64)*2.5e6 + 64*1.25e6 + 18*10e6 = 45e6 + 80e6 + 180e6 = 305e6 pico = $0.000305
  EXPECT_EQ(*PriceUsage(u, Prices("2.50", "1.25", "10.00")), 305'000'000);
  EXPECT_EQ(FormatPicoUsd(*PriceUsage(u, Prices("2.50", "1.25", "10.00"))), "0.000305000000");
}

TEST(PriceUsage, AnthropicCacheWritesAndReasoning) {
  v1::UnitPrices p = Prices("3.00", "0.30", "15.00");
  p.set_cache_write_5m_pico(*ParseUsdPerMillionTokens("3.75"));
  p.set_cache_write_1h_pico(*ParseUsdPerMillionTokens("6.00"));
  v1::TokenUsage u;
  u.set_input_tokens(120 + 2000 + 100 + 50);  // input + read + 5m write + 1h write
  u.set_cached_input_tokens(2000);
  u.set_cache_write_5m_tokens(100);
  u.set_cache_write_1h_tokens(50);
  u.set_output_tokens(40);
  u.set_reasoning_tokens(10);
  const int64_t expected = 120 * 3'000'000LL + 2000 * 300'000LL + 100 * 3'750'000LL +
                           50 * 6'000'000LL + 40 * 15'000'000LL;
  EXPECT_EQ(*PriceUsage(u, p), expected);
  p.set_reasoning_pico(*ParseUsdPerMillionTokens("20"));
  EXPECT_EQ(*PriceUsage(u, p), expected - 10 * 15'000'000LL + 10 * 20'000'000LL);
}

TEST(PriceUsage, RejectsInconsistentUsage) {
  v1::TokenUsage u;
  u.set_input_tokens(10);
  u.set_cached_input_tokens(11);
  EXPECT_EQ(PriceUsage(u, Prices("1", "1", "1")).status().code(),
            absl::StatusCode::kInvalidArgument);
  u.set_cached_input_tokens(0);
  u.set_output_tokens(1);
  u.set_reasoning_tokens(2);
  EXPECT_EQ(PriceUsage(u, Prices("1", "1", "1")).status().code(),
            absl::StatusCode::kInvalidArgument);
  u.set_reasoning_tokens(0);
  u.set_input_tokens(-1);
  EXPECT_EQ(PriceUsage(u, Prices("1", "1", "1")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PriceUsage, OverflowIsAnError) {
  v1::TokenUsage u;
  u.set_input_tokens(std::numeric_limits<int64_t>::max() / 2);
  EXPECT_EQ(PriceUsage(u, Prices("1000", "0", "0")).status().code(),
            absl::StatusCode::kOutOfRange);
}

TEST(PriceUsage, SumOfEventCostsEqualsCostOfSummedTokens) {
  // Linearity: pricing is exact, so the cost of a sum equals the sum of costs to the pico-dollar.
  std::mt19937_64 rng(7);
  const v1::UnitPrices p = Prices("2.50", "1.25", "10.00");
  int64_t sum_cost = 0;
  v1::TokenUsage total;
  for (int i = 0; i < 1000; ++i) {
    v1::TokenUsage u;
    u.set_input_tokens(static_cast<int64_t>(rng() % 100000));
    u.set_cached_input_tokens(static_cast<int64_t>(rng() % (u.input_tokens() + 1)));
    u.set_output_tokens(static_cast<int64_t>(rng() % 5000));
    sum_cost += *PriceUsage(u, p);
    total.set_input_tokens(total.input_tokens() + u.input_tokens());
    total.set_cached_input_tokens(total.cached_input_tokens() + u.cached_input_tokens());
    total.set_output_tokens(total.output_tokens() + u.output_tokens());
  }
  EXPECT_EQ(*PriceUsage(total, p), sum_cost);
}

}  // namespace
}  // namespace tollgate
