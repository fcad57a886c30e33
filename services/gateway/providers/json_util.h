#pragma once
// JSON helpers shared by the provider adapters: tolerant readers for provider output (a missing
// or mistyped field reads as empty / 0, never throws) and writers for the OpenAI shapes every
// adapter produces. Pure and thread-safe.

#include <cstdint>
#include <string>
#include <string_view>

#include "boost/json/object.hpp"
#include "boost/json/value.hpp"
#include "tollgate/v1/common.pb.h"

namespace tollgate::gateway {

// The member `key` of `v` when `v` is an object that has it, else nullptr.
const boost::json::value* Member(const boost::json::value& v, std::string_view key);
const boost::json::value* Member(const boost::json::value* v, std::string_view key);

// A token count: non-negative integers (or integral doubles); anything else (absent, negative,
// fractional, string) is 0.
int64_t CountOf(const boost::json::value* v);

// The string at `v`, or "" when `v` is null or not a string.
std::string_view StringOf(const boost::json::value* v);

// Bytes of the string at `v` (0 when not a string).
int64_t StringBytes(const boost::json::value* v);

// OpenAI's usage object for normalised usage: prompt_tokens, completion_tokens, total_tokens,
// prompt_tokens_details.cached_tokens (+ cache_write_tokens when non-zero, a Tollgate extension
// that keeps Anthropic's cache writes visible) and completion_tokens_details.reasoning_tokens.
boost::json::object OpenAiUsageJson(const v1::TokenUsage& usage);

// Appends one SSE event "data: <payload>\n\n" to `out`.
void AppendSseData(std::string_view payload, std::string& out);

// OpenAI finish_reason values.
inline constexpr std::string_view kFinishStop = "stop";
inline constexpr std::string_view kFinishLength = "length";
inline constexpr std::string_view kFinishToolCalls = "tool_calls";
inline constexpr std::string_view kFinishContentFilter = "content_filter";

}  // namespace tollgate::gateway
