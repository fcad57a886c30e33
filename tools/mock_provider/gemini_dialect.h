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

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tools/mock_provider/dialect.h"
#include "tools/mock_provider/mock_logic.h"

namespace tollgate::tools::mock {

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
