#pragma once
// Request classes for the `auto` and `cost-quality` policies, and the classifier that assigns
// them from the features a gateway extracts (RouteRequest: estimated tokens, has_tools,
// content_markers, class_hint). A small library of its own so a gateway can classify locally
// to key its decision cache with exactly the router's rules.
//
//   ClassifierConfig config = ClassifierConfigFromProto(snapshot.classifier());
//   RequestClass c = ClassifyRequest(request, config);   // kCode, ...
//   absl::string_view name = RequestClassName(c);         // "code"
//
// Rules, first match wins:
//   1. class_hint names a class                                 -> that class
//   2. estimated_input_tokens >= long_input_tokens              -> long
//   3. has_tools                                                -> tools
//   4. content marker "reasoning" or "math"                     -> reasoning
//   5. content marker "code"                                    -> code
//   6. input <= simple_max_input_tokens and
//      max_output_tokens <= simple_max_output_tokens (0, not given, counts as within) -> simple
//   7. otherwise                                                -> general
// All functions are pure and thread-safe.

#include <array>
#include <cstdint>
#include <optional>

#include "absl/strings/string_view.h"
#include "tollgate/v1/router.pb.h"

namespace tollgate::router {

enum class RequestClass : uint8_t { kSimple, kGeneral, kCode, kReasoning, kTools, kLong };
inline constexpr size_t kRequestClassCount = 6;

// "simple", "general", "code", "reasoning", "tools", "long".
absl::string_view RequestClassName(RequestClass c);
// The class named `name`, or nullopt.
std::optional<RequestClass> ParseRequestClass(absl::string_view name);
// Every class, in enum order.
const std::array<RequestClass, kRequestClassCount>& AllRequestClasses();

struct ClassifierConfig {
  int64_t long_input_tokens = 32000;
  int64_t simple_max_input_tokens = 1000;
  int64_t simple_max_output_tokens = 1024;
};

ClassifierConfig ClassifierConfigFromProto(const v1::ClassifierConfig& proto);
v1::ClassifierConfig ClassifierConfigToProto(const ClassifierConfig& config);

// Classifies `request` by the rules above. An unknown class_hint is ignored here (Route rejects
// it before classifying).
RequestClass ClassifyRequest(const v1::RouteRequest& request, const ClassifierConfig& config);

}  // namespace tollgate::router
