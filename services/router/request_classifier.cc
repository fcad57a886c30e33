#include "services/router/request_classifier.h"

namespace tollgate::router {
namespace {

constexpr std::array<absl::string_view, kRequestClassCount> kNames = {
    "simple", "general", "code", "reasoning", "tools", "long"};

}  // namespace

absl::string_view RequestClassName(RequestClass c) { return kNames[static_cast<size_t>(c)]; }

std::optional<RequestClass> ParseRequestClass(absl::string_view name) {
  for (size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name) return static_cast<RequestClass>(i);
  }
  return std::nullopt;
}

const std::array<RequestClass, kRequestClassCount>& AllRequestClasses() {
  static constexpr std::array<RequestClass, kRequestClassCount> kAll = {
      RequestClass::kSimple,    RequestClass::kGeneral, RequestClass::kCode,
      RequestClass::kReasoning, RequestClass::kTools,   RequestClass::kLong};
  return kAll;
}

ClassifierConfig ClassifierConfigFromProto(const v1::ClassifierConfig& proto) {
  ClassifierConfig config;
  if (proto.long_input_tokens() > 0) config.long_input_tokens = proto.long_input_tokens();
  if (proto.simple_max_input_tokens() > 0) {
    config.simple_max_input_tokens = proto.simple_max_input_tokens();
  }
  if (proto.simple_max_output_tokens() > 0) {
    config.simple_max_output_tokens = proto.simple_max_output_tokens();
  }
  return config;
}

v1::ClassifierConfig ClassifierConfigToProto(const ClassifierConfig& config) {
  v1::ClassifierConfig proto;
  proto.set_long_input_tokens(config.long_input_tokens);
  proto.set_simple_max_input_tokens(config.simple_max_input_tokens);
  proto.set_simple_max_output_tokens(config.simple_max_output_tokens);
  return proto;
}

RequestClass ClassifyRequest(const v1::RouteRequest& request, const ClassifierConfig& config) {
  if (!request.class_hint().empty()) {
    if (std::optional<RequestClass> hinted = ParseRequestClass(request.class_hint())) {
      return *hinted;
    }
  }
  if (request.estimated_input_tokens() >= config.long_input_tokens) return RequestClass::kLong;
  if (request.has_tools()) return RequestClass::kTools;
  bool code = false;
  for (const std::string& marker : request.content_markers()) {
    if (marker == "reasoning" || marker == "math") return RequestClass::kReasoning;
    code = code || marker == "code";
  }
  if (code) return RequestClass::kCode;
  if (request.estimated_input_tokens() <= config.simple_max_input_tokens &&
      request.max_output_tokens() <= config.simple_max_output_tokens) {
    return RequestClass::kSimple;
  }
  return RequestClass::kGeneral;
}

}  // namespace tollgate::router
