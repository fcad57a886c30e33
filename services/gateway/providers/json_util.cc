#include "services/gateway/providers/json_util.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tollgate::gateway {

namespace json = boost::json;

const json::value* Member(const json::value& v, std::string_view key) {
  const json::object* object = v.if_object();
  if (object == nullptr) return nullptr;
  return object->if_contains(key);
}

const json::value* Member(const json::value* v, std::string_view key) {
  return v == nullptr ? nullptr : Member(*v, key);
}

int64_t CountOf(const json::value* v) {
  if (v == nullptr) return 0;
  switch (v->kind()) {
    case json::kind::int64:
      return std::max<int64_t>(v->get_int64(), 0);
    case json::kind::uint64:
      return v->get_uint64() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
                 ? 0
                 : static_cast<int64_t>(v->get_uint64());
    case json::kind::double_: {
      const double d = v->get_double();
      if (!(d >= 0) || d > 9.0e18 || std::floor(d) != d) return 0;
      return static_cast<int64_t>(d);
    }
    default:
      return 0;
  }
}

std::string_view StringOf(const json::value* v) {
  if (v == nullptr || !v->is_string()) return {};
  const json::string& s = v->get_string();
  return std::string_view(s.data(), s.size());
}

int64_t StringBytes(const json::value* v) { return static_cast<int64_t>(StringOf(v).size()); }

json::object OpenAiUsageJson(const v1::TokenUsage& usage) {
  json::object out;
  out["prompt_tokens"] = usage.input_tokens();
  out["completion_tokens"] = usage.output_tokens();
  out["total_tokens"] = usage.input_tokens() + usage.output_tokens();
  json::object prompt_details;
  prompt_details["cached_tokens"] = usage.cached_input_tokens();
  const int64_t cache_write = usage.cache_write_5m_tokens() + usage.cache_write_1h_tokens();
  if (cache_write > 0) prompt_details["cache_write_tokens"] = cache_write;
  out["prompt_tokens_details"] = std::move(prompt_details);
  json::object completion_details;
  completion_details["reasoning_tokens"] = usage.reasoning_tokens();
  out["completion_tokens_details"] = std::move(completion_details);
  return out;
}

void AppendSseData(std::string_view payload, std::string& out) {
  out.append("data: ");
  out.append(payload);
  out.append("\n\n");
}

}  // namespace tollgate::gateway
