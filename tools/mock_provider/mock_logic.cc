#include "tools/mock_provider/mock_logic.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstddef>

#include "absl/strings/str_cat.h"
#include "boost/json/monotonic_resource.hpp"
#include "boost/json/object.hpp"
#include "boost/json/parse.hpp"
#include "boost/json/string.hpp"
#include "services/common/logging.h"

namespace tollgate::tools::mock {
namespace json = boost::json;
namespace {

constexpr int64_t kMaxTokensDirective = 1'000'000;
constexpr int64_t kMaxDelayMs = 3'600'000;
constexpr int kMaxChoices = 128;

// Common English words; the generated text only has to be deterministic and readable.
constexpr std::array<std::string_view, 64> kWords = {
    "the",     "quick",  "brown",   "fox",    "jumps",   "over",    "lazy",   "dog",
    "gateway", "token",  "budget",  "cost",   "ledger",  "router",  "model",  "stream",
    "answer",  "simple", "careful", "exact",  "bright",  "river",   "stone",  "cloud",
    "signal",  "number", "garden",  "window", "yellow",  "silver",  "ocean",  "forest",
    "memory",  "engine", "planet",  "winter", "summer",  "orange",  "purple", "copper",
    "little",  "gentle", "rapid",   "steady", "hidden",  "golden",  "quiet",  "honest",
    "paper",   "market", "bridge",  "harbor", "valley",  "meadow",  "candle", "pencil",
    "rocket",  "castle", "island",  "mirror", "thunder", "crystal", "shadow", "lantern"};

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

void AppendJsonString(std::string& out, std::string_view value) {
  out += '"';
  AppendJsonEscaped(out, value);
  out += '"';
}

void AppendNullableString(std::string& out, std::string_view value) {
  if (value.empty()) {
    out += "null";
  } else {
    AppendJsonString(out, value);
  }
}

std::string_view JsonTypeName(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
      return "an integer";
    case json::kind::double_:
      return "a decimal";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "a value";
}

std::string_view ToStd(json::string_view s) { return std::string_view(s.data(), s.size()); }

// absl::StrCat takes absl::string_view, which is not std::string_view in this abseil.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// --- OpenAI's validation errors ---------------------------------------------------------------

ApiError InvalidRequest(std::string message, std::string param = "", std::string code = "") {
  ApiError e;
  e.status = 400;
  e.message = std::move(message);
  e.param = std::move(param);
  e.code = std::move(code);
  return e;
}

ApiError MissingParam(const std::string& param) {
  return InvalidRequest(absl::StrCat("Missing required parameter: '", param, "'."), param,
                        "missing_required_parameter");
}

ApiError InvalidType(const std::string& param, std::string_view expected, const json::value& got) {
  return InvalidRequest(absl::StrCat("Invalid type for '", param, "': expected ", Av(expected),
                                     ", but got ", Av(JsonTypeName(got)), " instead."),
                        param, "invalid_type");
}

ApiError InvalidValue(const std::string& param, std::string_view got, std::string_view supported) {
  return InvalidRequest(
      absl::StrCat("Invalid value: '", Av(got), "'. Supported values are: ", Av(supported), "."),
      param, "invalid_value");
}

ApiError EmptyArray(const std::string& param) {
  return InvalidRequest(absl::StrCat("Invalid '", param,
                                     "': empty array. Expected an array with minimum length 1, "
                                     "but got an empty array instead."),
                        param, "empty_array");
}

std::optional<int64_t> AsInteger(const json::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64() && v.get_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(v.get_uint64());
  }
  return std::nullopt;
}

// Validates an integer parameter in [min, max]; `out` receives it (untouched when null/absent).
std::optional<ApiError> CheckInteger(const json::object& body, const char* name, int64_t min,
                                     int64_t max, int64_t& out) {
  const json::value* v = body.if_contains(name);
  if (v == nullptr || v->is_null()) return std::nullopt;
  std::optional<int64_t> n = AsInteger(*v);
  if (!n) return InvalidType(name, "an integer", *v);
  if (*n < min) {
    return InvalidRequest(
        absl::StrCat("Invalid '", name, "': integer below minimum value. Expected a value >= ", min,
                     ", but got ", *n, " instead."),
        name, "integer_below_min_value");
  }
  if (*n > max) {
    return InvalidRequest(
        absl::StrCat("Invalid '", name, "': integer above maximum value. Expected a value <= ", max,
                     ", but got ", *n, " instead."),
        name, "integer_above_max_value");
  }
  out = *n;
  return std::nullopt;
}

constexpr std::array<std::string_view, 34> kKnownParams = {"audio",
                                                           "frequency_penalty",
                                                           "function_call",
                                                           "functions",
                                                           "logit_bias",
                                                           "logprobs",
                                                           "max_completion_tokens",
                                                           "max_tokens",
                                                           "messages",
                                                           "metadata",
                                                           "modalities",
                                                           "model",
                                                           "n",
                                                           "parallel_tool_calls",
                                                           "prediction",
                                                           "presence_penalty",
                                                           "prompt_cache_key",
                                                           "reasoning_effort",
                                                           "response_format",
                                                           "safety_identifier",
                                                           "seed",
                                                           "service_tier",
                                                           "stop",
                                                           "store",
                                                           "stream",
                                                           "stream_options",
                                                           "temperature",
                                                           "tool_choice",
                                                           "tools",
                                                           "top_logprobs",
                                                           "top_p",
                                                           "user",
                                                           "verbosity",
                                                           "web_search_options"};

std::optional<ApiError> ValidateContentParts(const json::array& parts, const std::string& param) {
  for (size_t j = 0; j < parts.size(); ++j) {
    const std::string part_param = absl::StrCat(param, "[", j, "]");
    const json::value& part = parts[j];
    if (!part.is_object()) return InvalidType(part_param, "an object", part);
    const json::value* type = part.get_object().if_contains("type");
    if (type == nullptr) return MissingParam(part_param + ".type");
    if (!type->is_string()) return InvalidType(part_param + ".type", "a string", *type);
    const std::string_view t = ToStd(type->get_string());
    if (t == "text" || t == "refusal") {
      const char* field = t == "text" ? "text" : "refusal";
      const json::value* text = part.get_object().if_contains(field);
      if (text == nullptr) return MissingParam(absl::StrCat(part_param, ".", field));
      if (!text->is_string()) {
        return InvalidType(absl::StrCat(part_param, ".", field), "a string", *text);
      }
    } else if (t != "image_url" && t != "input_audio" && t != "file" && t != "audio") {
      return InvalidValue(part_param + ".type", t,
                          "'text', 'image_url', 'input_audio', 'refusal', 'audio', and 'file'");
    }
  }
  return std::nullopt;
}

// The tool calls of the last assistant message, while tool messages may answer them.
struct ToolCallState {
  bool tool_allowed = false;         // the previous message was tool_calls or a tool answer
  std::vector<std::string> ids;      // ids of the assistant's tool calls
  std::vector<std::string> pending;  // ids not answered yet
};

std::string PendingToolIdsError(const ToolCallState& state) {
  std::string ids;
  for (const auto& id : state.pending) absl::StrAppend(&ids, ids.empty() ? "" : ", ", id);
  return absl::StrCat(
      "An assistant message with 'tool_calls' must be followed by tool messages responding to "
      "each 'tool_call_id'. The following tool_call_ids did not have response messages: ",
      ids);
}

std::optional<ApiError> ValidateMessage(const json::value& m, size_t i, ToolCallState& tools) {
  const std::string param = absl::StrCat("messages[", i, "]");
  if (!m.is_object()) return InvalidType(param, "an object", m);
  const json::object& msg = m.get_object();
  const json::value* role_v = msg.if_contains("role");
  if (role_v == nullptr) return MissingParam(param + ".role");
  if (!role_v->is_string()) return InvalidType(param + ".role", "a string", *role_v);
  const std::string_view role = ToStd(role_v->get_string());
  if (role != "system" && role != "developer" && role != "user" && role != "assistant" &&
      role != "tool" && role != "function") {
    return InvalidValue(param + ".role", role,
                        "'system', 'assistant', 'user', 'function', 'tool', and 'developer'");
  }

  if (role != "tool" && !tools.pending.empty()) {
    return InvalidRequest(PendingToolIdsError(tools), absl::StrCat("messages.[", i, "].role"));
  }

  const json::value* content = msg.if_contains("content");
  const json::value* tool_calls = msg.if_contains("tool_calls");
  const bool has_tool_calls = tool_calls != nullptr && !tool_calls->is_null();
  if (content == nullptr || content->is_null()) {
    const bool may_be_null =
        role == "assistant" && (has_tool_calls || msg.contains("function_call") ||
                                msg.contains("refusal") || msg.contains("audio"));
    if (!may_be_null) return MissingParam(param + ".content");
  } else if (content->is_array()) {
    if (auto e = ValidateContentParts(content->get_array(), param + ".content")) return e;
  } else if (!content->is_string()) {
    return InvalidType(param + ".content", "one of a string or array of objects", *content);
  }

  if (role == "tool") {
    const json::value* id = msg.if_contains("tool_call_id");
    if (id == nullptr) return MissingParam(param + ".tool_call_id");
    if (!id->is_string()) return InvalidType(param + ".tool_call_id", "a string", *id);
    if (!tools.tool_allowed) {
      return InvalidRequest(
          "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
          "message with 'tool_calls'.",
          absl::StrCat("messages.[", i, "].role"));
    }
    const std::string_view tid = ToStd(id->get_string());
    if (std::find(tools.ids.begin(), tools.ids.end(), tid) == tools.ids.end()) {
      return InvalidRequest(absl::StrCat("Invalid parameter: 'tool_call_id' of '", Av(tid),
                                         "' not found in 'tool_calls' of previous message."),
                            absl::StrCat("messages.[", i, "].tool_call_id"));
    }
    auto it = std::find(tools.pending.begin(), tools.pending.end(), tid);
    if (it != tools.pending.end()) tools.pending.erase(it);
    return std::nullopt;
  }

  tools = ToolCallState();
  if (role == "assistant" && has_tool_calls) {
    if (!tool_calls->is_array()) {
      return InvalidType(param + ".tool_calls", "an array of objects", *tool_calls);
    }
    const json::array& calls = tool_calls->get_array();
    if (calls.empty()) return EmptyArray(param + ".tool_calls");
    for (size_t j = 0; j < calls.size(); ++j) {
      const std::string cp = absl::StrCat(param, ".tool_calls[", j, "]");
      if (!calls[j].is_object()) return InvalidType(cp, "an object", calls[j]);
      const json::object& call = calls[j].get_object();
      const json::value* id = call.if_contains("id");
      if (id == nullptr) return MissingParam(cp + ".id");
      if (!id->is_string()) return InvalidType(cp + ".id", "a string", *id);
      const json::value* type = call.if_contains("type");
      if (type == nullptr) return MissingParam(cp + ".type");
      if (!type->is_string() || type->get_string() != "function") {
        return InvalidValue(cp + ".type", type->is_string() ? ToStd(type->get_string()) : "",
                            "'function'");
      }
      const json::value* fn = call.if_contains("function");
      if (fn == nullptr) return MissingParam(cp + ".function");
      if (!fn->is_object()) return InvalidType(cp + ".function", "an object", *fn);
      const json::value* name = fn->get_object().if_contains("name");
      if (name == nullptr) return MissingParam(cp + ".function.name");
      if (!name->is_string()) return InvalidType(cp + ".function.name", "a string", *name);
      const json::value* args = fn->get_object().if_contains("arguments");
      if (args == nullptr) return MissingParam(cp + ".function.arguments");
      if (!args->is_string()) return InvalidType(cp + ".function.arguments", "a string", *args);
      tools.ids.emplace_back(ToStd(id->get_string()));
    }
    tools.pending = tools.ids;
    tools.tool_allowed = true;
  }
  return std::nullopt;
}

std::optional<ApiError> ValidateTools(const json::object& body, std::vector<std::string>& names) {
  const json::value* tools = body.if_contains("tools");
  if (tools == nullptr || tools->is_null()) return std::nullopt;
  if (!tools->is_array()) return InvalidType("tools", "an array of objects", *tools);
  const json::array& list = tools->get_array();
  if (list.empty()) return EmptyArray("tools");
  if (list.size() > 128) {
    return InvalidRequest(absl::StrCat("Invalid 'tools': array too long. Expected an array with "
                                       "maximum length 128, but got an array with length ",
                                       list.size(), " instead."),
                          "tools", "array_above_max_length");
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string p = absl::StrCat("tools[", i, "]");
    if (!list[i].is_object()) return InvalidType(p, "an object", list[i]);
    const json::object& tool = list[i].get_object();
    const json::value* type = tool.if_contains("type");
    if (type == nullptr) return MissingParam(p + ".type");
    if (!type->is_string() || type->get_string() != "function") {
      return InvalidValue(p + ".type", type->is_string() ? ToStd(type->get_string()) : "",
                          "'function'");
    }
    const json::value* fn = tool.if_contains("function");
    if (fn == nullptr) return MissingParam(p + ".function");
    if (!fn->is_object()) return InvalidType(p + ".function", "an object", *fn);
    const json::value* name = fn->get_object().if_contains("name");
    if (name == nullptr) return MissingParam(p + ".function.name");
    if (!name->is_string()) return InvalidType(p + ".function.name", "a string", *name);
    names.emplace_back(ToStd(name->get_string()));
  }
  return std::nullopt;
}

// Resolves tool_choice. `chosen` receives the named tool, "none", or "" (model's choice).
std::optional<ApiError> ValidateToolChoice(const json::object& body,
                                           const std::vector<std::string>& tools,
                                           std::string& chosen) {
  const json::value* choice = body.if_contains("tool_choice");
  if (choice == nullptr || choice->is_null()) return std::nullopt;
  if (tools.empty()) {
    return InvalidRequest(
        "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
        "specified.",
        "tool_choice");
  }
  if (choice->is_string()) {
    const std::string_view c = ToStd(choice->get_string());
    if (c != "none" && c != "auto" && c != "required") {
      return InvalidValue("tool_choice", c, "'none', 'auto', and 'required'");
    }
    if (c == "none") chosen = "none";
    return std::nullopt;
  }
  if (!choice->is_object()) return InvalidType("tool_choice", "a string or an object", *choice);
  const json::object& obj = choice->get_object();
  const json::value* type = obj.if_contains("type");
  if (type == nullptr) return MissingParam("tool_choice.type");
  if (!type->is_string() || type->get_string() != "function") {
    return InvalidValue("tool_choice.type", type->is_string() ? ToStd(type->get_string()) : "",
                        "'function'");
  }
  const json::value* fn = obj.if_contains("function");
  if (fn == nullptr) return MissingParam("tool_choice.function");
  if (!fn->is_object()) return InvalidType("tool_choice.function", "an object", *fn);
  const json::value* name = fn->get_object().if_contains("name");
  if (name == nullptr) return MissingParam("tool_choice.function.name");
  if (!name->is_string()) return InvalidType("tool_choice.function.name", "a string", *name);
  const std::string_view n = ToStd(name->get_string());
  if (std::find(tools.begin(), tools.end(), n) == tools.end()) {
    return InvalidRequest(
        absl::StrCat("Invalid value for 'tool_choice': function '", Av(n), "' is not in 'tools'."),
        "tool_choice");
  }
  chosen = std::string(n);
  return std::nullopt;
}

bool ParseNonNegative(std::string_view text, int64_t& out) {
  if (text.empty()) return false;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size() && out >= 0;
}

std::string NormalizeKey(std::string_view name) {
  std::string key(name);
  for (char& c : key) {
    if (c == '-') c = '_';
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return key;
}

std::string FirstWord(std::string_view prompt) {
  size_t end = 0;
  while (end < prompt.size() && !IsSpace(prompt[end])) ++end;
  return std::string(prompt.substr(0, end));
}

std::string ChunkPrefix(const Completion& c) {
  std::string p = "data: {\"id\":";
  AppendJsonString(p, c.id);
  absl::StrAppend(&p, ",\"object\":\"chat.completion.chunk\",\"created\":", c.created,
                  ",\"model\":");
  AppendJsonString(p, c.model);
  absl::StrAppend(&p, ",\"service_tier\":\"default\",\"system_fingerprint\":\"",
                  std::string(kSystemFingerprint), "\",\"choices\":");
  return p;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string RenderErrorJson(const ApiError& error) {
  std::string out = "{\"error\":{\"message\":";
  AppendJsonString(out, error.message);
  out += ",\"type\":";
  AppendJsonString(out, error.type);
  out += ",\"param\":";
  AppendNullableString(out, error.param);
  out += ",\"code\":";
  AppendNullableString(out, error.code);
  out += "}}";
  return out;
}

ApiError ForcedError(int status, std::string_view model, int64_t retry_after_s) {
  if (retry_after_s <= 0) retry_after_s = 1;
  ApiError e;
  e.status = status;
  switch (status) {
    case 400:
      e.message = "Invalid request (simulated by the mock provider).";
      break;
    case 401:
      e.message =
          "Incorrect API key provided: sk-mock***********. You can find your API key at "
          "https://platform.openai.com/account/api-keys.";
      e.code = "invalid_api_key";
      break;
    case 403:
      e.message = "Country, region, or territory not supported";
      e.type = "request_forbidden";
      e.code = "unsupported_country_region_territory";
      break;
    case 404:
      e.message = absl::StrCat("The model `", std::string(model),
                               "` does not exist or you do not have access to it.");
      e.code = "model_not_found";
      break;
    case 429:
      e.message = absl::StrCat(
          "Rate limit reached for ", std::string(model),
          " in organization org-mock on tokens per min (TPM): Limit 30000000, Used 30000000, "
          "Requested 100. Please try again in ",
          retry_after_s, "s. Visit https://platform.openai.com/account/rate-limits to learn more.");
      e.type = "tokens";
      e.code = "rate_limit_exceeded";
      e.retry_after_s = retry_after_s;
      break;
    case 500:
      e.message = "The server had an error while processing your request. Sorry about that!";
      e.type = "server_error";
      break;
    case 503:
      e.message = "The server is overloaded or not ready yet.";
      e.type = "server_error";
      e.code = "overloaded";
      e.retry_after_s = retry_after_s;
      break;
    default:
      e.message = absl::StrCat("Simulated error (status ", status, ").");
      if (status >= 500) e.type = "server_error";
      break;
  }
  return e;
}

uint64_t Fnv1a64(std::string_view text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string ContentText(const json::value& content) {
  if (content.is_string()) return std::string(ToStd(content.get_string()));
  std::string text;
  if (!content.is_array()) return text;
  for (const json::value& part : content.get_array()) {
    const json::object* obj = part.if_object();
    if (obj == nullptr) continue;
    const json::value* type = obj->if_contains("type");
    const json::value* t = obj->if_contains("text");
    if (type != nullptr && type->is_string() && type->get_string() == "text" && t != nullptr &&
        t->is_string()) {
      text += ToStd(t->get_string());
    }
  }
  return text;
}

int64_t CountPromptTokens(const json::array& messages) {
  int64_t tokens = 3;
  for (const json::value& m : messages) {
    tokens += 4;
    const json::object* obj = m.if_object();
    if (obj == nullptr) continue;
    const json::value* content = obj->if_contains("content");
    if (content == nullptr) continue;
    int64_t bytes = 0;
    if (content->is_string()) {
      bytes = static_cast<int64_t>(content->get_string().size());
    } else {
      bytes = static_cast<int64_t>(ContentText(*content).size());
    }
    tokens += (bytes + 3) / 4;
  }
  return tokens;
}

// ---------------------------------------------------------------------------------------------

absl::Status ApplyDirective(std::string_view name, std::string_view value, Directives& out) {
  const std::string key = NormalizeKey(name);
  auto error = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("mock directive ", key, "=", std::string(value), ": ", std::string(why)));
  };
  if (key == "key") {
    if (value.empty() || value.size() > 128) return error("key must be 1..128 characters");
    for (char c : value) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '-' || c == '.' || c == ':';
      if (!ok) return error("key may only contain [A-Za-z0-9_.:-]");
    }
    out.key = std::string(value);
    return absl::OkStatus();
  }
  int64_t n = 0;
  const bool is_int = ParseNonNegative(value, n);
  auto need_int = [&](int64_t max, std::optional<int64_t>& field) -> absl::Status {
    if (!is_int) return error("expected a non-negative integer");
    if (n > max) return error(absl::StrCat("must be <= ", max));
    field = n;
    return absl::OkStatus();
  };
  if (key == "status") {
    if (!is_int || !(n == 200 || (n >= 400 && n <= 599))) {
      return error("status must be 200 or 400..599");
    }
    out.status = static_cast<int>(n);
    return absl::OkStatus();
  }
  if (key == "retry_after") return need_int(86400, out.retry_after);
  if (key == "tokens") return need_int(kMaxTokensDirective, out.tokens);
  if (key == "cached") return need_int(INT64_MAX / 4, out.cached);
  if (key == "reasoning") return need_int(kMaxTokensDirective, out.reasoning);
  if (key == "ttft_ms") return need_int(kMaxDelayMs, out.ttft_ms);
  if (key == "inter_token_ms") return need_int(kMaxDelayMs, out.inter_token_ms);
  if (key == "latency_ms") return need_int(kMaxDelayMs, out.latency_ms);
  if (key == "stall_ms") return need_int(kMaxDelayMs, out.stall_ms);
  if (key == "disconnect_after") return need_int(kMaxTokensDirective, out.disconnect_after);
  if (key == "fail_first") return need_int(1'000'000'000, out.fail_first);
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown mock directive '", key,
      "' (known: status, retry_after, tokens, cached, reasoning, ttft_ms, inter_token_ms, "
      "latency_ms, stall_ms, disconnect_after, fail_first, key)"));
}

absl::Status ParseDirectives(std::string_view text, Directives& out) {
  constexpr std::string_view kOpen = "[[mock:";
  size_t pos = 0;
  while ((pos = text.find(kOpen, pos)) != std::string_view::npos) {
    const size_t start = pos + kOpen.size();
    const size_t end = text.find("]]", start);
    if (end == std::string_view::npos) {
      return absl::InvalidArgumentError("unterminated [[mock: ...]] directive");
    }
    std::string_view body = text.substr(start, end - start);
    while (true) {
      body = Trim(body);
      if (body.empty()) break;
      size_t len = 0;
      while (len < body.size() && !IsSpace(body[len])) ++len;
      const std::string_view token = body.substr(0, len);
      body.remove_prefix(len);
      const size_t eq = token.find('=');
      if (eq == std::string_view::npos || eq == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("mock directive '", std::string(token), "' is not of the form key=value"));
      }
      absl::Status st = ApplyDirective(token.substr(0, eq), token.substr(eq + 1), out);
      if (!st.ok()) return st;
    }
    pos = end + 2;
  }
  return absl::OkStatus();
}

std::string PromptText(std::string_view text) {
  constexpr std::string_view kOpen = "[[mock:";
  std::string out;
  size_t pos = 0;
  while (true) {
    const size_t open = text.find(kOpen, pos);
    const size_t close = open == std::string_view::npos ? open : text.find("]]", open);
    if (close == std::string_view::npos) {
      out += text.substr(pos);
      break;
    }
    out += text.substr(pos, open - pos);
    pos = close + 2;
  }
  return std::string(Trim(out));
}

// ---------------------------------------------------------------------------------------------

std::optional<ApiError> ParseChatRequest(std::string_view body, ChatRequest& out) {
  // Most requests are small: parse into a stack arena first.
  alignas(std::max_align_t) unsigned char arena[16384];
  json::monotonic_resource mr(arena, sizeof(arena));
  json::parse_options options;
  options.max_depth = 256;  // tool JSON schemas nest deeply
  boost::system::error_code ec;
  const json::value root =
      json::parse(json::string_view(body.data(), body.size()), ec, &mr, options);
  if (ec) {
    return InvalidRequest(
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
        "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
        "sent was not valid JSON. If you have trouble figuring out how to fix this, please "
        "contact us through our help center at help.openai.com.)");
  }
  if (!root.is_object()) {
    return InvalidRequest(
        absl::StrCat("Invalid type for request body: expected an object, but got ",
                     Av(JsonTypeName(root)), " instead."));
  }
  const json::object& req = root.get_object();
  for (const auto& kv : req) {
    const std::string_view k = ToStd(kv.key());
    if (std::find(kKnownParams.begin(), kKnownParams.end(), k) == kKnownParams.end()) {
      return InvalidRequest(absl::StrCat("Unrecognized request argument supplied: ", Av(k)));
    }
  }

  const json::value* model = req.if_contains("model");
  if (model == nullptr || model->is_null() || (model->is_string() && model->get_string().empty())) {
    return InvalidRequest("you must provide a model parameter", "model",
                          "missing_required_parameter");
  }
  if (!model->is_string()) return InvalidType("model", "a string", *model);

  const json::value* messages = req.if_contains("messages");
  if (messages == nullptr || messages->is_null()) return MissingParam("messages");
  if (!messages->is_array()) return InvalidType("messages", "an array of objects", *messages);
  const json::array& msgs = messages->get_array();
  if (msgs.empty()) return EmptyArray("messages");
  ToolCallState tool_state;
  for (size_t i = 0; i < msgs.size(); ++i) {
    if (auto e = ValidateMessage(msgs[i], i, tool_state)) return e;
  }
  if (!tool_state.pending.empty()) {
    return InvalidRequest(PendingToolIdsError(tool_state),
                          absl::StrCat("messages.[", msgs.size(), "].role"));
  }

  bool stream = false;
  if (const json::value* s = req.if_contains("stream"); s != nullptr && !s->is_null()) {
    if (!s->is_bool()) return InvalidType("stream", "a boolean", *s);
    stream = s->get_bool();
  }
  bool include_usage = false;
  if (const json::value* so = req.if_contains("stream_options"); so != nullptr && !so->is_null()) {
    if (!stream) {
      return InvalidRequest(
          "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
          "stream_options");
    }
    if (!so->is_object()) return InvalidType("stream_options", "an object", *so);
    if (const json::value* iu = so->get_object().if_contains("include_usage");
        iu != nullptr && !iu->is_null()) {
      if (!iu->is_bool()) return InvalidType("stream_options.include_usage", "a boolean", *iu);
      include_usage = iu->get_bool();
    }
  }

  int64_t n = 1;
  if (auto e = CheckInteger(req, "n", 1, kMaxChoices, n)) return e;
  int64_t max_tokens = 0;
  int64_t max_completion_tokens = 0;
  if (auto e = CheckInteger(req, "max_tokens", 1, INT64_MAX, max_tokens)) return e;
  if (auto e = CheckInteger(req, "max_completion_tokens", 1, INT64_MAX, max_completion_tokens)) {
    return e;
  }

  std::vector<std::string> tools;
  if (auto e = ValidateTools(req, tools)) return e;
  std::string chosen;
  if (auto e = ValidateToolChoice(req, tools, chosen)) return e;

  out = ChatRequest();
  out.model = std::string(ToStd(model->get_string()));
  out.stream = stream;
  out.include_usage = include_usage;
  out.n = static_cast<int>(n);
  out.max_completion_tokens = max_completion_tokens > 0 ? max_completion_tokens : max_tokens;
  out.prompt_tokens = CountPromptTokens(msgs);
  for (size_t i = msgs.size(); i-- > 0;) {
    const json::object& m = msgs[i].get_object();
    if (m.at("role").get_string() == "user") {
      const json::value* content = m.if_contains("content");
      if (content != nullptr) out.last_user_text = ContentText(*content);
      break;
    }
  }
  const bool last_is_user = msgs.back().get_object().at("role").get_string() == "user";
  if (!tools.empty() && chosen != "none" && last_is_user) {
    out.tool_to_call = chosen.empty() ? tools.front() : chosen;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------

std::string GenerateWords(uint64_t seed, int64_t count) {
  std::string out;
  out.reserve(static_cast<size_t>(count) * 7);
  uint64_t state = seed;
  for (int64_t i = 0; i < count; ++i) {
    if (i > 0) out += ' ';
    out += kWords[SplitMix64(state) % kWords.size()];
  }
  return out;
}

int64_t ToolCallTokens(std::string_view name, std::string_view arguments) {
  return 7 + static_cast<int64_t>((name.size() + arguments.size() + 3) / 4);
}

Completion BuildCompletion(const ChatRequest& request, const Directives& directives, uint64_t seq,
                           int64_t created_unix_s) {
  Completion c;
  c.id = absl::StrCat("chatcmpl-", seq);
  c.created = created_unix_s;
  c.model = request.model;
  const std::string prompt = PromptText(request.last_user_text);
  const uint64_t hash = Fnv1a64(prompt);
  const int64_t reasoning = directives.reasoning.value_or(0);
  int64_t completion_tokens = 0;
  c.choices.resize(static_cast<size_t>(std::max(request.n, 1)));
  for (size_t i = 0; i < c.choices.size(); ++i) {
    Choice& choice = c.choices[i];
    if (!request.tool_to_call.empty()) {
      choice.tool_call_id =
          i == 0 ? absl::StrCat("call_", seq) : absl::StrCat("call_", seq, "_", i);
      choice.tool_name = request.tool_to_call;
      choice.tool_arguments = "{\"query\":";
      AppendJsonString(choice.tool_arguments, FirstWord(prompt));
      choice.tool_arguments += '}';
      choice.finish_reason = "tool_calls";
      completion_tokens +=
          directives.tokens.value_or(ToolCallTokens(choice.tool_name, choice.tool_arguments));
      continue;
    }
    int64_t words = directives.tokens.value_or(8 + static_cast<int64_t>(hash % 17));
    choice.finish_reason = "stop";
    if (request.max_completion_tokens > 0) {
      const int64_t budget = std::max<int64_t>(request.max_completion_tokens - reasoning, 0);
      if (words > budget) {
        words = budget;
        choice.finish_reason = "length";
      }
    }
    choice.words = words;
    choice.content = GenerateWords(hash + i * 0x9E3779B97F4A7C15ULL, words);
    completion_tokens += words;
  }
  c.usage.prompt_tokens = request.prompt_tokens;
  c.usage.reasoning_tokens = reasoning;
  c.usage.completion_tokens = completion_tokens + reasoning;
  c.usage.cached_tokens = std::min(directives.cached.value_or(0), request.prompt_tokens);
  return c;
}

void AppendUsageJson(std::string& out, const Usage& u) {
  absl::StrAppend(&out, "{\"prompt_tokens\":", u.prompt_tokens,
                  ",\"completion_tokens\":", u.completion_tokens,
                  ",\"total_tokens\":", u.prompt_tokens + u.completion_tokens,
                  ",\"prompt_tokens_details\":{\"cached_tokens\":", u.cached_tokens,
                  ",\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":",
                  u.reasoning_tokens,
                  ",\"audio_tokens\":0,\"accepted_prediction_tokens\":0,"
                  "\"rejected_prediction_tokens\":0}}");
}

std::string RenderCompletionJson(const Completion& c) {
  std::string out;
  out.reserve(512 + c.choices.size() * (c.choices[0].content.size() + 160));
  out += "{\"id\":";
  AppendJsonString(out, c.id);
  absl::StrAppend(&out, ",\"object\":\"chat.completion\",\"created\":", c.created, ",\"model\":");
  AppendJsonString(out, c.model);
  out += ",\"choices\":[";
  for (size_t i = 0; i < c.choices.size(); ++i) {
    const Choice& ch = c.choices[i];
    if (i > 0) out += ',';
    absl::StrAppend(&out, "{\"index\":", i, ",\"message\":{\"role\":\"assistant\",\"content\":");
    if (ch.tool_name.empty()) {
      AppendJsonString(out, ch.content);
    } else {
      out += "null,\"tool_calls\":[{\"id\":";
      AppendJsonString(out, ch.tool_call_id);
      out += ",\"type\":\"function\",\"function\":{\"name\":";
      AppendJsonString(out, ch.tool_name);
      out += ",\"arguments\":";
      AppendJsonString(out, ch.tool_arguments);
      out += "}}]";
    }
    out += ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":";
    AppendJsonString(out, ch.finish_reason);
    out += '}';
  }
  out += "],\"usage\":";
  AppendUsageJson(out, c.usage);
  absl::StrAppend(&out, ",\"service_tier\":\"default\",\"system_fingerprint\":\"",
                  std::string(kSystemFingerprint), "\"}");
  return out;
}

void RenderStreamEvents(const Completion& c, bool include_usage,
                        absl::FunctionRef<void(EventKind, std::string_view)> sink) {
  const std::string prefix = ChunkPrefix(c);
  const std::string_view suffix = include_usage ? ",\"usage\":null}\n\n" : "}\n\n";
  std::string event;  // reused for every event: no allocation per token once grown
  event.reserve(prefix.size() + 256);

  auto emit_choice = [&](EventKind kind, size_t index, auto&& append_delta,
                         std::string_view finish_reason) {
    event.assign(prefix);
    absl::StrAppend(&event, "[{\"index\":", index, ",\"delta\":");
    append_delta();
    event += ",\"logprobs\":null,\"finish_reason\":";
    if (finish_reason.empty()) {
      event += "null";
    } else {
      AppendJsonString(event, finish_reason);
    }
    event += "}]";
    event += suffix;
    sink(kind, event);
  };

  for (size_t i = 0; i < c.choices.size(); ++i) {
    emit_choice(
        EventKind::kRole, i,
        [&] { event += "{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}"; }, "");
  }

  // Content: choices round-robin; `cursor` is a byte offset (text) or fragment number (tool).
  std::vector<size_t> cursor(c.choices.size(), 0);
  bool progressed = true;
  while (progressed) {
    progressed = false;
    for (size_t i = 0; i < c.choices.size(); ++i) {
      const Choice& ch = c.choices[i];
      if (ch.tool_name.empty()) {
        const std::string_view text = ch.content;
        size_t start = cursor[i];
        if (start >= text.size()) continue;
        size_t end = text.find(' ', start + 1);
        if (end == std::string_view::npos) end = text.size();
        cursor[i] = end;
        progressed = true;
        emit_choice(
            EventKind::kContent, i,
            [&] {
              event += "{\"content\":";
              AppendJsonString(event, text.substr(start, end - start));
              event += '}';
            },
            "");
        continue;
      }
      if (cursor[i] >= 4) continue;
      const size_t fragment = cursor[i]++;
      progressed = true;
      const std::string_view args = ch.tool_arguments;
      const size_t colon = args.find(':') + 1;  // {"query":  |  "word"  |  }
      emit_choice(
          EventKind::kContent, i,
          [&] {
            absl::StrAppend(&event, "{\"tool_calls\":[{\"index\":0,");
            if (fragment == 0) {
              event += "\"id\":";
              AppendJsonString(event, ch.tool_call_id);
              event += ",\"type\":\"function\",\"function\":{\"name\":";
              AppendJsonString(event, ch.tool_name);
              event += ",\"arguments\":\"\"}}]}";
              return;
            }
            std::string_view piece;
            if (fragment == 1) piece = args.substr(0, colon);
            if (fragment == 2) piece = args.substr(colon, args.size() - 1 - colon);
            if (fragment == 3) piece = args.substr(args.size() - 1);
            event += "\"function\":{\"arguments\":";
            AppendJsonString(event, piece);
            event += "}}]}";
          },
          "");
    }
  }

  for (size_t i = 0; i < c.choices.size(); ++i) {
    emit_choice(
        EventKind::kFinish, i, [&] { event += "{}"; }, c.choices[i].finish_reason);
  }
  if (include_usage) {
    event.assign(prefix);
    event += "[],\"usage\":";
    AppendUsageJson(event, c.usage);
    event += "}\n\n";
    sink(EventKind::kUsage, event);
  }
  sink(EventKind::kDone, "data: [DONE]\n\n");
}

std::vector<std::pair<EventKind, std::string>> StreamEvents(const Completion& completion,
                                                            bool include_usage) {
  std::vector<std::pair<EventKind, std::string>> events;
  RenderStreamEvents(completion, include_usage, [&](EventKind kind, std::string_view data) {
    events.emplace_back(kind, std::string(data));
  });
  return events;
}

}  // namespace tollgate::tools::mock
