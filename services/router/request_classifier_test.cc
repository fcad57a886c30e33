#include "services/router/request_classifier.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace tollgate::router {
namespace {

struct Case {
  int64_t input;
  int64_t max_output;
  bool tools;
  std::vector<std::string> markers;
  std::string hint;
  RequestClass expected;
};

TEST(RequestClassifierTest, ClassificationTable) {
  const ClassifierConfig config;  // long 32000, simple input <= 1000, simple output <= 1024
  const std::vector<Case> cases = {
      {0, 0, false, {}, "", RequestClass::kSimple},
      {1000, 1024, false, {}, "", RequestClass::kSimple},
      {1001, 0, false, {}, "", RequestClass::kGeneral},
      {100, 1025, false, {}, "", RequestClass::kGeneral},
      {100, 0, false, {"code"}, "", RequestClass::kCode},
      {100, 0, false, {"code", "reasoning"}, "", RequestClass::kReasoning},
      {100, 0, false, {"math"}, "", RequestClass::kReasoning},
      {100, 0, false, {"poetry"}, "", RequestClass::kSimple},  // unknown marker: ignored
      {100, 0, true, {"code"}, "", RequestClass::kTools},
      {32000, 0, true, {"code"}, "", RequestClass::kLong},
      {31999, 0, false, {}, "", RequestClass::kGeneral},
      {50000, 0, false, {}, "simple", RequestClass::kSimple},  // the hint wins
      {100, 0, false, {}, "long", RequestClass::kLong},
      {100, 0, false, {}, "bogus", RequestClass::kSimple},  // unknown hint: ignored here
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    v1::RouteRequest request;
    request.set_estimated_input_tokens(c.input);
    request.set_max_output_tokens(c.max_output);
    request.set_has_tools(c.tools);
    for (const std::string& m : c.markers) request.add_content_markers(m);
    request.set_class_hint(c.hint);
    EXPECT_EQ(ClassifyRequest(request, config), c.expected)
        << "case " << i << ": got " << RequestClassName(ClassifyRequest(request, config));
  }
}

TEST(RequestClassifierTest, ConfigurableThresholds) {
  ClassifierConfig config;
  config.long_input_tokens = 500;
  config.simple_max_input_tokens = 10;
  v1::RouteRequest request;
  request.set_estimated_input_tokens(11);
  EXPECT_EQ(ClassifyRequest(request, config), RequestClass::kGeneral);
  request.set_estimated_input_tokens(500);
  EXPECT_EQ(ClassifyRequest(request, config), RequestClass::kLong);

  // Round trip through the proto a gateway receives in the Watch snapshot.
  const ClassifierConfig back = ClassifierConfigFromProto(ClassifierConfigToProto(config));
  EXPECT_EQ(back.long_input_tokens, 500);
  EXPECT_EQ(back.simple_max_input_tokens, 10);
  EXPECT_EQ(back.simple_max_output_tokens, 1024);
  EXPECT_EQ(ClassifierConfigFromProto(v1::ClassifierConfig()).long_input_tokens, 32000);
}

TEST(RequestClassifierTest, Names) {
  for (RequestClass c : AllRequestClasses()) {
    EXPECT_EQ(ParseRequestClass(RequestClassName(c)), c);
  }
  EXPECT_EQ(RequestClassName(RequestClass::kReasoning), "reasoning");
  EXPECT_FALSE(ParseRequestClass("Simple").has_value());
}

}  // namespace
}  // namespace tollgate::router
