#pragma once
// Dialect-neutral logic of tollgate-mock-provider: deterministic token counts and content, mock
// directives, and the Completion every dialect renders (openai_dialect.h, anthropic_dialect.h,
// gemini_dialect.h). No I/O, no shared state: every function here is pure and thread-safe.
//
//   ChatRequest request;                  // filled by a dialect's request parser
//   Directives directives;
//   TOLLGATE_RETURN_IF_ERROR(ParseDirectives(request.last_user_text, directives));
//   Completion completion = BuildCompletion(request, directives, /*seq=*/1, /*created=*/now);
//   ... dialect renders `completion` (JSON body or stream events)
//
// Determinism (what tests may rely on, in every dialect):
//   * prompt_tokens = 3 + sum over messages (and the system prompt, where a dialect has it apart)
//     of MessageTokens(utf8 bytes of the message's text), see CountPromptTokens.
//   * The "prompt" is the text of the last user message that is not a tool result (text parts
//     concatenated), with every [[mock: ...]] block removed and surrounding whitespace trimmed
//     (see PromptText). Adding or changing directives therefore never changes the content.
//   * A text answer has N words, N = 8 + Fnv1a64(prompt) % 17 unless tokens=N; the words are picked
//     from a fixed list by a generator seeded with the hash (choice i > 0 of n > 1 uses a shifted
//     seed). completion_tokens = N per choice (summed over choices) + reasoning.
//   * A tool call (request has tools, the tool choice is not "none", the last message is a user
//     message that is not a tool result) calls the first tool, or the one the tool choice names,
//     with arguments {"query":"<first word of the prompt>"}; its completion tokens are tokens=N if
//     given, else ToolCallTokens(name, arguments) = 7 + ceil(bytes(name + arguments) / 4).
//   * Reasoning ("thinking", "thoughts") text, where a dialect shows it, is ReasoningText: as many
//     words as reasoning tokens, seeded from the prompt.
//
// Usage is kept in one neutral shape (Usage): prompt_tokens counts ALL input tokens, cache reads
// and cache writes included; completion_tokens counts all output, reasoning included. Each dialect
// maps it to its own semantics when rendering.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "boost/json/array.hpp"
#include "boost/json/monotonic_resource.hpp"
#include "boost/json/storage_ptr.hpp"
#include "boost/json/string_view.hpp"
#include "boost/json/value.hpp"
#include "boost/system/error_code.hpp"
#include "services/common/logging.h"

namespace tollgate::tools::mock {

// ---------------------------------------------------------------------------------------------
// Small JSON helpers shared by the dialects.

// Appends `value` as a JSON string literal (with quotes). Inline: it runs once per streamed word.
inline void AppendJsonString(std::string& out, std::string_view value) {
  out += '"';
  AppendJsonEscaped(out, value);
  out += '"';
}

// "a string", "an integer", ... as OpenAI's validation messages name JSON types.
std::string_view JsonTypeName(const boost::json::value& v);

// The value as int64 if it is an integer that fits.
std::optional<int64_t> AsInteger(const boost::json::value& v);

// Parses a request body (nesting up to 256 deep, for tool JSON schemas) with `storage`.
boost::json::value ParseJsonBody(std::string_view body, boost::json::storage_ptr storage,
                                 boost::system::error_code& ec);

// A request body's JSON, parsed (ParseJsonBody) into a 16 KiB arena inside the object first, as
// most requests are small, and the heap beyond. Meant as a local of one request parse: the value
// lives as long as this object, which can be neither copied nor moved. Not thread-safe.
class RequestJson {
 public:
  RequestJson() = default;
  RequestJson(const RequestJson&) = delete;
  RequestJson& operator=(const RequestJson&) = delete;

  // Parses `body`, replacing value(); on a syntax error `ec` is set.
  const boost::json::value& Parse(std::string_view body, boost::system::error_code& ec);
  const boost::json::value& value() const { return value_; }

 private:
  alignas(std::max_align_t) unsigned char arena_[16384];
  boost::json::monotonic_resource resource_{arena_, sizeof(arena_)};
  boost::json::value value_ = boost::json::value(boost::json::storage_ptr(&resource_));
};

// Whether `v` is one of `list` (a short, fixed list of names: a linear scan).
inline bool OneOf(std::span<const std::string_view> list, std::string_view v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

inline std::string_view ToStd(boost::json::string_view s) { return {s.data(), s.size()}; }
inline std::string_view ToStd(absl::string_view s) { return {s.data(), s.size()}; }
// absl::StrCat takes absl::string_view, which is not std::string_view in this abseil.
inline absl::string_view Av(std::string_view s) { return {s.data(), s.size()}; }

// ---------------------------------------------------------------------------------------------
// Text and tokens.

// 64-bit FNV-1a of `text`.
uint64_t Fnv1a64(std::string_view text);

// SplitMix64: advances `state` and returns its next pseudo-random value (deterministic).
uint64_t SplitMix64(uint64_t& state);

// The text of a message's `content` as OpenAI and Anthropic shape it: a string as is; for an
// array, the `text` of every part/block of type "text", concatenated; anything else (null, images,
// tool results) is "".
std::string ContentText(const boost::json::value& content);

inline constexpr int64_t kPromptBaseTokens = 3;

// The prompt tokens of one message (or system prompt) whose text is `text_bytes` long:
// 4 + ceil(text_bytes / 4).
inline int64_t MessageTokens(size_t text_bytes) {
  return 4 + static_cast<int64_t>((text_bytes + 3) / 4);
}

// prompt_tokens of a message list: kPromptBaseTokens + sum of MessageTokens(ContentText(content)).
// Messages that are not objects count 4. Tool calls, tool definitions and names are not counted.
int64_t CountPromptTokens(const boost::json::array& messages);

// ---------------------------------------------------------------------------------------------
// Directives: "[[mock: key=value key=value]]" anywhere in the last user message, or request
// headers "x-mock-<key>: <value>" ('-' and '_' interchangeable in <key>). Values are non-negative
// integers except key, block and stream_error (identifiers). Unknown keys and malformed values
// are errors, so typos in tests fail loudly. When a key appears twice, the later one wins (headers
// are applied first). Every dialect accepts every directive; one that a dialect cannot express
// (e.g. cache writes in OpenAI's usage) is ignored there (mock_handler.h has the table).

struct Directives {
  std::optional<int> status;              // HTTP status to answer with (200 or 400..599)
  std::optional<int64_t> retry_after;     // seconds, for 429/503/529 (default 1 where sent)
  std::optional<int64_t> tokens;          // words per choice (text) or tool-call completion tokens
  std::optional<int64_t> cached;          // cache-read tokens, clamped to prompt_tokens
  std::optional<int64_t> cache_write_5m;  // cache-write tokens (5-minute TTL), clamped to the rest
  std::optional<int64_t> cache_write_1h;  // cache-write tokens (1-hour TTL), clamped to the rest
  // Reasoning tokens, added to completion_tokens. Aliases: thinking (Anthropic), thoughts (Gemini).
  std::optional<int64_t> reasoning;
  std::optional<std::string> block;  // prompt blocked for this reason, e.g. SAFETY
  // Stream fails after a 200 with this HTTP status; the directive takes an Anthropic error type
  // (overloaded_error, api_error, ...) or a status code.
  std::optional<int> stream_error;
  std::optional<int64_t> stream_error_after;  // content events before the error (default 2)
  std::optional<int64_t> ttft_ms;             // stream: delay before the first event
  std::optional<int64_t> inter_token_ms;      // stream: delay between content events
  std::optional<int64_t> latency_ms;          // non-stream: delay before the response
  std::optional<int64_t> stall_ms;            // delay before the response headers
  std::optional<int64_t> disconnect_after;    // see MockHandler
  std::optional<int64_t> fail_first;  // the first K requests with the same key fail with status
  std::optional<std::string> key;     // fail_first scope
};

inline constexpr int64_t kDefaultStreamErrorAfter = 2;

// Applies one key=value. Errors: kInvalidArgument naming the key for unknown keys or bad values.
absl::Status ApplyDirective(std::string_view name, std::string_view value, Directives& out);

// Applies every [[mock: ...]] block in `text`. Errors: kInvalidArgument (unknown key, bad value,
// a token without '=', an unterminated block).
absl::Status ParseDirectives(std::string_view text, Directives& out);

// `text` without its [[mock: ...]] blocks, leading/trailing ASCII whitespace trimmed.
std::string PromptText(std::string_view text);

// The vocabulary of stream_error= is Anthropic's error types: invalid_request_error 400,
// authentication_error 401, billing_error 402, permission_error 403, not_found_error 404,
// request_too_large 413, rate_limit_error 429, api_error 500, timeout_error 504,
// overloaded_error 529.
std::optional<int> ErrorTypeStatus(std::string_view type);
// The inverse; other 4xx are invalid_request_error, other 5xx api_error.
std::string_view ErrorTypeForStatus(int status);

// ---------------------------------------------------------------------------------------------
// Requests.

// What the mock needs from a validated request, whatever its dialect. The last three fields are
// rendering options that only one dialect sets.
struct ChatRequest {
  std::string model;
  bool stream = false;                // answer as an SSE stream
  int n = 1;                          // choices (OpenAI n, Gemini candidateCount)
  int64_t max_completion_tokens = 0;  // output limit incl. reasoning; 0 = no limit
  int64_t prompt_tokens = 0;          // all input tokens (see the determinism notes)
  std::string last_user_text;         // raw text of the last user message ("" if none)
  std::string tool_to_call;           // non-empty: answer with a call to this tool
  bool include_usage = false;         // OpenAI: stream_options.include_usage
  bool include_thoughts = false;      // Gemini: thinkingConfig.includeThoughts
  bool json_array_stream = false;     // Gemini: streamGenerateContent without alt=sse
};

// ---------------------------------------------------------------------------------------------
// Completions.

struct Usage {
  int64_t prompt_tokens = 0;          // all input, cache reads and writes included
  int64_t completion_tokens = 0;      // reasoning included
  int64_t cached_tokens = 0;          // cache reads, part of prompt_tokens
  int64_t reasoning_tokens = 0;       // part of completion_tokens
  int64_t cache_write_5m_tokens = 0;  // part of prompt_tokens
  int64_t cache_write_1h_tokens = 0;  // part of prompt_tokens
};

struct Choice {
  std::string content;  // words joined by single spaces (text answers)
  int64_t words = 0;
  std::string tool_call_id;  // tool calls: non-empty tool_name
  std::string tool_name;
  std::string tool_arguments;  // compact JSON object text
  std::string finish_reason;   // "stop", "length" or "tool_calls"
};

struct Completion {
  std::string id;  // <IdStyle::completion><seq>
  uint64_t seq = 0;
  int64_t created = 0;
  std::string model;
  uint64_t seed = 0;         // Fnv1a64 of the prompt
  std::string block_reason;  // non-empty: the prompt was blocked; no choices
  std::vector<Choice> choices;
  Usage usage;
};

// How a dialect names completions and tool calls.
struct IdStyle {
  std::string_view completion = "chatcmpl-";
  std::string_view tool_call = "call_";
};

// `count` words seeded by `seed`, joined by single spaces.
std::string GenerateWords(uint64_t seed, int64_t count);

int64_t ToolCallTokens(std::string_view name, std::string_view arguments);

// The answer to `request`. `seq` numbers the completion (id <ids.completion><seq>, tool call ids
// <ids.tool_call><seq> and <ids.tool_call><seq>_<i> for choice i > 0). A max_completion_tokens
// limit truncates the words (reasoning counts against it) and sets finish_reason "length". Usage:
// cached, then cache_write_5m, then cache_write_1h are clamped in turn to what is left of
// prompt_tokens. directives.block set: no choices, no output tokens, block_reason set.
Completion BuildCompletion(const ChatRequest& request, const Directives& directives, uint64_t seq,
                           int64_t created_unix_s, IdStyle ids = {});

// The visible reasoning of `completion`: usage.reasoning_tokens words, seeded from the prompt.
std::string ReasoningText(const Completion& completion);

// ---------------------------------------------------------------------------------------------
// Streaming helpers.

enum class EventKind {
  kRole,     // opening event(s): OpenAI role chunk, Azure filter chunk, Anthropic message_start
  kFrame,    // structure without content: Anthropic content_block_start/stop and ping
  kContent,  // one token-bearing delta: a word, a tool-call fragment, a thinking word
  kFinish,   // the event carrying the finish reason (OpenAI finish chunk, Anthropic
             // message_delta, Gemini's last chunk)
  kUsage,    // OpenAI usage chunk (include_usage only)
  kDone,     // end marker: OpenAI data: [DONE], Anthropic message_stop
};

// Receives each stream event as its full wire text; the text is only valid during the call.
using EventSink = absl::FunctionRef<void(EventKind, std::string_view)>;

// The next streamed piece of space-separated `text` from byte `cursor` (advanced past it): the
// first word without, later words with, their leading space. Empty when the text is exhausted.
inline std::string_view NextPiece(std::string_view text, size_t& cursor) {
  const size_t start = cursor;
  if (start >= text.size()) return {};
  size_t end = text.find(' ', start + 1);
  if (end == std::string_view::npos) end = text.size();
  cursor = end;
  return text.substr(start, end - start);
}

// The three argument fragments a tool call streams in: {"query":  |  "word"  |  }.
std::array<std::string_view, 3> SplitToolArguments(std::string_view arguments);

}  // namespace tollgate::tools::mock
