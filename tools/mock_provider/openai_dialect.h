#pragma once
// The OpenAI Chat Completions dialect (PROVIDERS.md §1) and its Azure OpenAI flavor (§4):
// request validation as OpenAI does it, OpenAI's error bodies and headers, and the exact JSON /
// SSE text of responses. The free functions are pure; OpenAiDialect is immutable. All are
// thread-safe.
//
// Routes (POST):
//   /v1/chat/completions                                         OpenAI, Authorization: Bearer
//   /openai/deployments/{deployment}/chat/completions?api-version=YYYY-MM-DD[-preview]
//   /openai/v1/chat/completions                                  Azure, api-key (or Bearer)
// GET /v1/models and /v1/models/{id} list OpenAI models.
//
// Azure differences (all from PROVIDERS.md §4 and observed responses):
//   * the deployment path needs api-version: missing -> 404 {"error":{"code":"404","message":
//     "Resource not found"}}, not YYYY-MM-DD[-preview] -> 400 "API version not supported"; the
//     body's `model` is optional there (the deployment names the model);
//   * auth errors, 404 and 429 use Azure's {"error":{"code":"<status>","message"}} bodies; 429
//     carries retry-after and retry-after-ms; other errors keep OpenAI's shape;
//   * responses carry prompt_filter_results (top level) and content_filter_results (per choice);
//     a stream starts with a chunk that has empty id/model/object, created 0, choices [] and only
//     prompt_filter_results;
//   * block=REASON answers 400 code "content_filter" with innererror.content_filter_result.

#include <cstdint>
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

// `error` as OpenAI answers it: the body with OpenAI's headers (x-request-id from `seq`,
// openai-processing-ms, rate limits; retry-after when error.retry_after_s > 0).
Reply OpenAiErrorReply(const ApiError& error, uint64_t seq, int64_t processing_ms = 0);

// ---------------------------------------------------------------------------------------------
// Validation errors (400 invalid_request_error) in OpenAI's words, shared by chat completions and
// the embeddings API (embeddings.h). `param` and `code` "" render as null.

ApiError InvalidRequest(std::string message, std::string param = "", std::string code = "");
// "Missing required parameter: '<param>'." (code missing_required_parameter).
ApiError MissingParam(const std::string& param);
// "Invalid type for '<param>': expected <expected>, but got <JsonTypeName(got)> instead."
ApiError InvalidType(const std::string& param, std::string_view expected,
                     const boost::json::value& got);
// "Invalid value: '<got>'. Supported values are: <supported>." (code invalid_value).
ApiError InvalidValue(const std::string& param, std::string_view got, std::string_view supported);
// "Invalid '<param>': empty array. ..." (code empty_array).
ApiError EmptyArray(const std::string& param);

// Validates the integer parameter `name` of `body` in [min, max]; `out` receives it (untouched
// when null or absent).
std::optional<ApiError> CheckInteger(const boost::json::object& body, const char* name, int64_t min,
                                     int64_t max, int64_t& out);

// The start of every request parse: parses `body` into `doc`, requires a JSON object and only
// parameters listed in `known_params`. On success doc.value().is_object().
std::optional<ApiError> ParseOpenAiRequestObject(std::string_view body,
                                                 std::span<const std::string_view> known_params,
                                                 RequestJson& doc);

// The `model` parameter of `req` into `model`: a non-empty string, or `default_model` when it is
// missing, null or "" and `default_model` is non-empty (Azure deployments).
std::optional<ApiError> ParseOpenAiModel(const boost::json::object& req,
                                         std::string_view default_model, std::string& model);

// ---------------------------------------------------------------------------------------------
// Requests.

// Validates `body` as OpenAI does (JSON object; model: string; messages: non-empty array of
// messages with valid roles and required fields, tool messages answering a preceding assistant
// tool_calls; known top-level parameters only; stream/stream_options/n/max_tokens/tools/
// tool_choice types and ranges) and fills `out`. A missing model is allowed when
// `default_model` is non-empty (Azure deployments) and then takes its value. Returns the 400
// error on failure.
std::optional<ApiError> ParseChatRequest(std::string_view body, ChatRequest& out,
                                         std::string_view default_model = {});

// ---------------------------------------------------------------------------------------------
// Responses.

enum class OpenAiFlavor { kOpenAi, kAzure };

// Azure's deployment routes start with this ("/openai/deployments/{deployment}/...").
inline constexpr std::string_view kAzureDeploymentsPrefix = "/openai/deployments/";

inline constexpr std::string_view kSystemFingerprint = "fp_mock";

// The non-stream body (PROVIDERS.md §1.2; Azure adds the content-filter fields and has no
// service_tier).
std::string RenderCompletionJson(const Completion& completion,
                                 OpenAiFlavor flavor = OpenAiFlavor::kOpenAi);

// The usage object: prompt/completion/total tokens and their details.
void AppendUsageJson(std::string& out, const Usage& usage);

// Produces the SSE events of the stream of `completion` (PROVIDERS.md §1.3), each as the full
// "data: ...\n\n" text, in order: (Azure: the prompt-filter chunk, kRole); role chunk per choice;
// content chunks (choices round-robin; the first word without, the others with, a leading space;
// a tool call as one id/type/name fragment with empty arguments then 3 argument fragments); a
// finish chunk per choice; with include_usage, "usage":null on every chunk and a final usage
// chunk with "choices":[]; then [DONE].
void RenderStreamEvents(const Completion& completion, bool include_usage, EventSink sink,
                        OpenAiFlavor flavor = OpenAiFlavor::kOpenAi);

// Convenience for tests: the events as owned strings.
std::vector<std::pair<EventKind, std::string>> StreamEvents(
    const Completion& completion, bool include_usage, OpenAiFlavor flavor = OpenAiFlavor::kOpenAi);

// ---------------------------------------------------------------------------------------------

class OpenAiDialect final : public Dialect {
 public:
  explicit OpenAiDialect(OpenAiFlavor flavor) : flavor_(flavor) {}

  DialectId id() const override;
  bool Matches(std::string_view path) const override;
  std::optional<Reply> Models(const Call& call) const override;
  std::optional<Reply> Parse(const Call& call, ChatRequest& out) const override;
  Reply InvalidDirective(const Call& call, std::string_view message) const override;
  Reply Error(const Call& call, int status, std::string_view model, int64_t retry_after_s,
              int64_t processing_ms) const override;
  std::optional<Reply> BlockedPrompt(const Call& call, const ChatRequest& request,
                                     std::string_view reason) const override;
  std::string SuccessHeaders(const Call& call, const ChatRequest& request,
                             int64_t processing_ms) const override;
  std::string Body(const Completion& completion, const ChatRequest& request) const override;
  void Stream(const Completion& completion, const ChatRequest& request,
              EventSink sink) const override;
  std::string StreamError(int status, const ChatRequest& request) const override;

 private:
  bool azure() const { return flavor_ == OpenAiFlavor::kAzure; }
  // `error` with this flavor's headers.
  Reply ErrorReply(const Call& call, const ApiError& error, int64_t processing_ms) const;

  const OpenAiFlavor flavor_;
};

}  // namespace tollgate::tools::mock
