#include "services/gateway/providers/azure_openai.h"

#include "absl/strings/str_cat.h"
#include "services/gateway/providers/openai.h"

namespace tollgate::gateway {
namespace {

class AzureOpenAiProviderImpl final : public OpenAiCompatibleProvider {
 public:
  std::string_view dialect() const override { return "azure_openai"; }

 protected:
  absl::StatusOr<std::string> Target(const ProviderCall& call,
                                     std::string_view endpoint) const override {
    const v1::Deployment& d = *call.deployment;
    const std::string_view style = DeploymentOption(d, "url_style", "deployments");
    if (style == "v1") {
      return absl::StrCat(std::string(call.base_path), "/openai/v1/", std::string(endpoint));
    }
    if (style != "deployments") {
      return absl::FailedPreconditionError(
          absl::StrCat("deployment '", d.id(), "': unknown url_style '", std::string(style),
                       "' (valid: deployments, v1)"));
    }
    const std::string_view version = DeploymentOption(d, "api_version");
    if (version.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("deployment '", d.id(),
                       "': azure_openai with url_style deployments needs the "
                       "api_version option"));
    }
    return absl::StrCat(std::string(call.base_path), "/openai/deployments/", d.upstream_model(),
                        "/", std::string(endpoint), "?api-version=", std::string(version));
  }

  void AddAuth(const ProviderCall& call, ProviderRequest& request) const override {
    if (!call.api_key.empty()) request.headers.emplace_back("api-key", std::string(call.api_key));
  }
};

}  // namespace

const Provider& AzureOpenAiProvider() {
  static const AzureOpenAiProviderImpl provider;
  return provider;
}

}  // namespace tollgate::gateway
