#pragma once
// The "azure_openai" dialect (PROVIDERS.md §4, Azure OpenAI): the OpenAI wire format with Azure's
// URLs and authentication. Deployment options:
//   url_style    "deployments" (default): POST {base}/openai/deployments/{upstream_model}/
//                <endpoint>?api-version={api_version} — the deployment name in the path picks
//                the model; "v1": POST {base}/openai/v1/<endpoint> with `model` = upstream_model.
//   api_version  required for url_style deployments (e.g. "2024-10-21").
//   compat       as for openai (normally unset).
// Authentication: `api-key: <key>`. Azure's extra response fields (prompt_filter_results,
// content_filter_results, a first stream chunk with empty choices) are forwarded untouched.

#include "services/gateway/providers/provider.h"

namespace tollgate::gateway {

// The process-wide azure_openai adapter (stateless, thread-safe).
const Provider& AzureOpenAiProvider();

}  // namespace tollgate::gateway
