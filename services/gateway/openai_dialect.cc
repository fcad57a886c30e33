#include "services/gateway/openai_dialect.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "boost/json/monotonic_resource.hpp"
#include "boost/json/parse.hpp"
#include "boost/json/serialize.hpp"
#include "services/gateway/providers/json_util.h"

namespace tollgate::gateway {
namespace {

namespace json = boost::json;

constexpr char kParamPayloadUrl[] = "tollgate.dev/param";

// Provider JSON is read with the tolerant helpers of providers/json_util.h.
const json::value* Field(const json::value& v, std::string_view key) { return Member(v, key); }

bool IsNonNegativeInteger(const json::value& v) {
  if (v.is_int64()) return v.get_int64() >= 0;
  if (v.is_uint64()) return true;
  if (v.is_double()) {
    const double d = v.get_double();
    return d >= 0 && d <= 9.0e18 && std::floor(d) == d;
  }
  return false;
}

// Output carried by a message (non-stream) or a delta (stream): text, reasoning, refusal and
// tool-call names and arguments.
int64_t OutputBytes(const json::value& message, bool* has_tool_calls) {
  int64_t bytes = StringBytes(Field(message, "content")) +
                  StringBytes(Field(message, "reasoning_content")) +
                  StringBytes(Field(message, "refusal"));
  if (const json::value* calls = Field(message, "tool_calls"); calls && calls->is_array()) {
    for (const json::value& call : calls->get_array()) {
      if (has_tool_calls) *has_tool_calls = true;
      const json::value* fn = Field(call, "function");
      if (fn == nullptr) continue;
      bytes += StringBytes(Field(*fn, "name")) + StringBytes(Field(*fn, "arguments"));
    }
  }
  return bytes;
}

std::optional<v1::TokenUsage> UsageOf(const json::value& root) {
  const json::value* usage = Field(root, "usage");
  if (usage != nullptr && usage->is_object()) return UsageFromJson(*usage);
  // Groq reports stream usage in x_groq.usage.
  if (const json::value* groq = Field(root, "x_groq")) {
    if (const json::value* u = Field(*groq, "usage"); u && u->is_object()) {
      return UsageFromJson(*u);
    }
  }
  return std::nullopt;
}

}  // namespace

std::string ErrorBody(std::string_view message, std::string_view type, std::string_view param,
                      std::string_view code) {
  json::object error;
  error["message"] = message;
  error["type"] = type;
  if (param.empty()) {
    error["param"] = nullptr;
  } else {
    error["param"] = param;
  }
  if (code.empty()) {
    error["code"] = nullptr;
  } else {
    error["code"] = code;
  }
  json::object root;
  root["error"] = std::move(error);
  return json::serialize(root);
}

std::string StreamErrorEvent(std::string_view message, std::string_view type,
                             std::string_view code) {
  return absl::StrCat("data: ", ErrorBody(message, type, "", code), "\n\n");
}

absl::Status InvalidParamError(std::string_view param, std::string_view message) {
  absl::Status status =
      absl::InvalidArgumentError(absl::string_view(message.data(), message.size()));
  status.SetPayload(kParamPayloadUrl, absl::Cord(absl::string_view(param.data(), param.size())));
  return status;
}

std::string ParamOf(const absl::Status& status) {
  absl::optional<absl::Cord> param = status.GetPayload(kParamPayloadUrl);
  return param ? std::string(*param) : std::string();
}

absl::StatusOr<ChatRequestInfo> ParseChatRequest(const json::value& body) {
  if (!body.is_object()) {
    return InvalidParamError("", "the request body must be a JSON object");
  }
  const json::object& obj = body.get_object();
  ChatRequestInfo info;

  const json::value* model = obj.if_contains("model");
  if (model == nullptr || model->is_null()) {
    return InvalidParamError("model", "you must provide a model parameter");
  }
  if (!model->is_string() || model->get_string().empty()) {
    return InvalidParamError("model", "'model' must be a non-empty string");
  }
  info.model = std::string(model->get_string());

  const json::value* messages = obj.if_contains("messages");
  if (messages == nullptr || messages->is_null()) {
    return InvalidParamError("messages", "you must provide a messages parameter");
  }
  if (!messages->is_array() || messages->get_array().empty()) {
    return InvalidParamError("messages", "'messages' must be a non-empty array of objects");
  }
  bool vision = false;
  for (size_t i = 0; i < messages->get_array().size(); ++i) {
    const json::value& m = messages->get_array()[i];
    if (!m.is_object()) {
      return InvalidParamError(absl::StrCat("messages[", i, "]"),
                               absl::StrCat("'messages[", i, "]' must be an object"));
    }
    if (const json::value* content = Field(m, "content"); content && content->is_array()) {
      for (const json::value& part : content->get_array()) {
        const json::value* type = Field(part, "type");
        if (type && type->is_string() && type->get_string() == "image_url") vision = true;
      }
    }
  }

  if (const json::value* stream = obj.if_contains("stream"); stream && !stream->is_null()) {
    if (!stream->is_bool()) return InvalidParamError("stream", "'stream' must be a boolean");
    info.stream = stream->get_bool();
  }
  if (const json::value* so = obj.if_contains("stream_options"); so && !so->is_null()) {
    if (!so->is_object()) {
      return InvalidParamError("stream_options", "'stream_options' must be an object");
    }
    const json::value* include = so->get_object().if_contains("include_usage");
    if (include && !include->is_null() && !include->is_bool()) {
      return InvalidParamError("stream_options.include_usage",
                               "'stream_options.include_usage' must be a boolean");
    }
    info.client_wants_usage = include && include->is_bool() && include->get_bool();
  }
  for (const char* name : {"max_tokens", "max_completion_tokens"}) {
    const json::value* v = obj.if_contains(name);
    if (v == nullptr || v->is_null()) continue;
    if (!IsNonNegativeInteger(*v)) {
      return InvalidParamError(name, absl::StrCat("'", name, "' must be a non-negative integer"));
    }
  }
  if (const json::value* v = obj.if_contains("max_completion_tokens"); v && !v->is_null()) {
    info.max_output_tokens = CountOf(v);
  } else if (const json::value* t = obj.if_contains("max_tokens"); t && !t->is_null()) {
    info.max_output_tokens = CountOf(t);
  }
  if (const json::value* user = obj.if_contains("user"); user && !user->is_null()) {
    if (!user->is_string()) return InvalidParamError("user", "'user' must be a string");
    info.user = std::string(user->get_string());
  }

  info.required_capabilities.push_back("chat");
  if (const json::value* tools = obj.if_contains("tools");
      tools && tools->is_array() && !tools->get_array().empty()) {
    info.required_capabilities.push_back("tools");
  }
  if (const json::value* rf = obj.if_contains("response_format")) {
    const json::value* type = Field(*rf, "type");
    if (type && type->is_string()) {
      if (type->get_string() == "json_object") info.required_capabilities.push_back("json");
      if (type->get_string() == "json_schema") info.required_capabilities.push_back("json_schema");
    }
  }
  if (vision) info.required_capabilities.push_back("vision");
  return info;
}

absl::StatusOr<ChatRequestInfo> ParseEmbeddingsRequest(const json::value& body) {
  if (!body.is_object()) {
    return InvalidParamError("", "the request body must be a JSON object");
  }
  const json::object& obj = body.get_object();
  ChatRequestInfo info;
  const json::value* model = obj.if_contains("model");
  if (model == nullptr || !model->is_string() || model->get_string().empty()) {
    return InvalidParamError("model", "'model' must be a non-empty string");
  }
  info.model = std::string(model->get_string());
  const json::value* input = obj.if_contains("input");
  auto bad_input = [] {
    return InvalidParamError("input",
                             "'input' must be a non-empty string, array of strings, array of "
                             "token ids or array of token-id arrays");
  };
  if (input == nullptr || input->is_null()) {
    return InvalidParamError("input", "you must provide an input parameter");
  }
  if (input->is_string()) {
    if (input->get_string().empty()) return bad_input();
  } else if (input->is_array()) {
    const json::array& items = input->get_array();
    if (items.empty()) return bad_input();
    const bool strings = items.front().is_string();
    const bool nested = items.front().is_array();
    for (const json::value& item : items) {
      if (strings) {
        if (!item.is_string() || item.get_string().empty()) return bad_input();
      } else if (nested) {
        if (!item.is_array() || item.get_array().empty()) return bad_input();
        for (const json::value& token : item.get_array()) {
          if (!IsNonNegativeInteger(token)) return bad_input();
        }
      } else if (!IsNonNegativeInteger(item)) {
        return bad_input();
      }
    }
  } else {
    return bad_input();
  }
  if (const json::value* format = obj.if_contains("encoding_format");
      format && !format->is_null()) {
    if (!format->is_string() ||
        (format->get_string() != "float" && format->get_string() != "base64")) {
      return InvalidParamError("encoding_format",
                               "'encoding_format' must be \"float\" or \"base64\"");
    }
  }
  if (const json::value* dims = obj.if_contains("dimensions"); dims && !dims->is_null()) {
    if (!IsNonNegativeInteger(*dims) || CountOf(dims) == 0) {
      return InvalidParamError("dimensions", "'dimensions' must be a positive integer");
    }
  }
  if (const json::value* user = obj.if_contains("user"); user && !user->is_null()) {
    if (!user->is_string()) return InvalidParamError("user", "'user' must be a string");
    info.user = std::string(user->get_string());
  }
  info.required_capabilities.push_back("embeddings");
  return info;
}

std::string RewriteChatRequest(json::object& body, std::string_view upstream_model, bool stream) {
  if (!upstream_model.empty()) body["model"] = upstream_model;
  if (stream) {
    json::value& options = body["stream_options"];
    if (!options.is_object()) options.emplace_object();
    options.get_object()["include_usage"] = true;
  }
  return json::serialize(body);
}

int64_t EstimateTokens(int64_t bytes) { return bytes <= 0 ? 0 : (bytes + 3) / 4; }

std::optional<v1::TokenUsage> UsageFromJson(const json::value& usage) {
  if (!usage.is_object()) return std::nullopt;
  v1::TokenUsage out;
  const int64_t input = CountOf(Field(usage, "prompt_tokens"));
  const int64_t output = CountOf(Field(usage, "completion_tokens"));
  int64_t cached = 0;
  const json::value* details = Field(usage, "prompt_tokens_details");
  const json::value* cached_v = details ? Field(*details, "cached_tokens") : nullptr;
  if (cached_v != nullptr && !cached_v->is_null()) {
    cached = CountOf(cached_v);
  } else {
    cached = CountOf(Field(usage, "prompt_cache_hit_tokens"));  // DeepSeek
  }
  int64_t reasoning = 0;
  if (const json::value* cd = Field(usage, "completion_tokens_details")) {
    reasoning = CountOf(Field(*cd, "reasoning_tokens"));
  }
  out.set_input_tokens(input);
  out.set_cached_input_tokens(std::min(cached, input));
  out.set_output_tokens(output);
  out.set_reasoning_tokens(std::min(reasoning, output));
  return out;
}

ChatResponseUsage ExtractChatResponseUsage(std::string_view body) {
  ChatResponseUsage out;
  json::monotonic_resource mr(std::max<size_t>(1024, body.size() * 2));
  json::error_code ec;
  json::value root = json::parse(body, ec, &mr);
  if (ec || !root.is_object()) {
    out.output_bytes = static_cast<int64_t>(body.size());
    return out;
  }
  out.parsed = true;
  out.usage = UsageOf(root);
  if (const json::value* choices = Field(root, "choices"); choices && choices->is_array()) {
    for (const json::value& choice : choices->get_array()) {
      if (const json::value* message = Field(choice, "message")) {
        out.output_bytes += OutputBytes(*message, nullptr);
      }
    }
  }
  return out;
}

StreamChunkInfo InspectStreamChunk(std::string_view data) {
  StreamChunkInfo info;
  if (data == "[DONE]") {
    info.done = true;
    return info;
  }
  // Chunks are small; parse them from a stack buffer with no heap allocation in the common case.
  unsigned char buffer[4096];
  json::monotonic_resource mr(buffer, sizeof(buffer));
  json::error_code ec;
  json::value root = json::parse(data, ec, &mr);
  if (ec || !root.is_object()) return info;
  info.parsed = true;
  const json::object& obj = root.get_object();
  if (const json::value* error = obj.if_contains("error"); error && !error->is_null()) {
    info.is_error = true;
  }
  info.usage = UsageOf(root);
  const json::value* choices = obj.if_contains("choices");
  const bool no_choices =
      choices == nullptr || (choices->is_array() && choices->get_array().empty());
  info.usage_only = info.usage.has_value() && no_choices;
  if (choices != nullptr && choices->is_array()) {
    for (const json::value& choice : choices->get_array()) {
      const json::value* delta = Field(choice, "delta");
      if (delta == nullptr) continue;
      bool tool_calls = false;
      const int64_t bytes = OutputBytes(*delta, &tool_calls);
      info.output_bytes += bytes;
      if (bytes > 0 || tool_calls) info.has_output = true;
    }
  }
  return info;
}

}  // namespace tollgate::gateway
