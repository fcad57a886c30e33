#include "services/common/money.h"

#include <limits>
#include <random>

#include "gtest/gtest.h"
#include "services/common/price_schedule.h"
#include "tollgate/v1/router.pb.h"

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

int64_t Pico(const char* usd_per_m) { return *ParseUsdPerMillionTokens(usd_per_m); }

// Claude Sonnet 4 list prices (PROVIDERS.md 5.2): 3 / 0.30 read / 3.75 5m write / 6 1h write /
// 15 out; above 200k input tokens 6 / 0.60 / 7.50 / 12 / 22.50.
v1::UnitPrices SonnetFour() {
  v1::UnitPrices p;
  p.set_input_pico(Pico("3.00"));
  p.set_cached_input_pico(Pico("0.30"));
  p.set_cache_write_5m_pico(Pico("3.75"));
  p.set_cache_write_1h_pico(Pico("6.00"));
  p.set_output_pico(Pico("15.00"));
  p.set_price_card_version("cat@2025-05-22T00:00:00Z");
  p.set_long_context_threshold_tokens(200000);
  v1::UnitPrices* t = p.mutable_long_context();
  t->set_input_pico(Pico("6.00"));
  t->set_cached_input_pico(Pico("0.60"));
  t->set_cache_write_5m_pico(Pico("7.50"));
  t->set_cache_write_1h_pico(Pico("12.00"));
  t->set_output_pico(Pico("22.50"));
  return p;
}

v1::TokenUsage Usage(int64_t uncached, int64_t read, int64_t write_5m, int64_t write_1h,
                     int64_t output, int64_t reasoning = 0) {
  v1::TokenUsage u;
  u.set_input_tokens(uncached + read + write_5m + write_1h);
  u.set_cached_input_tokens(read);
  u.set_cache_write_5m_tokens(write_5m);
  u.set_cache_write_1h_tokens(write_1h);
  u.set_output_tokens(output);
  u.set_reasoning_tokens(reasoning);
  return u;
}

TEST(LongContext, ClaudeSonnetFourBelowTheTier) {
  // 150k input: 20k uncached, 100k cache read, 20k 5m write, 10k 1h write; 2k output.
  const v1::TokenUsage u = Usage(20000, 100000, 20000, 10000, 2000);
  ASSERT_EQ(u.input_tokens(), 150000);
  // 20000*3e6 + 100000*0.3e6 + 20000*3.75e6 + 10000*6e6 + 2000*15e6
  // = 60e9 + 30e9 + 75e9 + 60e9 + 30e9 = 255e9 pico = $0.255
  EXPECT_EQ(*PriceUsage(u, SonnetFour()), 255'000'000'000);
  const v1::UnitPrices flat = EffectivePrices(SonnetFour(), u);
  EXPECT_EQ(flat.input_pico(), 3'000'000);
  EXPECT_EQ(flat.output_pico(), 15'000'000);
  EXPECT_EQ(flat.long_context_threshold_tokens(), 0);
  EXPECT_FALSE(flat.has_long_context());
  EXPECT_EQ(flat.price_card_version(), "cat@2025-05-22T00:00:00Z");
  EXPECT_EQ(*PriceUsage(u, flat), 255'000'000'000);
}

TEST(LongContext, ClaudeSonnetFourAboveTheTierBillsTheWholeRequestAtTheTier) {
  // 250k input: 40k uncached, 150k cache read, 40k 5m write, 20k 1h write; 3k output.
  const v1::TokenUsage u = Usage(40000, 150000, 40000, 20000, 3000);
  ASSERT_EQ(u.input_tokens(), 250000);
  // 40000*6e6 + 150000*0.6e6 + 40000*7.5e6 + 20000*12e6 + 3000*22.5e6
  // = 240e9 + 90e9 + 300e9 + 240e9 + 67.5e9 = 937.5e9 pico = $0.9375
  EXPECT_EQ(*PriceUsage(u, SonnetFour()), 937'500'000'000);
  EXPECT_EQ(FormatPicoUsd(*PriceUsage(u, SonnetFour())), "0.937500000000");
  const v1::UnitPrices flat = EffectivePrices(SonnetFour(), u);
  EXPECT_EQ(flat.input_pico(), 6'000'000);
  EXPECT_EQ(flat.cached_input_pico(), 600'000);
  EXPECT_EQ(flat.cache_write_5m_pico(), 7'500'000);
  EXPECT_EQ(flat.cache_write_1h_pico(), 12'000'000);
  EXPECT_EQ(flat.output_pico(), 22'500'000);
  EXPECT_EQ(flat.reasoning_pico(), 0);
  EXPECT_FALSE(flat.has_long_context());
  EXPECT_EQ(flat.price_card_version(), "cat@2025-05-22T00:00:00Z/long_context");
  // Flat prices are what a usage event stores: pricing them again gives the same cost, and
  // EffectivePrices is idempotent.
  EXPECT_EQ(*PriceUsage(u, flat), 937'500'000'000);
  EXPECT_EQ(EffectivePrices(flat, u).SerializeAsString(), flat.SerializeAsString());
}

TEST(LongContext, ThresholdIsStrictlyAboveAndCountsAllInput) {
  const v1::UnitPrices p = SonnetFour();
  // Exactly 200,000 input tokens: base prices.
  v1::TokenUsage at = Usage(200000, 0, 0, 0, 0);
  EXPECT_EQ(*PriceUsage(at, p), 200000 * 3'000'000LL);
  EXPECT_FALSE(LongContextApplies(p, 200000));
  // One more: the whole request at the tier.
  v1::TokenUsage above = Usage(200001, 0, 0, 0, 0);
  EXPECT_EQ(*PriceUsage(above, p), 200001 * 6'000'000LL);
  // Cache reads count toward the threshold (input_tokens includes them).
  v1::TokenUsage cached = Usage(1, 200000, 0, 0, 10);
  EXPECT_EQ(*PriceUsage(cached, p), 6'000'000LL + 200000 * 600'000LL + 10 * 22'500'000LL);
}

TEST(LongContext, NoTierWithoutThresholdOrTierPrices) {
  v1::UnitPrices p = SonnetFour();
  p.set_long_context_threshold_tokens(0);
  const v1::TokenUsage big = Usage(300000, 0, 0, 0, 0);
  EXPECT_EQ(*PriceUsage(big, p), 300000 * 3'000'000LL);
  p.set_long_context_threshold_tokens(200000);
  p.clear_long_context();
  EXPECT_EQ(*PriceUsage(big, p), 300000 * 3'000'000LL);
}

TEST(LongContext, GeminiTwoFiveProTiersWithThinking) {
  // Gemini 2.5 Pro: 1.25 / 0.125 cached / 10 out; above 200k: 2.50 / 0.25 / 15. Thoughts are
  // output (reasoning price 0 = output price). No cache writes.
  v1::UnitPrices p;
  p.set_input_pico(Pico("1.25"));
  p.set_cached_input_pico(Pico("0.125"));
  p.set_cache_write_5m_pico(Pico("1.25"));
  p.set_cache_write_1h_pico(Pico("1.25"));
  p.set_output_pico(Pico("10.00"));
  p.set_long_context_threshold_tokens(200000);
  v1::UnitPrices* t = p.mutable_long_context();
  t->set_input_pico(Pico("2.50"));
  t->set_cached_input_pico(Pico("0.25"));
  t->set_cache_write_5m_pico(Pico("2.50"));
  t->set_cache_write_1h_pico(Pico("2.50"));
  t->set_output_pico(Pico("15.00"));
  // 100k prompt (60k cached), 5k output of which 3k thoughts:
  // 40000*1.25e6 + 60000*0.125e6 + 5000*10e6 = 50e9 + 7.5e9 + 50e9 = 107.5e9
  EXPECT_EQ(*PriceUsage(Usage(40000, 60000, 0, 0, 5000, 3000), p), 107'500'000'000);
  // 300k prompt (200k cached), 8k output:
  // 100000*2.5e6 + 200000*0.25e6 + 8000*15e6 = 250e9 + 50e9 + 120e9 = 420e9
  EXPECT_EQ(*PriceUsage(Usage(100000, 200000, 0, 0, 8000, 3000), p), 420'000'000'000);
}

TEST(LongContext, TierReasoningPriceAppliesAboveTheThreshold) {
  v1::UnitPrices p;
  p.set_input_pico(1);
  p.set_output_pico(10);
  p.set_reasoning_pico(20);
  p.set_long_context_threshold_tokens(100);
  p.mutable_long_context()->set_input_pico(2);
  p.mutable_long_context()->set_output_pico(30);
  // The tier has no reasoning price of its own: reasoning goes at the tier's output price, not
  // the base card's reasoning price.
  EXPECT_EQ(*PriceUsage(Usage(101, 0, 0, 0, 5, 5), p), 101 * 2 + 5 * 30);
  EXPECT_EQ(*PriceUsage(Usage(100, 0, 0, 0, 5, 5), p), 100 * 1 + 5 * 20);
}

TEST(LongContext, InvalidUsageIsRejectedWhateverTheTier) {
  v1::TokenUsage u = Usage(300000, 0, 0, 0, 1);
  u.set_reasoning_tokens(2);
  EXPECT_EQ(PriceUsage(u, SonnetFour()).status().code(), absl::StatusCode::kInvalidArgument);
}

// A DeepSeek-like schedule: three dated cards.
v1::Deployment ScheduledDeployment() {
  v1::Deployment d;
  d.set_id("deepseek-chat");
  struct Card {
    int64_t from_ms;
    const char *in, *hit, *out, *version;
  };
  const Card cards[] = {
      {1735689600000, "0.27", "0.07", "1.10", "v@2025-01-01T00:00:00Z"},
      {1757088000000, "0.56", "0.07", "1.68", "v@2025-09-05T16:00:00Z"},
      {1759104000000, "0.28", "0.028", "0.42", "v@2025-09-29T00:00:00Z"},
  };
  for (const Card& c : cards) {
    v1::DatedPrices* dated = d.add_price_schedule();
    dated->set_effective_from_unix_ms(c.from_ms);
    v1::UnitPrices* p = dated->mutable_prices();
    p->set_input_pico(Pico(c.in));
    p->set_cached_input_pico(Pico(c.hit));
    p->set_cache_write_5m_pico(Pico(c.in));
    p->set_cache_write_1h_pico(Pico(c.in));
    p->set_output_pico(Pico(c.out));
    p->set_price_card_version(c.version);
  }
  *d.mutable_prices() = d.price_schedule(2).prices();
  return d;
}

TEST(PriceSchedule, PicksTheCardInEffectAtTheRequestStart) {
  const v1::Deployment d = ScheduledDeployment();
  const int64_t switch_ms = 1757088000000;  // 2025-09-05T16:00:00Z
  EXPECT_EQ(PricesAt(d, switch_ms - 1).price_card_version(), "v@2025-01-01T00:00:00Z");
  EXPECT_EQ(PricesAt(d, switch_ms).price_card_version(), "v@2025-09-05T16:00:00Z");
  EXPECT_EQ(PricesAt(d, 1759104000000 - 1).price_card_version(), "v@2025-09-05T16:00:00Z");
  EXPECT_EQ(PricesAt(d, 1759104000000).price_card_version(), "v@2025-09-29T00:00:00Z");
  EXPECT_EQ(PricesAt(d, std::numeric_limits<int64_t>::max()).price_card_version(),
            "v@2025-09-29T00:00:00Z");
  // Before the first card (skewed clock): the first card.
  EXPECT_EQ(PricesAt(d, 0).price_card_version(), "v@2025-01-01T00:00:00Z");

  // The same usage one millisecond either side of the switch: 1M miss + 1M hit + 1M out.
  const v1::TokenUsage u = Usage(1000000, 1000000, 0, 0, 1000000);
  EXPECT_EQ(*PriceUsage(u, PricesAt(d, switch_ms - 1)),
            270'000'000'000LL + 70'000'000'000 + 1'100'000'000'000);  // $1.44
  EXPECT_EQ(*PriceUsage(u, PricesAt(d, switch_ms)),
            560'000'000'000LL + 70'000'000'000 + 1'680'000'000'000);  // $2.31
  EXPECT_EQ(FormatPicoUsd(*PriceUsage(u, PricesAt(d, switch_ms))), "2.310000000000");
}

TEST(PriceSchedule, WithoutScheduleThePricesAlwaysApply) {
  v1::Deployment d;
  d.mutable_prices()->set_input_pico(5);
  d.mutable_prices()->set_price_card_version("abc");
  EXPECT_EQ(&PricesAt(d, 0), &d.prices());
  EXPECT_EQ(&PricesAt(d, 1795305600000), &d.prices());
  EXPECT_EQ(NextPriceChangeUnixMs(d, 0), std::numeric_limits<int64_t>::max());
}

TEST(PriceSchedule, NextPriceChange) {
  const v1::Deployment d = ScheduledDeployment();
  EXPECT_EQ(NextPriceChangeUnixMs(d, 0), 1735689600000);
  EXPECT_EQ(NextPriceChangeUnixMs(d, 1735689600000), 1757088000000);
  EXPECT_EQ(NextPriceChangeUnixMs(d, 1757088000000 - 1), 1757088000000);
  EXPECT_EQ(NextPriceChangeUnixMs(d, 1759104000000), std::numeric_limits<int64_t>::max());
}

}  // namespace
}  // namespace tollgate
