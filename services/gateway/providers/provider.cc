#include "services/gateway/providers/provider.h"

#include "absl/strings/str_cat.h"
#include "services/gateway/providers/anthropic.h"
#include "services/gateway/providers/azure_openai.h"
#include "services/gateway/providers/gemini.h"
#include "services/gateway/providers/openai.h"

namespace tollgate::gateway {

absl::StatusOr<ProviderRequest> Provider::BuildEmbeddingsRequest(boost::json::object&,
                                                                 const ProviderCall&) const {
  return absl::UnimplementedError(
      absl::StrCat("embeddings are not supported by the '", std::string(dialect()), "' dialect"));
}

absl::StatusOr<ProviderResponse> Provider::TranslateEmbeddingsResponse(std::string_view,
                                                                       const ProviderCall&) const {
  return absl::UnimplementedError(
      absl::StrCat("embeddings are not supported by the '", std::string(dialect()), "' dialect"));
}

const Provider* FindProvider(std::string_view dialect) {
  if (dialect.empty() || dialect == "openai") return &OpenAiProvider();
  if (dialect == "azure_openai") return &AzureOpenAiProvider();
  if (dialect == "anthropic") return &AnthropicProvider();
  if (dialect == "gemini") return &GeminiProvider();
  return nullptr;
}

std::string_view DeploymentOption(const v1::Deployment& deployment, std::string_view name,
                                  std::string_view fallback) {
  const auto it = deployment.options().find(std::string(name));
  return it == deployment.options().end() ? fallback : std::string_view(it->second);
}

}  // namespace tollgate::gateway
