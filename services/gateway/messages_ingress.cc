#include "services/gateway/messages_ingress.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "boost/json/parse.hpp"
#include "boost/json/serialize.hpp"
#include "services/common/status.h"
#include "services/gateway/openai_dialect.h"
#include "services/gateway/providers/json_util.h"

namespace tollgate::gateway {
namespace {

namespace json = boost::json;

// ---------------------------------------------------------------------------------------------
// Request validation helpers. Every error names the field as a path ("messages[1].content[0]").

absl::Status Bad(std::string_view path, std::string_view message) {
  return InvalidParamError(path, absl::StrCat(std::string(path), ": ", std::string(message)));
}

std::string At(std::string_view path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return absl::StrCat(std::string(path), ".", std::string(key));
}

std::string At(std::string_view path, size_t index) {
  return absl::StrCat(std::string(path), "[", index, "]");
}

// A member name as a param: an empty name still needs a visible one.
std::string ParamName(std::string_view key) {
  return key.empty() ? std::string("\"\"") : std::string(key);
}

bool Absent(const json::value* v) { return v == nullptr || v->is_null(); }

// Numbers beyond double range (1e999) parse as infinity but serialise as invalid JSON; such a
// request cannot be passed on.
bool HasNonFinite(const json::value& v) {
  switch (v.kind()) {
    case json::kind::double_:
      return !std::isfinite(v.get_double());
    case json::kind::array:
      for (const json::value& e : v.get_array()) {
        if (HasNonFinite(e)) return true;
      }
      return false;
    case json::kind::object:
      for (const auto& member : v.get_object()) {
        if (HasNonFinite(member.value())) return true;
      }
      return false;
    default:
      return false;
  }
}

// An integer value (integral doubles included) that fits in int64.
std::optional<int64_t> IntegerOf(const json::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64()) {
    if (v.get_uint64() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<int64_t>(v.get_uint64());
  }
  if (v.is_double()) {
    const double d = v.get_double();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) <= 9.0e15) {
      return static_cast<int64_t>(d);
    }
  }
  return std::nullopt;
}

double NumberOf(const json::value& v) {
  if (v.is_int64()) return static_cast<double>(v.get_int64());
  if (v.is_uint64()) return static_cast<double>(v.get_uint64());
  return v.get_double();
}

// Rejects members of `object` other than `allowed` unless they are null.
absl::Status OnlyKnown(const json::object& object, std::string_view path,
                       std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : object) {
    const std::string_view k(key.data(), key.size());
    if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
    if (value.is_null()) continue;
    return Bad(At(path, ParamName(k)), "is not supported by Tollgate's /v1/messages");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string_view> RequiredString(const json::object& object, std::string_view path,
                                                std::string_view key, bool non_empty = false) {
  const json::value* v = object.if_contains(key);
  if (Absent(v)) return Bad(At(path, key), "field required");
  if (!v->is_string() || (non_empty && v->get_string().empty())) {
    return Bad(At(path, key), non_empty ? "must be a non-empty string" : "must be a string");
  }
  return StringOf(v);
}

// A validated cache_control ({"type":"ephemeral","ttl"?:"5m"|"1h"}), or null when absent.
absl::StatusOr<json::value> CacheControl(const json::object& block, std::string_view path) {
  const json::value* cc = block.if_contains("cache_control");
  if (Absent(cc)) return json::value();
  const std::string here = At(path, "cache_control");
  if (!cc->is_object()) return Bad(here, "must be an object");
  TOLLGATE_RETURN_IF_ERROR(OnlyKnown(cc->get_object(), here, {"type", "ttl"}));
  if (StringOf(Member(*cc, "type")) != "ephemeral") {
    return Bad(At(here, "type"), "must be \"ephemeral\"");
  }
  if (const json::value* ttl = Member(*cc, "ttl"); !Absent(ttl)) {
    const std::string_view t = StringOf(ttl);
    if (t != "5m" && t != "1h") return Bad(At(here, "ttl"), "must be \"5m\" or \"1h\"");
  }
  return *cc;
}

void SetCacheControl(json::object& target, const json::value& cc) {
  if (!cc.is_null()) target["cache_control"] = cc;
}

// A text block ({"type":"text","text",...}) as an OpenAI text part.
absl::StatusOr<json::object> TextPart(const json::object& block, std::string_view path) {
  TOLLGATE_RETURN_IF_ERROR(OnlyKnown(block, path, {"type", "text", "cache_control", "citations"}));
  TOLLGATE_ASSIGN_OR_RETURN(std::string_view text, RequiredString(block, path, "text"));
  if (const json::value* c = block.if_contains("citations");
      !Absent(c) && !(c->is_array() && c->get_array().empty())) {
    return Bad(At(path, "citations"), "citations are not supported by Tollgate's /v1/messages");
  }
  TOLLGATE_ASSIGN_OR_RETURN(json::value cc, CacheControl(block, path));
  json::object part;
  part["type"] = "text";
  part["text"] = text;
  SetCacheControl(part, cc);
  return part;
}

// The `source` object of an image or document block (errors name `src_path`).
absl::StatusOr<const json::object*> SourceOf(const json::object& block,
                                             const std::string& src_path) {
  const json::value* source = block.if_contains("source");
  if (Absent(source)) return Bad(src_path, "field required");
  if (!source->is_object()) return Bad(src_path, "must be an object");
  return &source->get_object();
}

absl::StatusOr<json::object> ImagePart(const json::object& block, std::string_view path) {
  TOLLGATE_RETURN_IF_ERROR(OnlyKnown(block, path, {"type", "source", "cache_control"}));
  const std::string src_path = At(path, "source");
  TOLLGATE_ASSIGN_OR_RETURN(const json::object* source, SourceOf(block, src_path));
  const json::object& src = *source;
  TOLLGATE_ASSIGN_OR_RETURN(std::string_view type, RequiredString(src, src_path, "type"));
  std::string url;
  if (type == "base64") {
    TOLLGATE_RETURN_IF_ERROR(OnlyKnown(src, src_path, {"type", "media_type", "data"}));
    TOLLGATE_ASSIGN_OR_RETURN(std::string_view media_type,
                              RequiredString(src, src_path, "media_type", true));
    TOLLGATE_ASSIGN_OR_RETURN(std::string_view data, RequiredString(src, src_path, "data"));
    url = absl::StrCat("data:", std::string(media_type), ";base64,", std::string(data));
  } else if (type == "url") {
    TOLLGATE_RETURN_IF_ERROR(OnlyKnown(src, src_path, {"type", "url"}));
    TOLLGATE_ASSIGN_OR_RETURN(std::string_view u, RequiredString(src, src_path, "url", true));
    url = std::string(u);
  } else {
    return Bad(At(src_path, "type"),
               absl::StrCat("image source type \"", std::string(type),
                            "\" is not supported by Tollgate's /v1/messages (use base64 or url)"));
  }
  TOLLGATE_ASSIGN_OR_RETURN(json::value cc, CacheControl(block, path));
  json::object image_url;
  image_url["url"] = url;
  json::object part;
  part["type"] = "image_url";
  part["image_url"] = std::move(image_url);
  SetCacheControl(part, cc);
  return part;
}

// Only a base64 PDF without title, context or citations maps losslessly (OpenAI's `file` part).
absl::StatusOr<json::object> DocumentPart(const json::object& block, std::string_view path) {
  TOLLGATE_RETURN_IF_ERROR(OnlyKnown(block, path, {"type", "source", "cache_control"}));
  const std::string src_path = At(path, "source");
  TOLLGATE_ASSIGN_OR_RETURN(const json::object* source, SourceOf(block, src_path));
  const json::object& src = *source;
  TOLLGATE_ASSIGN_OR_RETURN(std::string_view type, RequiredString(src, src_path, "type"));
  if (type != "base64") {
    return Bad(At(src_path, "type"),
               absl::StrCat("document source type \"", std::string(type),
                            "\" is not supported by Tollgate's /v1/messages (only base64 PDF)"));
  }
  TOLLGATE_RETURN_IF_ERROR(OnlyKnown(src, src_path, {"type", "media_type", "data"}));
  TOLLGATE_ASSIGN_OR_RETURN(std::string_view media_type,
                            RequiredString(src, src_path, "media_type"));
  if (media_type != "application/pdf") {
    return Bad(At(src_path, "media_type"), "must be \"application/pdf\"");
  }
  TOLLGATE_ASSIGN_OR_RETURN(std::string_view data, RequiredString(src, src_path, "data"));
  TOLLGATE_ASSIGN_OR_RETURN(json::value cc, CacheControl(block, path));
  json::object file;
  file["file_data"] = absl::StrCat("data:application/pdf;base64,", std::string(data));
  json::object part;
  part["type"] = "file";
  part["file"] = std::move(file);
  SetCacheControl(part, cc);
  return part;
}

// OpenAI content for a list of parts: a plain string for one text part without cache_control
// (what every OpenAI-compatible upstream accepts), else the parts.
json::value ContentOf(json::array parts) {
  if (parts.size() == 1) {
    const json::object& only = parts[0].get_object();
    if (StringOf(only.if_contains("type")) == "text" && !only.contains("cache_control")) {
      return only.at("text");
    }
  }
  return parts;
}

// A system prompt: a string or text blocks.
absl::StatusOr<json::object> SystemMessage(const json::value& content, std::string_view path) {
  json::object message;
  message["role"] = "system";
  if (content.is_string()) {
    message["content"] = content;
    return message;
  }
  if (!content.is_array()) return Bad(path, "must be a string or an array of text blocks");
  json::array parts;
  const json::array& blocks = content.get_array();
  for (size_t i = 0; i < blocks.size(); ++i) {
    const std::string here = At(path, i);
    if (!blocks[i].is_object()) return Bad(here, "must be an object");
    const json::object& block = blocks[i].get_object();
    if (StringOf(block.if_contains("type")) != "text") {
      return Bad(At(here, "type"), "system content blocks must be of type \"text\"");
    }
    TOLLGATE_ASSIGN_OR_RETURN(json::object part, TextPart(block, here));
    parts.push_back(std::move(part));
  }
  if (parts.empty()) return Bad(path, "must not be empty");
  message["content"] = ContentOf(std::move(parts));
  return message;
}

// A tool_result block as an OpenAI tool message.
absl::StatusOr<json::object> ToolMessage(const json::object& block, std::string_view path) {
  TOLLGATE_RETURN_IF_ERROR(
      OnlyKnown(block, path, {"type", "tool_use_id", "content", "is_error", "cache_control"}));
  TOLLGATE_ASSIGN_OR_RETURN(std::string_view id, RequiredString(block, path, "tool_use_id", true));
  json::object message;
  message["role"] = "tool";
  message["tool_call_id"] = id;
  const json::value* content = block.if_contains("content");
  if (Absent(content)) {
    message["content"] = "";
  } else if (content->is_string()) {
    message["content"] = *content;
  } else if (content->is_array()) {
    json::array parts;
    const json::array& blocks = content->get_array();
    for (size_t i = 0; i < blocks.size(); ++i) {
      const std::string here = At(At(path, "content"), i);
      if (!blocks[i].is_object()) return Bad(here, "must be an object");
      const std::string_view type = StringOf(blocks[i].get_object().if_contains("type"));
      if (type != "text") {
        // OpenAI tool messages carry text only; moving an image elsewhere would change meaning.
        return Bad(At(here, "type"),
                   absl::StrCat("tool_result content of type \"", std::string(type),
                                "\" is not supported by Tollgate's /v1/messages (text only)"));
      }
      TOLLGATE_ASSIGN_OR_RETURN(json::object part, TextPart(blocks[i].get_object(), here));
      parts.push_back(std::move(part));
    }
    message["content"] = parts.empty() ? json::value("") : ContentOf(std::move(parts));
  } else {
    return Bad(At(path, "content"), "must be a string or an array of text blocks");
  }
  if (const json::value* is_error = block.if_contains("is_error"); !Absent(is_error)) {
    if (!is_error->is_bool()) return Bad(At(path, "is_error"), "must be a boolean");
    if (is_error->get_bool()) message["is_error"] = true;
  }
  TOLLGATE_ASSIGN_OR_RETURN(json::value cc, CacheControl(block, path));
  SetCacheControl(message, cc);
  return message;
}

// A user turn: consecutive non-tool_result blocks form one user message; each tool_result
// becomes a tool message in its position.
absl::Status UserMessages(const json::value& content, std::string_view path, json::array& out) {
  if (content.is_string()) {
    json::object message;
    message["role"] = "user";
    message["content"] = content;
    out.push_back(std::move(message));
    return absl::OkStatus();
  }
  json::array parts;
  auto flush = [&]() {
    if (parts.empty()) return;
    json::object message;
    message["role"] = "user";
    message["content"] = ContentOf(std::move(parts));
    parts = json::array();
    out.push_back(std::move(message));
  };
  const json::array& blocks = content.get_array();
  for (size_t i = 0; i < blocks.size(); ++i) {
    const std::string here = At(path, i);
    if (!blocks[i].is_object()) return Bad(here, "must be an object");
    const json::object& block = blocks[i].get_object();
    TOLLGATE_ASSIGN_OR_RETURN(std::string_view type, RequiredString(block, here, "type"));
    if (type == "text") {
      TOLLGATE_ASSIGN_OR_RETURN(json::object part, TextPart(block, here));
      parts.push_back(std::move(part));
    } else if (type == "image") {
      TOLLGATE_ASSIGN_OR_RETURN(json::object part, ImagePart(block, here));
      parts.push_back(std::move(part));
    } else if (type == "document") {
      TOLLGATE_ASSIGN_OR_RETURN(json::object part, DocumentPart(block, here));
      parts.push_back(std::move(part));
    } else if (type == "tool_result") {
      flush();
      TOLLGATE_ASSIGN_OR_RETURN(json::object message, ToolMessage(block, here));
      out.push_back(std::move(message));
    } else {
      return Bad(At(here, "type"),
                 absl::StrCat("content block type \"", std::string(type),
                              "\" is not supported in a user message by Tollgate's /v1/messages"));
    }
  }
  flush();
  return absl::OkStatus();
}

absl::StatusOr<json::object> AssistantMessage(const json::value& content, std::string_view path) {
  json::object message;
  message["role"] = "assistant";
  if (content.is_string()) {
    message["content"] = content;
    return message;
  }
  json::array parts;
  json::array tool_calls;
  bool has_thinking = false;
  const json::array& blocks = content.get_array();
  for (size_t i = 0; i < blocks.size(); ++i) {
    const std::string here = At(path, i);
    if (!blocks[i].is_object()) return Bad(here, "must be an object");
    const json::object& block = blocks[i].get_object();
    TOLLGATE_ASSIGN_OR_RETURN(std::string_view type, RequiredString(block, here, "type"));
    if (type == "text") {
      TOLLGATE_ASSIGN_OR_RETURN(json::object part, TextPart(block, here));
      parts.push_back(std::move(part));
    } else if (type == "tool_use") {
      TOLLGATE_RETURN_IF_ERROR(
          OnlyKnown(block, here, {"type", "id", "name", "input", "cache_control"}));
      TOLLGATE_ASSIGN_OR_RETURN(std::string_view id, RequiredString(block, here, "id", true));
      TOLLGATE_ASSIGN_OR_RETURN(std::string_view name, RequiredString(block, here, "name", true));
      const json::value* input = block.if_contains("input");
      if (Absent(input)) return Bad(At(here, "input"), "field required");
      if (!input->is_object()) return Bad(At(here, "input"), "must be an object");
      TOLLGATE_ASSIGN_OR_RETURN(json::value cc, CacheControl(block, here));
      if (!cc.is_null()) {
        // A breakpoint on the message's last block is the message's breakpoint; elsewhere the
        // internal form has no place for it.
        if (i + 1 != blocks.size()) {
          return Bad(At(here, "cache_control"),
                     "cache_control on a tool_use block is supported only on the last block of "
                     "the message");
        }
        message["cache_control"] = cc;
      }
      json::object function;
      function["name"] = name;
      function["arguments"] = json::serialize(*input);
      json::object call;
      call["id"] = id;
      call["type"] = "function";
      call["function"] = std::move(function);
      tool_calls.push_back(std::move(call));
    } else if (type == "thinking") {
      TOLLGATE_RETURN_IF_ERROR(OnlyKnown(block, here, {"type", "thinking", "signature"}));
      if (has_thinking) {
        return Bad(here,
                   "only one thinking block per assistant message is supported by "
                   "Tollgate's /v1/messages");
      }
      has_thinking = true;
      TOLLGATE_ASSIGN_OR_RETURN(std::string_view thinking, RequiredString(block, here, "thinking"));
      message["reasoning_content"] = thinking;
      if (const json::value* sig = block.if_contains("signature"); !Absent(sig)) {
        if (!sig->is_string()) return Bad(At(here, "signature"), "must be a string");
        if (!sig->get_string().empty()) message["reasoning_signature"] = *sig;
      }
    } else {
      return Bad(At(here, "type"),
                 absl::StrCat("content block type \"", std::string(type),
                              "\" is not supported in an assistant message by Tollgate's "
                              "/v1/messages"));
    }
  }
  if (!parts.empty()) {
    message["content"] = ContentOf(std::move(parts));
  } else {
    message["content"] = tool_calls.empty() ? json::value("") : json::value(nullptr);
  }
  if (!tool_calls.empty()) message["tool_calls"] = std::move(tool_calls);
  return message;
}

absl::StatusOr<json::object> FunctionTool(const json::value& tool, std::string_view path) {
  if (!tool.is_object()) return Bad(path, "must be an object");
  const json::object& t = tool.get_object();
  if (const json::value* type = t.if_contains("type"); !Absent(type)) {
    const std::string_view ty = StringOf(type);
    if (ty != "custom") {
      // Server tools (web_search_20250305, bash_20250124, ...) run inside Anthropic's API.
      return Bad(
          At(path, "type"),
          absl::StrCat("server tool \"", std::string(ty.empty() ? "?" : ty),
                       "\" is not supported by Tollgate's /v1/messages (custom tools only)"));
    }
  }
  TOLLGATE_RETURN_IF_ERROR(OnlyKnown(
      t, path, {"type", "name", "description", "input_schema", "cache_control", "strict"}));
  TOLLGATE_ASSIGN_OR_RETURN(std::string_view name, RequiredString(t, path, "name", true));
  const json::value* schema = t.if_contains("input_schema");
  if (Absent(schema)) return Bad(At(path, "input_schema"), "field required");
  if (!schema->is_object()) return Bad(At(path, "input_schema"), "must be an object");
  json::object function;
  function["name"] = name;
  if (const json::value* d = t.if_contains("description"); !Absent(d)) {
    if (!d->is_string()) return Bad(At(path, "description"), "must be a string");
    function["description"] = *d;
  }
  function["parameters"] = *schema;
  if (const json::value* s = t.if_contains("strict"); !Absent(s)) {
    if (!s->is_bool()) return Bad(At(path, "strict"), "must be a boolean");
    function["strict"] = *s;
  }
  TOLLGATE_ASSIGN_OR_RETURN(json::value cc, CacheControl(t, path));
  json::object out;
  out["type"] = "function";
  out["function"] = std::move(function);
  SetCacheControl(out, cc);
  return out;
}

// Anthropic's top-level cache_control (automatic caching) marks the last cacheable block.
void ApplyAutomaticCacheControl(json::array& messages, const json::value& cc) {
  if (cc.is_null() || messages.empty()) return;
  json::object& last = messages.back().get_object();
  if (last.contains("cache_control")) return;
  json::value& content = last["content"];
  if (content.is_string()) {
    json::object part;
    part["type"] = "text";
    part["text"] = content;
    json::array parts;
    parts.push_back(std::move(part));
    content = std::move(parts);
  }
  if (content.is_array() && !content.get_array().empty()) {
    json::object& part = content.get_array().back().get_object();
    if (!part.contains("cache_control")) part["cache_control"] = cc;
    return;
  }
  last["cache_control"] = cc;
}

// ---------------------------------------------------------------------------------------------
// Responses.

std::string_view StopReasonFor(std::string_view finish_reason, bool refusal, bool has_tools,
                               bool has_stop_sequence) {
  if (finish_reason == kFinishLength) return "max_tokens";
  if (finish_reason == kFinishToolCalls || finish_reason == "function_call") return "tool_use";
  if (finish_reason == kFinishContentFilter || refusal) return "refusal";
  if (finish_reason.empty() && has_tools) return "tool_use";
  if (has_stop_sequence) return "stop_sequence";
  return "end_turn";
}

int64_t Sub(int64_t a, int64_t b) { return a > b ? a - b : 0; }

// Anthropic usage from normalised usage (common.proto: input includes cache reads and writes).
json::object MessageUsage(const v1::TokenUsage& usage) {
  const int64_t writes = usage.cache_write_5m_tokens() + usage.cache_write_1h_tokens();
  json::object out;
  out["input_tokens"] = Sub(usage.input_tokens(), usage.cached_input_tokens() + writes);
  out["cache_creation_input_tokens"] = writes;
  out["cache_read_input_tokens"] = usage.cached_input_tokens();
  json::object creation;
  creation["ephemeral_5m_input_tokens"] = usage.cache_write_5m_tokens();
  creation["ephemeral_1h_input_tokens"] = usage.cache_write_1h_tokens();
  out["cache_creation"] = std::move(creation);
  out["output_tokens"] = usage.output_tokens();
  if (usage.reasoning_tokens() > 0) {
    json::object details;
    details["thinking_tokens"] = usage.reasoning_tokens();
    out["output_tokens_details"] = std::move(details);
  }
  return out;
}

// Text of an OpenAI message content: a string, or the text of its text parts.
std::string ContentText(const json::value* content) {
  if (content == nullptr) return {};
  if (content->is_string()) return std::string(StringOf(content));
  std::string text;
  if (content->is_array()) {
    for (const json::value& part : content->get_array()) {
      if (StringOf(Member(part, "type")) == "text") text += StringOf(Member(part, "text"));
    }
  }
  return text;
}

void AppendEvent(std::string_view type, const json::object& payload, std::string& out) {
  out.append("event: ");
  out.append(type);
  out.append("\ndata: ");
  out.append(json::serialize(payload));
  out.append("\n\n");
}

json::object TypedObject(std::string_view type) {
  json::object o;
  o["type"] = type;
  return o;
}

// Replaces invalid UTF-8 with U+FFFD so that any bytes can go into a JSON string.
std::string SanitizeUtf8(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  while (i < in.size()) {
    const unsigned char c = static_cast<unsigned char>(in[i]);
    size_t len = 0;
    uint32_t min = 0;
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      min = 0x10000;
    }
    bool ok = len > 0 && i + len <= in.size();
    uint32_t cp = ok ? (c & (0xFF >> (len + 1))) : 0;
    for (size_t k = 1; ok && k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(in[i + k]);
      if ((cc & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (ok && (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) ok = false;
    if (ok) {
      out.append(in.substr(i, len));
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return out;
}

std::string_view AnthropicTypeForOpenAiError(std::string_view type, std::string_view code) {
  static constexpr std::string_view kAnthropicTypes[] = {
      "invalid_request_error", "authentication_error", "billing_error",    "permission_error",
      "not_found_error",       "request_too_large",    "rate_limit_error", "api_error",
      "timeout_error",         "overloaded_error"};
  for (std::string_view t : kAnthropicTypes) {
    if (type == t) return t;
  }
  for (std::string_view v : {type, code}) {
    // 503 / UNAVAILABLE is what Anthropic calls overloaded (as for HTTP statuses below).
    if (v.find("overloaded") != std::string_view::npos ||
        v.find("unavailable") != std::string_view::npos) {
      return "overloaded_error";
    }
    if (v.find("rate_limit") != std::string_view::npos || v == "insufficient_quota") {
      return "rate_limit_error";
    }
    if (v.find("timeout") != std::string_view::npos) return "timeout_error";
  }
  return "api_error";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Requests.

absl::StatusOr<json::object> MessagesToChatRequest(const json::value& body) {
  if (!body.is_object()) return Bad("", "the request body must be a JSON object");
  const json::object& req = body.get_object();
  for (const auto& member : req) {
    if (HasNonFinite(member.value())) {
      return Bad(ParamName(std::string_view(member.key().data(), member.key().size())),
                 "contains a number out of range");
    }
  }
  // Known Messages API fields the internal form cannot carry get a specific message.
  for (std::string_view unsupported :
       {"container", "mcp_servers", "context_management", "diagnostics", "inference_geo", "speed",
        "user_profile_id", "workspace_id"}) {
    if (const json::value* v = req.if_contains(unsupported); !Absent(v)) {
      return Bad(unsupported, "is not supported by Tollgate's /v1/messages");
    }
  }
  TOLLGATE_RETURN_IF_ERROR(
      OnlyKnown(req, "",
                {"model", "max_tokens", "messages", "system", "stop_sequences", "stream",
                 "temperature", "top_p", "top_k", "metadata", "tools", "tool_choice", "thinking",
                 "service_tier", "cache_control", "output_config"}));

  json::object chat;
  TOLLGATE_ASSIGN_OR_RETURN(std::string_view model, RequiredString(req, "", "model", true));
  chat["model"] = model;

  const json::value* max_tokens = req.if_contains("max_tokens");
  if (Absent(max_tokens)) return Bad("max_tokens", "field required");
  const std::optional<int64_t> max_tokens_n = IntegerOf(*max_tokens);
  if (!max_tokens_n || *max_tokens_n < 1) return Bad("max_tokens", "must be a positive integer");

  const json::value* messages_v = req.if_contains("messages");
  if (Absent(messages_v)) return Bad("messages", "field required");
  if (!messages_v->is_array() || messages_v->get_array().empty()) {
    return Bad("messages", "must be a non-empty array of messages");
  }
  json::array messages;
  if (const json::value* system = req.if_contains("system"); !Absent(system)) {
    TOLLGATE_ASSIGN_OR_RETURN(json::object message, SystemMessage(*system, "system"));
    messages.push_back(std::move(message));
  }
  const json::array& in = messages_v->get_array();
  for (size_t i = 0; i < in.size(); ++i) {
    const std::string here = At("messages", i);
    if (!in[i].is_object()) return Bad(here, "must be an object");
    const json::object& m = in[i].get_object();
    TOLLGATE_RETURN_IF_ERROR(OnlyKnown(m, here, {"role", "content"}));
    TOLLGATE_ASSIGN_OR_RETURN(std::string_view role, RequiredString(m, here, "role"));
    const std::string content_path = At(here, "content");
    const json::value* content = m.if_contains("content");
    if (Absent(content)) return Bad(content_path, "field required");
    if (!content->is_string() && !content->is_array()) {
      return Bad(content_path, "must be a string or an array of content blocks");
    }
    if (content->is_array() && content->get_array().empty()) {
      return Bad(content_path, "must not be empty");
    }
    if (role == "user") {
      TOLLGATE_RETURN_IF_ERROR(UserMessages(*content, content_path, messages));
    } else if (role == "assistant") {
      TOLLGATE_ASSIGN_OR_RETURN(json::object message, AssistantMessage(*content, content_path));
      messages.push_back(std::move(message));
    } else if (role == "system") {
      TOLLGATE_ASSIGN_OR_RETURN(json::object message, SystemMessage(*content, content_path));
      messages.push_back(std::move(message));
    } else {
      return Bad(At(here, "role"), "must be \"user\" or \"assistant\"");
    }
  }
  TOLLGATE_ASSIGN_OR_RETURN(json::value auto_cc, CacheControl(req, ""));
  ApplyAutomaticCacheControl(messages, auto_cc);
  chat["messages"] = std::move(messages);
  chat["max_tokens"] = *max_tokens_n;

  if (const json::value* stream = req.if_contains("stream"); !Absent(stream)) {
    if (!stream->is_bool()) return Bad("stream", "must be a boolean");
    if (stream->get_bool()) {
      chat["stream"] = true;
      // The encoder's message_delta needs the final usage; the gateway forces it upstream too.
      json::object options;
      options["include_usage"] = true;
      chat["stream_options"] = std::move(options);
    }
  }
  if (const json::value* stop = req.if_contains("stop_sequences"); !Absent(stop)) {
    if (!stop->is_array()) return Bad("stop_sequences", "must be an array of strings");
    for (size_t i = 0; i < stop->get_array().size(); ++i) {
      if (!stop->get_array()[i].is_string()) {
        return Bad(At("stop_sequences", i), "must be a string");
      }
    }
    if (!stop->get_array().empty()) chat["stop"] = *stop;
  }
  for (const char* name : {"temperature", "top_p"}) {
    const json::value* v = req.if_contains(name);
    if (Absent(v)) continue;
    if (!v->is_number() || !(NumberOf(*v) >= 0 && NumberOf(*v) <= 1)) {
      return Bad(name, "must be a number between 0 and 1");
    }
    chat[name] = *v;
  }
  if (const json::value* top_k = req.if_contains("top_k"); !Absent(top_k)) {
    const std::optional<int64_t> k = IntegerOf(*top_k);
    if (!k || *k < 0) return Bad("top_k", "must be a non-negative integer");
    chat["top_k"] = *k;
  }
  if (const json::value* metadata = req.if_contains("metadata"); !Absent(metadata)) {
    if (!metadata->is_object()) return Bad("metadata", "must be an object");
    TOLLGATE_RETURN_IF_ERROR(OnlyKnown(metadata->get_object(), "metadata", {"user_id"}));
    if (const json::value* user = Member(*metadata, "user_id"); !Absent(user)) {
      if (!user->is_string()) return Bad("metadata.user_id", "must be a string");
      chat["user"] = *user;
    }
  }
  if (const json::value* tier = req.if_contains("service_tier"); !Absent(tier)) {
    const std::string_view t = StringOf(tier);
    if (t != "auto" && t != "standard_only") {
      return Bad("service_tier", "must be \"auto\" or \"standard_only\"");
    }
  }

  bool has_tools = false;
  if (const json::value* tools = req.if_contains("tools"); !Absent(tools)) {
    if (!tools->is_array()) return Bad("tools", "must be an array");
    json::array out;
    for (size_t i = 0; i < tools->get_array().size(); ++i) {
      TOLLGATE_ASSIGN_OR_RETURN(json::object tool,
                                FunctionTool(tools->get_array()[i], At("tools", i)));
      out.push_back(std::move(tool));
    }
    has_tools = !out.empty();
    if (has_tools) chat["tools"] = std::move(out);
  }
  if (const json::value* choice = req.if_contains("tool_choice"); !Absent(choice)) {
    if (!choice->is_object()) return Bad("tool_choice", "must be an object");
    const json::object& c = choice->get_object();
    TOLLGATE_RETURN_IF_ERROR(
        OnlyKnown(c, "tool_choice", {"type", "name", "disable_parallel_tool_use"}));
    TOLLGATE_ASSIGN_OR_RETURN(std::string_view type, RequiredString(c, "tool_choice", "type"));
    json::value openai_choice;
    if (type == "auto") {
      openai_choice = "auto";
    } else if (type == "any") {
      openai_choice = "required";
    } else if (type == "none") {
      openai_choice = "none";
    } else if (type == "tool") {
      TOLLGATE_ASSIGN_OR_RETURN(std::string_view name,
                                RequiredString(c, "tool_choice", "name", true));
      json::object function;
      function["name"] = name;
      json::object named;
      named["type"] = "function";
      named["function"] = std::move(function);
      openai_choice = std::move(named);
    } else {
      return Bad("tool_choice.type", "must be \"auto\", \"any\", \"tool\" or \"none\"");
    }
    if (has_tools) {
      chat["tool_choice"] = std::move(openai_choice);
    } else if (type == "any" || type == "tool") {
      return Bad("tool_choice", "requires tools");
    }
    if (const json::value* d = c.if_contains("disable_parallel_tool_use"); !Absent(d)) {
      if (!d->is_bool()) return Bad("tool_choice.disable_parallel_tool_use", "must be a boolean");
      if (d->get_bool() && has_tools) chat["parallel_tool_calls"] = false;
    }
  }
  if (const json::value* thinking = req.if_contains("thinking"); !Absent(thinking)) {
    if (!thinking->is_object()) return Bad("thinking", "must be an object");
    const json::object& t = thinking->get_object();
    TOLLGATE_ASSIGN_OR_RETURN(std::string_view type, RequiredString(t, "thinking", "type"));
    if (type == "enabled") {
      TOLLGATE_RETURN_IF_ERROR(OnlyKnown(t, "thinking", {"type", "budget_tokens", "display"}));
      const json::value* budget = t.if_contains("budget_tokens");
      if (Absent(budget)) return Bad("thinking.budget_tokens", "field required");
      if (const std::optional<int64_t> b = IntegerOf(*budget); !b || *b < 1) {
        return Bad("thinking.budget_tokens", "must be a positive integer");
      }
      chat["thinking"] = *thinking;
    } else if (type == "adaptive") {
      TOLLGATE_RETURN_IF_ERROR(OnlyKnown(t, "thinking", {"type", "display"}));
      chat["thinking"] = *thinking;
    } else if (type == "disabled") {
      TOLLGATE_RETURN_IF_ERROR(OnlyKnown(t, "thinking", {"type"}));
    } else {
      return Bad("thinking.type", "must be \"enabled\", \"adaptive\" or \"disabled\"");
    }
    if (const json::value* display = t.if_contains("display"); !Absent(display)) {
      const std::string_view d = StringOf(display);
      if (d != "summarized" && d != "omitted") {
        return Bad("thinking.display", "must be \"summarized\" or \"omitted\"");
      }
    }
  }
  if (const json::value* config = req.if_contains("output_config"); !Absent(config)) {
    if (!config->is_object()) return Bad("output_config", "must be an object");
    TOLLGATE_RETURN_IF_ERROR(OnlyKnown(config->get_object(), "output_config", {"format"}));
    if (const json::value* format = Member(*config, "format"); !Absent(format)) {
      if (!format->is_object()) return Bad("output_config.format", "must be an object");
      TOLLGATE_RETURN_IF_ERROR(
          OnlyKnown(format->get_object(), "output_config.format", {"type", "schema"}));
      if (StringOf(Member(*format, "type")) != "json_schema") {
        return Bad("output_config.format.type", "must be \"json_schema\"");
      }
      const json::value* schema = Member(*format, "schema");
      if (Absent(schema) || !schema->is_object()) {
        return Bad("output_config.format.schema", "must be an object");
      }
      // Anthropic's structured outputs always follow the schema: OpenAI's strict mode.
      json::object js;
      js["name"] = "output";
      js["schema"] = *schema;
      js["strict"] = true;
      json::object rf;
      rf["type"] = "json_schema";
      rf["json_schema"] = std::move(js);
      chat["response_format"] = std::move(rf);
    }
  }
  return chat;
}

// ---------------------------------------------------------------------------------------------
// Non-stream responses.

std::string MessageIdFromChatId(std::string_view chat_id) {
  if (chat_id.substr(0, 4) == "msg_") return std::string(chat_id);
  if (chat_id.substr(0, 9) == "chatcmpl-") chat_id.remove_prefix(9);
  return absl::StrCat("msg_", std::string(chat_id));
}

absl::StatusOr<std::string> ChatResponseToMessage(std::string_view openai_body,
                                                  const v1::TokenUsage& usage,
                                                  std::string_view model) {
  json::error_code ec;
  json::value root = json::parse(openai_body, ec);
  if (ec || !root.is_object()) {
    return absl::DataLossError("the upstream response is not a JSON chat completion");
  }
  const json::value* choices = Member(root, "choices");
  if (choices == nullptr || !choices->is_array() || choices->get_array().empty()) {
    return absl::DataLossError("the upstream response has no choices");
  }
  const json::value& choice = choices->get_array()[0];
  const json::value* message = Member(choice, "message");
  if (message == nullptr || !message->is_object()) {
    return absl::DataLossError("the upstream response has no message");
  }

  json::array content;
  if (const json::value* reasoning = Member(*message, "reasoning_content");
      reasoning != nullptr && reasoning->is_string()) {
    json::object block = TypedObject("thinking");
    block["thinking"] = *reasoning;
    block["signature"] = StringOf(Member(*message, "reasoning_signature"));
    content.push_back(std::move(block));
  }
  std::string text = ContentText(Member(*message, "content"));
  const std::string_view refusal = StringOf(Member(*message, "refusal"));
  if (!refusal.empty()) text.append(refusal);
  if (!text.empty()) {
    json::object block = TypedObject("text");
    block["text"] = text;
    content.push_back(std::move(block));
  }
  bool has_tools = false;
  if (const json::value* calls = Member(*message, "tool_calls"); calls && calls->is_array()) {
    for (size_t i = 0; i < calls->get_array().size(); ++i) {
      const json::value& call = calls->get_array()[i];
      const json::value* function = Member(call, "function");
      json::object block = TypedObject("tool_use");
      std::string id(StringOf(Member(call, "id")));
      if (id.empty()) id = absl::StrCat("toolu_", i);
      block["id"] = id;
      block["name"] = StringOf(Member(function, "name"));
      const std::string_view arguments = StringOf(Member(function, "arguments"));
      json::value input;
      if (arguments.find_first_not_of(" \t\r\n") == std::string_view::npos) {
        input = json::object();
      } else {
        input = json::parse(arguments, ec);
        if (ec || !input.is_object() || HasNonFinite(input)) {
          return absl::DataLossError(
              absl::StrCat("the arguments of tool call \"", id, "\" are not a JSON object"));
        }
      }
      block["input"] = std::move(input);
      content.push_back(std::move(block));
      has_tools = true;
    }
  }

  const std::string_view stop_sequence = StringOf(Member(choice, "stop_sequence"));
  const std::string_view finish = StringOf(Member(choice, "finish_reason"));
  json::object out;
  out["id"] = MessageIdFromChatId(StringOf(Member(root, "id")));
  out["type"] = "message";
  out["role"] = "assistant";
  out["model"] = model.empty() ? StringOf(Member(root, "model")) : model;
  out["content"] = std::move(content);
  const std::string_view stop_reason =
      StopReasonFor(finish, !refusal.empty(), has_tools, !stop_sequence.empty());
  out["stop_reason"] = stop_reason;
  if (stop_reason == "stop_sequence") {
    out["stop_sequence"] = stop_sequence;
  } else {
    out["stop_sequence"] = nullptr;
  }
  out["usage"] = MessageUsage(usage);
  return json::serialize(out);
}

// ---------------------------------------------------------------------------------------------
// Streams.

MessagesStreamEncoder::MessagesStreamEncoder(std::string message_id, std::string model)
    : message_id_(std::move(message_id)), model_(std::move(model)) {}

void MessagesStreamEncoder::Start(std::string& out) {
  if (started_) return;
  started_ = true;
  json::object message;
  message["id"] = message_id_.empty() ? std::string("msg_tollgate") : message_id_;
  message["type"] = "message";
  message["role"] = "assistant";
  message["model"] = model_;
  message["content"] = json::array();
  message["stop_reason"] = nullptr;
  message["stop_sequence"] = nullptr;
  message["usage"] = MessageUsage(v1::TokenUsage());
  json::object start = TypedObject("message_start");
  start["message"] = std::move(message);
  AppendEvent("message_start", start, out);
  AppendEvent("ping", TypedObject("ping"), out);
}

void MessagesStreamEncoder::OpenBlock(BlockKind kind, std::string& out) {
  open_kind_ = kind;
  open_block_ = next_block_++;
  json::object block;
  if (kind == BlockKind::kText) {
    block = TypedObject("text");
    block["text"] = "";
  } else {
    block = TypedObject("thinking");
    block["thinking"] = "";
    block["signature"] = "";
  }
  json::object event = TypedObject("content_block_start");
  event["index"] = open_block_;
  event["content_block"] = std::move(block);
  AppendEvent("content_block_start", event, out);
}

void MessagesStreamEncoder::CloseBlock(std::string& out) {
  if (open_kind_ == BlockKind::kNone) return;
  json::object event = TypedObject("content_block_stop");
  event["index"] = open_block_;
  AppendEvent("content_block_stop", event, out);
  if (open_kind_ == BlockKind::kTool) tools_[open_tool_].closed = true;
  open_kind_ = BlockKind::kNone;
  open_block_ = -1;
  open_tool_ = -1;
}

void MessagesStreamEncoder::EmitPending(ToolCall& call, std::string& out) {
  if (call.emitted >= call.arguments.size()) return;
  json::object delta = TypedObject("input_json_delta");
  delta["partial_json"] = std::string_view(call.arguments).substr(call.emitted);
  call.emitted = call.arguments.size();
  json::object event = TypedObject("content_block_delta");
  event["index"] = call.block;
  event["delta"] = std::move(delta);
  AppendEvent("content_block_delta", event, out);
}

void MessagesStreamEncoder::StartNextTool(std::string& out) {
  CloseBlock(out);
  const size_t slot = next_queued_++;
  ToolCall& call = tools_[slot];
  call.block = next_block_++;
  if (call.id.empty()) {
    // A provider that sent no id: one that is unique within the message.
    call.id = absl::StrCat("toolu_", message_id_, "_", call.openai_index);
  }
  json::object block = TypedObject("tool_use");
  block["id"] = call.id;
  block["name"] = call.name;
  block["input"] = json::object();
  json::object event = TypedObject("content_block_start");
  event["index"] = call.block;
  event["content_block"] = std::move(block);
  AppendEvent("content_block_start", event, out);
  open_kind_ = BlockKind::kTool;
  open_block_ = call.block;
  open_tool_ = static_cast<int>(slot);
  EmitPending(call, out);
}

bool MessagesStreamEncoder::OpenToolComplete() {
  ToolCall& call = tools_[open_tool_];
  if (call.checked_size != call.arguments.size()) {
    json::error_code ec;
    json::value v = json::parse(call.arguments, ec);
    call.complete = !ec;
    call.checked_size = call.arguments.size();
  }
  return call.complete;
}

void MessagesStreamEncoder::FlushHeldTools(std::string& out) {
  while (next_queued_ < tools_.size()) StartNextTool(out);
  CloseBlock(out);
}

void MessagesStreamEncoder::OnTextDelta(BlockKind kind, std::string_view text, std::string& out) {
  if (text.empty()) return;
  if (open_kind_ != kind) {
    FlushHeldTools(out);  // closes the open block too
    OpenBlock(kind, out);
  }
  json::object delta;
  if (kind == BlockKind::kText) {
    delta = TypedObject("text_delta");
    delta["text"] = text;
  } else {
    delta = TypedObject("thinking_delta");
    delta["thinking"] = text;
  }
  json::object event = TypedObject("content_block_delta");
  event["index"] = open_block_;
  event["delta"] = std::move(delta);
  AppendEvent("content_block_delta", event, out);
}

void MessagesStreamEncoder::OnSignature(std::string_view signature, std::string& out) {
  if (signature.empty()) return;
  if (open_kind_ != BlockKind::kThinking) {
    FlushHeldTools(out);
    OpenBlock(BlockKind::kThinking, out);
  }
  json::object delta = TypedObject("signature_delta");
  delta["signature"] = signature;
  json::object event = TypedObject("content_block_delta");
  event["index"] = open_block_;
  event["delta"] = std::move(delta);
  AppendEvent("content_block_delta", event, out);
}

void MessagesStreamEncoder::OnToolDelta(const json::value& fragment, std::string& out) {
  const json::value* index_v = Member(fragment, "index");
  const int64_t index = (index_v != nullptr && index_v->is_number()) ? CountOf(index_v) : 0;
  size_t slot = 0;
  while (slot < tools_.size() && tools_[slot].openai_index != index) ++slot;
  if (slot == tools_.size()) {
    ToolCall call;
    call.openai_index = index;
    tools_.push_back(std::move(call));
  }
  ToolCall& call = tools_[slot];
  const json::value* function = Member(fragment, "function");
  const std::string_view arguments = StringOf(Member(function, "arguments"));
  if (call.closed) {
    if (arguments.find_first_not_of(" \t\r\n") == std::string_view::npos) return;
    // Anthropic blocks cannot be reopened; the call is no longer representable.
    Error("api_error",
          absl::StrCat("the upstream sent more arguments for tool call ", index,
                       " after it had ended"),
          out);
    return;
  }
  if (call.block < 0) {
    if (call.id.empty()) call.id = std::string(StringOf(Member(fragment, "id")));
    if (call.name.empty()) call.name = std::string(StringOf(Member(function, "name")));
  }
  call.arguments.append(arguments);
  if (open_kind_ != BlockKind::kTool) StartNextTool(out);  // closes a text / thinking block
  EmitPending(tools_[open_tool_], out);
  // The open call is finished once its arguments are complete JSON and another call follows.
  while (next_queued_ < tools_.size() && OpenToolComplete()) StartNextTool(out);
}

void MessagesStreamEncoder::OnChunk(std::string_view data, std::string& out) {
  if (finished_ || data == "[DONE]") return;
  json::error_code ec;
  json::value root = json::parse(data, ec);
  if (ec || !root.is_object()) return;
  if (!started_) {
    if (message_id_.empty()) message_id_ = MessageIdFromChatId(StringOf(Member(root, "id")));
    if (model_.empty()) model_ = std::string(StringOf(Member(root, "model")));
  }
  if (const json::value* error = Member(root, "error"); error != nullptr && !error->is_null()) {
    std::string message(StringOf(Member(error, "message")));
    if (message.empty()) message = "the upstream reported an error";
    Error(AnthropicTypeForOpenAiError(StringOf(Member(error, "type")),
                                      StringOf(Member(error, "code"))),
          message, out);
    return;
  }
  Start(out);
  if (const json::value* usage = Member(root, "usage"); usage && usage->is_object()) {
    if (std::optional<v1::TokenUsage> u = UsageFromJson(*usage)) {
      usage_ = *u;
      has_usage_ = true;
    }
  }
  const json::value* choices = Member(root, "choices");
  if (choices == nullptr || !choices->is_array()) return;
  for (const json::value& choice : choices->get_array()) {
    if (CountOf(Member(choice, "index")) != 0) continue;  // n is always 1 here
    if (const json::value* delta = Member(choice, "delta")) {
      OnTextDelta(BlockKind::kThinking, StringOf(Member(*delta, "reasoning_content")), out);
      OnSignature(StringOf(Member(*delta, "reasoning_signature")), out);
      OnTextDelta(BlockKind::kText, StringOf(Member(*delta, "content")), out);
      const std::string_view refusal = StringOf(Member(*delta, "refusal"));
      if (!refusal.empty()) {
        refusal_ = true;
        OnTextDelta(BlockKind::kText, refusal, out);
      }
      if (const json::value* calls = Member(*delta, "tool_calls"); calls && calls->is_array()) {
        for (const json::value& call : calls->get_array()) {
          OnToolDelta(call, out);
          if (finished_) return;
        }
      }
    }
    const std::string_view finish = StringOf(Member(choice, "finish_reason"));
    if (!finish.empty()) finish_reason_ = std::string(finish);
    const std::string_view stop = StringOf(Member(choice, "stop_sequence"));
    if (!stop.empty()) stop_sequence_ = std::string(stop);
  }
}

void MessagesStreamEncoder::Finish(const v1::TokenUsage& usage, std::string& out) {
  if (finished_) return;
  Start(out);
  FlushHeldTools(out);
  finished_ = true;
  const std::string_view stop_reason =
      StopReasonFor(finish_reason_, refusal_, !tools_.empty(), !stop_sequence_.empty());
  json::object delta;
  delta["stop_reason"] = stop_reason;
  if (stop_reason == "stop_sequence") {
    delta["stop_sequence"] = stop_sequence_;
  } else {
    delta["stop_sequence"] = nullptr;
  }
  json::object event = TypedObject("message_delta");
  event["delta"] = std::move(delta);
  event["usage"] = MessageUsage(usage);
  AppendEvent("message_delta", event, out);
  AppendEvent("message_stop", TypedObject("message_stop"), out);
}

void MessagesStreamEncoder::Error(std::string_view type, std::string_view message,
                                  std::string& out) {
  if (finished_) return;
  finished_ = true;
  out.append("event: error\ndata: ");
  out.append(MessagesErrorJson(type, message));
  out.append("\n\n");
}

// ---------------------------------------------------------------------------------------------
// Errors.

std::string_view MessagesErrorType(unsigned status) {
  switch (status) {
    case 400:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 402:
      return "billing_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 503:
    case 529:
      return "overloaded_error";
    case 504:
      return "timeout_error";
    default:
      return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

std::string MessagesErrorJson(std::string_view type, std::string_view message,
                              std::string_view request_id) {
  json::object error;
  error["type"] = type;
  error["message"] = SanitizeUtf8(message);
  json::object out = TypedObject("error");
  out["error"] = std::move(error);
  if (!request_id.empty()) out["request_id"] = SanitizeUtf8(request_id);
  return json::serialize(out);
}

std::string MessagesErrorBody(unsigned status, std::string_view openai_error_body,
                              std::string_view request_id) {
  constexpr size_t kMaxRawMessage = 1024;
  json::error_code ec;
  json::value root = json::parse(openai_error_body, ec);
  std::string message;
  if (!ec) {
    const json::value* error = Member(root, "error");
    message = std::string(StringOf(Member(error, "message")));
    if (message.empty() && error != nullptr && error->is_string()) {
      message = std::string(StringOf(error));
    }
    if (message.empty()) message = std::string(StringOf(Member(root, "message")));
  }
  if (message.empty()) {
    std::string_view raw = openai_error_body;
    if (raw.size() > kMaxRawMessage) raw = raw.substr(0, kMaxRawMessage);
    message = raw.empty() ? absl::StrCat("upstream error (HTTP ", status, ")") : std::string(raw);
  }
  return MessagesErrorJson(MessagesErrorType(status), message, request_id);
}

}  // namespace tollgate::gateway
