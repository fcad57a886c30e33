#include "services/gateway/providers/anthropic.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "boost/json/array.hpp"
#include "boost/json/parse.hpp"
#include "boost/json/serialize.hpp"
#include "boost/json/value.hpp"
#include "services/common/status.h"
#include "services/gateway/openai_dialect.h"
#include "services/gateway/providers/json_util.h"

namespace tollgate::gateway {
namespace {

namespace json = boost::json;

constexpr std::string_view kDialect = "anthropic";
constexpr std::string_view kDefaultVersion = "2023-06-01";
constexpr int64_t kDefaultMaxTokens = 4096;
constexpr std::string_view kJsonToolPrefix = "tollgate_json_";
constexpr size_t kMaxRawErrorBytes = 512;
constexpr int64_t kMaxCount = 1'000'000'000'000'000;  // tokens

absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool IsJsonTool(std::string_view name) {
  return name.substr(0, kJsonToolPrefix.size()) == kJsonToolPrefix;
}

int64_t SatAdd(int64_t a, int64_t b) {
  return a > std::numeric_limits<int64_t>::max() - b ? std::numeric_limits<int64_t>::max() : a + b;
}

bool IsNull(const json::value* v) { return v == nullptr || v->is_null(); }

// Copies `s` keeping only valid UTF-8 (invalid bytes become U+FFFD), at most ~max_bytes, so raw
// upstream bytes can be put in a JSON string that any strict parser accepts.
std::string SanitizeUtf8(std::string_view s, size_t max_bytes) {
  std::string out;
  size_t i = 0;
  while (i < s.size() && out.size() < max_bytes) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      len = 1;
      cp = c;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    }
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (ok) {
      static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= kMin[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Usage.

// Anthropic's usage counts, as last reported.
struct UsageCounts {
  int64_t input = 0;           // input_tokens: uncached input only
  int64_t cache_read = 0;      // cache_read_input_tokens
  int64_t cache_creation = 0;  // cache_creation_input_tokens
  int64_t ephemeral_5m = 0;    // cache_creation.ephemeral_5m_input_tokens
  int64_t ephemeral_1h = 0;    // cache_creation.ephemeral_1h_input_tokens
  bool has_split = false;      // cache_creation (the TTL split) was reported
  int64_t output = 0;
  bool seen = false;
};

// Replaces the counts present in `usage` (last wins; absent or non-numeric counts are kept).
void MergeUsage(const json::value* usage, UsageCounts& c) {
  if (usage == nullptr || !usage->is_object()) return;
  c.seen = true;
  auto take = [&](const json::value& obj, std::string_view key, int64_t& field) {
    const json::value* v = Member(obj, key);
    // Counts beyond kMaxCount are nonsense; capping them keeps every sum downstream (totals,
    // prices) far from int64 overflow.
    if (v != nullptr && v->is_number()) field = std::min(CountOf(v), kMaxCount);
  };
  take(*usage, "input_tokens", c.input);
  take(*usage, "cache_read_input_tokens", c.cache_read);
  take(*usage, "cache_creation_input_tokens", c.cache_creation);
  take(*usage, "output_tokens", c.output);
  if (const json::value* split = Member(*usage, "cache_creation"); split && split->is_object()) {
    c.has_split = true;
    take(*split, "ephemeral_5m_input_tokens", c.ephemeral_5m);
    take(*split, "ephemeral_1h_input_tokens", c.ephemeral_1h);
  }
}

v1::TokenUsage Normalise(const UsageCounts& c) {
  int64_t write_5m = c.cache_creation;
  int64_t write_1h = 0;
  if (c.has_split) {
    const int64_t split = SatAdd(c.ephemeral_5m, c.ephemeral_1h);
    write_1h = c.ephemeral_1h;
    // A total larger than its split: the remainder is written with the default (5m) TTL.
    write_5m = SatAdd(c.ephemeral_5m, c.cache_creation > split ? c.cache_creation - split : 0);
  }
  v1::TokenUsage u;
  const int64_t input = SatAdd(SatAdd(c.input, c.cache_read), SatAdd(write_5m, write_1h));
  // Only a saturated sum needs clamping: keep every subset within the total.
  const int64_t cached = std::min(c.cache_read, input);
  write_5m = std::min(write_5m, input - cached);
  write_1h = std::min(write_1h, input - cached - write_5m);
  u.set_input_tokens(input);
  u.set_cached_input_tokens(cached);
  u.set_cache_write_5m_tokens(write_5m);
  u.set_cache_write_1h_tokens(write_1h);
  u.set_output_tokens(c.output);
  u.set_reasoning_tokens(0);
  return u;
}

std::string_view FinishReason(std::string_view stop_reason) {
  if (stop_reason == "max_tokens" || stop_reason == "model_context_window_exceeded") {
    return kFinishLength;
  }
  if (stop_reason == "tool_use") return kFinishToolCalls;
  if (stop_reason == "refusal") return kFinishContentFilter;
  return kFinishStop;  // end_turn, stop_sequence, pause_turn, unknown
}

// ---------------------------------------------------------------------------------------------
// Errors.

struct OpenAiErrorKind {
  std::string_view type;
  std::string_view code;
};

bool IsContextLengthMessage(std::string_view message) {
  const std::string lower = absl::AsciiStrToLower(Av(message));
  return absl::StrContains(lower, "prompt is too long") ||
         absl::StrContains(lower, "exceed context limit");
}

OpenAiErrorKind MapErrorType(std::string_view type, unsigned status, std::string_view message) {
  if (type.empty()) {
    switch (status) {
      case 401:
        type = "authentication_error";
        break;
      case 402:
        type = "billing_error";
        break;
      case 403:
        type = "permission_error";
        break;
      case 404:
        type = "not_found_error";
        break;
      case 413:
        type = "request_too_large";
        break;
      case 429:
        type = "rate_limit_error";
        break;
      case 504:
        type = "timeout_error";
        break;
      case 529:
        type = "overloaded_error";
        break;
      default:
        type = status >= 500 ? "api_error" : "invalid_request_error";
        break;
    }
  }
  if (type == "invalid_request_error") {
    return {"invalid_request_error",
            IsContextLengthMessage(message) ? "context_length_exceeded" : ""};
  }
  if (type == "authentication_error") return {"authentication_error", "invalid_api_key"};
  if (type == "permission_error") return {"permission_error", "permission_denied"};
  if (type == "not_found_error") {
    return {"invalid_request_error",
            absl::StrContains(Av(message), "model") ? "model_not_found" : "not_found"};
  }
  if (type == "request_too_large") return {"invalid_request_error", "request_too_large"};
  if (type == "rate_limit_error") return {"rate_limit_error", "rate_limit_exceeded"};
  if (type == "billing_error") return {"insufficient_quota", "insufficient_quota"};
  if (type == "overloaded_error") return {"server_error", "overloaded"};
  if (type == "timeout_error") return {"server_error", "timeout"};
  if (type == "api_error") return {"server_error", ""};
  return {status >= 500 || status == 0 ? "server_error" : "invalid_request_error", ""};
}

// ---------------------------------------------------------------------------------------------
// Request translation.

class RequestBuilder {
 public:
  RequestBuilder(const json::object& request, const ProviderCall& call)
      : request_(request), call_(call) {}

  absl::StatusOr<ProviderRequest> Build();

 private:
  absl::Status Unsupported(std::string_view param, std::string_view hint) const {
    return InvalidParamError(
        param, absl::StrCat("parameter '", Av(param), "' is not supported by the anthropic dialect",
                            DeploymentSuffix(), hint.empty() ? "" : ": ", Av(hint)));
  }
  absl::Status Invalid(std::string_view param, std::string_view message) const {
    return InvalidParamError(
        param, absl::StrCat("invalid '", Av(param), "': ", Av(message), " (anthropic dialect",
                            DeploymentSuffix(true), ")"));
  }
  std::string DeploymentSuffix(bool inner = false) const {
    const std::string id = call_.deployment == nullptr ? "" : call_.deployment->id();
    if (id.empty()) return "";
    return inner ? absl::StrCat(", deployment '", id, "'")
                 : absl::StrCat(" (deployment '", id, "')");
  }
  const json::value* Get(std::string_view key) const { return request_.if_contains(key); }

  absl::Status CheckUnsupported() const;
  absl::Status AppendContent(const json::value& content, const std::string& param, bool allow_media,
                             json::array& blocks) const;
  absl::StatusOr<json::object> ConvertPart(const json::value& part, const std::string& param,
                                           bool allow_media) const;
  absl::StatusOr<json::object> ImageSource(std::string_view url, const std::string& param) const;
  absl::Status CopyCacheControl(const json::value& from, const std::string& param,
                                json::object& block) const;
  absl::Status ConvertMessages(json::object& body) const;
  absl::Status ConvertTools(json::object& body) const;
  absl::Status ConvertSampling(json::object& body) const;

  const json::object& request_;
  const ProviderCall& call_;
};

absl::Status RequestBuilder::CheckUnsupported() const {
  if (const json::value* n = Get("n"); !IsNull(n)) {
    if (!n->is_number() || n->to_number<double>() != 1.0) {
      return Unsupported("n", "only one choice (n=1) can be generated");
    }
  }
  if (const json::value* v = Get("logprobs"); !IsNull(v) && !(v->is_bool() && !v->get_bool())) {
    return Unsupported("logprobs", "");
  }
  if (!IsNull(Get("top_logprobs"))) return Unsupported("top_logprobs", "");
  if (const json::value* v = Get("logit_bias"); !IsNull(v)) {
    if (!v->is_object() || !v->get_object().empty()) return Unsupported("logit_bias", "");
  }
  for (const char* name : {"frequency_penalty", "presence_penalty"}) {
    const json::value* v = Get(name);
    if (!IsNull(v) && !(v->is_number() && v->to_number<double>() == 0.0)) {
      return Unsupported(name, "");
    }
  }
  if (!IsNull(Get("audio"))) return Unsupported("audio", "");
  if (const json::value* v = Get("modalities"); !IsNull(v)) {
    bool text_only = v->is_array();
    if (text_only) {
      for (const json::value& m : v->get_array()) text_only &= StringOf(&m) == "text";
    }
    if (!text_only) return Unsupported("modalities", "only text output is available");
  }
  if (!IsNull(Get("functions"))) return Unsupported("functions", "use 'tools'");
  if (!IsNull(Get("function_call"))) return Unsupported("function_call", "use 'tool_choice'");
  if (!IsNull(Get("reasoning_effort"))) {
    return Unsupported("reasoning_effort", "use the 'thinking' extension");
  }
  if (!IsNull(Get("verbosity"))) return Unsupported("verbosity", "");
  if (!IsNull(Get("web_search_options"))) return Unsupported("web_search_options", "");
  return absl::OkStatus();
}

absl::Status RequestBuilder::CopyCacheControl(const json::value& from, const std::string& param,
                                              json::object& block) const {
  const json::value* cc = Member(from, "cache_control");
  if (IsNull(cc)) return absl::OkStatus();
  if (!cc->is_object()) return Invalid(param + ".cache_control", "must be an object");
  block["cache_control"] = *cc;
  return absl::OkStatus();
}

absl::StatusOr<json::object> RequestBuilder::ImageSource(std::string_view url,
                                                         const std::string& param) const {
  json::object source;
  if (url.substr(0, 5) == "data:") {
    const size_t comma = url.find(',');
    const std::string_view meta = url.substr(5, comma == std::string_view::npos ? 0 : comma - 5);
    constexpr std::string_view kBase64 = ";base64";
    if (comma == std::string_view::npos || meta.size() < kBase64.size() ||
        meta.substr(meta.size() - kBase64.size()) != kBase64) {
      return Invalid(param, "only base64 data URLs are supported");
    }
    const std::string_view media_type = meta.substr(0, meta.find(';'));
    if (media_type.empty()) return Invalid(param, "the data URL has no media type");
    source["type"] = "base64";
    source["media_type"] = media_type;
    source["data"] = url.substr(comma + 1);
    return source;
  }
  const std::string lower = absl::AsciiStrToLower(Av(url.substr(0, 8)));
  if (absl::StartsWith(lower, "http://") || absl::StartsWith(lower, "https://")) {
    source["type"] = "url";
    source["url"] = url;
    return source;
  }
  return Invalid(param, "the URL must be an http(s) URL or a base64 data URL");
}

absl::StatusOr<json::object> RequestBuilder::ConvertPart(const json::value& part,
                                                         const std::string& param,
                                                         bool allow_media) const {
  const std::string_view type = StringOf(Member(part, "type"));
  json::object block;
  if (type == "text" || type == "refusal") {
    const json::value* text = Member(part, type);
    if (text == nullptr || !text->is_string()) {
      return Invalid(absl::StrCat(param, ".", Av(type)), "must be a string");
    }
    block["type"] = "text";
    block["text"] = *text;
  } else if (type == "image_url") {
    if (!allow_media)
      return Unsupported(param, "images are only accepted in user and tool messages");
    const json::value* image = Member(part, "image_url");
    const json::value* url = image != nullptr && image->is_string() ? image : Member(image, "url");
    if (url == nullptr || !url->is_string()) {
      return Invalid(param + ".image_url.url", "must be a string");
    }
    TOLLGATE_ASSIGN_OR_RETURN(json::object source,
                              ImageSource(StringOf(url), param + ".image_url.url"));
    block["type"] = "image";
    block["source"] = std::move(source);
  } else if (type == "file") {
    const std::string_view data = StringOf(Member(Member(part, "file"), "file_data"));
    constexpr std::string_view kPdf = "data:application/pdf;base64,";
    if (!allow_media || data.substr(0, kPdf.size()) != kPdf) {
      return Unsupported(param,
                         "only PDF files given as base64 data URLs (file.file_data) are "
                         "accepted, in user and tool messages");
    }
    json::object source;
    source["type"] = "base64";
    source["media_type"] = "application/pdf";
    source["data"] = data.substr(kPdf.size());
    block["type"] = "document";
    block["source"] = std::move(source);
  } else {
    return Unsupported(param, absl::StrCat("content part type '", Av(type), "'"));
  }
  TOLLGATE_RETURN_IF_ERROR(CopyCacheControl(part, param, block));
  return block;
}

absl::Status RequestBuilder::AppendContent(const json::value& content, const std::string& param,
                                           bool allow_media, json::array& blocks) const {
  if (content.is_null()) return absl::OkStatus();
  if (content.is_string()) {
    if (!content.get_string().empty())
      blocks.push_back(json::object{{"type", "text"}, {"text", content}});
    return absl::OkStatus();
  }
  if (!content.is_array()) return Invalid(param, "must be a string or an array of parts");
  const json::array& parts = content.get_array();
  for (size_t j = 0; j < parts.size(); ++j) {
    TOLLGATE_ASSIGN_OR_RETURN(json::object block,
                              ConvertPart(parts[j], absl::StrCat(param, "[", j, "]"), allow_media));
    // Anthropic rejects empty text blocks; an empty part adds nothing.
    if (StringOf(block.if_contains("type")) == "text" &&
        StringOf(block.if_contains("text")).empty()) {
      continue;
    }
    blocks.push_back(std::move(block));
  }
  return absl::OkStatus();
}

absl::Status RequestBuilder::ConvertMessages(json::object& body) const {
  const json::value* messages_v = Get("messages");
  if (messages_v == nullptr || !messages_v->is_array()) {
    return Invalid("messages", "must be an array");
  }
  json::array system;
  struct Turn {
    std::string_view role;
    json::array blocks;
  };
  std::vector<Turn> turns;
  const json::array& messages = messages_v->get_array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const json::value& m = messages[i];
    const std::string p = absl::StrCat("messages[", i, "]");
    if (!m.is_object()) return Invalid(p, "must be an object");
    const std::string_view role = StringOf(Member(m, "role"));
    const json::value* content = Member(m, "content");
    static const json::value kNull;
    if (content == nullptr) content = &kNull;
    json::array blocks;
    std::string_view turn_role;
    if (role == "system" || role == "developer") {
      TOLLGATE_RETURN_IF_ERROR(AppendContent(*content, p + ".content", false, blocks));
    } else if (role == "user") {
      turn_role = "user";
      TOLLGATE_RETURN_IF_ERROR(AppendContent(*content, p + ".content", true, blocks));
    } else if (role == "assistant") {
      turn_role = "assistant";
      if (!IsNull(Member(m, "function_call"))) {
        return Unsupported(p + ".function_call", "use 'tool_calls'");
      }
      const std::string_view signature = StringOf(Member(m, "reasoning_signature"));
      if (!signature.empty()) {
        blocks.push_back(json::object{{"type", "thinking"},
                                      {"thinking", StringOf(Member(m, "reasoning_content"))},
                                      {"signature", signature}});
      }
      TOLLGATE_RETURN_IF_ERROR(AppendContent(*content, p + ".content", false, blocks));
      if (const std::string_view refusal = StringOf(Member(m, "refusal")); !refusal.empty()) {
        blocks.push_back(json::object{{"type", "text"}, {"text", refusal}});
      }
      if (const json::value* calls = Member(m, "tool_calls"); !IsNull(calls)) {
        if (!calls->is_array()) return Invalid(p + ".tool_calls", "must be an array");
        for (size_t j = 0; j < calls->get_array().size(); ++j) {
          const json::value& call = calls->get_array()[j];
          const std::string cp = absl::StrCat(p, ".tool_calls[", j, "]");
          const std::string_view type = StringOf(Member(call, "type"));
          if (!type.empty() && type != "function") {
            return Unsupported(cp + ".type", absl::StrCat("tool call type '", Av(type), "'"));
          }
          const json::value* fn = Member(call, "function");
          const json::value* name = Member(fn, "name");
          if (name == nullptr || !name->is_string()) {
            return Invalid(cp + ".function.name", "must be a string");
          }
          const json::value* id = Member(call, "id");
          if (id == nullptr || !id->is_string()) return Invalid(cp + ".id", "must be a string");
          const json::value* args_v = Member(fn, "arguments");
          if (!IsNull(args_v) && !args_v->is_string()) {
            return Invalid(cp + ".function.arguments", "must be a JSON string");
          }
          json::value input = json::object();
          if (const std::string_view args = StringOf(args_v);
              !absl::StripAsciiWhitespace(Av(args)).empty()) {
            json::error_code ec;
            input = json::parse(args, ec);
            if (ec || !input.is_object()) {
              return Invalid(cp + ".function.arguments",
                             "must be a JSON object serialized as a string (Anthropic tool_use "
                             "input is an object)");
            }
          }
          blocks.push_back(json::object{
              {"type", "tool_use"}, {"id", *id}, {"name", *name}, {"input", std::move(input)}});
        }
      }
    } else if (role == "tool") {
      turn_role = "user";
      const json::value* id = Member(m, "tool_call_id");
      if (id == nullptr || !id->is_string())
        return Invalid(p + ".tool_call_id", "must be a string");
      json::object result{{"type", "tool_result"}, {"tool_use_id", *id}};
      if (content->is_string()) {
        if (!content->get_string().empty()) result["content"] = *content;
      } else {
        json::array inner;
        TOLLGATE_RETURN_IF_ERROR(AppendContent(*content, p + ".content", true, inner));
        if (!inner.empty()) result["content"] = std::move(inner);
      }
      // `is_error` (bool) is honoured when present so an Anthropic client's failed tool result
      // survives the round trip through the internal form.
      if (const json::value* err = Member(m, "is_error"); err != nullptr && err->is_bool()) {
        result["is_error"] = err->get_bool();
      }
      blocks.push_back(std::move(result));
    } else if (role == "function") {
      return Unsupported(p + ".role", "role 'function' is legacy; use 'tool'");
    } else {
      return Invalid(p + ".role", absl::StrCat("unknown role '", Av(role), "'"));
    }
    if (!blocks.empty()) {
      json::value& last = blocks.back();
      TOLLGATE_RETURN_IF_ERROR(CopyCacheControl(m, p, last.as_object()));
    }
    if (turn_role.empty()) {
      for (json::value& b : blocks) system.push_back(std::move(b));
    } else if (!turns.empty() && turns.back().role == turn_role) {
      for (json::value& b : blocks) turns.back().blocks.push_back(std::move(b));
    } else {
      turns.push_back(Turn{turn_role, std::move(blocks)});
    }
  }

  auto plain_text = [](const json::array& blocks) {
    return blocks.size() == 1 && blocks[0].as_object().size() == 2 &&
           StringOf(blocks[0].as_object().if_contains("type")) == "text";
  };
  if (!system.empty()) {
    if (plain_text(system)) {
      body["system"] = system[0].as_object().at("text");
    } else {
      body["system"] = std::move(system);
    }
  }
  json::array out;
  for (Turn& turn : turns) {
    json::object message{{"role", turn.role}};
    if (turn.blocks.empty()) {
      message["content"] = "";
    } else if (plain_text(turn.blocks)) {
      message["content"] = turn.blocks[0].as_object().at("text");
    } else {
      message["content"] = std::move(turn.blocks);
    }
    out.push_back(std::move(message));
  }
  body["messages"] = std::move(out);
  return absl::OkStatus();
}

absl::Status RequestBuilder::ConvertTools(json::object& body) const {
  json::array tools;
  if (const json::value* list = Get("tools"); !IsNull(list)) {
    if (!list->is_array()) return Invalid("tools", "must be an array");
    for (size_t i = 0; i < list->get_array().size(); ++i) {
      const json::value& tool = list->get_array()[i];
      const std::string p = absl::StrCat("tools[", i, "]");
      const std::string_view type = StringOf(Member(tool, "type"));
      if (type != "function") {
        return Unsupported(p + ".type", absl::StrCat("tool type '", Av(type), "'"));
      }
      const json::value* fn = Member(tool, "function");
      const json::value* name = Member(fn, "name");
      if (name == nullptr || !name->is_string()) {
        return Invalid(p + ".function.name", "must be a string");
      }
      if (IsJsonTool(StringOf(name))) {
        return Invalid(p + ".function.name",
                       absl::StrCat("names starting with '", Av(kJsonToolPrefix),
                                    "' are reserved for response_format"));
      }
      json::object out{{"name", *name}};
      if (const json::value* d = Member(fn, "description"); d != nullptr && d->is_string()) {
        out["description"] = *d;
      }
      const json::value* params = Member(fn, "parameters");
      if (!IsNull(params) && !params->is_object()) {
        return Invalid(p + ".function.parameters", "must be a JSON Schema object");
      }
      out["input_schema"] =
          IsNull(params)
              ? json::value(json::object{{"type", "object"}, {"properties", json::object()}})
              : *params;
      TOLLGATE_RETURN_IF_ERROR(CopyCacheControl(tool, p, out));
      if (!out.contains("cache_control")) {
        TOLLGATE_RETURN_IF_ERROR(CopyCacheControl(*fn, p + ".function", out));
      }
      tools.push_back(std::move(out));
    }
  }

  // tool_choice: "" (not given), auto, none, any, tool.
  std::string_view choice;
  json::value chosen_name;
  if (const json::value* tc = Get("tool_choice"); !IsNull(tc)) {
    if (tc->is_string()) {
      const std::string_view s = StringOf(tc);
      if (s == "auto" || s == "none") {
        choice = s;
      } else if (s == "required") {
        choice = "any";
      } else {
        return Invalid("tool_choice", absl::StrCat("unknown value '", Av(s), "'"));
      }
    } else if (StringOf(Member(*tc, "type")) == "function") {
      const json::value* name = Member(Member(*tc, "function"), "name");
      if (name == nullptr || !name->is_string()) {
        return Invalid("tool_choice.function.name", "must be a string");
      }
      choice = "tool";
      chosen_name = *name;
    } else {
      return Unsupported("tool_choice", absl::StrCat("tool_choice type '",
                                                     Av(StringOf(Member(*tc, "type"))), "'"));
    }
  }
  if (tools.empty() && (choice == "any" || choice == "tool")) {
    return Invalid("tool_choice", "'required' or a named tool needs 'tools'");
  }
  bool disable_parallel = false;
  if (const json::value* p = Get("parallel_tool_calls"); p != nullptr && p->is_bool()) {
    disable_parallel = !p->get_bool();
  }

  // response_format via a forced tool (see anthropic.h).
  if (const json::value* rf = Get("response_format"); !IsNull(rf)) {
    const std::string_view type = StringOf(Member(*rf, "type"));
    json::object json_tool;
    if (type == "json_object") {
      json_tool["name"] = absl::StrCat(Av(kJsonToolPrefix), "object");
      json_tool["description"] =
          "Respond to the user by calling this tool with the complete answer as a JSON object.";
      json_tool["input_schema"] = json::object{{"type", "object"}};
    } else if (type == "json_schema") {
      const json::value* js = Member(*rf, "json_schema");
      if (js == nullptr || !js->is_object()) {
        return Invalid("response_format.json_schema", "must be an object");
      }
      std::string_view name = StringOf(Member(*js, "name"));
      if (name.empty()) name = "response";
      const bool valid_name =
          name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
            return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
          });
      if (!valid_name) {
        return Invalid("response_format.json_schema.name",
                       "must be at most 64 characters of a-z, A-Z, 0-9, '_' and '-'");
      }
      const json::value* schema = Member(*js, "schema");
      if (!IsNull(schema) && !schema->is_object()) {
        return Invalid("response_format.json_schema.schema", "must be a JSON Schema object");
      }
      json_tool["name"] = absl::StrCat(Av(kJsonToolPrefix), Av(name));
      const std::string_view description = StringOf(Member(*js, "description"));
      json_tool["description"] = absl::StrCat(
          "Respond to the user by calling this tool with the complete answer as JSON matching "
          "its input schema.",
          description.empty() ? "" : " ", Av(description));
      json_tool["input_schema"] =
          IsNull(schema) ? json::value(json::object{{"type", "object"}}) : *schema;
    } else if (type != "text") {
      return Unsupported("response_format.type",
                         absl::StrCat("response_format type '", Av(type), "'"));
    }
    // With tool_choice required / named the model must call a client tool: no text answer to
    // format.
    if (!json_tool.empty() && choice != "any" && choice != "tool") {
      const json::value* thinking = Get("thinking");
      if (StringOf(Member(thinking, "type")) == "enabled") {
        return Unsupported("response_format",
                           "JSON output is implemented with a forced tool call, which Anthropic "
                           "does not allow together with 'thinking'");
      }
      const bool client_tools = !tools.empty() && choice != "none";
      chosen_name = json_tool["name"];
      tools.push_back(std::move(json_tool));
      if (client_tools) {
        choice = "any";
      } else {
        choice = "tool";
        disable_parallel = true;
      }
    }
  }

  if (tools.empty()) return absl::OkStatus();
  body["tools"] = std::move(tools);
  if (choice.empty() && !disable_parallel) return absl::OkStatus();
  json::object tc{{"type", choice.empty() ? std::string_view("auto") : choice}};
  if (choice == "tool") tc["name"] = chosen_name;
  if (disable_parallel && choice != "none") tc["disable_parallel_tool_use"] = true;
  body["tool_choice"] = std::move(tc);
  return absl::OkStatus();
}

absl::Status RequestBuilder::ConvertSampling(json::object& body) const {
  // max_tokens (Anthropic requires it).
  const json::value* max = Get("max_completion_tokens");
  if (IsNull(max)) max = Get("max_tokens");
  if (!IsNull(max)) {
    if (!max->is_number()) return Invalid("max_tokens", "must be an integer");
    body["max_tokens"] = CountOf(max);
  } else {
    const int64_t deployment_max =
        call_.deployment == nullptr ? 0 : call_.deployment->max_output_tokens();
    int64_t def =
        deployment_max > 0 ? std::min(deployment_max, kDefaultMaxTokens) : kDefaultMaxTokens;
    const json::value* thinking = Get("thinking");
    const int64_t budget = CountOf(Member(thinking, "budget_tokens"));
    if (StringOf(Member(thinking, "type")) == "enabled" && budget >= def) {
      def = SatAdd(budget, def);
      if (deployment_max > 0) def = std::min(def, deployment_max);
    }
    body["max_tokens"] = def;
  }

  if (const json::value* stop = Get("stop"); !IsNull(stop)) {
    json::array sequences;
    if (stop->is_string()) {
      sequences.push_back(*stop);
    } else if (stop->is_array()) {
      for (const json::value& s : stop->get_array()) {
        if (!s.is_string()) return Invalid("stop", "must be a string or an array of strings");
        sequences.push_back(s);
      }
    } else {
      return Invalid("stop", "must be a string or an array of strings");
    }
    if (!sequences.empty()) body["stop_sequences"] = std::move(sequences);
  }
  if (const json::value* t = Get("temperature"); !IsNull(t)) {
    if (!t->is_number()) return Invalid("temperature", "must be a number");
    if (t->to_number<double>() > 1.0) {
      return Invalid("temperature",
                     "Anthropic accepts 0..1 (the OpenAI range 0..2 cannot be mapped without "
                     "changing its meaning)");
    }
    body["temperature"] = *t;
  }
  for (const char* name : {"top_p", "top_k"}) {
    if (const json::value* v = Get(name); !IsNull(v)) {
      if (!v->is_number()) return Invalid(name, "must be a number");
      body[name] = *v;
    }
  }
  if (const std::string_view user = StringOf(Get("user")); !user.empty()) {
    body["metadata"] = json::object{{"user_id", user}};
  }
  if (const json::value* thinking = Get("thinking"); !IsNull(thinking)) {
    if (!thinking->is_object()) return Invalid("thinking", "must be an object");
    body["thinking"] = *thinking;
  }
  return absl::OkStatus();
}

absl::StatusOr<ProviderRequest> RequestBuilder::Build() {
  TOLLGATE_RETURN_IF_ERROR(CheckUnsupported());
  json::object body;
  body["model"] = call_.deployment == nullptr
                      ? std::string_view()
                      : std::string_view(call_.deployment->upstream_model());
  if (StringOf(body.if_contains("model")).empty()) {
    if (const json::value* m = Get("model")) body["model"] = *m;
  }
  TOLLGATE_RETURN_IF_ERROR(ConvertSampling(body));
  TOLLGATE_RETURN_IF_ERROR(ConvertMessages(body));
  TOLLGATE_RETURN_IF_ERROR(ConvertTools(body));
  if (call_.stream) body["stream"] = true;

  ProviderRequest out;
  std::string_view base = call_.base_path;
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);
  out.target = absl::StrCat(Av(base), "/messages");
  if (!call_.api_key.empty()) out.headers.emplace_back("x-api-key", std::string(call_.api_key));
  const v1::Deployment empty_deployment;
  const v1::Deployment& deployment = call_.deployment ? *call_.deployment : empty_deployment;
  std::string_view version = DeploymentOption(deployment, "anthropic_version");
  if (version.empty()) version = kDefaultVersion;
  out.headers.emplace_back("anthropic-version", std::string(version));
  if (const std::string_view beta = DeploymentOption(deployment, "anthropic_beta"); !beta.empty()) {
    out.headers.emplace_back("anthropic-beta", std::string(beta));
  }
  out.body = json::serialize(body);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Response translation.

absl::StatusOr<ProviderResponse> TranslateResponse(std::string_view body,
                                                   const ProviderCall& call) {
  json::error_code ec;
  const json::value root = json::parse(body, ec);
  if (ec || !root.is_object()) {
    return absl::DataLossError("the anthropic response is not a JSON object");
  }
  const json::value* blocks = Member(root, "content");
  if (StringOf(Member(root, "type")) == "error" || blocks == nullptr || !blocks->is_array()) {
    return absl::DataLossError("the anthropic response is not a message (no content array)");
  }
  ProviderResponse out;
  std::string text;
  std::string reasoning;
  std::string signature;
  bool has_reasoning = false;
  bool json_answer = false;
  json::array tool_calls;
  for (const json::value& block : blocks->get_array()) {
    const std::string_view type = StringOf(Member(block, "type"));
    if (type == "text") {
      text.append(StringOf(Member(block, "text")));
    } else if (type == "thinking") {
      has_reasoning = true;
      reasoning.append(StringOf(Member(block, "thinking")));
      if (const std::string_view s = StringOf(Member(block, "signature")); !s.empty()) {
        signature = std::string(s);
      }
    } else if (type == "tool_use") {
      const std::string_view name = StringOf(Member(block, "name"));
      const json::value* input_v = Member(block, "input");
      const std::string input = input_v == nullptr ? std::string("{}") : json::serialize(*input_v);
      if (IsJsonTool(name)) {
        json_answer = true;
        text.append(input);
        continue;
      }
      out.output_bytes += static_cast<int64_t>(name.size() + input.size());
      tool_calls.push_back(
          json::object{{"id", StringOf(Member(block, "id"))},
                       {"type", "function"},
                       {"function", json::object{{"name", name}, {"arguments", input}}}});
    }
  }
  out.output_bytes += static_cast<int64_t>(text.size() + reasoning.size());

  const std::string_view stop_reason = StringOf(Member(root, "stop_reason"));
  std::string_view finish = FinishReason(stop_reason);
  if (finish == kFinishToolCalls && tool_calls.empty() && json_answer) finish = kFinishStop;

  json::object message{{"role", "assistant"}};
  if (stop_reason == "refusal") {
    message["content"] = nullptr;
    message["refusal"] = text.empty() ? json::value(nullptr) : json::value(text);
  } else {
    message["content"] =
        text.empty() && !tool_calls.empty() ? json::value(nullptr) : json::value(text);
    message["refusal"] = nullptr;
  }
  if (!tool_calls.empty()) message["tool_calls"] = std::move(tool_calls);
  if (has_reasoning) message["reasoning_content"] = reasoning;
  if (!signature.empty()) message["reasoning_signature"] = signature;

  std::string_view model = StringOf(Member(root, "model"));
  if (model.empty()) model = call.client_model;
  UsageCounts counts;
  MergeUsage(Member(root, "usage"), counts);
  json::object response{{"id", absl::StrCat("chatcmpl-", Av(call.request_id))},
                        {"object", "chat.completion"},
                        {"created", call.created_unix},
                        {"model", model},
                        {"choices", json::array{json::object{{"index", 0},
                                                             {"message", std::move(message)},
                                                             {"logprobs", nullptr},
                                                             {"finish_reason", finish}}}}};
  // OpenAI's shape has no field for the matched stop sequence; carried as an extra choice field
  // (ignored by OpenAI clients) so the Messages ingress can answer stop_reason "stop_sequence".
  if (const std::string_view sequence = StringOf(Member(root, "stop_sequence"));
      stop_reason == "stop_sequence" && !sequence.empty()) {
    response["choices"].as_array()[0].as_object()["stop_sequence"] = sequence;
  }
  if (counts.seen) {
    out.usage = Normalise(counts);
    response["usage"] = OpenAiUsageJson(*out.usage);
  }
  out.body = json::serialize(response);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Stream translation.

class AnthropicStreamTranslator final : public StreamTranslator {
 public:
  explicit AnthropicStreamTranslator(const ProviderCall& call)
      : id_(absl::StrCat("chatcmpl-", Av(call.request_id))),
        created_(call.created_unix),
        model_(call.client_model),
        wants_usage_(call.client_wants_usage) {}

  void OnEvent(const SseEvent& event, std::string& out) override;
  void Finish(std::string&) override {}  // see anthropic.h: EOF without message_stop is broken

 private:
  enum class Kind { kText, kTool, kJson, kThinking, kOther };
  struct Block {
    Kind kind = Kind::kOther;
    int tool_index = 0;
  };

  json::object Chunk() const;
  void EmitDelta(json::object delta, std::string& out);
  void EmitFinish(std::string& out);
  void EnsureRole(std::string& out);
  void Content(std::string_view field, std::string_view text, std::string& out);
  void UpdateUsage(const json::value* usage);

  const std::string id_;
  const int64_t created_;
  std::string model_;
  const bool wants_usage_;
  bool role_sent_ = false;
  bool finish_sent_ = false;
  bool client_tool_seen_ = false;
  bool json_seen_ = false;
  std::string stop_reason_;
  std::string stop_sequence_;  // the matched one, when stop_reason_ is "stop_sequence"
  std::map<int64_t, Block> blocks_;
  int next_tool_index_ = 0;
  UsageCounts counts_;
};

json::object AnthropicStreamTranslator::Chunk() const {
  json::object chunk{
      {"id", id_}, {"object", "chat.completion.chunk"}, {"created", created_}, {"model", model_}};
  return chunk;
}

void AnthropicStreamTranslator::EmitDelta(json::object delta, std::string& out) {
  json::object chunk = Chunk();
  chunk["choices"] = json::array{json::object{{"index", 0},
                                              {"delta", std::move(delta)},
                                              {"logprobs", nullptr},
                                              {"finish_reason", nullptr}}};
  if (wants_usage_) chunk["usage"] = nullptr;
  AppendSseData(json::serialize(chunk), out);
}

void AnthropicStreamTranslator::EnsureRole(std::string& out) {
  if (role_sent_) return;
  role_sent_ = true;
  EmitDelta(json::object{{"role", "assistant"}, {"content", ""}}, out);
}

void AnthropicStreamTranslator::Content(std::string_view field, std::string_view text,
                                        std::string& out) {
  if (text.empty()) return;
  EnsureRole(out);
  EmitDelta(json::object{{field, text}}, out);
  progress_.output_bytes += static_cast<int64_t>(text.size());
  progress_.has_output = true;
}

void AnthropicStreamTranslator::EmitFinish(std::string& out) {
  if (finish_sent_) return;
  finish_sent_ = true;
  EnsureRole(out);
  std::string_view finish = FinishReason(stop_reason_);
  if (finish == kFinishToolCalls && !client_tool_seen_ && json_seen_) finish = kFinishStop;
  json::object chunk = Chunk();
  json::object choice{
      {"index", 0}, {"delta", json::object()}, {"logprobs", nullptr}, {"finish_reason", finish}};
  if (stop_reason_ == "stop_sequence" && !stop_sequence_.empty()) {
    choice["stop_sequence"] = stop_sequence_;  // as in the non-stream translation
  }
  chunk["choices"] = json::array{std::move(choice)};
  if (wants_usage_) chunk["usage"] = nullptr;
  AppendSseData(json::serialize(chunk), out);
}

void AnthropicStreamTranslator::UpdateUsage(const json::value* usage) {
  MergeUsage(usage, counts_);
  if (counts_.seen) progress_.usage = Normalise(counts_);
}

void AnthropicStreamTranslator::OnEvent(const SseEvent& event, std::string& out) {
  progress_.has_output = false;
  if (progress_.done || progress_.error || !event.has_data) return;
  json::error_code ec;
  const json::value data = json::parse(event.data, ec);
  if (ec || !data.is_object()) {
    // An `error` event whose data is not JSON still ends the stream; anything else that is not
    // JSON carries nothing to translate.
    if (event.event == "error") {
      const std::string message = SanitizeUtf8(event.data, kMaxRawErrorBytes);
      out.append(
          StreamErrorEvent(message.empty() ? "the anthropic stream reported an error" : message,
                           "server_error", ""));
      progress_.error = true;
    }
    return;
  }
  std::string_view type = StringOf(Member(data, "type"));
  if (type.empty()) type = event.event;

  if (type == "message_start") {
    const json::value* message = Member(data, "message");
    if (const std::string_view m = StringOf(Member(message, "model")); !m.empty()) {
      model_ = std::string(m);
    }
    UpdateUsage(Member(message, "usage"));
    EnsureRole(out);
  } else if (type == "content_block_start") {
    const int64_t index = CountOf(Member(data, "index"));
    const json::value* cb = Member(data, "content_block");
    const std::string_view block_type = StringOf(Member(cb, "type"));
    Block& block = blocks_[index];
    if (block_type == "text") {
      block.kind = Kind::kText;
      Content("content", StringOf(Member(cb, "text")), out);
    } else if (block_type == "thinking") {
      block.kind = Kind::kThinking;
      Content("reasoning_content", StringOf(Member(cb, "thinking")), out);
    } else if (block_type == "tool_use") {
      const std::string_view name = StringOf(Member(cb, "name"));
      const json::value* input = Member(cb, "input");
      const std::string initial =
          input != nullptr && input->is_object() && !input->get_object().empty()
              ? json::serialize(*input)
              : std::string();
      if (IsJsonTool(name)) {
        block.kind = Kind::kJson;
        json_seen_ = true;
        Content("content", initial, out);
      } else {
        block.kind = Kind::kTool;
        block.tool_index = next_tool_index_++;
        client_tool_seen_ = true;
        EnsureRole(out);
        json::object call{{"index", block.tool_index},
                          {"id", StringOf(Member(cb, "id"))},
                          {"type", "function"},
                          {"function", json::object{{"name", name}, {"arguments", initial}}}};
        EmitDelta(json::object{{"tool_calls", json::array{std::move(call)}}}, out);
        progress_.output_bytes += static_cast<int64_t>(name.size() + initial.size());
        progress_.has_output = true;
      }
    } else {
      block.kind = Kind::kOther;
    }
  } else if (type == "content_block_delta") {
    const int64_t index = CountOf(Member(data, "index"));
    const json::value* delta = Member(data, "delta");
    const std::string_view delta_type = StringOf(Member(delta, "type"));
    const auto it = blocks_.find(index);
    const Kind kind = it == blocks_.end() ? Kind::kOther : it->second.kind;
    if (delta_type == "text_delta") {
      Content("content", StringOf(Member(delta, "text")), out);
    } else if (delta_type == "thinking_delta") {
      Content("reasoning_content", StringOf(Member(delta, "thinking")), out);
    } else if (delta_type == "signature_delta") {
      if (const std::string_view s = StringOf(Member(delta, "signature")); !s.empty()) {
        EnsureRole(out);
        EmitDelta(json::object{{"reasoning_signature", s}}, out);
      }
    } else if (delta_type == "input_json_delta") {
      const std::string_view fragment = StringOf(Member(delta, "partial_json"));
      if (kind == Kind::kJson) {
        Content("content", fragment, out);
      } else if (kind == Kind::kTool && !fragment.empty()) {
        json::object call{{"index", it->second.tool_index},
                          {"function", json::object{{"arguments", fragment}}}};
        EmitDelta(json::object{{"tool_calls", json::array{std::move(call)}}}, out);
        progress_.output_bytes += static_cast<int64_t>(fragment.size());
        progress_.has_output = true;
      }
    }
    // citations_delta and deltas of unknown blocks carry nothing OpenAI's shape can hold.
  } else if (type == "message_delta") {
    const json::value* delta = Member(data, "delta");
    if (const std::string_view r = StringOf(Member(delta, "stop_reason")); !r.empty()) {
      stop_reason_ = std::string(r);
    }
    if (const std::string_view q = StringOf(Member(delta, "stop_sequence")); !q.empty()) {
      stop_sequence_ = std::string(q);
    }
    UpdateUsage(Member(data, "usage"));
    if (!stop_reason_.empty()) EmitFinish(out);
  } else if (type == "message_stop") {
    EmitFinish(out);
    if (wants_usage_ && progress_.usage.has_value()) {
      json::object chunk = Chunk();
      chunk["choices"] = json::array();
      chunk["usage"] = OpenAiUsageJson(*progress_.usage);
      AppendSseData(json::serialize(chunk), out);
    }
    AppendSseData("[DONE]", out);
    progress_.done = true;
  } else if (type == "error") {
    const json::value* error = Member(data, "error");
    std::string_view message = StringOf(Member(error, "message"));
    const std::string_view error_type = StringOf(Member(error, "type"));
    if (message.empty()) message = "the anthropic stream reported an error";
    const OpenAiErrorKind kind =
        MapErrorType(error_type.empty() ? "api_error" : error_type, 0, message);
    out.append(StreamErrorEvent(message, kind.type, kind.code));
    progress_.error = true;
  }
  // ping and unknown event types: nothing to forward.
}

// ---------------------------------------------------------------------------------------------

class AnthropicProviderImpl final : public Provider {
 public:
  std::string_view dialect() const override { return kDialect; }

  absl::StatusOr<ProviderRequest> BuildChatRequest(json::object& request,
                                                   const ProviderCall& call) const override {
    return RequestBuilder(request, call).Build();
  }

  absl::StatusOr<ProviderResponse> TranslateChatResponse(std::string_view body,
                                                         const ProviderCall& call) const override {
    return TranslateResponse(body, call);
  }

  std::unique_ptr<StreamTranslator> NewStreamTranslator(const ProviderCall& call) const override {
    return std::make_unique<AnthropicStreamTranslator>(call);
  }

  ProviderError TranslateError(unsigned status, std::string_view body) const override {
    json::error_code ec;
    const json::value root = json::parse(body, ec);
    const json::value* error = ec ? nullptr : Member(root, "error");
    const std::string_view type = StringOf(Member(error, "type"));
    std::string message(StringOf(Member(error, "message")));
    if (message.empty()) {
      message = absl::StrCat("the anthropic upstream returned HTTP ", status);
      if (!body.empty()) absl::StrAppend(&message, ": ", SanitizeUtf8(body, kMaxRawErrorBytes));
    }
    const OpenAiErrorKind kind = MapErrorType(type, status, message);
    ProviderError out;
    out.context_length_exceeded = kind.code == "context_length_exceeded";
    out.body = ErrorBody(message, kind.type, "", kind.code);
    return out;
  }
};

}  // namespace

const Provider& AnthropicProvider() {
  static const AnthropicProviderImpl provider;
  return provider;
}

}  // namespace tollgate::gateway
