#pragma once
// The OpenAI Chat Completions wire format (PROVIDERS.md §1): both the client-facing contract of
// the gateway and the upstream dialect of "openai" deployments.
//
//   auto request = ParseChatRequest(body_json);           // validates what the gateway relies on
//   std::string upstream = RewriteChatRequest(body_json, "gpt-4o-mini-2024-07-18", stream);
//   auto usage = ExtractChatResponseUsage(response_bytes);
//   StreamChunkInfo chunk = InspectStreamChunk(sse_event.data);
//   std::string body = ErrorBody("Incorrect API key", "invalid_request_error", "",
//   "invalid_api_key");
//
// All functions are pure and thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "boost/json/object.hpp"
#include "boost/json/value.hpp"
#include "tollgate/v1/common.pb.h"

namespace tollgate::gateway {

// ---------------------------------------------------------------------------------------------
// Client errors.

// An OpenAI-shaped error body: {"error":{"message":..,"type":..,"param":..,"code":..}}. Empty
// `param` / `code` are rendered as null.
std::string ErrorBody(std::string_view message, std::string_view type, std::string_view param,
                      std::string_view code);

// The SSE event that ends a stream the gateway could not complete: "data: <ErrorBody>\n\n".
std::string StreamErrorEvent(std::string_view message, std::string_view type,
                             std::string_view code);

// absl::Status errors about a request field carry the field's name (the OpenAI "param") as a
// payload; these helpers set and read it.
absl::Status InvalidParamError(std::string_view param, std::string_view message);
std::string ParamOf(const absl::Status& status);

// ---------------------------------------------------------------------------------------------
// Requests.

// What the gateway needs from a client's chat completions request.
struct ChatRequestInfo {
  std::string model;
  bool stream = false;
  // stream_options.include_usage was true in the client's request.
  bool client_wants_usage = false;
  std::string user;               // "user" when it is a string, else empty
  int64_t max_output_tokens = 0;  // max_completion_tokens ?? max_tokens; 0 when neither
  // Capabilities the request needs from a deployment: "chat" always, plus "tools" (non-empty
  // tools), "json" / "json_schema" (response_format), "vision" (an image_url content part).
  std::vector<std::string> required_capabilities;
};

// Validates a parsed request body. Errors (kInvalidArgument, with ParamOf naming the field): the
// body is not an object; `model` is not a non-empty string; `messages` is not a non-empty array
// of objects; `stream` is present and not a bool; `stream_options` is present and not an object
// or null; `max_tokens` / `max_completion_tokens` are present and not non-negative integers;
// `user` is present and not a string or null.
absl::StatusOr<ChatRequestInfo> ParseChatRequest(const boost::json::value& body);

// Validates an embeddings request (PROVIDERS.md §1.6): `model` a non-empty string; `input` a
// non-empty string, array of strings, array of token ids or array of token-id arrays;
// `encoding_format` "float" or "base64"; `dimensions` a positive integer; `user` a string. The
// result needs the "embeddings" capability and is never a stream.
absl::StatusOr<ChatRequestInfo> ParseEmbeddingsRequest(const boost::json::value& body);

// The request body to send upstream, serialised: `model` replaced by `upstream_model` (kept when
// that is empty) and, for a stream, `stream_options.include_usage` forced to true so the
// provider always reports usage. Mutates `body` in place (idempotent; callers reuse it across
// fallback attempts).
std::string RewriteChatRequest(boost::json::object& body, std::string_view upstream_model,
                               bool stream);

// Rough token estimate for text the provider did not count: ceil(bytes / 4).
int64_t EstimateTokens(int64_t bytes);

// ---------------------------------------------------------------------------------------------
// Responses.

// Normalised usage from an OpenAI "usage" object: prompt_tokens, completion_tokens,
// prompt_tokens_details.cached_tokens (or DeepSeek's prompt_cache_hit_tokens) and
// completion_tokens_details.reasoning_tokens. Counts that are missing or not non-negative
// integers read as 0; subsets are clamped to their totals. nullopt when `usage` is not an object.
std::optional<v1::TokenUsage> UsageFromJson(const boost::json::value& usage);

struct ChatResponseUsage {
  bool parsed = false;                  // the body was a JSON object
  std::optional<v1::TokenUsage> usage;  // the "usage" object (or Groq's x_groq.usage)
  int64_t output_bytes = 0;  // bytes of message content, refusals and tool-call arguments
};

// Usage of a non-stream chat completion response body.
ChatResponseUsage ExtractChatResponseUsage(std::string_view body);

struct StreamChunkInfo {
  bool done = false;      // the "[DONE]" sentinel
  bool parsed = false;    // the data was a JSON object
  bool is_error = false;  // {"error": ...} (a provider's mid-stream error)
  // usage present and not null; with `choices` an empty array this is the usage-only chunk that
  // include_usage adds at the end of a stream.
  std::optional<v1::TokenUsage> usage;
  bool usage_only = false;
  // The chunk carries output: non-empty delta content, reasoning_content, refusal or tool calls.
  bool has_output = false;
  int64_t output_bytes = 0;  // bytes of that output
};

// Classifies the data of one SSE event of a chat completions stream.
StreamChunkInfo InspectStreamChunk(std::string_view data);

}  // namespace tollgate::gateway
