#pragma once
// Small helpers shared by the gateway's HTTP handlers: JSON and OpenAI-shaped error responses,
// request ids, request paths. Thread-safe.

#include <string>
#include <string_view>

#include "services/gateway/http_server.h"

namespace tollgate::gateway {

inline constexpr std::string_view kRequestIdHeader = "x-tollgate-request-id";
inline constexpr std::string_view kDeploymentHeader = "x-tollgate-deployment";
inline constexpr std::string_view kProviderHeader = "x-tollgate-provider";
inline constexpr std::string_view kCostHeader = "x-tollgate-cost-usd";

// A response with `body` as application/json.
HttpResponse JsonResponse(unsigned status, std::string body, bool keep_alive);

// An OpenAI-shaped error response (openai_dialect.h ErrorBody). Empty `param`/`code` are null.
HttpResponse ErrorResponse(unsigned status, std::string_view type, std::string_view code,
                           std::string_view param, std::string_view message, bool keep_alive);


// The path of a request target, without the query string.
std::string_view RequestPath(std::string_view target);

}  // namespace tollgate::gateway
