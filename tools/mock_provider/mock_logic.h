#pragma once
// Pure logic of tollgate-mock-provider, a simulator of OpenAI's Chat Completions API
// (PROVIDERS.md §1): request validation, deterministic token counts and content, mock directives,
// and the exact JSON / SSE text of responses. No I/O, no shared state: every function here is pure
// and thread-safe.
//
//   ChatRequest request;
//   if (auto error = ParseChatRequest(body, request)) return RenderErrorJson(*error);
//   Directives directives;
//   TOLLGATE_RETURN_IF_ERROR(ParseDirectives(request.last_user_text, directives));
//   Completion completion = BuildCompletion(request, directives, /*seq=*/1, /*created=*/now);
//   std::string json = RenderCompletionJson(completion);
//
// Determinism (what tests may rely on):
//   * prompt_tokens = CountPromptTokens(messages) (formula on the function).
//   * The "prompt" is the text of the LAST message with role "user" (text parts concatenated), with
//     every [[mock: ...]] block removed and surrounding whitespace trimmed (see PromptText). Adding
//     or changing directives therefore never changes the generated content.
//   * A text answer has N words, N = 8 + Fnv1a64(prompt) % 17 unless tokens=N; the words are picked
//     from a fixed list by a generator seeded with the hash (choice i > 0 of n > 1 uses a shifted
//     seed). completion_tokens = N per choice (summed over choices) + reasoning.
//   * A tool call (request has tools, tool_choice != "none", last message is from the user) calls
//     the first tool, or the one named by tool_choice, with arguments {"query":"<first word of the
//     prompt>"}; its completion tokens are tokens=N if given, else
//     ToolCallTokens(name, arguments) = 7 + ceil(bytes(name + arguments) / 4).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "boost/json/array.hpp"
#include "boost/json/value.hpp"

namespace tollgate::tools::mock {

// ---------------------------------------------------------------------------------------------
// Errors, in OpenAI's shape: {"error":{"message","type","param","code"}}.

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // empty renders as null
  std::string code;   // empty renders as null
  // > 0: the response carries `retry-after: <n>`; for 429 also exhausted x-ratelimit-* headers.
  int64_t retry_after_s = 0;
};

std::string RenderErrorJson(const ApiError& error);

// The error OpenAI returns for `status` (used by the status= directive):
//   400 invalid_request_error; 401 invalid_api_key; 403 unsupported_country_region_territory;
//   404 model_not_found; 429 rate_limit_exceeded (type "tokens", retry-after); 500 server_error;
//   503 overloaded (type server_error, "The server is overloaded or not ready yet.", retry-after);
//   any other 4xx/5xx a generic error (type invalid_request_error for 4xx, server_error for 5xx).
// `retry_after_s` <= 0 means the default of 1 second (only 429 and 503 carry it).
ApiError ForcedError(int status, std::string_view model, int64_t retry_after_s);

// ---------------------------------------------------------------------------------------------
// Text and tokens.

// 64-bit FNV-1a of `text`.
uint64_t Fnv1a64(std::string_view text);

// The text of a message's `content`: a string as is; for an array, the `text` of every part of
// type "text", concatenated; anything else (null, images only) is "".
std::string ContentText(const boost::json::value& content);

// prompt_tokens of a request: 3 + sum over messages of (4 + ceil(utf8 bytes of ContentText / 4)).
// Messages that are not objects count 4. Tool calls, tool definitions and names are not counted.
int64_t CountPromptTokens(const boost::json::array& messages);

// ---------------------------------------------------------------------------------------------
// Directives: "[[mock: key=value key=value]]" anywhere in the last user message, or request
// headers "x-mock-<key>: <value>" ('-' and '_' interchangeable in <key>). Values are non-negative
// integers except key (an identifier). Unknown keys and malformed values are errors, so typos in
// tests fail loudly. When a key appears twice, the later one wins (headers are applied first).

struct Directives {
  std::optional<int> status;              // HTTP status to answer with (200 or 400..599)
  std::optional<int64_t> retry_after;     // seconds, for 429/503 (default 1)
  std::optional<int64_t> tokens;          // words per choice (text) or tool-call completion tokens
  std::optional<int64_t> cached;          // cached_tokens, clamped to prompt_tokens
  std::optional<int64_t> reasoning;       // reasoning_tokens, added to completion_tokens
  std::optional<int64_t> ttft_ms;         // stream: delay before the first chunk
  std::optional<int64_t> inter_token_ms;  // stream: delay between content chunks
  std::optional<int64_t> latency_ms;      // non-stream: delay before the response
  std::optional<int64_t> stall_ms;        // delay before the response headers
  std::optional<int64_t> disconnect_after;  // see MockHandler
  std::optional<int64_t> fail_first;  // the first K requests with the same key fail with status
  std::optional<std::string> key;     // fail_first scope
};

// Applies one key=value. Errors: kInvalidArgument naming the key for unknown keys or bad values.
absl::Status ApplyDirective(std::string_view name, std::string_view value, Directives& out);

// Applies every [[mock: ...]] block in `text`. Errors: kInvalidArgument (unknown key, bad value,
// a token without '=', an unterminated block).
absl::Status ParseDirectives(std::string_view text, Directives& out);

// `text` without its [[mock: ...]] blocks, leading/trailing ASCII whitespace trimmed.
std::string PromptText(std::string_view text);

// ---------------------------------------------------------------------------------------------
// Requests.

// What the mock needs from a validated Chat Completions request.
struct ChatRequest {
  std::string model;
  bool stream = false;
  bool include_usage = false;         // stream_options.include_usage
  int n = 1;                          // choices
  int64_t max_completion_tokens = 0;  // max_completion_tokens, else max_tokens; 0 = no limit
  int64_t prompt_tokens = 0;          // CountPromptTokens(messages)
  std::string last_user_text;         // raw ContentText of the last user message ("" if none)
  std::string tool_to_call;           // non-empty: answer with a call to this tool
};

// Validates `body` as OpenAI does (JSON object; model: string; messages: non-empty array of
// messages with valid roles and required fields, tool messages answering a preceding assistant
// tool_calls; known top-level parameters only; stream/stream_options/n/max_tokens/tools/
// tool_choice types and ranges) and fills `out`. Returns the 400 error on failure.
std::optional<ApiError> ParseChatRequest(std::string_view body, ChatRequest& out);

// ---------------------------------------------------------------------------------------------
// Completions.

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;  // reasoning included
  int64_t cached_tokens = 0;
  int64_t reasoning_tokens = 0;
};

struct Choice {
  std::string content;  // words joined by single spaces (text answers)
  int64_t words = 0;
  std::string tool_call_id;  // tool calls: non-empty tool_name
  std::string tool_name;
  std::string tool_arguments;
  std::string finish_reason;  // "stop", "length" or "tool_calls"
};

struct Completion {
  std::string id;  // "chatcmpl-<seq>"
  int64_t created = 0;
  std::string model;
  std::vector<Choice> choices;
  Usage usage;
};

inline constexpr std::string_view kSystemFingerprint = "fp_mock";

// `count` words seeded by `seed`, joined by single spaces.
std::string GenerateWords(uint64_t seed, int64_t count);

int64_t ToolCallTokens(std::string_view name, std::string_view arguments);

// The answer to `request`. `seq` numbers the completion (id chatcmpl-<seq>, tool call ids
// call_<seq> and call_<seq>_<i> for choice i > 0). A max_completion_tokens limit truncates the
// words (reasoning counts against it) and sets finish_reason "length".
Completion BuildCompletion(const ChatRequest& request, const Directives& directives, uint64_t seq,
                           int64_t created_unix_s);

// The non-stream body (PROVIDERS.md §1.2).
std::string RenderCompletionJson(const Completion& completion);

// The usage object: prompt/completion/total tokens and their details.
void AppendUsageJson(std::string& out, const Usage& usage);

enum class EventKind {
  kRole,     // first chunk of a choice: role "assistant", content ""
  kContent,  // one word, or one tool-call fragment
  kFinish,   // empty delta with finish_reason
  kUsage,    // choices [] with usage (include_usage only)
  kDone,     // data: [DONE]
};

// Produces the SSE events of the stream of `completion` (PROVIDERS.md §1.3), each as the full
// "data: ...\n\n" text, in order: role chunk per choice; content chunks (choices round-robin; the
// first word without, the others with, a leading space; a tool call as one id/type/name fragment
// with empty arguments then 3 argument fragments); a finish chunk per choice; with include_usage,
// "usage":null on every chunk and a final usage chunk with "choices":[]; then [DONE]. The payload
// passed to `sink` is only valid during the call.
void RenderStreamEvents(const Completion& completion, bool include_usage,
                        absl::FunctionRef<void(EventKind, std::string_view)> sink);

// Convenience for tests: the events as owned strings.
std::vector<std::pair<EventKind, std::string>> StreamEvents(const Completion& completion,
                                                            bool include_usage);

}  // namespace tollgate::tools::mock
