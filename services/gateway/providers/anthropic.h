#pragma once
// The "anthropic" dialect (PROVIDERS.md §2): Anthropic Messages behind the Provider interface.
// Stateless and thread-safe; a stream translator is per stream and used on one thread.
//
// Request (OpenAI chat completions -> POST {base_path}/messages):
//   headers   x-api-key (only when the key is non-empty), anthropic-version (deployment option
//             `anthropic_version`, default "2023-06-01"), anthropic-beta (option `anthropic_beta`,
//             only when set).
//   model     the deployment's upstream_model.
//   system    every system/developer message, hoisted (in order) to the top-level `system`: a
//             string when there is exactly one text block without cache_control, else an array of
//             text blocks (no separator is invented between messages or parts).
//   messages  user/assistant turns of content blocks: text, image (data URL -> base64 source,
//             http(s) URL -> url source; `detail` has no equivalent and is ignored), file parts
//             with a PDF data URL -> document block; assistant tool_calls -> tool_use (arguments
//             parsed; invalid JSON or a non-object -> 400; "" reads as {}); assistant
//             reasoning_content + reasoning_signature (Tollgate extension) -> a leading thinking
//             block (unsigned reasoning is dropped: Anthropic cannot accept it and ignores
//             earlier turns' thinking anyway); assistant refusal -> text; role tool -> tool_result
//             in a user turn (a bool `is_error` on the tool message is kept). Consecutive same-role
//             turns (tool results included) are merged; a turn with exactly one plain text block is
//             sent as a string. Empty text blocks are skipped (Anthropic rejects them). The `name`
//             of a message is ignored.
//   tools     function tools -> {name, description, input_schema} (parameters, or an empty object
//             schema when absent); `strict` has no equivalent in this API version and is ignored.
//             Names starting with "tollgate_json_" are reserved (400).
//   tool_choice auto/none/required/named -> auto/none/any/tool; parallel_tool_calls:false ->
//             disable_parallel_tool_use. Without tools, auto/none are omitted and required/named
//             are a 400.
//   max_tokens max_completion_tokens ?? max_tokens ?? min(deployment.max_output_tokens, 4096)
//             (4096 when the deployment has no limit). Anthropic requires max_tokens; when the
//             default would not exceed thinking.budget_tokens, the default is budget + that
//             default (capped at the deployment's max_output_tokens when set).
//   stop -> stop_sequences, temperature (must be <= 1: Anthropic's range is 0..1 and clamping
//             would change meaning, so > 1 is a 400), top_p, top_k (extension), user ->
//             metadata.user_id, stream -> stream:true (Anthropic always reports stream usage, so
//             stream_options is not needed), cache_control on messages / parts / tools (extension;
//             a message's goes on its last block), thinking (extension, passed through).
//   response_format: json_object / json_schema are implemented with a forced tool, which loses
//             nothing: a tool named "tollgate_json_" + <schema name> ("tollgate_json_object" for
//             json_object) whose input_schema is the schema ({"type":"object"} for json_object),
//             tool_choice forced to it ({type:"any"} when the client also offered its own tools
//             with tool_choice auto, so it may still call them), disable_parallel_tool_use. The
//             response's tool_use of that tool becomes message content (serialized input; in a
//             stream its input_json_delta fragments become content deltas) and finish_reason
//             "stop". The reserved prefix lets the stateless response/stream translators find it.
//             With tool_choice required/named the model must call a client tool anyway, so no
//             JSON tool is added. json_schema.strict is best-effort (no guarantee in this API
//             version). Combined with thinking: 400 (Anthropic forbids forced tool use with
//             extended thinking).
//   400 (kInvalidArgument naming the parameter and the dialect): n != 1, logprobs:true,
//             top_logprobs, non-empty logit_bias, non-zero frequency/presence_penalty, audio,
//             non-text modalities, functions / function_call / role function (legacy; use tools),
//             reasoning_effort (use `thinking`), verbosity, web_search_options, input_audio parts,
//             file parts that are not PDF data URLs, non-function tools.
//   Ignored (no meaning change for this upstream): seed, metadata, store, service_tier,
//             stream_options, prediction, prompt_cache_key, safety_identifier, unknown fields.
//
// Response: text blocks -> content (concatenated; null when none), tool_use -> tool_calls
// (arguments = serialized input, toolu_ ids kept), thinking -> reasoning_content (+ the last
// signature as reasoning_signature); redacted_thinking and server-tool blocks are dropped.
// stop_reason end_turn/stop_sequence/pause_turn -> stop, max_tokens/model_context_window_exceeded
// -> length, tool_use -> tool_calls, refusal -> content_filter with the text moved to `refusal`
// (in a stream, text already sent stays content).
//
// Usage (exact): Anthropic's input_tokens EXCLUDES cache traffic, so input = input_tokens +
// cache_read_input_tokens + cache_creation_input_tokens; cached = cache_read; cache writes split by
// cache_creation.ephemeral_{5m,1h}_input_tokens when present (any unexplained remainder of
// cache_creation_input_tokens counts as 5m), else all as 5m; output = output_tokens (thinking
// included; reasoning_tokens stays 0 since Anthropic does not report it apart). In a stream every
// count is last-wins over message_start and message_delta (only counts present are replaced).
//
// Stream: message_start -> role chunk; content_block_start tool_use -> tool_calls delta with
// id/type/name (index = ordinal among tool_use blocks); text/input_json/thinking/signature deltas
// -> content / arguments / reasoning_content / reasoning_signature deltas; message_delta ->
// finish_reason chunk; message_stop -> usage-only chunk (when client_wants_usage) and [DONE].
// ping is swallowed; an `error` event becomes `data: {"error":{...}}` and ends the translation
// (progress().error). Finish() adds nothing: EOF before message_stop is a broken stream for the
// gateway to handle (done stays false).
//
// Errors: Anthropic error types map to OpenAI types/codes (invalid_request_error,
// authentication_error/invalid_api_key, permission_error, not_found_error/model_not_found,
// request_too_large, rate_limit_error/rate_limit_exceeded, billing_error -> insufficient_quota,
// api_error/timeout_error/overloaded_error -> server_error); "prompt is too long" and "exceed
// context limit" set context_length_exceeded (code context_length_exceeded).

#include "services/gateway/providers/provider.h"

namespace tollgate::gateway {

// The process-wide anthropic adapter (stateless, thread-safe).
const Provider& AnthropicProvider();

}  // namespace tollgate::gateway
