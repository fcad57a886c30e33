#pragma once
// The "openai" dialect (PROVIDERS.md §1, §4): OpenAI itself and the OpenAI-compatible family,
// whose quirks are selected by the deployment option `compat`:
//
//   compat    | request changes
//   ----------+-----------------------------------------------------------------------------
//   openai    | (default) none
//   deepseek  | none (usage: prompt_cache_hit_tokens read as cached input)
//   mistral   | max_completion_tokens -> max_tokens; tool_choice "required"/named -> "any";
//             | seed -> random_seed; null top-level fields and messages[].name dropped;
//             | no stream_options (Mistral reports usage in its last chunk and rejects the field)
//   groq      | logprobs / top_logprobs / logit_bias and n > 1 rejected (400); messages[].name
//             | dropped; stream usage read from x_groq.usage as well
//   together  | top_k accepted
//   vllm      | top_k accepted
//   ollama    | top_k accepted
//
// For every compat: the model is replaced by the deployment's upstream model; streams force
// stream_options.include_usage (except mistral) so usage is always reported; the Tollgate
// extensions of provider.h are stripped (cache_control: OpenAI-compatible servers cache on their
// own; reasoning_content / reasoning_signature on assistant history: DeepSeek rejects them;
// is_error on tool results) —
// `thinking` has no equivalent and is a 400, `top_k` is a 400 unless accepted above.
// Responses, stream chunks and errors are OpenAI-shaped already and are forwarded byte for byte
// (the usage-only chunk the gateway asked for is hidden from clients that did not).

#include <string>

#include "services/gateway/providers/provider.h"

namespace tollgate::gateway {

// The OpenAI-compatible implementation, open for dialects that differ only in URL and
// authentication (azure_openai).
class OpenAiCompatibleProvider : public Provider {
 public:
  std::string_view dialect() const override { return "openai"; }
  absl::StatusOr<ProviderRequest> BuildChatRequest(boost::json::object& request,
                                                   const ProviderCall& call) const override;
  absl::StatusOr<ProviderResponse> TranslateChatResponse(std::string_view body,
                                                         const ProviderCall& call) const override;
  std::unique_ptr<StreamTranslator> NewStreamTranslator(const ProviderCall& call) const override;
  ProviderError TranslateError(unsigned status, std::string_view body) const override;
  absl::StatusOr<ProviderRequest> BuildEmbeddingsRequest(boost::json::object& request,
                                                         const ProviderCall& call) const override;
  absl::StatusOr<ProviderResponse> TranslateEmbeddingsResponse(
      std::string_view body, const ProviderCall& call) const override;

 protected:
  // The request target for an endpoint ("chat/completions", "embeddings").
  virtual absl::StatusOr<std::string> Target(const ProviderCall& call,
                                             std::string_view endpoint) const;
  // Authentication headers (default: Authorization: Bearer <key> when there is a key).
  virtual void AddAuth(const ProviderCall& call, ProviderRequest& request) const;
};

// The process-wide openai adapter (stateless, thread-safe).
const Provider& OpenAiProvider();

}  // namespace tollgate::gateway
