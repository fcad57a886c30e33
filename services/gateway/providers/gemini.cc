#include "services/gateway/providers/gemini.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "boost/json/parse.hpp"
#include "boost/json/serialize.hpp"
#include "services/gateway/openai_dialect.h"
#include "services/gateway/providers/json_util.h"

namespace tollgate::gateway {
namespace {

namespace json = boost::json;

constexpr std::string_view kDialect = "gemini";
constexpr int kMaxSchemaDepth = 32;

absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string_view Sv(const json::string& s) { return std::string_view(s.data(), s.size()); }
// Deleted so that a json::string_view (an object key) is never turned into a temporary
// json::string whose view would dangle.
std::string_view Sv(json::string_view) = delete;

// A value that is present and not null.
const json::value* Present(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v == nullptr || v->is_null() ? nullptr : v;
}

std::string DeploymentLabel(const ProviderCall& call) {
  if (call.deployment == nullptr || call.deployment->id().empty()) return "";
  return absl::StrCat(" (deployment '", call.deployment->id(), "')");
}

// 400 for a parameter Gemini cannot honour.
absl::Status Unsupported(std::string_view param, const ProviderCall& call,
                         std::string_view why = {}) {
  return InvalidParamError(param,
                           absl::StrCat("'", Av(param), "' is not supported by the gemini dialect",
                                        DeploymentLabel(call), why.empty() ? "" : ": ", Av(why)));
}

// 400 for a parameter whose value is malformed or cannot be translated.
absl::Status Invalid(std::string_view param, const ProviderCall& call, std::string_view why) {
  return InvalidParamError(param, absl::StrCat("invalid '", Av(param), "' for the gemini dialect",
                                               DeploymentLabel(call), ": ", Av(why)));
}

std::string UpstreamModel(const ProviderCall& call) {
  std::string model = call.deployment != nullptr ? call.deployment->upstream_model() : "";
  if (absl::StartsWith(model, "models/")) model.erase(0, 7);
  return model;
}

// The model as a path segment: unreserved characters kept, the rest percent-encoded.
std::string PathSegment(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> AuthHeaders(const ProviderCall& call) {
  std::vector<std::pair<std::string, std::string>> headers;
  if (!call.api_key.empty()) headers.emplace_back("x-goog-api-key", std::string(call.api_key));
  return headers;
}

bool IsNumber(const json::value& v) {
  return v.is_int64() || v.is_uint64() || (v.is_double() && std::isfinite(v.get_double()));
}

// No infinite / NaN number anywhere in `v` (JSON cannot carry them: 1e999 parses as infinity).
// Recursion is bounded by the parser's depth limit.
bool Finite(const json::value& v) {
  if (v.is_double()) return std::isfinite(v.get_double());
  if (v.is_array()) {
    return std::all_of(v.get_array().begin(), v.get_array().end(),
                       [](const json::value& e) { return Finite(e); });
  }
  if (v.is_object()) {
    return std::all_of(v.get_object().begin(), v.get_object().end(),
                       [](const auto& kv) { return Finite(kv.value()); });
  }
  return true;
}

std::optional<int64_t> IntegerOf(const json::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64()) {
    if (v.get_uint64() > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(v.get_uint64());
  }
  if (v.is_double()) {
    const double d = v.get_double();
    if (std::floor(d) != d || !(std::fabs(d) < 9.0e18)) return std::nullopt;
    return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Schemas.

constexpr std::array<std::string_view, 14> kCopiedSchemaKeys = {
    "title",         "description",   "nullable",  "maxItems",  "minItems",
    "minProperties", "maxProperties", "minLength", "maxLength", "pattern",
    "example",       "default",       "minimum",   "maximum"};

const json::value* ResolveRef(const json::value& root, std::string_view ref) {
  for (std::string_view prefix : {"#/$defs/", "#/definitions/"}) {
    if (!absl::StartsWith(Av(ref), Av(prefix))) continue;
    const std::string_view name = ref.substr(prefix.size());
    const json::value* defs = Member(root, prefix == "#/$defs/" ? "$defs" : "definitions");
    return Member(defs, name);
  }
  if (ref == "#") return &root;
  return nullptr;
}

absl::Status ConvertSchema(const json::value& root, const json::value& in, std::string_view param,
                           int depth, json::object& out);

absl::StatusOr<json::value> ConvertSub(const json::value& root, const json::value& in,
                                       std::string_view param, int depth) {
  json::object out;
  absl::Status st = ConvertSchema(root, in, param, depth, out);
  if (!st.ok()) return st;
  return json::value(std::move(out));
}

absl::Status ConvertSchema(const json::value& root, const json::value& in, std::string_view param,
                           int depth, json::object& out) {
  if (depth > kMaxSchemaDepth) {
    return InvalidParamError(param, absl::StrCat("invalid '", Av(param),
                                                 "' for the gemini dialect: the schema nests "
                                                 "(or recurses through $ref) deeper than ",
                                                 kMaxSchemaDepth, " levels"));
  }
  const json::object* schema = in.if_object();
  if (schema == nullptr) return absl::OkStatus();  // `true` / garbage: any value
  if (const json::value* ref = Present(*schema, "$ref")) {
    const json::value* target =
        ref->is_string() ? ResolveRef(root, Sv(ref->get_string())) : nullptr;
    if (target == nullptr) {
      return InvalidParamError(
          param, absl::StrCat("invalid '", Av(param),
                              "' for the gemini dialect: cannot resolve "
                              "$ref ",
                              ref->is_string() ? std::string(Sv(ref->get_string())) : "",
                              " (only local #/$defs/ and #/definitions/ references are inlined)"));
    }
    absl::Status st = ConvertSchema(root, *target, param, depth + 1, out);
    if (!st.ok()) return st;
    // Sibling keywords of $ref (description, ...) refine the referenced schema.
  }
  if (const json::value* all = Present(*schema, "allOf")) {
    if (!all->is_array() || all->get_array().size() != 1) {
      return InvalidParamError(param,
                               absl::StrCat("invalid '", Av(param),
                                            "' for the gemini dialect: allOf with more than one "
                                            "schema cannot be expressed in Gemini's schema"));
    }
    absl::Status st = ConvertSchema(root, all->get_array()[0], param, depth + 1, out);
    if (!st.ok()) return st;
  }
  for (std::string_view key : kCopiedSchemaKeys) {
    if (const json::value* v = schema->if_contains(key)) out[key] = *v;
  }
  bool nullable = false;
  if (const json::value* type = Present(*schema, "type")) {
    if (type->is_string()) {
      if (type->get_string() == "null") {
        nullable = true;
      } else {
        out["type"] = *type;
      }
    } else if (type->is_array()) {
      std::vector<std::string_view> types;
      for (const json::value& t : type->get_array()) {
        if (!t.is_string()) continue;
        if (t.get_string() == "null") {
          nullable = true;
        } else {
          types.push_back(Sv(t.get_string()));
        }
      }
      if (types.size() == 1) {
        out["type"] = types[0];
      } else if (types.size() > 1) {
        json::array any;
        for (std::string_view t : types) any.push_back(json::object{{"type", t}});
        out["anyOf"] = std::move(any);
      }
    }
  }
  if (nullable) out["nullable"] = true;
  if (const json::value* format = Present(*schema, "format"); format && format->is_string()) {
    const std::string_view f = Sv(format->get_string());
    if (f == "date-time" || f == "enum" || f == "float" || f == "double" || f == "int32" ||
        f == "int64") {
      out["format"] = f;
    }
  }
  const json::value* values = Present(*schema, "enum");
  json::array constant;
  if (const json::value* c = Present(*schema, "const"); c && c->is_string() && !values) {
    constant.push_back(*c);
  }
  if (values == nullptr && !constant.empty()) {
    out["enum"] = std::move(constant);
  } else if (values != nullptr && values->is_array()) {
    const json::array& list = values->get_array();
    if (!list.empty() &&
        std::all_of(list.begin(), list.end(), [](const json::value& v) { return v.is_string(); })) {
      out["enum"] = *values;
    }
  }
  if (out.contains("enum") && !out.contains("type")) out["type"] = "string";
  if (const json::value* props = Present(*schema, "properties"); props && props->is_object()) {
    json::object converted;
    for (const auto& kv : props->get_object()) {
      auto sub = ConvertSub(root, kv.value(), param, depth + 1);
      if (!sub.ok()) return sub.status();
      converted[kv.key()] = std::move(*sub);
    }
    out["properties"] = std::move(converted);
  }
  if (const json::value* req = Present(*schema, "required"); req && req->is_array()) {
    const json::object* props =
        out.contains("properties") ? out["properties"].if_object() : nullptr;
    json::array kept;
    for (const json::value& name : req->get_array()) {
      if (!name.is_string()) continue;
      if (props != nullptr && !props->contains(name.get_string())) continue;
      kept.push_back(name);
    }
    if (!kept.empty()) out["required"] = std::move(kept);
  }
  if (const json::value* items = Present(*schema, "items")) {
    if (items->is_array()) {
      return InvalidParamError(
          param, absl::StrCat("invalid '", Av(param),
                              "' for the gemini dialect: tuple `items` (an array of schemas) "
                              "cannot be expressed in Gemini's schema"));
    }
    auto sub = ConvertSub(root, *items, param, depth + 1);
    if (!sub.ok()) return sub.status();
    out["items"] = std::move(*sub);
  }
  for (std::string_view key : {"anyOf", "oneOf"}) {
    const json::value* list = Present(*schema, key);
    if (list == nullptr || !list->is_array()) continue;
    json::array converted;
    for (const json::value& s : list->get_array()) {
      auto sub = ConvertSub(root, s, param, depth + 1);
      if (!sub.ok()) return sub.status();
      converted.push_back(std::move(*sub));
    }
    out["anyOf"] = std::move(converted);
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Requests.

// Top-level request fields that this adapter translates.
constexpr std::array<std::string_view, 22> kHandledFields = {"model",
                                                             "messages",
                                                             "stream",
                                                             "stream_options",
                                                             "tools",
                                                             "tool_choice",
                                                             "response_format",
                                                             "max_tokens",
                                                             "max_completion_tokens",
                                                             "temperature",
                                                             "top_p",
                                                             "top_k",
                                                             "stop",
                                                             "n",
                                                             "seed",
                                                             "presence_penalty",
                                                             "frequency_penalty",
                                                             "reasoning_effort",
                                                             "logprobs",
                                                             "top_logprobs",
                                                             "parallel_tool_calls",
                                                             "modalities"};
// Fields that do not change the generated answer (or have no Gemini meaning): dropped.
constexpr std::array<std::string_view, 8> kIgnoredFields = {"user",
                                                            "store",
                                                            "metadata",
                                                            "service_tier",
                                                            "prompt_cache_key",
                                                            "safety_identifier",
                                                            "prediction",
                                                            "cache_control"};

template <size_t N>
bool OneOf(const std::array<std::string_view, N>& list, std::string_view v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

// The mime type of a URL's path extension.
std::string_view MimeFromUrl(std::string_view url) {
  url = url.substr(0, url.find_first_of("?#"));
  const size_t slash = url.rfind('/');
  const size_t dot = url.rfind('.');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash)) {
    return "application/octet-stream";
  }
  const std::string ext = absl::AsciiStrToLower(Av(url.substr(dot + 1)));
  static constexpr std::pair<std::string_view, std::string_view> kTypes[] = {
      {"png", "image/png"},         {"jpg", "image/jpeg"},      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},         {"webp", "image/webp"},     {"heic", "image/heic"},
      {"heif", "image/heif"},       {"pdf", "application/pdf"}, {"txt", "text/plain"},
      {"md", "text/markdown"},      {"html", "text/html"},      {"csv", "text/csv"},
      {"json", "application/json"}, {"xml", "text/xml"},        {"mp3", "audio/mp3"},
      {"wav", "audio/wav"},         {"ogg", "audio/ogg"},       {"flac", "audio/flac"},
      {"aac", "audio/aac"},         {"mp4", "video/mp4"},       {"mpeg", "video/mpeg"},
      {"mov", "video/mov"},         {"webm", "video/webm"},     {"avi", "video/avi"}};
  for (const auto& [e, mime] : kTypes) {
    if (e == ext) return mime;
  }
  return "application/octet-stream";
}

// A data URL or remote URL as an inlineData / fileData part.
absl::StatusOr<json::object> MediaPart(std::string_view url, std::string_view param,
                                       const ProviderCall& call) {
  if (absl::StartsWith(Av(url), "data:")) {
    const size_t comma = url.find(',');
    if (comma == std::string_view::npos) return Invalid(param, call, "malformed data URL");
    std::string_view meta = url.substr(5, comma - 5);
    if (!absl::EndsWith(Av(meta), ";base64")) {
      return Invalid(param, call, "only base64 data URLs are supported");
    }
    meta.remove_suffix(7);
    std::string_view mime = meta.substr(0, meta.find(';'));
    if (mime.empty()) mime = "text/plain";  // RFC 2397's default
    json::object inline_data{{"mimeType", mime}, {"data", url.substr(comma + 1)}};
    return json::object{{"inlineData", std::move(inline_data)}};
  }
  const std::string lower = absl::AsciiStrToLower(Av(url.substr(0, 8)));
  if (absl::StartsWith(lower, "https://") || absl::StartsWith(lower, "http://") ||
      absl::StartsWith(lower, "gs://")) {
    json::object file_data{{"mimeType", MimeFromUrl(url)}, {"fileUri", url}};
    return json::object{{"fileData", std::move(file_data)}};
  }
  return Invalid(param, call, "expected a data: URL or an http(s) URL");
}

// The texts of a content that may be a string or an array of text parts.
absl::StatusOr<std::vector<std::string>> TextsOf(const json::value* content, std::string_view param,
                                                 const ProviderCall& call) {
  std::vector<std::string> texts;
  if (content == nullptr || content->is_null()) return texts;
  if (content->is_string()) {
    texts.emplace_back(Sv(content->get_string()));
    return texts;
  }
  if (!content->is_array()) return Invalid(param, call, "expected a string or an array of parts");
  const json::array& parts = content->get_array();
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string_view type = StringOf(Member(parts[i], "type"));
    if (type != "text") {
      return Invalid(absl::StrCat(Av(param), "[", i, "]"), call,
                     "only text parts are allowed here");
    }
    texts.emplace_back(StringOf(Member(parts[i], "text")));
  }
  return texts;
}

// Appends the Gemini parts of a user / assistant `content` to `parts`.
absl::Status AppendContentParts(const json::value* content, const std::string& param,
                                const ProviderCall& call, json::array& parts) {
  if (content == nullptr || content->is_null()) return absl::OkStatus();
  if (content->is_string()) {
    if (!content->get_string().empty()) parts.push_back(json::object{{"text", *content}});
    return absl::OkStatus();
  }
  if (!content->is_array()) {
    return Invalid(param, call, "expected a string, an array of parts or null");
  }
  const json::array& list = content->get_array();
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string at = absl::StrCat(param, "[", i, "]");
    const json::value& part = list[i];
    const std::string_view type = StringOf(Member(part, "type"));
    if (type == "text") {
      const json::value* text = Member(part, "text");
      if (text == nullptr || !text->is_string()) {
        return Invalid(absl::StrCat(at, ".text"), call, "expected a string");
      }
      if (!text->get_string().empty()) parts.push_back(json::object{{"text", *text}});
    } else if (type == "refusal") {
      // An earlier assistant refusal (OpenAI content part): the model said it, so it stays text.
      const std::string_view refusal = StringOf(Member(part, "refusal"));
      if (!refusal.empty()) parts.push_back(json::object{{"text", refusal}});
    } else if (type == "image_url") {
      const json::value* image = Member(part, "image_url");
      const json::value* url =
          image != nullptr && image->is_string() ? image : Member(image, "url");
      if (url == nullptr || !url->is_string()) {
        return Invalid(absl::StrCat(at, ".image_url.url"), call, "expected a URL string");
      }
      auto media = MediaPart(Sv(url->get_string()), absl::StrCat(at, ".image_url.url"), call);
      if (!media.ok()) return media.status();
      parts.push_back(std::move(*media));
    } else if (type == "input_audio") {
      const json::value* audio = Member(part, "input_audio");
      const std::string_view data = StringOf(Member(audio, "data"));
      const std::string_view format = StringOf(Member(audio, "format"));
      if (data.empty() || format.empty()) {
        return Invalid(absl::StrCat(at, ".input_audio"), call, "expected data and format");
      }
      json::object inline_data{{"mimeType", absl::StrCat("audio/", Av(format))}, {"data", data}};
      parts.push_back(json::object{{"inlineData", std::move(inline_data)}});
    } else if (type == "file") {
      const json::value* file = Member(part, "file");
      const json::value* data = Member(file, "file_data");
      if (data == nullptr || !data->is_string()) {
        return Unsupported(absl::StrCat(at, ".file.file_id"), call,
                           "only inline file_data (a base64 data URL) can be sent to Gemini");
      }
      std::string_view url = Sv(data->get_string());
      std::string owned;
      if (!absl::StartsWith(Av(url), "data:")) {
        // Raw base64 without a data: prefix; Gemini needs a mime type: guess from the filename.
        owned = absl::StrCat("data:", Av(MimeFromUrl(StringOf(Member(file, "filename")))),
                             ";base64,", Av(url));
        url = owned;
      }
      auto media = MediaPart(url, absl::StrCat(at, ".file.file_data"), call);
      if (!media.ok()) return media.status();
      parts.push_back(std::move(*media));
    } else {
      return Unsupported(absl::StrCat(at, ".type"), call,
                         absl::StrCat("content part type '", Av(type), "'"));
    }
  }
  return absl::OkStatus();
}

struct Conversation {
  json::array system_parts;
  json::array contents;
};

absl::Status TranslateMessages(const json::array& messages, const ProviderCall& call,
                               Conversation& out) {
  std::map<std::string, std::string, std::less<>> tool_names;  // tool call id -> function name
  bool last_was_tool = false;
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string at = absl::StrCat("messages[", i, "]");
    const json::object* m = messages[i].if_object();
    if (m == nullptr) return Invalid(at, call, "expected an object");
    const std::string_view role = StringOf(m->if_contains("role"));
    const json::value* content = m->if_contains("content");
    if (role == "system" || role == "developer") {
      auto texts = TextsOf(content, absl::StrCat(at, ".content"), call);
      if (!texts.ok()) return texts.status();
      for (const std::string& text : *texts) {
        if (!text.empty()) out.system_parts.push_back(json::object{{"text", text}});
      }
      last_was_tool = false;
      continue;
    }
    if (role == "tool" || role == "function") {
      std::string name;
      if (role == "function") {
        name = std::string(StringOf(m->if_contains("name")));
      } else {
        const std::string_view id = StringOf(m->if_contains("tool_call_id"));
        const auto it = tool_names.find(id);
        if (it == tool_names.end()) {
          return Invalid(absl::StrCat(at, ".tool_call_id"), call,
                         absl::StrCat("no earlier assistant tool call has the id '", Av(id), "'"));
        }
        name = it->second;
      }
      if (name.empty())
        return Invalid(absl::StrCat(at, ".name"), call, "a function name is needed");
      auto texts = TextsOf(content, absl::StrCat(at, ".content"), call);
      if (!texts.ok()) return texts.status();
      std::string text;
      for (const std::string& t : *texts) text += t;
      json::object response;
      json::error_code ec;
      json::value parsed = json::parse(text, ec);
      if (!ec && parsed.is_object() && Finite(parsed)) {
        response = std::move(parsed.get_object());
      } else {
        response["content"] = text;
      }
      json::object part{
          {"functionResponse", json::object{{"name", name}, {"response", std::move(response)}}}};
      if (last_was_tool) {
        out.contents.back().get_object()["parts"].get_array().push_back(std::move(part));
      } else {
        out.contents.push_back(
            json::object{{"role", "user"}, {"parts", json::array{std::move(part)}}});
      }
      last_was_tool = true;
      continue;
    }
    last_was_tool = false;
    if (role != "user" && role != "assistant") {
      return Invalid(absl::StrCat(at, ".role"), call,
                     absl::StrCat("unknown role '", Av(role), "'"));
    }
    json::array parts;
    absl::Status st = AppendContentParts(content, absl::StrCat(at, ".content"), call, parts);
    if (!st.ok()) return st;
    if (role == "assistant") {
      if (Present(*m, "audio") != nullptr) return Unsupported(absl::StrCat(at, ".audio"), call);
      // A past refusal is what the model said: it goes back as text, like a refusal part.
      if (const std::string_view refusal = StringOf(m->if_contains("refusal")); !refusal.empty()) {
        parts.push_back(json::object{{"text", refusal}});
      }
      if (Present(*m, "function_call") != nullptr) {
        return Unsupported(absl::StrCat(at, ".function_call"), call, "use tool_calls");
      }
      if (const json::value* calls = Present(*m, "tool_calls")) {
        if (!calls->is_array())
          return Invalid(absl::StrCat(at, ".tool_calls"), call, "expected an array");
        const json::array& list = calls->get_array();
        for (size_t j = 0; j < list.size(); ++j) {
          const std::string cat = absl::StrCat(at, ".tool_calls[", j, "]");
          const json::value* fn = Member(list[j], "function");
          const std::string_view name = StringOf(Member(fn, "name"));
          if (name.empty()) {
            return Invalid(absl::StrCat(cat, ".function.name"), call, "expected a function name");
          }
          const json::value* args_v = Member(fn, "arguments");
          json::value args = json::object();
          if (args_v != nullptr && args_v->is_string() && !args_v->get_string().empty()) {
            json::error_code ec;
            args = json::parse(Sv(args_v->get_string()), ec);
            if (ec || !args.is_object() || !Finite(args)) {
              return Invalid(absl::StrCat(cat, ".function.arguments"), call,
                             "the arguments must be a JSON object serialised as a string");
            }
          } else if (args_v != nullptr && args_v->is_object() && Finite(*args_v)) {
            args = *args_v;  // tolerated: already an object
          } else if (args_v != nullptr && !args_v->is_null() && !args_v->is_string()) {
            return Invalid(absl::StrCat(cat, ".function.arguments"), call,
                           "the arguments must be a JSON object serialised as a string");
          }
          json::object part{
              {"functionCall", json::object{{"name", name}, {"args", std::move(args)}}}};
          const json::value* sig =
              Member(Member(Member(list[j], "extra_content"), "google"), "thought_signature");
          if (sig != nullptr && sig->is_string()) part["thoughtSignature"] = *sig;
          parts.push_back(std::move(part));
          const std::string_view id = StringOf(Member(list[j], "id"));
          tool_names[std::string(id)] = std::string(name);
        }
      }
    }
    if (parts.empty()) continue;  // Gemini rejects a turn without parts
    out.contents.push_back(json::object{{"role", role == "assistant" ? "model" : "user"},
                                        {"parts", std::move(parts)}});
  }
  return absl::OkStatus();
}

absl::Status TranslateTools(const json::object& req, const ProviderCall& call, json::object& body) {
  std::vector<std::string> names;
  if (const json::value* tools = Present(req, "tools")) {
    if (!tools->is_array()) return Invalid("tools", call, "expected an array");
    json::array decls;
    const json::array& list = tools->get_array();
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string at = absl::StrCat("tools[", i, "]");
      const std::string_view type = StringOf(Member(list[i], "type"));
      if (type != "function") {
        return Unsupported(absl::StrCat(at, ".type"), call,
                           absl::StrCat("tool type '", Av(type), "' (only function tools)"));
      }
      const json::value* fn = Member(list[i], "function");
      const std::string_view name = StringOf(Member(fn, "name"));
      if (name.empty()) return Invalid(absl::StrCat(at, ".function.name"), call, "expected a name");
      json::object decl{{"name", name}};
      if (const json::value* d = Member(fn, "description"); d && d->is_string()) {
        decl["description"] = *d;
      }
      if (const json::value* params = Member(fn, "parameters"); params && params->is_object()) {
        auto schema = GeminiSchema(*params, absl::StrCat(at, ".function.parameters"));
        if (!schema.ok()) return schema.status();
        // Gemini rejects an OBJECT schema with empty properties: a function without parameters
        // simply has none.
        const json::value* props = Member(*schema, "properties");
        const bool empty_object =
            StringOf(Member(*schema, "type")) == "object" &&
            (props == nullptr || (props->is_object() && props->get_object().empty()));
        if (!empty_object) decl["parameters"] = std::move(*schema);
      }
      names.emplace_back(name);
      decls.push_back(std::move(decl));
    }
    if (!decls.empty()) {
      body["tools"] = json::array{json::object{{"functionDeclarations", std::move(decls)}}};
    }
  }
  if (const json::value* choice = Present(req, "tool_choice")) {
    json::object config;
    if (choice->is_string()) {
      const std::string_view c = Sv(choice->get_string());
      if (c == "auto") {
        config["mode"] = "AUTO";
      } else if (c == "none") {
        config["mode"] = "NONE";
      } else if (c == "required") {
        config["mode"] = "ANY";
      } else {
        return Invalid("tool_choice", call, absl::StrCat("unknown value '", Av(c), "'"));
      }
    } else if (StringOf(Member(*choice, "type")) == "function") {
      const std::string_view name = StringOf(Member(Member(*choice, "function"), "name"));
      if (name.empty()) return Invalid("tool_choice.function.name", call, "expected a name");
      if (std::find(names.begin(), names.end(), name) == names.end()) {
        return Invalid("tool_choice.function.name", call,
                       absl::StrCat("no tool is named '", Av(name), "'"));
      }
      config["mode"] = "ANY";
      config["allowedFunctionNames"] = json::array{json::value(name)};
    } else {
      return Unsupported("tool_choice", call, "expected auto, none, required or a named function");
    }
    if (!body.contains("tools") && StringOf(config.if_contains("mode")) != "NONE") {
      return Invalid("tool_choice", call, "tool_choice needs tools");
    }
    if (body.contains("tools")) {
      body["toolConfig"] = json::object{{"functionCallingConfig", std::move(config)}};
    }
  }
  return absl::OkStatus();
}

absl::Status TranslateGenerationConfig(const json::object& req, const ProviderCall& call,
                                       json::object& config) {
  const json::value* max = Present(req, "max_completion_tokens");
  std::string_view max_name = "max_completion_tokens";
  if (max == nullptr) {
    max = Present(req, "max_tokens");
    max_name = "max_tokens";
  }
  if (max != nullptr) {
    const std::optional<int64_t> n = IntegerOf(*max);
    if (!n.has_value() || *n < 1) return Invalid(max_name, call, "must be a positive integer");
    config["maxOutputTokens"] = *n;
  }
  struct NumberField {
    std::string_view openai;
    std::string_view gemini;
  };
  for (const NumberField& f :
       {NumberField{"temperature", "temperature"}, NumberField{"top_p", "topP"},
        NumberField{"presence_penalty", "presencePenalty"},
        NumberField{"frequency_penalty", "frequencyPenalty"}}) {
    const json::value* v = Present(req, f.openai);
    if (v == nullptr) continue;
    if (!IsNumber(*v)) return Invalid(f.openai, call, "must be a number");
    config[f.gemini] = *v;
  }
  for (const NumberField& f : {NumberField{"top_k", "topK"}, NumberField{"n", "candidateCount"},
                               NumberField{"seed", "seed"}}) {
    const json::value* v = Present(req, f.openai);
    if (v == nullptr) continue;
    const std::optional<int64_t> n = IntegerOf(*v);
    if (!n.has_value() || (f.openai != "seed" && *n < 1)) {
      return Invalid(f.openai, call,
                     f.openai == "seed" ? "must be an integer" : "must be a positive integer");
    }
    if (f.openai == "seed" && (*n < INT32_MIN || *n > INT32_MAX)) {
      return Invalid(f.openai, call, "Gemini seeds are 32-bit integers");
    }
    config[f.gemini] = *n;
  }
  if (const json::value* stop = Present(req, "stop")) {
    json::array list;
    if (stop->is_string()) {
      list.push_back(*stop);
    } else if (stop->is_array()) {
      for (const json::value& s : stop->get_array()) {
        if (!s.is_string()) return Invalid("stop", call, "expected strings");
        list.push_back(s);
      }
    } else {
      return Invalid("stop", call, "expected a string or an array of strings");
    }
    if (!list.empty()) config["stopSequences"] = std::move(list);
  }
  if (const json::value* rf = Present(req, "response_format")) {
    const std::string_view type = StringOf(Member(*rf, "type"));
    if (type == "json_object") {
      config["responseMimeType"] = "application/json";
    } else if (type == "json_schema") {
      const json::value* schema = Member(Member(*rf, "json_schema"), "schema");
      config["responseMimeType"] = "application/json";
      if (schema != nullptr && schema->is_object()) {
        const std::string_view field =
            call.deployment != nullptr
                ? DeploymentOption(*call.deployment, "json_schema_field", "responseJsonSchema")
                : std::string_view("responseJsonSchema");
        if (field == "responseSchema") {
          auto converted = GeminiSchema(*schema, "response_format.json_schema.schema");
          if (!converted.ok()) return converted.status();
          config["responseSchema"] = std::move(*converted);
        } else {
          if (!Finite(*schema)) {
            return Invalid("response_format.json_schema.schema", call, "a number is out of range");
          }
          config["responseJsonSchema"] = *schema;
        }
      }
    } else if (type != "text") {
      return Unsupported("response_format.type", call,
                         absl::StrCat("response format '", Av(type), "'"));
    }
  }
  json::object thinking;
  if (const json::value* effort = Present(req, "reasoning_effort")) {
    const std::string_view e = StringOf(effort);
    int64_t budget = -1;
    if (e == "none") budget = 0;
    if (e == "minimal") budget = 512;
    if (e == "low") budget = 1024;
    if (e == "medium") budget = 8192;
    if (e == "high") budget = 24576;
    if (budget < 0) {
      return Invalid("reasoning_effort", call, "expected none, minimal, low, medium or high");
    }
    thinking["thinkingBudget"] = budget;
  }
  if (call.deployment != nullptr &&
      DeploymentOption(*call.deployment, "include_thoughts") == "true") {
    thinking["includeThoughts"] = true;
  }
  if (!thinking.empty()) config["thinkingConfig"] = std::move(thinking);
  return absl::OkStatus();
}

// Rejects what Gemini cannot honour; accepts what it translates or may ignore.
absl::Status CheckFields(const json::object& req, const ProviderCall& call) {
  for (const auto& kv : req) {
    const std::string_view key = std::string_view(kv.key());
    const json::value& v = kv.value();
    if (OneOf(kHandledFields, key) || OneOf(kIgnoredFields, key) || v.is_null()) continue;
    if (key == "logit_bias" && v.is_object() && v.get_object().empty()) continue;
    return Unsupported(key, call);
  }
  if (const json::value* lp = Present(req, "logprobs"); lp && !(lp->is_bool() && !lp->get_bool())) {
    return Unsupported("logprobs", call);
  }
  if (const json::value* top = Present(req, "top_logprobs"); top && CountOf(top) != 0) {
    return Unsupported("top_logprobs", call);
  }
  if (const json::value* modalities = Present(req, "modalities")) {
    if (!modalities->is_array()) return Invalid("modalities", call, "expected an array");
    for (const json::value& m : modalities->get_array()) {
      if (StringOf(&m) != "text") return Unsupported("modalities", call, "only text output");
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Responses.

std::string_view MapFinishReason(std::string_view reason, bool has_calls) {
  if (reason == "MAX_TOKENS") return kFinishLength;
  if (reason == "SAFETY" || reason == "RECITATION" || reason == "BLOCKLIST" ||
      reason == "PROHIBITED_CONTENT" || reason == "SPII" || reason == "IMAGE_SAFETY" ||
      reason == "IMAGE_PROHIBITED_CONTENT" || reason == "IMAGE_RECITATION") {
    return kFinishContentFilter;
  }
  return has_calls ? kFinishToolCalls : kFinishStop;
}

std::optional<v1::TokenUsage> UsageOfMetadata(const json::value* meta) {
  if (meta == nullptr || !meta->is_object()) return std::nullopt;
  v1::TokenUsage usage;
  const int64_t prompt = CountOf(Member(meta, "promptTokenCount"));
  const int64_t tool_prompt = CountOf(Member(meta, "toolUsePromptTokenCount"));
  const int64_t cached = CountOf(Member(meta, "cachedContentTokenCount"));
  const int64_t candidates = CountOf(Member(meta, "candidatesTokenCount"));
  const int64_t thoughts = CountOf(Member(meta, "thoughtsTokenCount"));
  // Saturating: counts come from the network.
  const auto add = [](int64_t a, int64_t b) { return a > INT64_MAX - b ? INT64_MAX : a + b; };
  usage.set_input_tokens(add(prompt, tool_prompt));
  usage.set_cached_input_tokens(std::min(cached, usage.input_tokens()));
  usage.set_output_tokens(add(candidates, thoughts));
  usage.set_reasoning_tokens(thoughts);
  return usage;
}

std::string ModelOf(const json::value& root, const ProviderCall& call) {
  const std::string_view version = StringOf(Member(root, "modelVersion"));
  if (!version.empty()) return std::string(version);
  std::string model = UpstreamModel(call);
  if (model.empty()) model = std::string(call.client_model);
  return model;
}

// What one candidate (or one stream chunk of it) carries.
struct CandidateParts {
  std::string text;
  std::string reasoning;
  json::array tool_calls;  // OpenAI tool_call objects, each whole
  int64_t output_bytes = 0;
};

// `next_call_id` numbers tool calls across the response / stream; `include_index` adds the
// OpenAI stream `index` (per choice, `next_call_index`).
CandidateParts ReadParts(const json::value& candidate, int64_t& next_call_id,
                         int64_t* next_call_index) {
  CandidateParts out;
  const json::value* parts = Member(Member(candidate, "content"), "parts");
  if (parts == nullptr || !parts->is_array()) return out;
  for (const json::value& part : parts->get_array()) {
    if (!part.is_object()) continue;
    if (const json::value* call = Member(part, "functionCall"); call && call->is_object()) {
      const std::string_view name = StringOf(Member(call, "name"));
      const json::value* args = Member(call, "args");
      const std::string arguments =
          args != nullptr && !args->is_null() ? json::serialize(*args) : std::string("{}");
      const std::string_view given_id = StringOf(Member(call, "id"));
      json::object tc;
      if (next_call_index != nullptr) tc["index"] = (*next_call_index)++;
      tc["id"] = given_id.empty() ? absl::StrCat("call_", next_call_id) : std::string(given_id);
      ++next_call_id;
      tc["type"] = "function";
      tc["function"] = json::object{{"name", name}, {"arguments", arguments}};
      if (const json::value* sig = Member(part, "thoughtSignature"); sig && sig->is_string()) {
        tc["extra_content"] = json::object{{"google", json::object{{"thought_signature", *sig}}}};
      }
      out.tool_calls.push_back(std::move(tc));
      out.output_bytes += static_cast<int64_t>(name.size() + arguments.size());
      continue;
    }
    const json::value* text = Member(part, "text");
    if (text == nullptr || !text->is_string()) continue;
    const json::value* thought = Member(part, "thought");
    if (thought != nullptr && thought->is_bool() && thought->get_bool()) {
      out.reasoning += Sv(text->get_string());
    } else {
      out.text += Sv(text->get_string());
    }
    out.output_bytes += static_cast<int64_t>(text->get_string().size());
  }
  return out;
}

// The choice index of a candidate: its `index`, else its position.
int64_t CandidateIndex(const json::value& candidate, size_t position) {
  const json::value* index = Member(candidate, "index");
  if (index != nullptr) {
    const std::optional<int64_t> i = IntegerOf(*index);
    if (i.has_value() && *i >= 0 && *i < 1024) return *i;
  }
  return static_cast<int64_t>(position);
}

std::string_view BlockReason(const json::value& root) {
  return StringOf(Member(Member(root, "promptFeedback"), "blockReason"));
}

bool HasCandidates(const json::value& root) {
  const json::value* c = Member(root, "candidates");
  return c != nullptr && c->is_array() && !c->get_array().empty();
}

// OpenAI error type and code for a google.rpc status / HTTP status.
struct ErrorKind {
  std::string_view type;
  std::string code;
};

ErrorKind KindOf(unsigned http, std::string_view rpc) {
  if (rpc == "UNAUTHENTICATED" || http == 401) return {"invalid_request_error", "invalid_api_key"};
  if (rpc == "PERMISSION_DENIED" || http == 403) return {"permission_error", "permission_denied"};
  if (rpc == "NOT_FOUND" || http == 404) return {"invalid_request_error", "model_not_found"};
  if (rpc == "RESOURCE_EXHAUSTED" || http == 429)
    return {"rate_limit_error", "rate_limit_exceeded"};
  if (rpc == "UNAVAILABLE" || http == 503) return {"server_error", "service_unavailable"};
  if (rpc == "DEADLINE_EXCEEDED" || http == 504) return {"server_error", "timeout"};
  if (rpc == "INTERNAL" || http >= 500) return {"server_error", "server_error"};
  return {"invalid_request_error", rpc.empty() ? "" : absl::AsciiStrToLower(Av(rpc))};
}

// At most `max` bytes of `raw` as valid UTF-8 (invalid bytes become '?'), so that an upstream
// body that is not JSON can be quoted in a JSON error message.
std::string Utf8Prefix(std::string_view raw, size_t max) {
  std::string out;
  size_t i = 0;
  while (i < raw.size()) {
    const unsigned char c = static_cast<unsigned char>(raw[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    bool valid = len > 0 && i + len <= raw.size();
    for (size_t k = 1; valid && k < len; ++k) {
      valid = (static_cast<unsigned char>(raw[i + k]) & 0xC0) == 0x80;
    }
    if (valid && len > 1) {
      // Reject overlong forms, surrogates and code points above U+10FFFF.
      uint32_t cp = c & (0xFF >> (len + 1));
      for (size_t k = 1; k < len; ++k)
        cp = (cp << 6) | (static_cast<unsigned char>(raw[i + k]) & 0x3F);
      static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      valid = cp >= kMin[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    }
    if (!valid) len = 1;
    if (out.size() + len > max) break;
    if (valid) {
      out.append(raw.substr(i, len));
    } else {
      out += '?';
    }
    i += len;
  }
  return out;
}

bool MentionsContextLength(std::string_view message) {
  const std::string lower = absl::AsciiStrToLower(Av(message));
  return absl::StrContains(lower, "input token count") && absl::StrContains(lower, "exceed");
}

// Refines the kind from google.rpc details: API_KEY_INVALID, per-day quotas.
void RefineFromDetails(const json::value* details, ErrorKind& kind) {
  if (details == nullptr || !details->is_array()) return;
  for (const json::value& d : details->get_array()) {
    if (StringOf(Member(d, "reason")) == "API_KEY_INVALID") kind.code = "invalid_api_key";
    const json::value* violations = Member(d, "violations");
    if (violations == nullptr || !violations->is_array()) continue;
    for (const json::value& v : violations->get_array()) {
      if (absl::StrContains(Av(StringOf(Member(v, "quotaId"))), "PerDay")) {
        kind.code = "insufficient_quota";
      }
    }
  }
}

// The OpenAI error body of a google.rpc.Status `error` object (or of anything else).
ProviderError ErrorFromJson(unsigned http, const json::value* error, std::string_view raw) {
  ProviderError out;
  std::string message(StringOf(Member(error, "message")));
  const std::string_view rpc = StringOf(Member(error, "status"));
  if (http == 0)
    http = static_cast<unsigned>(std::clamp<int64_t>(CountOf(Member(error, "code")), 0, 999));
  ErrorKind kind = KindOf(http, rpc);
  RefineFromDetails(Member(error, "details"), kind);
  if (kind.type == "invalid_request_error" && MentionsContextLength(message)) {
    kind.code = "context_length_exceeded";
    out.context_length_exceeded = true;
  }
  if (message.empty()) {
    message = absl::StrCat("gemini upstream error (HTTP ", http, ")");
    if (!raw.empty()) {
      absl::StrAppend(&message, ": ", Utf8Prefix(raw, 512));
    }
  }
  out.body = ErrorBody(message, kind.type, "", kind.code);
  return out;
}

class GeminiStreamTranslator final : public StreamTranslator {
 public:
  explicit GeminiStreamTranslator(const ProviderCall& call)
      : request_id_(call.request_id),
        created_(call.created_unix),
        client_wants_usage_(call.client_wants_usage),
        model_(UpstreamModel(call)) {
    if (model_.empty()) model_ = std::string(call.client_model);
  }

  void OnEvent(const SseEvent& event, std::string& out) override {
    progress_.has_output = false;
    if (progress_.error || progress_.done || !event.has_data) return;
    if (event.data == "[DONE]") return;  // Gemini sends none; tolerated
    json::error_code ec;
    json::value root = json::parse(event.data, ec);
    if (ec || !root.is_object()) {
      progress_.error = true;
      AppendSseData(ErrorBody("the gemini upstream sent a malformed stream event", "upstream_error",
                              "", "upstream_error"),
                    out);
      return;
    }
    if (const json::value* error = Member(root, "error"); error && !error->is_null()) {
      progress_.error = true;
      AppendSseData(ErrorFromJson(0, error, "").body, out);
      return;
    }
    if (const std::string_view v = StringOf(Member(root, "modelVersion"));
        !v.empty() && !seen_model_) {
      model_ = std::string(v);
      seen_model_ = true;
    }
    if (auto usage = UsageOfMetadata(Member(root, "usageMetadata"))) progress_.usage = *usage;

    if (!HasCandidates(root)) {
      if (!BlockReason(root).empty() && !finish_seen_) {
        Role(0, out);
        Finish(0, kFinishContentFilter, out);
      }
      return;
    }
    const json::array& candidates = Member(root, "candidates")->get_array();
    for (size_t pos = 0; pos < candidates.size(); ++pos) {
      const json::value& candidate = candidates[pos];
      const int64_t index = CandidateIndex(candidate, pos);
      Choice& choice = choices_[index];
      // After its finish_reason a choice is closed for OpenAI clients; Gemini sends nothing more
      // for it but usage (which is read above).
      if (choice.finished) continue;
      Role(index, out);
      CandidateParts parts = ReadParts(candidate, next_call_id_, &choice.next_tool_index);
      progress_.output_bytes += parts.output_bytes;
      if (!parts.reasoning.empty()) {
        Delta(index, json::object{{"reasoning_content", parts.reasoning}}, out);
      }
      if (!parts.text.empty()) Delta(index, json::object{{"content", parts.text}}, out);
      if (!parts.tool_calls.empty()) {
        choice.has_calls = true;
        Delta(index, json::object{{"tool_calls", std::move(parts.tool_calls)}}, out);
      }
      const std::string_view reason = StringOf(Member(candidate, "finishReason"));
      if (!reason.empty() && !choice.finished) {
        Finish(index, MapFinishReason(reason, choice.has_calls), out);
      }
    }
  }

  void Finish(std::string& out) override {
    if (progress_.done || progress_.error || !finish_seen_) return;
    if (client_wants_usage_ && progress_.usage.has_value()) {
      json::object chunk = Base();
      chunk["choices"] = json::array();
      chunk["usage"] = OpenAiUsageJson(*progress_.usage);
      AppendSseData(json::serialize(chunk), out);
    }
    AppendSseData("[DONE]", out);
    progress_.done = true;
  }

 private:
  struct Choice {
    bool role_sent = false;
    bool has_calls = false;
    bool finished = false;
    int64_t next_tool_index = 0;
  };

  json::object Base() const {
    json::object chunk;
    chunk["id"] = absl::StrCat("chatcmpl-", Av(request_id_));
    chunk["object"] = "chat.completion.chunk";
    chunk["created"] = created_;
    chunk["model"] = model_;
    return chunk;
  }

  void Emit(int64_t index, json::object delta, std::string_view finish, std::string& out) {
    json::object chunk = Base();
    json::object choice{{"index", index}, {"delta", std::move(delta)}, {"logprobs", nullptr}};
    if (finish.empty()) {
      choice["finish_reason"] = nullptr;
    } else {
      choice["finish_reason"] = finish;
    }
    chunk["choices"] = json::array{std::move(choice)};
    if (client_wants_usage_) chunk["usage"] = nullptr;
    AppendSseData(json::serialize(chunk), out);
  }

  void Role(int64_t index, std::string& out) {
    Choice& choice = choices_[index];
    if (choice.role_sent) return;
    choice.role_sent = true;
    Emit(index, json::object{{"role", "assistant"}, {"content", ""}}, {}, out);
  }

  void Delta(int64_t index, json::object delta, std::string& out) {
    progress_.has_output = true;
    Emit(index, std::move(delta), {}, out);
  }

  void Finish(int64_t index, std::string_view reason, std::string& out) {
    choices_[index].finished = true;
    finish_seen_ = true;
    Emit(index, json::object(), reason, out);
  }

  const std::string request_id_;
  const int64_t created_;
  const bool client_wants_usage_;
  std::string model_;
  bool seen_model_ = false;
  bool finish_seen_ = false;
  int64_t next_call_id_ = 0;
  std::map<int64_t, Choice> choices_;
};

// ---------------------------------------------------------------------------------------------

class GeminiProviderImpl final : public Provider {
 public:
  std::string_view dialect() const override { return kDialect; }

  absl::StatusOr<ProviderRequest> BuildChatRequest(json::object& request,
                                                   const ProviderCall& call) const override {
    absl::Status st = CheckFields(request, call);
    if (!st.ok()) return st;
    const json::value* messages = Present(request, "messages");
    if (messages == nullptr || !messages->is_array()) {
      return Invalid("messages", call, "expected an array of messages");
    }
    Conversation conversation;
    st = TranslateMessages(messages->get_array(), call, conversation);
    if (!st.ok()) return st;
    if (conversation.contents.empty()) {
      return Invalid("messages", call,
                     "Gemini needs at least one user or assistant message with content");
    }
    json::object body;
    if (!conversation.system_parts.empty()) {
      body["systemInstruction"] = json::object{{"parts", std::move(conversation.system_parts)}};
    }
    body["contents"] = std::move(conversation.contents);
    st = TranslateTools(request, call, body);
    if (!st.ok()) return st;
    json::object config;
    st = TranslateGenerationConfig(request, call, config);
    if (!st.ok()) return st;
    if (!config.empty()) body["generationConfig"] = std::move(config);

    std::string model = UpstreamModel(call);
    if (model.empty()) model = std::string(StringOf(request.if_contains("model")));
    ProviderRequest out;
    out.target = absl::StrCat(Av(call.base_path), "/models/", PathSegment(model),
                              call.stream ? ":streamGenerateContent?alt=sse" : ":generateContent");
    out.headers = AuthHeaders(call);
    out.body = json::serialize(body);
    return out;
  }

  absl::StatusOr<ProviderResponse> TranslateChatResponse(std::string_view body,
                                                         const ProviderCall& call) const override {
    json::error_code ec;
    json::value root = json::parse(body, ec);
    if (ec || !root.is_object()) {
      return absl::DataLossError("the gemini upstream's response is not a JSON object");
    }
    if (const json::value* error = Member(root, "error"); error && !error->is_null()) {
      return absl::InternalError(absl::StrCat("the gemini upstream answered 2xx with an error: ",
                                              Av(StringOf(Member(error, "message")))));
    }
    const json::value* candidates = Member(root, "candidates");
    if (candidates != nullptr && !candidates->is_null() && !candidates->is_array()) {
      return absl::DataLossError("the gemini upstream's candidates are not an array");
    }
    ProviderResponse out;
    json::array choices;
    int64_t next_call_id = 0;
    if (HasCandidates(root)) {
      const json::array& list = candidates->get_array();
      std::vector<std::pair<int64_t, json::object>> ordered;
      for (size_t pos = 0; pos < list.size(); ++pos) {
        CandidateParts parts = ReadParts(list[pos], next_call_id, nullptr);
        out.output_bytes += parts.output_bytes;
        const bool has_calls = !parts.tool_calls.empty();
        json::object message{{"role", "assistant"}};
        if (parts.text.empty() && has_calls) {
          message["content"] = nullptr;
        } else {
          message["content"] = parts.text;
        }
        if (!parts.reasoning.empty()) message["reasoning_content"] = parts.reasoning;
        message["refusal"] = nullptr;
        if (has_calls) message["tool_calls"] = std::move(parts.tool_calls);
        const int64_t index = CandidateIndex(list[pos], pos);
        json::object choice{
            {"index", index},
            {"message", std::move(message)},
            {"logprobs", nullptr},
            {"finish_reason",
             MapFinishReason(StringOf(Member(list[pos], "finishReason")), has_calls)}};
        ordered.emplace_back(index, std::move(choice));
      }
      std::stable_sort(ordered.begin(), ordered.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      for (auto& [index, choice] : ordered) choices.push_back(std::move(choice));
    } else {
      // No candidates: a blocked prompt (promptFeedback.blockReason) or an empty answer.
      json::object message{{"role", "assistant"}, {"content", ""}, {"refusal", nullptr}};
      choices.push_back(json::object{
          {"index", 0},
          {"message", std::move(message)},
          {"logprobs", nullptr},
          {"finish_reason", BlockReason(root).empty() ? kFinishStop : kFinishContentFilter}});
    }
    json::object response;
    response["id"] = absl::StrCat("chatcmpl-", Av(call.request_id));
    response["object"] = "chat.completion";
    response["created"] = call.created_unix;
    response["model"] = ModelOf(root, call);
    response["choices"] = std::move(choices);
    out.usage = UsageOfMetadata(Member(root, "usageMetadata"));
    if (out.usage.has_value()) response["usage"] = OpenAiUsageJson(*out.usage);
    out.body = json::serialize(response);
    return out;
  }

  std::unique_ptr<StreamTranslator> NewStreamTranslator(const ProviderCall& call) const override {
    return std::make_unique<GeminiStreamTranslator>(call);
  }

  ProviderError TranslateError(unsigned status, std::string_view body) const override {
    json::error_code ec;
    json::value root = json::parse(body, ec);
    // Google answers some errors as a one-element array of Status objects.
    if (!ec && root.is_array() && root.get_array().size() == 1) {
      json::value first = root.get_array()[0];
      root = std::move(first);
    }
    const json::value* error = ec ? nullptr : Member(root, "error");
    return ErrorFromJson(status, error, error == nullptr ? body : std::string_view());
  }

  int64_t RetryAfterMsFromBody(std::string_view body) const override {
    json::error_code ec;
    json::value root = json::parse(body, ec);
    if (ec) return 0;
    if (root.is_array() && root.get_array().size() == 1) {
      json::value first = root.get_array()[0];
      root = std::move(first);
    }
    const json::value* details = Member(Member(root, "error"), "details");
    if (details == nullptr || !details->is_array()) return 0;
    for (const json::value& detail : details->get_array()) {
      if (!absl::EndsWith(Av(StringOf(Member(detail, "@type"))), "google.rpc.RetryInfo")) continue;
      // A google.protobuf.Duration in JSON: "37s", "1.500s".
      absl::Duration delay;
      if (absl::ParseDuration(Av(StringOf(Member(detail, "retryDelay"))), &delay) &&
          delay > absl::ZeroDuration() && delay < absl::Hours(24)) {
        return absl::ToInt64Milliseconds(absl::Ceil(delay, absl::Milliseconds(1)));
      }
    }
    return 0;
  }

  absl::StatusOr<ProviderRequest> BuildEmbeddingsRequest(json::object& request,
                                                         const ProviderCall& call) const override {
    for (const auto& kv : request) {
      const std::string_view key = std::string_view(kv.key());
      if (key == "model" || key == "input" || key == "dimensions" || key == "user" ||
          key == "encoding_format" || kv.value().is_null()) {
        continue;
      }
      return Unsupported(key, call);
    }
    if (const json::value* format = Present(request, "encoding_format")) {
      if (StringOf(format) != "float") {
        return Unsupported("encoding_format", call, "only \"float\" embeddings");
      }
    }
    std::string model = UpstreamModel(call);
    if (model.empty()) model = std::string(StringOf(request.if_contains("model")));
    std::optional<int64_t> dimensions;
    if (const json::value* d = Present(request, "dimensions")) {
      dimensions = IntegerOf(*d);
      if (!dimensions.has_value() || *dimensions < 1) {
        return Invalid("dimensions", call, "must be a positive integer");
      }
    }
    const json::value* input = Present(request, "input");
    std::vector<std::string_view> texts;
    if (input != nullptr && input->is_string()) {
      texts.push_back(Sv(input->get_string()));
    } else if (input != nullptr && input->is_array()) {
      for (const json::value& v : input->get_array()) {
        if (!v.is_string()) {
          return Unsupported("input", call,
                             "token-array input; send strings (Gemini tokenizes itself)");
        }
        texts.push_back(Sv(v.get_string()));
      }
    } else {
      return Invalid("input", call, "expected a string or an array of strings");
    }
    if (texts.empty()) return Invalid("input", call, "expected at least one string");
    const std::string model_name = absl::StrCat("models/", model);
    json::array requests;
    for (std::string_view text : texts) {
      json::object r{
          {"model", model_name},
          {"content", json::object{{"parts", json::array{json::object{{"text", text}}}}}}};
      if (dimensions.has_value()) r["outputDimensionality"] = *dimensions;
      requests.push_back(std::move(r));
    }
    ProviderRequest out;
    out.target =
        absl::StrCat(Av(call.base_path), "/models/", PathSegment(model), ":batchEmbedContents");
    out.headers = AuthHeaders(call);
    out.body = json::serialize(json::object{{"requests", std::move(requests)}});
    return out;
  }

  absl::StatusOr<ProviderResponse> TranslateEmbeddingsResponse(
      std::string_view body, const ProviderCall& call) const override {
    json::error_code ec;
    json::value root = json::parse(body, ec);
    if (ec || !root.is_object()) {
      return absl::DataLossError("the gemini upstream's embeddings response is not a JSON object");
    }
    const json::value* embeddings = Member(root, "embeddings");
    if (embeddings == nullptr || !embeddings->is_array()) {
      return absl::DataLossError("the gemini upstream's embeddings response has no embeddings");
    }
    json::array data;
    const json::array& list = embeddings->get_array();
    for (size_t i = 0; i < list.size(); ++i) {
      const json::value* values = Member(list[i], "values");
      if (values == nullptr || !values->is_array() ||
          !std::all_of(values->get_array().begin(), values->get_array().end(), IsNumber)) {
        return absl::DataLossError(
            absl::StrCat("the gemini upstream's embedding ", i, " has no numeric values"));
      }
      data.push_back(json::object{{"object", "embedding"}, {"index", i}, {"embedding", *values}});
    }
    std::string model = UpstreamModel(call);
    if (model.empty()) model = std::string(call.client_model);
    json::object response{{"object", "list"}, {"data", std::move(data)}, {"model", model}};
    ProviderResponse out;
    out.body = json::serialize(response);
    return out;  // Gemini reports no usage for embeddings: the gateway estimates it
  }
};

}  // namespace

absl::StatusOr<json::value> GeminiSchema(const json::value& schema, std::string_view param) {
  if (!Finite(schema)) {
    return InvalidParamError(param, absl::StrCat("invalid '", Av(param),
                                                 "' for the gemini dialect: a number is out of "
                                                 "range"));
  }
  return ConvertSub(schema, schema, param, 0);
}

const Provider& GeminiProvider() {
  static const GeminiProviderImpl provider;
  return provider;
}

}  // namespace tollgate::gateway
