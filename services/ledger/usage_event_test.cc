#include "services/ledger/usage_event.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/ledger/test_events.h"

namespace tollgate::ledger {
namespace {

using ::testing::HasSubstr;

TEST(ValidateUsageEventTest, AcceptsAPricedEvent) {
  const v1::UsageEvent e = MakeTestEvent("ev-1", "search", "answer", 1000, 500);
  EXPECT_EQ(e.cost_pico(), 7'500'000'000);  // 1000 * 2.5e6 + 500 * 1e7 pico
  EXPECT_TRUE(ValidateUsageEvent(e).ok()) << ValidateUsageEvent(e);
}

TEST(ValidateUsageEventTest, RejectsCostThatDoesNotMatchUsage) {
  v1::UsageEvent e = MakeTestEvent("ev-1", "search", "answer", 1000, 500);
  e.set_cost_pico(e.cost_pico() + 1);
  const absl::Status s = ValidateUsageEvent(e);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("event \"ev-1\""));
  EXPECT_THAT(std::string(s.message()), HasSubstr("7500000000"));
}

TEST(ValidateUsageEventTest, RejectsImpossibleTokenCounts) {
  v1::UsageEvent e = MakeTestEvent("ev-1", "t", "f", 10, 5);
  e.mutable_usage()->set_cached_input_tokens(11);
  Reprice(e);
  EXPECT_EQ(ValidateUsageEvent(e).code(), absl::StatusCode::kInvalidArgument);

  e = MakeTestEvent("ev-2", "t", "f", 10, 5);
  e.mutable_usage()->set_reasoning_tokens(6);
  EXPECT_EQ(ValidateUsageEvent(e).code(), absl::StatusCode::kInvalidArgument);

  e = MakeTestEvent("ev-3", "t", "f", -1, 5);
  EXPECT_EQ(ValidateUsageEvent(e).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ValidateUsageEventTest, RejectsNegativePrices) {
  v1::UsageEvent e = MakeTestEvent("ev-1", "t", "f", 0, 0);
  e.mutable_prices()->set_cache_write_1h_pico(-1);
  EXPECT_EQ(ValidateUsageEvent(e).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ValidateUsageEventTest, RejectsMissingIdAndBadTimes) {
  v1::UsageEvent e = MakeTestEvent("", "t", "f", 1, 1);
  EXPECT_EQ(ValidateUsageEvent(e).code(), absl::StatusCode::kInvalidArgument);
  e = MakeTestEvent("ev-1", "t", "f", 1, 1, /*time_unix_us=*/0);
  EXPECT_EQ(ValidateUsageEvent(e).code(), absl::StatusCode::kInvalidArgument);
  e = MakeTestEvent("ev-1", "t", "f", 1, 1, kMaxEventTimeUnixUs + 1);
  EXPECT_EQ(ValidateUsageEvent(e).code(), absl::StatusCode::kInvalidArgument);
  e = MakeTestEvent("ev-1", "t", "f", 1, 1, kMaxEventTimeUnixUs);
  EXPECT_TRUE(ValidateUsageEvent(e).ok());
}

TEST(ValidateUsageEventTest, RejectsTextPostgresCannotStore) {
  v1::UsageEvent e = MakeTestEvent("ev-1", "t", "f", 1, 1);
  e.mutable_attribution()->set_team(std::string("a\0b", 3));
  absl::Status s = ValidateUsageEvent(e);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("attribution.team"));

  e = MakeTestEvent("ev-1", "t", "f", 1, 1);
  (*e.mutable_attribution()->mutable_tags())["k"] = std::string("\xff");
  EXPECT_EQ(ValidateUsageEvent(e).code(), absl::StatusCode::kInvalidArgument);

  e = MakeTestEvent("ev-1", "t", "f", 1, 1);
  e.add_attempts()->set_error(std::string("x\0", 2));
  EXPECT_EQ(ValidateUsageEvent(e).code(), absl::StatusCode::kInvalidArgument);
}

TEST(IsStorableTextTest, AcceptsUtf8AndRejectsTheRest) {
  EXPECT_TRUE(IsStorableText(""));
  EXPECT_TRUE(IsStorableText("plain ascii"));
  EXPECT_TRUE(IsStorableText("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));  // é € 😀
  EXPECT_FALSE(IsStorableText(std::string("\0", 1)));
  EXPECT_FALSE(IsStorableText("\xc3"));              // truncated
  EXPECT_FALSE(IsStorableText("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsStorableText("\xed\xa0\x80"));      // UTF-16 surrogate
  EXPECT_FALSE(IsStorableText("\xf4\x90\x80\x80"));  // beyond U+10FFFF
  EXPECT_FALSE(IsStorableText("\x80"));              // stray continuation byte
}

}  // namespace
}  // namespace tollgate::ledger
