#include "services/gateway/route_features.h"

#include "boost/json/parse.hpp"
#include "gtest/gtest.h"

namespace tollgate::gateway {
namespace {

std::vector<std::string> Markers(const std::string& content) {
  boost::json::object message{{"role", "user"}, {"content", content}};
  boost::json::value body = boost::json::object{{"messages", boost::json::array{message}}};
  return ContentMarkers(body);
}

TEST(ContentMarkersTest, DetectsCodeReasoningAndMath) {
  EXPECT_EQ(Markers("hello there"), std::vector<std::string>{});
  EXPECT_EQ(Markers("Fix this:\n```\nint x;\n```"), std::vector<std::string>{"code"});
  EXPECT_EQ(Markers("Think STEP BY STEP about it"), std::vector<std::string>{"reasoning"});
  EXPECT_EQ(Markers("Solve for x in this equation"), std::vector<std::string>{"math"});
  EXPECT_EQ(Markers("Prove the theorem"), (std::vector<std::string>{"reasoning", "math"}));
}

TEST(ContentMarkersTest, ReadsTextPartsAndIgnoresOtherShapes) {
  boost::json::value parts = boost::json::parse(
      R"({"messages":[{"role":"user","content":[{"type":"text","text":"def f(): pass"},
          {"type":"image_url","image_url":{"url":"data:"}}]}]})");
  EXPECT_EQ(ContentMarkers(parts), std::vector<std::string>{"code"});
  EXPECT_TRUE(ContentMarkers(boost::json::parse(R"({"messages":"x"})")).empty());
  EXPECT_TRUE(ContentMarkers(boost::json::parse(R"([1,2])")).empty());
}

TEST(ParseRetryAfterMsTest, PrefersMillisecondsThenSeconds) {
  EXPECT_EQ(ParseRetryAfterMs("", ""), 0);
  EXPECT_EQ(ParseRetryAfterMs("", "2"), 2000);
  EXPECT_EQ(ParseRetryAfterMs("1500", "2"), 1500);
  EXPECT_EQ(ParseRetryAfterMs("", " 3 "), 3000);
  EXPECT_EQ(ParseRetryAfterMs("250.7", ""), 250);
  EXPECT_EQ(ParseRetryAfterMs("abc", "1"), 1000);
  EXPECT_EQ(ParseRetryAfterMs("", "Wed, 21 Oct 2015 07:28:00 GMT"), 0);
  EXPECT_EQ(ParseRetryAfterMs("", "-5"), 0);
}

}  // namespace
}  // namespace tollgate::gateway
