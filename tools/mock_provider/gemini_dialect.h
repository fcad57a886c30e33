#pragma once
// The Gemini (Generative Language API) dialect (PROVIDERS.md §3):
//   POST /v1beta/models/{model}:generateContent
//   POST /v1beta/models/{model}:streamGenerateContent?alt=sse   (without alt=sse: one JSON array
//        of the same chunks, as Gemini answers; not counted as a stream)
//   GET  /v1beta/models[/{model}]
// The key comes from x-goog-api-key or ?key=; when required, a missing key is 403
// PERMISSION_DENIED and a wrong one 400 INVALID_ARGUMENT with reason API_KEY_INVALID, as Google
// answers. The free functions are pure; GeminiDialect is immutable. All are thread-safe.
//
// Request validation: a JSON object with known fields only (camelCase or snake_case, as proto
// JSON accepts), contents required and non-empty, roles "user"/"model", non-empty parts,
// generationConfig (maxOutputTokens >= 1, candidateCount 1..8, thinkingConfig), tools
// (functionDeclarations), toolConfig.functionCallingConfig.mode AUTO|ANY|NONE|VALIDATED.
// Prompt tokens count the text parts of contents and systemInstruction (mock_logic.h formula).
//
// Usage semantics (usageMetadata; zero-valued optional counts are omitted, as proto3 JSON does):
//   promptTokenCount = prompt_tokens, INCLUDING cachedContentTokenCount (= cached)
//   candidatesTokenCount = completion_tokens - reasoning, EXCLUDING thoughtsTokenCount (=
//   reasoning) totalTokenCount = prompt + candidates + thoughts
//
// Responses: candidates[i] {content{parts, role "model"}, finishReason, index}; a function call
// is one functionCall part {name, args} and still finishReason "STOP" (as Gemini reports it);
// "MAX_TOKENS" on truncation; with thinkingConfig.includeThoughts the reasoning text comes first
// as a part with "thought":true. block=REASON answers 200 with promptFeedback.blockReason, no
// candidates, and the prompt's usage. modelVersion is the model of the URL; responseId is
// derived from the request number.
//
// Streams: every event is "data: <complete GenerateContentResponse>\r\n\r\n" (CRLF, as Google
// frames SSE; no [DONE]). One chunk per word (kContent) carrying the running usageMetadata
// (cumulative: the LAST one is the total), then a last chunk (kFinish) with finishReason, an empty
// text part and the final usage. Function calls arrive whole, with finishReason and the usage, in
// that last chunk. stream_error= sends a google.rpc.Status error object as a data event.

#include <array>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "boost/json/object.hpp"
#include "boost/json/value.hpp"
#include "tools/mock_provider/dialect.h"
#include "tools/mock_provider/mock_logic.h"

namespace tollgate::tools::mock {

// The Generative Language API's model routes start with this ("/v1beta/models/{model}:...").
inline constexpr std::string_view kGeminiModelsPrefix = "/v1beta/models/";

// An error as google.rpc.Status: {"error":{"code","message","status","details"}}.
struct GeminiError {
  int status = 400;
  std::string message;
  std::string rpc_status = "INVALID_ARGUMENT";
  std::string details;  // the JSON array of details ("" = none)
};

// Google's error for HTTP `status`: 400 INVALID_ARGUMENT, 401 UNAUTHENTICATED, 403
// PERMISSION_DENIED, 404 NOT_FOUND (model not found), 429 RESOURCE_EXHAUSTED with QuotaFailure,
// Help and RetryInfo{retryDelay:"<retry_after_s or 1>s"} details (no retry-after header), 500
// INTERNAL, 503 UNAVAILABLE ("The model is overloaded"), 504 DEADLINE_EXCEEDED.
GeminiError GeminiForcedError(int status, std::string_view model, int64_t retry_after_s);

std::string RenderGeminiErrorJson(const GeminiError& error);

// ---------------------------------------------------------------------------------------------
// Proto-JSON request helpers, shared by generateContent and the embeddings API (embeddings.h).
// Field names are given in snake_case; requests may use either case, as proto JSON accepts.

// The Part fields of the oneof `data`.
inline constexpr std::array<std::string_view, 7> kGeminiPartDataFields = {"text",
                                                                          "inline_data",
                                                                          "file_data",
                                                                          "function_call",
                                                                          "function_response",
                                                                          "executable_code",
                                                                          "code_execution_result"};
// The fields of a Content.
inline constexpr std::array<std::string_view, 2> kGeminiContentFields = {"role", "parts"};

// `name` in snake_case: "generationConfig" -> "generation_config".
std::string GeminiSnakeCase(std::string_view name);

// The value of field `snake` given in either case, or nullptr.
const boost::json::value* GeminiField(const boost::json::object& o, std::string_view snake);

// A 400 INVALID_ARGUMENT with `message` and no details.
GeminiError GeminiInvalid(std::string message);

// "Invalid JSON payload received. Expected an object at '<at>'."
GeminiError GeminiExpectedObject(std::string_view at);

// "Invalid JSON payload received. Unknown name ..." for field `name` at `at` ("" = top level),
// with a google.rpc.BadRequest detail naming the field.
GeminiError GeminiUnknownField(std::string_view name, std::string_view at);

// The error for the first field of `o` (in either case) that `known` does not list, at `at`.
std::optional<GeminiError> CheckGeminiFields(const boost::json::object& o,
                                             std::span<const std::string_view> known,
                                             std::string_view at);

// Parses `body` into `doc` and requires a JSON object, with Google's messages for a syntax error
// and for a top level that is not an object. On success doc.value().is_object().
std::optional<GeminiError> ParseGeminiRequestObject(std::string_view body, RequestJson& doc);

// Validates a GenerateContentRequest for `model` (from the URL) and fills `out`. Returns the 400
// on failure.
std::optional<GeminiError> ParseGenerateContentRequest(std::string_view body,
                                                       std::string_view model, ChatRequest& out);

// The non-stream body (a JSON array of the stream chunks when request.json_array_stream).
std::string RenderGenerateContentJson(const Completion& completion, const ChatRequest& request);

// The SSE events of the stream, in order.
void RenderGenerateContentStream(const Completion& completion, const ChatRequest& request,
                                 EventSink sink);

// Convenience for tests: the events as owned strings.
std::vector<std::pair<EventKind, std::string>> GenerateContentStreamEvents(
    const Completion& completion, const ChatRequest& request);

class GeminiDialect final : public Dialect {
 public:
  DialectId id() const override { return DialectId::kGemini; }
  DialectTraits traits() const override { return {.cache_writes = false, .block_in_band = true}; }
  IdStyle ids() const override { return {.completion = "mock-", .tool_call = ""}; }
  bool Matches(std::string_view path) const override;
  std::optional<Reply> Models(const Call& call) const override;
  std::optional<Reply> Parse(const Call& call, ChatRequest& out) const override;
  Reply InvalidDirective(const Call& call, std::string_view message) const override;
  Reply Error(const Call& call, int status, std::string_view model, int64_t retry_after_s,
              int64_t processing_ms) const override;
  std::string SuccessHeaders(const Call& call, const ChatRequest& request,
                             int64_t processing_ms) const override;
  std::string Body(const Completion& completion, const ChatRequest& request) const override;
  std::string_view ContentType() const override { return "application/json; charset=UTF-8"; }
  std::string_view StreamContentType() const override { return "text/event-stream"; }
  void Stream(const Completion& completion, const ChatRequest& request,
              EventSink sink) const override;
  std::string StreamError(int status, const ChatRequest& request) const override;
};

}  // namespace tollgate::tools::mock
