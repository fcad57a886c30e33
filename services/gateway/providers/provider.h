#pragma once
// The one interface every upstream dialect implements (issue 3, PROVIDERS.md §1–§4).
//
// The gateway's internal request and response shape is OpenAI Chat Completions (PROVIDERS.md §1):
// clients speak it (or the Anthropic ingress translates to it), and a Provider translates it to
// its wire dialect and back:
//
//   const Provider* provider = FindProvider(deployment.dialect());   // nullptr: unknown dialect
//   ProviderCall call{.deployment = &deployment, .base_path = target.base_path,
//                     .api_key = key, .stream = info.stream, ...};
//   absl::StatusOr<ProviderRequest> out = provider->BuildChatRequest(body, call);
//       // kInvalidArgument (ParamOf names the field): a parameter the provider cannot honour
//   ... send out->target / out->headers / out->body upstream ...
//   2xx, non-stream: provider->TranslateChatResponse(upstream_body, call) -> OpenAI body + usage
//   2xx, stream:     auto t = provider->NewStreamTranslator(call);
//                    for each upstream SseEvent e: t->OnEvent(e, out);   // OpenAI SSE bytes
//                    at the clean end: t->Finish(out);
//   4xx:             provider->TranslateError(status, upstream_body) -> OpenAI error body
//
// Tollgate extensions of the internal (OpenAI) form, so that an Anthropic client reaching an
// Anthropic upstream loses nothing (the ingress writes them, adapters that understand them read
// them, the openai adapter strips them before sending upstream):
//   - `cache_control` ({"type":"ephemeral","ttl":"5m"|"1h"}) on a message, a content part or a
//     tool: Anthropic prompt-cache breakpoints;
//   - top-level `thinking` ({"type":"enabled","budget_tokens":N}): Anthropic extended thinking;
//     dialects without an equivalent answer 400 naming it;
//   - top-level `top_k`: Anthropic / Gemini sampling;
//   - in responses, `reasoning_content` on a message / delta (DeepSeek's field) carries thinking
//     text and `reasoning_signature` its Anthropic signature.
//
// Providers are stateless singletons (thread-safe); a StreamTranslator is per stream and used on
// one thread.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "boost/json/object.hpp"
#include "services/gateway/sse_parser.h"
#include "tollgate/v1/common.pb.h"
#include "tollgate/v1/router.pb.h"

namespace tollgate::gateway {

// One upstream call's parameters.
struct ProviderCall {
  const v1::Deployment* deployment = nullptr;  // upstream_model, provider, options, ...
  std::string_view base_path;  // path prefix of the deployment's base_url ("" or "/v1", ...)
  std::string_view api_key;    // provider key (may be empty: keyless local upstreams)
  bool stream = false;
  // The client asked for the final usage chunk (stream_options.include_usage).
  bool client_wants_usage = false;
  // For responses the gateway synthesises (non-OpenAI dialects): the chat completion id
  // ("chatcmpl-<request id>") and creation time.
  std::string_view request_id;
  int64_t created_unix = 0;
  // The model name the client asked for (used as the `model` of synthesised responses only when
  // the provider's response carries none).
  std::string_view client_model;
};

// The upstream HTTP request for one attempt (always POST).
struct ProviderRequest {
  std::string target;  // path and query, base_path included
  // Headers beyond host / content-type / accept / user-agent: authentication, API versions.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// A translated non-stream response.
struct ProviderResponse {
  std::string body;  // OpenAI chat.completion (or embeddings list) JSON
  // Normalised usage (common.proto TokenUsage semantics); nullopt when the provider sent none.
  std::optional<v1::TokenUsage> usage;
  int64_t output_bytes = 0;  // bytes of generated content, for estimates when usage is missing
};

// A provider error (4xx/5xx body) in OpenAI shape.
struct ProviderError {
  std::string body;  // {"error":{"message","type","param","code"}}
  // The request does not fit the deployment's context window (fall back to a larger one).
  bool context_length_exceeded = false;
};

// What a stream translator saw so far.
struct StreamProgress {
  std::optional<v1::TokenUsage> usage;  // last-wins / cumulative as the dialect defines
  int64_t output_bytes = 0;             // generated content bytes seen
  bool has_output = false;              // the last OnEvent carried generated content
  bool done = false;     // the provider's end-of-stream marker was seen (and translated)
  bool error = false;    // the provider sent an error event after the 200
};

// Translates one upstream stream, event by event, into OpenAI chat.completion.chunk SSE events
// ("data: {...}\n\n", ending with "data: [DONE]\n\n").
class StreamTranslator {
 public:
  virtual ~StreamTranslator() = default;

  // One upstream SSE event (comment-only events included). Appends the OpenAI SSE bytes to
  // forward to the client (possibly none) to `out`, and updates progress(). The usage-only chunk
  // is emitted only when ProviderCall::client_wants_usage.
  virtual void OnEvent(const SseEvent& event, std::string& out) = 0;

  // The upstream stream ended cleanly (EOF). Appends whatever completes the OpenAI stream when the
  // provider's end marker implied it but did not deliver it yet (dialects without an explicit
  // marker emit their final chunk and "[DONE]" here). Nothing when progress().done already was.
  virtual void Finish(std::string& out) = 0;

  const StreamProgress& progress() const { return progress_; }

 protected:
  StreamProgress progress_;
};

class Provider {
 public:
  virtual ~Provider() = default;

  // The catalog's `dialect` value this provider serves.
  virtual std::string_view dialect() const = 0;

  // Translates a validated OpenAI chat request (ParseChatRequest accepted it) for the
  // deployment. Must not mutate `request` in a way that changes its meaning for another dialect
  // (callers reuse it across fallback attempts). Errors: kInvalidArgument with ParamOf naming the
  // parameter the provider cannot honour (the message names the provider too).
  virtual absl::StatusOr<ProviderRequest> BuildChatRequest(boost::json::object& request,
                                                           const ProviderCall& call) const = 0;

  // A 2xx non-stream response body in OpenAI shape. Errors: kInternal / kDataLoss when the body is
  // not the dialect's response.
  virtual absl::StatusOr<ProviderResponse> TranslateChatResponse(
      std::string_view body, const ProviderCall& call) const = 0;

  virtual std::unique_ptr<StreamTranslator> NewStreamTranslator(const ProviderCall& call) const = 0;

  // An upstream non-2xx body in OpenAI error shape.
  virtual ProviderError TranslateError(unsigned status, std::string_view body) const = 0;

  // For a 429 without retry-after headers: the delay the dialect puts in its error body, in
  // milliseconds (Gemini: google.rpc.RetryInfo retryDelay); 0 when there is none (default).
  virtual int64_t RetryAfterMsFromBody(std::string_view body) const { return 0; }

  // Embeddings (POST /v1/embeddings). Default: kUnimplemented naming the dialect.
  virtual absl::StatusOr<ProviderRequest> BuildEmbeddingsRequest(boost::json::object& request,
                                                                 const ProviderCall& call) const;
  virtual absl::StatusOr<ProviderResponse> TranslateEmbeddingsResponse(
      std::string_view body, const ProviderCall& call) const;
};

// The provider for a catalog dialect: "openai" (or empty), "azure_openai", "anthropic", "gemini".
// nullptr when unknown.
const Provider* FindProvider(std::string_view dialect);

// A deployment option (catalog `options:` map, e.g. Azure's api_version), or `fallback`.
std::string_view DeploymentOption(const v1::Deployment& deployment, std::string_view name,
                                  std::string_view fallback = {});

}  // namespace tollgate::gateway
