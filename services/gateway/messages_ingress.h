#pragma once
// POST /v1/messages: an Anthropic-compatible ingress (PROVIDERS.md §2) over the gateway's internal
// OpenAI form, so Anthropic SDK users are first-class and any provider can serve them.
//
//   absl::StatusOr<boost::json::object> chat = MessagesToChatRequest(body);   // 400 on error
//   ... the chat pipeline serves `chat` (any dialect upstream) ...
//   non-stream: ChatResponseToMessage(openai_body, usage) -> Anthropic message JSON
//   stream:     MessagesStreamEncoder enc(message_id, model);
//               for each OpenAI chunk data: enc.OnChunk(data, out);   // Anthropic SSE bytes
//               enc.Finish(usage, out);   // message_delta (stop_reason, usage) + message_stop
//   errors:     MessagesErrorBody(status, openai_error_body) -> {"type":"error","error":{...}}
//
// The Tollgate extensions of provider.h (cache_control, thinking, top_k, reasoning_content,
// reasoning_signature) carry what OpenAI's shape has no field for. This ingress adds three more,
// which adapters that understand them read and the others must strip:
//   - `is_error: true` on a role "tool" message: Anthropic's tool_result.is_error;
//   - in responses, `stop_sequence` (string) on a choice: the stop sequence that ended the
//     output (Anthropic's stop_reason "stop_sequence"); without it finish_reason "stop" reads as
//     "end_turn" since OpenAI's shape does not say whether a stop sequence matched;
//   - top-level `cache_control` of an Anthropic request (automatic caching) is not passed on: it
//     becomes the breakpoint on the last content part (or message) of the conversation, which is
//     where Anthropic applies it.
//
// Request mapping (Anthropic -> internal OpenAI form):
//   system (string | text blocks)        -> first message, role "system" (blocks keep
//   cache_control) user text / image (base64 | url)     -> text / image_url parts (base64 -> data:
//   URL) user document (base64 PDF only, no title/context/citations)
//                                        -> a `file` part {"file_data": "data:application/pdf;..."}
//   tool_result                          -> role "tool" message (tool_call_id, text content,
//                                           is_error extension), in the block's position
//   assistant text / tool_use / thinking -> content / tool_calls (arguments = serialised input) /
//                                           reasoning_content + reasoning_signature (at most one
//                                           thinking block per assistant message)
//   tools (custom) / tool_choice         -> function tools / "auto" | "required" | "none" | named;
//                                           disable_parallel_tool_use -> parallel_tool_calls false
//   stop_sequences, temperature, top_p, top_k, metadata.user_id, stream, thinking, max_tokens,
//   output_config.format (json_schema)   -> stop, temperature, top_p, top_k, user, stream (+
//                                           include_usage), thinking, max_tokens, response_format
// Everything else the Messages API defines but the internal form cannot carry (server tools,
// redacted_thinking, search results, file sources, citations, containers, MCP servers, effort,
// ...) is rejected with a 400 naming the field, as is any unknown field; never dropped.
// service_tier is accepted and ignored (capacity choice only; the output does not depend on it).
//
// Pure and thread-safe; an encoder is per stream and used on one thread.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "boost/json/object.hpp"
#include "boost/json/value.hpp"
#include "tollgate/v1/common.pb.h"

namespace tollgate::gateway {

// Translates an Anthropic Messages request to the internal OpenAI chat request (which
// ParseChatRequest accepts). Errors: kInvalidArgument with ParamOf (openai_dialect.h) naming the
// offending field, e.g. "messages[1].content[0].source.type".
absl::StatusOr<boost::json::object> MessagesToChatRequest(const boost::json::value& body);

// The Anthropic message id for an OpenAI completion id: "chatcmpl-abc" -> "msg_abc"; ids that
// already start with "msg_" are kept.
std::string MessageIdFromChatId(std::string_view chat_id);

// An OpenAI chat.completion body as an Anthropic message body. `usage` is the normalised usage
// the gateway recorded (common.proto TokenUsage: input_tokens includes cached and cache-write
// tokens); Anthropic's usage fields are derived from it exactly:
//   input_tokens = input - cached - write_5m - write_1h (never below 0),
//   cache_read_input_tokens = cached, cache_creation_input_tokens = write_5m + write_1h,
//   cache_creation.ephemeral_{5m,1h}_input_tokens, output_tokens,
//   output_tokens_details.thinking_tokens = reasoning (only when non-zero).
// Content order: thinking (reasoning_content / reasoning_signature), text (content, or the
// refusal), tool_use per tool call. finish_reason: stop -> end_turn (stop_sequence with the
// extension above), length -> max_tokens, tool_calls -> tool_use, content_filter or a refusal
// -> refusal. `model`, when non-empty, replaces the body's model (so that non-stream answers can
// name the same model as MessagesStreamEncoder's message_start). Errors: kDataLoss when the body
// is not a chat completion or a tool call's arguments are not a JSON object.
absl::StatusOr<std::string> ChatResponseToMessage(std::string_view openai_body,
                                                  const v1::TokenUsage& usage,
                                                  std::string_view model = {});

// OpenAI chat.completion.chunk stream -> Anthropic SSE events, each
// "event: <type>\ndata: <json>\n\n": message_start (empty content, zero usage: the usage is known
// only at the end) and a ping before the first block; content_block_start / _delta / _stop
// (text_delta, thinking_delta from reasoning_content, signature_delta from reasoning_signature,
// input_json_delta from tool-call argument fragments); message_delta (stop_reason, cumulative
// usage: input, cache read, cache creation and output tokens) and message_stop on Finish.
//
// Blocks are strictly sequential (one open at a time, indices 0, 1, ...). Each OpenAI tool call
// index gets its own tool_use block. A tool call whose fragments arrive while another call's
// arguments are still incomplete JSON is held back and emitted (start, one input_json_delta,
// stop) once the open call is closed, so interleaved parallel calls stay correct; calls streamed
// one after the other (every known provider) are forwarded fragment by fragment.
//
// An OpenAI `{"error": ...}` chunk becomes an Anthropic `error` event and ends the stream (Finish
// then writes nothing). The usage-only chunk and "[DONE]" produce no events.
class MessagesStreamEncoder {
 public:
  // `message_id` and `model` go into message_start; when empty, they come from the first chunk
  // (MessageIdFromChatId of its id, its model).
  MessagesStreamEncoder(std::string message_id, std::string model);

  // One OpenAI SSE data payload ("[DONE]" included). Appends Anthropic SSE bytes to `out`.
  // Emits message_start and a ping with the first chunk that is not "[DONE]".
  void OnChunk(std::string_view data, std::string& out);

  // The stream ended (after [DONE] or when the upstream broke): closes open blocks, emits held
  // back tool calls, then message_delta with the stop reason and `usage` (as in
  // ChatResponseToMessage), then message_stop. Without a finish_reason the stop reason is
  // "tool_use" when tool calls were seen, else "end_turn". Idempotent; nothing after Error().
  void Finish(const v1::TokenUsage& usage, std::string& out);

  // A mid-stream failure: an Anthropic `error` event
  // {"type":"error","error":{"type":<type>,"message":<message>}}. Ends the stream: later calls
  // write nothing.
  void Error(std::string_view type, std::string_view message, std::string& out);

  // The usage of the last chunk that carried one (the upstream's own report), if any.
  const v1::TokenUsage* upstream_usage() const { return has_usage_ ? &usage_ : nullptr; }

 private:
  enum class BlockKind { kNone, kText, kThinking, kTool };
  struct ToolCall {
    int64_t openai_index = 0;
    std::string id;
    std::string name;
    std::string arguments;  // every fragment seen (emitted or held back)
    size_t emitted = 0;     // bytes of `arguments` already sent as input_json_delta
    int block = -1;         // Anthropic block index once started
    bool closed = false;
    // OpenToolComplete() cache: `arguments` was checked at this size.
    size_t checked_size = static_cast<size_t>(-1);
    bool complete = false;
  };

  void Start(std::string& out);
  void OpenBlock(BlockKind kind, std::string& out);
  void CloseBlock(std::string& out);
  void StartNextTool(std::string& out);
  void FlushHeldTools(std::string& out);
  void OnTextDelta(BlockKind kind, std::string_view text, std::string& out);
  void OnSignature(std::string_view signature, std::string& out);
  void OnToolDelta(const boost::json::value& delta, std::string& out);
  void EmitPending(ToolCall& call, std::string& out);
  bool OpenToolComplete();

  std::string message_id_;
  std::string model_;
  bool started_ = false;
  bool finished_ = false;
  BlockKind open_kind_ = BlockKind::kNone;
  int open_block_ = -1;
  int open_tool_ = -1;      // index into tools_ of the open tool_use block
  size_t next_queued_ = 0;  // tools_[next_queued_..] have not started (held back)
  int next_block_ = 0;
  std::vector<ToolCall> tools_;  // in order of first appearance = block order
  std::string finish_reason_;
  std::string stop_sequence_;
  bool refusal_ = false;
  bool has_usage_ = false;
  v1::TokenUsage usage_;
};

// The Anthropic error type for an HTTP status: 400 invalid_request_error, 401
// authentication_error, 402 billing_error, 403 permission_error, 404 not_found_error, 413
// request_too_large, 429 rate_limit_error, 503 / 529 overloaded_error, 504 timeout_error, other
// 5xx api_error, other 4xx invalid_request_error.
std::string_view MessagesErrorType(unsigned status);

// {"type":"error","error":{"type":<type>,"message":<message>}} (+ "request_id" when non-empty).
// `message` may be any bytes: invalid UTF-8 is replaced with U+FFFD.
std::string MessagesErrorJson(std::string_view type, std::string_view message,
                              std::string_view request_id = {});

// An OpenAI error body (or any upstream body) as an Anthropic error body for HTTP `status`: the
// type from MessagesErrorType, the message from the OpenAI error's "message" (else the raw body,
// truncated to 1024 bytes).
std::string MessagesErrorBody(unsigned status, std::string_view openai_error_body,
                              std::string_view request_id = {});

}  // namespace tollgate::gateway
