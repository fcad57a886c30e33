#pragma once
// The Anthropic Messages dialect (PROVIDERS.md §2): POST /v1/messages with x-api-key (or
// Authorization: Bearer) and a required anthropic-version header; GET /v1/models[/{id}] when the
// request carries anthropic-version (else the OpenAI list answers). The free functions are pure;
// AnthropicDialect is immutable. All are thread-safe.
//
// Request validation as Anthropic does it: max_tokens required (>= 1); roles user/assistant only
// (a "system" role gets Anthropic's "use the top-level system parameter" error); system is
// top-level (string or text blocks); known top-level fields only ("<field>: Extra inputs are not
// permitted"); every tool_use answered by a tool_result in the next message and every
// tool_result answering a tool_use of the previous one; tools/tool_choice/thinking/temperature
// shapes and ranges.
//
// Usage semantics (the neutral Usage of mock_logic.h mapped to Anthropic's):
//   input_tokens = prompt_tokens - cache reads - cache writes   (EXCLUDES cache tokens)
//   cache_read_input_tokens = cached; cache_creation_input_tokens = 5m + 1h writes, split in
//   cache_creation{ephemeral_5m_input_tokens, ephemeral_1h_input_tokens}
//   output_tokens = completion_tokens (thinking included)
// message_start carries the input counts and output_tokens 1 (min with the final count);
// message_delta carries the cumulative totals (input, cache and output counts): take the last.
//
// Content: [thinking block when reasoning > 0 (ReasoningText + a signature)], then one text block
// (omitted when the answer has no words) or one tool_use block (id toolu_<seq>, input
// {"query":...}). stop_reason: end_turn, max_tokens or tool_use.
//
// Stream events, each "event: <type>\ndata: <json>\n\n":
//   message_start (kRole); for each block: content_block_start (kFrame), the first one followed by
//   ping (kFrame), content_block_delta per word / per argument fragment (kContent; a tool's
//   input_json_delta starts with an empty partial_json, as Anthropic's does; a thinking block ends
//   with one signature_delta), content_block_stop (kFrame); message_delta (kFinish);
//   message_stop (kDone). stream_error= emits "event: error" with {"type":"error","error":{...}}.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tools/mock_provider/dialect.h"
#include "tools/mock_provider/mock_logic.h"

namespace tollgate::tools::mock {

// An error in Anthropic's shape: {"type":"error","error":{"type","message"},"request_id"}.
struct AnthropicError {
  int status = 400;
  std::string type = "invalid_request_error";
  std::string message;
  int64_t retry_after_s = 0;  // > 0: retry-after header (and exhausted rate-limit headers on 429)
};

// The error Anthropic returns for `status`: 400 invalid_request_error, 401 authentication_error
// ("invalid x-api-key"), 402 billing_error, 403 permission_error, 404 not_found_error
// ("model: <model>"), 413 request_too_large, 429 rate_limit_error (retry-after, default 1),
// 500 api_error, 504 timeout_error, 529 overloaded_error ("Overloaded"; retry-after only when
// `retry_after_s` > 0); other 4xx/5xx invalid_request_error/api_error.
AnthropicError AnthropicForcedError(int status, std::string_view model, int64_t retry_after_s);

// The error body; `request_id` empty omits the field (the form used inside streams).
std::string RenderAnthropicErrorJson(const AnthropicError& error, std::string_view request_id);

// Validates a Messages request body and fills `out` (n = 1). Returns the 400 on failure.
std::optional<AnthropicError> ParseMessagesRequest(std::string_view body, ChatRequest& out);

// The non-stream body.
std::string RenderMessageJson(const Completion& completion);

// The stream events of `completion`, in order.
void RenderMessageStream(const Completion& completion, EventSink sink);

// Convenience for tests: the events as owned strings.
std::vector<std::pair<EventKind, std::string>> MessageStreamEvents(const Completion& completion);

class AnthropicDialect final : public Dialect {
 public:
  DialectId id() const override { return DialectId::kAnthropic; }
  DialectTraits traits() const override { return {.cache_writes = true, .block_in_band = false}; }
  IdStyle ids() const override { return {.completion = "msg_", .tool_call = "toolu_"}; }
  bool Matches(std::string_view path) const override { return path == "/v1/messages"; }
  std::optional<Reply> Models(const Call& call) const override;
  std::optional<Reply> Parse(const Call& call, ChatRequest& out) const override;
  Reply InvalidDirective(const Call& call, std::string_view message) const override;
  Reply Error(const Call& call, int status, std::string_view model, int64_t retry_after_s,
              int64_t processing_ms) const override;
  std::string SuccessHeaders(const Call& call, const ChatRequest& request,
                             int64_t processing_ms) const override;
  std::string Body(const Completion& completion, const ChatRequest& request) const override;
  void Stream(const Completion& completion, const ChatRequest& request,
              EventSink sink) const override;
  std::string StreamError(int status, const ChatRequest& request) const override;
};

}  // namespace tollgate::tools::mock
