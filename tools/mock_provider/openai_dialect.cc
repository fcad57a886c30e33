#include "tools/mock_provider/openai_dialect.h"

#include <algorithm>
#include <array>
#include <cstddef>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "boost/json/object.hpp"
#include "boost/json/string.hpp"

namespace tollgate::tools::mock {
using std::string_view_literals::operator""sv;
namespace json = boost::json;
namespace {

constexpr int kMaxChoices = 128;

void AppendNullableString(std::string& out, std::string_view value) {
  if (value.empty()) {
    out += "null"sv;
  } else {
    AppendJsonString(out, value);
  }
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

std::string ChunkPrefix(const Completion& c, OpenAiFlavor flavor) {
  std::string p = "data: {\"id\":";
  AppendJsonString(p, c.id);
  absl::StrAppend(&p, ",\"object\":\"chat.completion.chunk\",\"created\":", c.created,
                  ",\"model\":");
  AppendJsonString(p, c.model);
  if (flavor == OpenAiFlavor::kOpenAi) p += ",\"service_tier\":\"default\""sv;
  absl::StrAppend(&p, ",\"system_fingerprint\":\"", Av(kSystemFingerprint), "\",\"choices\":");
  return p;
}

// --- Azure's content filter annotations (every category "safe") --------------------------------

constexpr std::string_view kAzurePromptFilterResults =
    "[{\"prompt_index\":0,\"content_filter_results\":{\"hate\":{\"filtered\":false,\"severity\":"
    "\"safe\"},\"jailbreak\":{\"filtered\":false,\"detected\":false},\"self_harm\":{\"filtered\":"
    "false,\"severity\":\"safe\"},\"sexual\":{\"filtered\":false,\"severity\":\"safe\"},"
    "\"violence\":{\"filtered\":false,\"severity\":\"safe\"}}}]";

constexpr std::string_view kAzureChoiceFilterResults =
    "{\"hate\":{\"filtered\":false,\"severity\":\"safe\"},\"protected_material_code\":{"
    "\"filtered\":false,\"detected\":false},\"protected_material_text\":{\"filtered\":false,"
    "\"detected\":false},\"self_harm\":{\"filtered\":false,\"severity\":\"safe\"},\"sexual\":{"
    "\"filtered\":false,\"severity\":\"safe\"},\"violence\":{\"filtered\":false,\"severity\":"
    "\"safe\"}}";

// The error body of Azure's own front door: {"error":{"code":"<code>","message":"..."}}.
std::string AzureErrorJson(std::string_view code, std::string_view message) {
  std::string out = "{\"error\":{\"code\":";
  AppendJsonString(out, code);
  out += ",\"message\":"sv;
  AppendJsonString(out, message);
  out += "}}"sv;
  return out;
}

bool IsAzureApiVersion(std::string_view v) {
  // YYYY-MM-DD or YYYY-MM-DD-preview.
  auto digits = [&](size_t from, size_t n) {
    for (size_t i = from; i < from + n; ++i) {
      if (i >= v.size() || v[i] < '0' || v[i] > '9') return false;
    }
    return true;
  };
  const bool date =
      v.size() >= 10 && digits(0, 4) && v[4] == '-' && digits(5, 2) && v[7] == '-' && digits(8, 2);
  return date && (v.size() == 10 || v.substr(10) == "-preview");
}

constexpr int64_t kRateLimitRequests = 10000;
constexpr int64_t kRateLimitTokens = 30'000'000;

// Headers OpenAI puts on every API response.
std::string OpenAiHeaders(uint64_t seq, int64_t processing_ms, int64_t prompt_tokens,
                          int64_t retry_after_s, bool rate_limited) {
  std::string h;
  h.reserve(400);
  absl::StrAppend(&h, "x-request-id: req_", absl::StrFormat("%032x", seq), "\r\n",
                  "openai-organization: org-mock\r\nopenai-version: 2020-10-01\r\n",
                  "openai-processing-ms: ", processing_ms, "\r\n",
                  "x-ratelimit-limit-requests: ", kRateLimitRequests, "\r\n",
                  "x-ratelimit-limit-tokens: ", kRateLimitTokens, "\r\n");
  if (rate_limited) {
    absl::StrAppend(&h, "x-ratelimit-remaining-requests: 0\r\nx-ratelimit-remaining-tokens: 0\r\n",
                    "x-ratelimit-reset-requests: ", retry_after_s, "s\r\n",
                    "x-ratelimit-reset-tokens: ", retry_after_s, "s\r\n");
  } else {
    absl::StrAppend(
        &h, "x-ratelimit-remaining-requests: ", kRateLimitRequests - 1, "\r\n",
        "x-ratelimit-remaining-tokens: ", std::max<int64_t>(kRateLimitTokens - prompt_tokens, 0),
        "\r\n", "x-ratelimit-reset-requests: 6ms\r\nx-ratelimit-reset-tokens: 0s\r\n");
  }
  if (retry_after_s > 0) absl::StrAppend(&h, "retry-after: ", retry_after_s, "\r\n");
  return h;
}

// Headers Azure OpenAI puts on every response (no reset headers; retry-after-ms beside
// retry-after on 429).
std::string AzureHeaders(uint64_t seq, int64_t prompt_tokens, int64_t retry_after_s,
                         bool rate_limited) {
  std::string h;
  h.reserve(300);
  const std::string id =
      absl::StrFormat("%08x-0000-4000-8000-%012x", seq >> 32, seq & 0xffffffffffffULL);
  absl::StrAppend(&h, "apim-request-id: ", id, "\r\nx-request-id: ", id,
                  "\r\nx-ms-region: mock-region\r\n",
                  "x-ratelimit-limit-requests: ", kRateLimitRequests, "\r\n",
                  "x-ratelimit-limit-tokens: ", kRateLimitTokens, "\r\n");
  if (rate_limited) {
    h += "x-ratelimit-remaining-requests: 0\r\nx-ratelimit-remaining-tokens: 0\r\n"sv;
  } else {
    absl::StrAppend(&h, "x-ratelimit-remaining-requests: ", kRateLimitRequests - 1, "\r\n",
                    "x-ratelimit-remaining-tokens: ",
                    std::max<int64_t>(kRateLimitTokens - prompt_tokens, 0), "\r\n");
  }
  if (retry_after_s > 0) {
    absl::StrAppend(&h, "retry-after: ", retry_after_s,
                    "\r\nretry-after-ms: ", retry_after_s * 1000, "\r\n");
  }
  return h;
}

// OpenAI's answers to a missing or wrong key.
std::optional<ApiError> CheckOpenAiAuth(const HttpRequest& request, std::string_view key) {
  if (key.empty()) return std::nullopt;
  const std::optional<std::string_view> token = BearerToken(request);
  if (!token.has_value()) {
    ApiError e;
    e.status = 401;
    e.message =
        "You didn't provide an API key. You need to provide your API key in an Authorization "
        "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field "
        "(with blank username) if you're accessing the API from your browser and are prompted for "
        "a username and password. You can obtain an API key from "
        "https://platform.openai.com/account/api-keys.";
    return e;
  }
  if (*token == key) return std::nullopt;
  ApiError e;
  e.status = 401;
  e.message = absl::StrCat("Incorrect API key provided: ", MaskKey(*token),
                           ". You can find your API key at "
                           "https://platform.openai.com/account/api-keys.");
  e.code = "invalid_api_key";
  return e;
}

// Azure's answers to a missing or wrong key (api-key header, or an Entra ID bearer token).
std::optional<Reply> CheckAzureAuth(const HttpRequest& request, std::string_view key) {
  if (key.empty()) return std::nullopt;
  std::string_view given = HeaderValue(request, "api-key");
  if (given.empty()) given = BearerToken(request).value_or(std::string_view());
  if (given == key) return std::nullopt;
  Reply r;
  r.status = 401;
  r.body = AzureErrorJson(
      "401", given.empty()
                 ? "Access denied due to missing subscription key. Make sure to include "
                   "subscription key when making requests to an API."
                 : "Access denied due to invalid subscription key or wrong API endpoint. Make sure "
                   "to provide a valid key for an active subscription and use a correct regional "
                   "API endpoint for your resource.");
  return r;
}

constexpr std::string_view kChatSuffix = "/chat/completions";

// The deployment of an Azure deployment path ("" for other paths).
std::string_view Deployment(std::string_view path) {
  if (!path.starts_with(kAzureDeploymentsPrefix) || !path.ends_with(kChatSuffix)) return {};
  const std::string_view d =
      path.substr(kAzureDeploymentsPrefix.size(),
                  path.size() - kAzureDeploymentsPrefix.size() - kChatSuffix.size());
  return d.find('/') == std::string_view::npos ? d : std::string_view();
}

constexpr std::array<std::string_view, 5> kModels = {"gpt-4o", "gpt-4o-mini", "o3-mini", "gpt-4.1",
                                                     "text-embedding-3-small"};
constexpr int64_t kModelCreated = 1715367049;

void AppendModel(std::string& out, std::string_view id) {
  absl::StrAppend(&out, "{\"id\":\"", Av(id), "\",\"object\":\"model\",\"created\":", kModelCreated,
                  ",\"owned_by\":\"system\"}");
}

}  // namespace

ApiError InvalidRequest(std::string message, std::string param, std::string code) {
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

std::optional<ApiError> ParseOpenAiRequestObject(std::string_view body,
                                                 std::span<const std::string_view> known_params,
                                                 RequestJson& doc) {
  boost::system::error_code ec;
  const json::value& root = doc.Parse(body, ec);
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
  for (const auto& kv : root.get_object()) {
    const std::string_view k = ToStd(kv.key());
    if (!OneOf(known_params, k)) {
      return InvalidRequest(absl::StrCat("Unrecognized request argument supplied: ", Av(k)));
    }
  }
  return std::nullopt;
}

std::optional<ApiError> ParseOpenAiModel(const json::object& req, std::string_view default_model,
                                         std::string& model) {
  const json::value* v = req.if_contains("model");
  const bool no_model = v == nullptr || v->is_null() || (v->is_string() && v->get_string().empty());
  if (no_model && default_model.empty()) {
    return InvalidRequest("you must provide a model parameter", "model",
                          "missing_required_parameter");
  }
  if (!no_model && !v->is_string()) return InvalidType("model", "a string", *v);
  model = no_model ? std::string(default_model) : std::string(ToStd(v->get_string()));
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------

std::string RenderErrorJson(const ApiError& error) {
  std::string out = "{\"error\":{\"message\":";
  AppendJsonString(out, error.message);
  out += ",\"type\":"sv;
  AppendJsonString(out, error.type);
  out += ",\"param\":"sv;
  AppendNullableString(out, error.param);
  out += ",\"code\":"sv;
  AppendNullableString(out, error.code);
  out += "}}"sv;
  return out;
}

Reply OpenAiErrorReply(const ApiError& error, uint64_t seq, int64_t processing_ms) {
  return Reply{error.status, RenderErrorJson(error),
               OpenAiHeaders(seq, processing_ms, 0, error.retry_after_s, error.status == 429)};
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

std::optional<ApiError> ParseChatRequest(std::string_view body, ChatRequest& out,
                                         std::string_view default_model) {
  RequestJson doc;
  if (auto e = ParseOpenAiRequestObject(body, kKnownParams, doc)) return e;
  const json::object& req = doc.value().get_object();
  std::string model;
  if (auto e = ParseOpenAiModel(req, default_model, model)) return e;

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
  out.model = std::move(model);
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

std::string RenderCompletionJson(const Completion& c, OpenAiFlavor flavor) {
  const bool azure = flavor == OpenAiFlavor::kAzure;
  std::string out;
  out.reserve(512 + c.choices.size() * (c.choices[0].content.size() + 160));
  out += "{\"id\":"sv;
  AppendJsonString(out, c.id);
  absl::StrAppend(&out, ",\"object\":\"chat.completion\",\"created\":", c.created, ",\"model\":");
  AppendJsonString(out, c.model);
  if (azure) absl::StrAppend(&out, ",\"prompt_filter_results\":", Av(kAzurePromptFilterResults));
  out += ",\"choices\":["sv;
  for (size_t i = 0; i < c.choices.size(); ++i) {
    const Choice& ch = c.choices[i];
    if (i > 0) out += ',';
    absl::StrAppend(&out, "{\"index\":", i, ",\"message\":{\"role\":\"assistant\",\"content\":");
    if (ch.tool_name.empty()) {
      AppendJsonString(out, ch.content);
    } else {
      out += "null,\"tool_calls\":[{\"id\":"sv;
      AppendJsonString(out, ch.tool_call_id);
      out += ",\"type\":\"function\",\"function\":{\"name\":"sv;
      AppendJsonString(out, ch.tool_name);
      out += ",\"arguments\":"sv;
      AppendJsonString(out, ch.tool_arguments);
      out += "}}]"sv;
    }
    out += ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":"sv;
    AppendJsonString(out, ch.finish_reason);
    if (azure) absl::StrAppend(&out, ",\"content_filter_results\":", Av(kAzureChoiceFilterResults));
    out += '}';
  }
  out += "],\"usage\":"sv;
  AppendUsageJson(out, c.usage);
  if (!azure) out += ",\"service_tier\":\"default\""sv;
  absl::StrAppend(&out, ",\"system_fingerprint\":\"", Av(kSystemFingerprint), "\"}");
  return out;
}

void RenderStreamEvents(const Completion& c, bool include_usage, EventSink sink,
                        OpenAiFlavor flavor) {
  const bool azure = flavor == OpenAiFlavor::kAzure;
  const std::string prefix = ChunkPrefix(c, flavor);
  const std::string_view suffix = include_usage ? ",\"usage\":null}\n\n" : "}\n\n";
  std::string event;  // reused for every event: no allocation per token once grown
  event.reserve(prefix.size() + 256 + (azure ? kAzureChoiceFilterResults.size() : 0));

  auto emit_choice = [&](EventKind kind, size_t index, auto&& append_delta,
                         std::string_view finish_reason) {
    event.assign(prefix);
    absl::StrAppend(&event, "[{\"index\":", index, ",\"delta\":");
    append_delta();
    event += ",\"logprobs\":null,\"finish_reason\":"sv;
    if (finish_reason.empty()) {
      event += "null"sv;
    } else {
      AppendJsonString(event, finish_reason);
    }
    if (azure) {
      // Azure annotates content chunks; the role and finish chunks carry an empty object.
      event += ",\"content_filter_results\":"sv;
      event += kind == EventKind::kContent ? kAzureChoiceFilterResults : "{}";
    }
    event += "}]"sv;
    event += suffix;
    sink(kind, event);
  };

  if (azure) {
    // Azure opens with the prompt's filter results in a chunk that has no id, model or choices.
    event.assign("data: {\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\"");
    absl::StrAppend(&event, ",\"prompt_filter_results\":", Av(kAzurePromptFilterResults));
    event += suffix;
    sink(EventKind::kRole, event);
  }
  for (size_t i = 0; i < c.choices.size(); ++i) {
    emit_choice(
        EventKind::kRole, i,
        [&] { event += "{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}"sv; }, "");
  }

  // Content: choices round-robin; `cursor` is a byte offset (text) or fragment number (tool).
  std::vector<size_t> cursor(c.choices.size(), 0);
  bool progressed = true;
  while (progressed) {
    progressed = false;
    for (size_t i = 0; i < c.choices.size(); ++i) {
      const Choice& ch = c.choices[i];
      if (ch.tool_name.empty()) {
        const std::string_view piece = NextPiece(ch.content, cursor[i]);
        if (piece.empty()) continue;
        progressed = true;
        emit_choice(
            EventKind::kContent, i,
            [&] {
              event += "{\"content\":"sv;
              AppendJsonString(event, piece);
              event += '}';
            },
            "");
        continue;
      }
      if (cursor[i] >= 4) continue;
      const size_t fragment = cursor[i]++;
      progressed = true;
      emit_choice(
          EventKind::kContent, i,
          [&] {
            absl::StrAppend(&event, "{\"tool_calls\":[{\"index\":0,");
            if (fragment == 0) {
              event += "\"id\":"sv;
              AppendJsonString(event, ch.tool_call_id);
              event += ",\"type\":\"function\",\"function\":{\"name\":"sv;
              AppendJsonString(event, ch.tool_name);
              event += ",\"arguments\":\"\"}}]}"sv;
              return;
            }
            event += "\"function\":{\"arguments\":"sv;
            AppendJsonString(event, SplitToolArguments(ch.tool_arguments)[fragment - 1]);
            event += "}}]}"sv;
          },
          "");
    }
  }

  for (size_t i = 0; i < c.choices.size(); ++i) {
    emit_choice(
        EventKind::kFinish, i, [&] { event += "{}"sv; }, c.choices[i].finish_reason);
  }
  if (include_usage) {
    event.assign(prefix);
    event += "[],\"usage\":"sv;
    AppendUsageJson(event, c.usage);
    event += "}\n\n"sv;
    sink(EventKind::kUsage, event);
  }
  sink(EventKind::kDone, "data: [DONE]\n\n");
}

std::vector<std::pair<EventKind, std::string>> StreamEvents(const Completion& completion,
                                                            bool include_usage,
                                                            OpenAiFlavor flavor) {
  std::vector<std::pair<EventKind, std::string>> events;
  RenderStreamEvents(
      completion, include_usage,
      [&](EventKind kind, std::string_view data) { events.emplace_back(kind, std::string(data)); },
      flavor);
  return events;
}

// ---------------------------------------------------------------------------------------------

DialectId OpenAiDialect::id() const { return azure() ? DialectId::kAzure : DialectId::kOpenAi; }

bool OpenAiDialect::Matches(std::string_view path) const {
  if (!azure()) return path == "/v1/chat/completions";
  return path == "/openai/v1/chat/completions" || !Deployment(path).empty();
}

std::optional<Reply> OpenAiDialect::Models(const Call& call) const {
  constexpr std::string_view kList = "/v1/models";
  if (azure() || !(call.path == kList || call.path.starts_with("/v1/models/"))) {
    return std::nullopt;
  }
  if (auto e = CheckOpenAiAuth(call.request, call.require_key)) return ErrorReply(call, *e, 0);
  std::string body;
  if (call.path == kList) {
    body = "{\"object\":\"list\",\"data\":[";
    for (size_t i = 0; i < kModels.size(); ++i) {
      if (i > 0) body += ',';
      AppendModel(body, kModels[i]);
    }
    body += "]}"sv;
  } else {
    const std::string_view id = call.path.substr(kList.size() + 1);
    if (std::find(kModels.begin(), kModels.end(), id) == kModels.end()) {
      return ErrorReply(call, ForcedError(404, id, 0), 0);
    }
    AppendModel(body, id);
  }
  return Reply{200, std::move(body), OpenAiHeaders(call.seq, 0, 0, 0, false)};
}

std::optional<Reply> OpenAiDialect::Parse(const Call& call, ChatRequest& out) const {
  std::string_view default_model;
  if (azure()) {
    default_model = Deployment(call.path);
    if (!default_model.empty()) {
      // Azure checks the API version before anything else.
      const std::optional<std::string> version = QueryParam(call.query, "api-version");
      if (!version.has_value()) {
        return Reply{404, AzureErrorJson("404", "Resource not found"), ""};
      }
      if (!IsAzureApiVersion(*version)) {
        return Reply{400, AzureErrorJson("BadRequest", "API version not supported"), ""};
      }
    }
    if (auto r = CheckAzureAuth(call.request, call.require_key)) return r;
  } else if (auto e = CheckOpenAiAuth(call.request, call.require_key)) {
    return ErrorReply(call, *e, 0);
  }
  if (auto e = ParseChatRequest(call.request.body(), out, default_model)) {
    return ErrorReply(call, *e, 0);
  }
  return std::nullopt;
}

Reply OpenAiDialect::InvalidDirective(const Call& call, std::string_view message) const {
  ApiError e;
  e.message = std::string(message);
  e.code = "invalid_mock_directive";
  return ErrorReply(call, e, 0);
}

Reply OpenAiDialect::Error(const Call& call, int status, std::string_view model,
                           int64_t retry_after_s, int64_t processing_ms) const {
  ApiError e = ForcedError(status, model, retry_after_s);
  if (!azure() || (status != 401 && status != 404 && status != 429)) {
    return ErrorReply(call, e, processing_ms);
  }
  // Errors raised by Azure's own front door have its shape, not OpenAI's.
  Reply r;
  r.status = status;
  if (status == 401) {
    r.body = AzureErrorJson("401",
                            "Access denied due to invalid subscription key or wrong API endpoint. "
                            "Make sure to provide a valid key for an active subscription and use a "
                            "correct regional API endpoint for your resource.");
  } else if (status == 404) {
    r.body = AzureErrorJson("DeploymentNotFound",
                            "The API deployment for this resource does not exist. If you created "
                            "the deployment within the last 5 minutes, please wait a moment and "
                            "try again.");
  } else {
    const std::string version = QueryParam(call.query, "api-version").value_or("v1");
    r.body = AzureErrorJson(
        "429", absl::StrCat("Requests to the ChatCompletions_Create Operation under Azure OpenAI "
                            "API version ",
                            version,
                            " have exceeded token rate limit of your current OpenAI S0 pricing "
                            "tier. Please retry after ",
                            e.retry_after_s,
                            " seconds. Please go here: https://aka.ms/oai/quotaincrease if you "
                            "would like to further increase the default rate limit."));
  }
  r.headers = AzureHeaders(call.seq, 0, e.retry_after_s, status == 429);
  return r;
}

std::optional<Reply> OpenAiDialect::BlockedPrompt(const Call& call, const ChatRequest& request,
                                                  std::string_view reason) const {
  if (!azure()) return std::nullopt;
  // The reason only selects "a filter fired"; Azure reports it as a violence finding.
  Reply r;
  r.status = 400;
  r.body =
      "{\"error\":{\"message\":\"The response was filtered due to the prompt triggering Azure "
      "OpenAI's content management policy. Please modify your prompt and retry. To learn more "
      "about our content filtering policies please read our documentation: "
      "https://go.microsoft.com/fwlink/?linkid=2198766\",\"type\":null,\"param\":\"prompt\","
      "\"code\":\"content_filter\",\"status\":400,\"innererror\":{\"code\":"
      "\"ResponsibleAIPolicyViolation\",\"content_filter_result\":{\"hate\":{\"filtered\":false,"
      "\"severity\":\"safe\"},\"jailbreak\":{\"filtered\":false,\"detected\":false},\"self_harm\":"
      "{\"filtered\":false,\"severity\":\"safe\"},\"sexual\":{\"filtered\":false,\"severity\":"
      "\"safe\"},\"violence\":{\"filtered\":true,\"severity\":\"medium\"}}}}}";
  r.headers = AzureHeaders(call.seq, request.prompt_tokens, 0, false);
  return r;
}

std::string OpenAiDialect::SuccessHeaders(const Call& call, const ChatRequest& request,
                                          int64_t processing_ms) const {
  if (azure()) return AzureHeaders(call.seq, request.prompt_tokens, 0, false);
  return OpenAiHeaders(call.seq, processing_ms, request.prompt_tokens, 0, false);
}

std::string OpenAiDialect::Body(const Completion& completion, const ChatRequest& request) const {
  return RenderCompletionJson(completion, flavor_);
}

void OpenAiDialect::Stream(const Completion& completion, const ChatRequest& request,
                           EventSink sink) const {
  RenderStreamEvents(completion, request.include_usage, sink, flavor_);
}

std::string OpenAiDialect::StreamError(int status, const ChatRequest& request) const {
  // OpenAI's framing of an error inside a stream (PROVIDERS.md §1.3, unverified there).
  // Anthropic's 529 "overloaded" is OpenAI's 503.
  const ApiError e = ForcedError(status == 529 ? 503 : status, request.model, 0);
  std::string event = "data: ";
  event += RenderErrorJson(e);
  event += "\n\n"sv;
  return event;
}

Reply OpenAiDialect::ErrorReply(const Call& call, const ApiError& error,
                                int64_t processing_ms) const {
  if (!azure()) return OpenAiErrorReply(error, call.seq, processing_ms);
  return Reply{error.status, RenderErrorJson(error),
               AzureHeaders(call.seq, 0, error.retry_after_s, error.status == 429)};
}

}  // namespace tollgate::tools::mock
