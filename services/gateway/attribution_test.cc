#include "services/gateway/attribution.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/gateway/openai_dialect.h"

namespace tollgate::gateway {
namespace {

AttributionInputs KeyOnly() {
  AttributionInputs in;
  in.team = "platform";
  in.api_key_id = "dev";
  in.key_environment = "staging";
  return in;
}

TEST(BuildAttribution, KeyFieldsAndHeaders) {
  AttributionInputs in = KeyOnly();
  in.feature = " search ";
  in.customer = "acme";
  in.body_user = "user-42";
  in.tags = "tier=gold, region = eu ,exp=";
  auto a = BuildAttribution(in);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->team(), "platform");
  EXPECT_EQ(a->api_key_id(), "dev");
  EXPECT_EQ(a->environment(), "staging");
  EXPECT_EQ(a->feature(), "search");
  EXPECT_EQ(a->customer(), "acme") << "the header wins over the body's user";
  ASSERT_EQ(a->tags().size(), 3u);
  EXPECT_EQ(a->tags().at("tier"), "gold");
  EXPECT_EQ(a->tags().at("region"), "eu");
  EXPECT_EQ(a->tags().at("exp"), "");
}

TEST(BuildAttribution, CustomerFallsBackToUser) {
  AttributionInputs in = KeyOnly();
  in.body_user = "user-42";
  auto a = BuildAttribution(in);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->customer(), "user-42");
  in.body_user = "";
  a = BuildAttribution(in);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->customer(), "");
  EXPECT_EQ(a->feature(), "");
  EXPECT_TRUE(a->tags().empty());
}

TEST(BuildAttribution, EnvironmentHeaderOverridesTheKey) {
  AttributionInputs in = KeyOnly();
  in.environment = "prod";
  auto a = BuildAttribution(in);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->environment(), "prod");
  in.environment = "";
  in.key_environment = "";
  a = BuildAttribution(in);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->environment(), "");
}

TEST(BuildAttribution, RejectsUnboundedOrControlValues) {
  AttributionInputs in = KeyOnly();
  const std::string long_value(kMaxAttributionValueBytes + 1, 'f');
  in.feature = long_value;
  auto a = BuildAttribution(in);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(ParamOf(a.status()), "x-tollgate-feature");

  in = KeyOnly();
  in.customer = "bad\x01value";
  a = BuildAttribution(in);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(ParamOf(a.status()), "x-tollgate-customer");

  in = KeyOnly();
  in.body_user = long_value;
  a = BuildAttribution(in);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(ParamOf(a.status()), "user");

  in = KeyOnly();
  in.environment = long_value;
  EXPECT_EQ(ParamOf(BuildAttribution(in).status()), "x-tollgate-environment");

  in = KeyOnly();
  in.tags = "a";
  a = BuildAttribution(in);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParamOf(a.status()), "x-tollgate-tags");
}

TEST(ParseTags, Valid) {
  auto tags = ParseTags("k=v,k2=v2");
  ASSERT_TRUE(tags.ok());
  EXPECT_EQ(*tags, (std::map<std::string, std::string>{{"k", "v"}, {"k2", "v2"}}));
  tags = ParseTags("  ");
  ASSERT_TRUE(tags.ok());
  EXPECT_TRUE(tags->empty());
  tags = ParseTags("ns/key.sub:x-y_z=value with spaces=and equals");
  ASSERT_TRUE(tags.ok());
  EXPECT_EQ(tags->at("ns/key.sub:x-y_z"), "value with spaces=and equals");
}

TEST(ParseTags, Malformed) {
  std::string too_many;
  for (size_t i = 0; i <= kMaxTags; ++i) absl::StrAppend(&too_many, "k", i, "=v,");
  too_many.pop_back();
  for (const std::string& bad :
       {std::string("novalue"), std::string("=v"), std::string("a=1,,b=2"), std::string("a=1,"),
        std::string("a=1,a=2"), std::string("sp ace=1"), std::string("k\x01=1"),
        std::string("k=v\x7f"), absl::StrCat(std::string(kMaxTagKeyBytes + 1, 'k'), "=v"),
        absl::StrCat("k=", std::string(kMaxTagValueBytes + 1, 'v')), too_many}) {
    auto tags = ParseTags(bad);
    EXPECT_FALSE(tags.ok()) << bad;
    EXPECT_EQ(tags.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(ParamOf(tags.status()), "x-tollgate-tags");
  }
  std::string max_tags;
  for (size_t i = 0; i < kMaxTags; ++i) absl::StrAppend(&max_tags, "k", i, "=v,");
  max_tags.pop_back();
  EXPECT_TRUE(ParseTags(max_tags).ok());
}

}  // namespace
}  // namespace tollgate::gateway
