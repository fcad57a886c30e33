#include "tools/mock_provider/dialect.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/str_cat.h"
#include "boost/url/parse_query.hpp"

namespace tollgate::tools::mock {

std::string_view DialectName(DialectId id) {
  switch (id) {
    case DialectId::kOpenAi:
      return "openai";
    case DialectId::kAzure:
      return "azure";
    case DialectId::kAnthropic:
      return "anthropic";
    case DialectId::kGemini:
      return "gemini";
  }
  return "unknown";
}

std::string_view HeaderValue(const HttpRequest& request, std::string_view name) {
  const auto it = request.find(name);
  return it == request.end() ? std::string_view() : std::string_view(it->value());
}

std::optional<std::string> QueryParam(std::string_view query, std::string_view name) {
  if (query.empty()) return std::nullopt;
  // Boost.URL 1.81 measures the last value past the end of a view that is not NUL-terminated
  // (into the rest of the request line): parse a terminated copy.
  const std::string terminated(query);
  const auto params = boost::urls::parse_query(terminated);
  if (!params) return std::nullopt;
  for (const auto& param : *params) {
    if (param.key.decode() != name) continue;
    return param.has_value ? param.value.decode() : std::string();
  }
  return std::nullopt;
}

std::optional<std::string_view> BearerToken(const HttpRequest& request) {
  std::string_view value = HeaderValue(request, "authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (value.size() < kBearer.size() ||
      !std::equal(kBearer.begin(), kBearer.end(), value.begin(),
                  [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
    return std::nullopt;
  }
  value.remove_prefix(kBearer.size());
  return value;
}

std::string MaskKey(std::string_view key) {
  if (key.size() <= 8) return "***";
  return absl::StrCat(Av(key.substr(0, 3)), "***", Av(key.substr(key.size() - 4)));
}

}  // namespace tollgate::tools::mock
