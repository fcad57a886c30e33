#include "tools/mock_provider/gemini_dialect.h"

#include <algorithm>
#include <array>
#include <cstddef>

#include "absl/strings/str_cat.h"
#include "boost/json/object.hpp"
#include "boost/json/string.hpp"

namespace tollgate::tools::mock {
using std::string_view_literals::operator""sv;
namespace json = boost::json;
namespace {

constexpr std::string_view kGenerate = ":generateContent";
constexpr std::string_view kStreamGenerate = ":streamGenerateContent";
constexpr std::string_view kJsonContentType = "application/json; charset=UTF-8";
constexpr int kMaxCandidates = 8;

// Field names in snake_case; requests may use either case (proto JSON accepts both).
constexpr std::array<std::string_view, 8> kKnownFields = {
    "contents",          "model",           "tools",
    "tool_config",       "safety_settings", "system_instruction",
    "generation_config", "cached_content"};
constexpr std::array<std::string_view, 19> kGenerationConfigFields = {
    "stop_sequences",
    "response_mime_type",
    "response_schema",
    "response_json_schema",
    "response_modalities",
    "candidate_count",
    "max_output_tokens",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "response_logprobs",
    "logprobs",
    "enable_enhanced_civic_answers",
    "speech_config",
    "thinking_config",
    "media_resolution"};
struct ModelInfo {
  std::string_view name;
  std::string_view display_name;
  int64_t input_limit;
  int64_t output_limit;
};
constexpr std::array<ModelInfo, 3> kModels = {{
    {"gemini-2.5-flash", "Gemini 2.5 Flash", 1048576, 65536},
    {"gemini-2.5-pro", "Gemini 2.5 Pro", 1048576, 65536},
    {"gemini-2.0-flash", "Gemini 2.0 Flash", 1048576, 8192},
}};

}  // namespace

std::string GeminiSnakeCase(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 4);
  for (char c : name) {
    if (c >= 'A' && c <= 'Z') {
      out += '_';
      out += static_cast<char>(c - 'A' + 'a');
    } else {
      out += c;
    }
  }
  return out;
}

const json::value* GeminiField(const json::object& o, std::string_view snake) {
  for (const auto& kv : o) {
    if (GeminiSnakeCase(ToStd(kv.key())) == snake) return &kv.value();
  }
  return nullptr;
}

GeminiError GeminiInvalid(std::string message) {
  GeminiError e;
  e.message = std::move(message);
  return e;
}

GeminiError GeminiExpectedObject(std::string_view at) {
  return GeminiInvalid(
      absl::StrCat("Invalid JSON payload received. Expected an object at '", Av(at), "'."));
}

GeminiError GeminiUnknownField(std::string_view name, std::string_view at) {
  GeminiError e;
  e.message =
      absl::StrCat("Invalid JSON payload received. Unknown name \"", Av(name), "\"",
                   at.empty() ? "" : absl::StrCat(" at '", Av(at), "'"), ": Cannot find field.");
  std::string violation =
      "{\"@type\":\"type.googleapis.com/google.rpc.BadRequest\","
      "\"fieldViolations\":[{";
  if (!at.empty()) {
    violation += "\"field\":"sv;
    AppendJsonString(violation, at);
    violation += ',';
  }
  violation += "\"description\":"sv;
  AppendJsonString(violation, e.message);
  violation += "}]}"sv;
  e.details = absl::StrCat("[", violation, "]");
  return e;
}

std::optional<GeminiError> CheckGeminiFields(const json::object& o,
                                             std::span<const std::string_view> known,
                                             std::string_view at) {
  for (const auto& kv : o) {
    if (!OneOf(known, GeminiSnakeCase(ToStd(kv.key())))) {
      return GeminiUnknownField(ToStd(kv.key()), at);
    }
  }
  return std::nullopt;
}

std::optional<GeminiError> ParseGeminiRequestObject(std::string_view body, RequestJson& doc) {
  boost::system::error_code ec;
  const json::value& root = doc.Parse(body, ec);
  if (ec) return GeminiInvalid("Invalid JSON payload received. Unexpected token.");
  if (!root.is_object()) {
    return GeminiInvalid("Invalid JSON payload received. Expected an object at the top level.");
  }
  return std::nullopt;
}

namespace {

// The text of a Content's parts, thought parts excluded.
std::string PartsText(const json::value* parts) {
  std::string text;
  if (parts == nullptr || !parts->is_array()) return text;
  for (const json::value& p : parts->get_array()) {
    const json::object* part = p.if_object();
    if (part == nullptr) continue;
    const json::value* thought = part->if_contains("thought");
    if (thought != nullptr && thought->is_bool() && thought->get_bool()) continue;
    const json::value* t = part->if_contains("text");
    if (t != nullptr && t->is_string()) text += ToStd(t->get_string());
  }
  return text;
}

bool HasFunctionResponse(const json::object& content) {
  const json::value* parts = content.if_contains("parts");
  if (parts == nullptr || !parts->is_array()) return false;
  return std::any_of(parts->get_array().begin(), parts->get_array().end(),
                     [](const json::value& p) {
                       return p.is_object() && GeminiField(p.get_object(), "function_response");
                     });
}

std::string_view Role(const json::object& content) {
  const json::value* role = content.if_contains("role");
  return role != nullptr && role->is_string() ? ToStd(role->get_string()) : "user";
}

std::optional<GeminiError> ValidateContent(const json::value& v, const std::string& at) {
  const json::object* content = v.if_object();
  if (content == nullptr) return GeminiExpectedObject(at);
  if (auto e = CheckGeminiFields(*content, kGeminiContentFields, at)) return e;
  const json::value* role = content->if_contains("role");
  if (role != nullptr &&
      !(role->is_string() && (role->get_string() == "user" || role->get_string() == "model"))) {
    return GeminiInvalid("Please use a valid role: user, model.");
  }
  const json::value* parts = content->if_contains("parts");
  if (parts == nullptr || !parts->is_array() || parts->get_array().empty()) {
    return GeminiInvalid(absl::StrCat("* GenerateContentRequest.", at,
                                      ".parts: contents.parts must not be empty.\n"));
  }
  const json::array& list = parts->get_array();
  for (size_t j = 0; j < list.size(); ++j) {
    const json::object* part = list[j].if_object();
    const bool has_data =
        part != nullptr && std::any_of(part->begin(), part->end(), [](const auto& kv) {
          return OneOf(kGeminiPartDataFields, GeminiSnakeCase(ToStd(kv.key())));
        });
    if (!has_data) {
      return GeminiInvalid(
          absl::StrCat("* GenerateContentRequest.", at, ".parts[", j,
                       "].data: required oneof field 'data' must have one initialized "
                       "field\n"));
    }
  }
  return std::nullopt;
}

std::optional<GeminiError> ValidateGenerationConfig(const json::value& v, ChatRequest& out) {
  const json::object* config = v.if_object();
  if (config == nullptr) return GeminiExpectedObject("generation_config");
  if (auto e = CheckGeminiFields(*config, kGenerationConfigFields, "generation_config")) return e;
  if (const json::value* max = GeminiField(*config, "max_output_tokens"); max != nullptr) {
    const std::optional<int64_t> n = AsInteger(*max);
    if (!n.has_value() || *n < 1) {
      return GeminiInvalid(
          "* GenerateContentRequest.generation_config.max_output_tokens: max_output_tokens must "
          "be positive.\n");
    }
    out.max_completion_tokens = *n;
  }
  if (const json::value* count = GeminiField(*config, "candidate_count"); count != nullptr) {
    const std::optional<int64_t> n = AsInteger(*count);
    if (!n.has_value() || *n < 1 || *n > kMaxCandidates) {
      return GeminiInvalid(absl::StrCat(
          "* GenerateContentRequest.generation_config.candidate_count: candidate_count must be "
          "between 1 and ",
          kMaxCandidates, ".\n"));
    }
    out.n = static_cast<int>(*n);
  }
  if (const json::value* thinking = GeminiField(*config, "thinking_config"); thinking != nullptr) {
    if (!thinking->is_object()) return GeminiExpectedObject("generation_config.thinking_config");
    const json::value* include = GeminiField(thinking->get_object(), "include_thoughts");
    out.include_thoughts = include != nullptr && include->is_bool() && include->get_bool();
  }
  return std::nullopt;
}

// Collects function declaration names; resolves the calling mode into `chosen` (a name, "none",
// or "" for the model's choice).
std::optional<GeminiError> ValidateTools(const json::object& req, std::vector<std::string>& names,
                                         std::string& chosen) {
  if (const json::value* tools = GeminiField(req, "tools"); tools != nullptr) {
    if (!tools->is_array())
      return GeminiInvalid("Invalid JSON payload received. Expected a list at 'tools'.");
    const json::array& list = tools->get_array();
    for (size_t i = 0; i < list.size(); ++i) {
      const json::object* tool = list[i].if_object();
      if (tool == nullptr) continue;
      const json::value* decls = GeminiField(*tool, "function_declarations");
      if (decls == nullptr || !decls->is_array()) continue;
      const json::array& d = decls->get_array();
      for (size_t j = 0; j < d.size(); ++j) {
        const json::object* decl = d[j].if_object();
        const json::value* name = decl == nullptr ? nullptr : decl->if_contains("name");
        if (name == nullptr || !name->is_string() || name->get_string().empty()) {
          return GeminiInvalid(absl::StrCat("* GenerateContentRequest.tools[", i,
                                            "].function_declarations[", j,
                                            "].name: Name cannot be empty.\n"));
        }
        names.emplace_back(ToStd(name->get_string()));
      }
    }
  }
  const json::value* config = GeminiField(req, "tool_config");
  const json::value* fcc = config != nullptr && config->is_object()
                               ? GeminiField(config->get_object(), "function_calling_config")
                               : nullptr;
  if (fcc == nullptr || !fcc->is_object()) return std::nullopt;
  if (const json::value* mode = fcc->get_object().if_contains("mode"); mode != nullptr) {
    const std::string_view m = mode->is_string() ? ToStd(mode->get_string()) : "";
    if (m != "AUTO" && m != "ANY" && m != "NONE" && m != "VALIDATED" && m != "MODE_UNSPECIFIED") {
      return GeminiInvalid(absl::StrCat(
          "Invalid value at 'tool_config.function_calling_config.mode' "
          "(type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode), "
          "\"",
          Av(m), "\""));
    }
    if (m == "NONE") {
      chosen = "none";
      return std::nullopt;
    }
  }
  const json::value* allowed = GeminiField(fcc->get_object(), "allowed_function_names");
  if (allowed != nullptr && allowed->is_array() && !allowed->get_array().empty() &&
      allowed->get_array()[0].is_string()) {
    chosen = std::string(ToStd(allowed->get_array()[0].get_string()));
  }
  return std::nullopt;
}

std::string_view FinishReason(std::string_view finish_reason) {
  return finish_reason == "length" ? "MAX_TOKENS" : "STOP";
}

// usageMetadata with `candidates` output tokens so far (zero-valued optional counts omitted).
void AppendUsageMetadata(std::string& out, const Usage& u, int64_t candidates) {
  const int64_t thoughts = u.reasoning_tokens;
  absl::StrAppend(&out, "\"usageMetadata\":{\"promptTokenCount\":", u.prompt_tokens);
  if (candidates > 0) absl::StrAppend(&out, ",\"candidatesTokenCount\":", candidates);
  absl::StrAppend(&out, ",\"totalTokenCount\":", u.prompt_tokens + candidates + thoughts);
  if (u.cached_tokens > 0) {
    absl::StrAppend(&out, ",\"cachedContentTokenCount\":", u.cached_tokens);
  }
  absl::StrAppend(&out, ",\"promptTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":",
                  u.prompt_tokens, "}]");
  if (u.cached_tokens > 0) {
    absl::StrAppend(&out, ",\"cacheTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":",
                    u.cached_tokens, "}]");
  }
  if (thoughts > 0) absl::StrAppend(&out, ",\"thoughtsTokenCount\":", thoughts);
  out += '}';
}

void AppendTail(std::string& out, const Completion& c) {
  out += ",\"modelVersion\":"sv;
  AppendJsonString(out, c.model);
  out += ",\"responseId\":"sv;
  AppendJsonString(out, c.id);
  out += '}';
}

void AppendFunctionCallPart(std::string& out, const Choice& ch) {
  out += "{\"functionCall\":{\"name\":"sv;
  AppendJsonString(out, ch.tool_name);
  absl::StrAppend(&out, ",\"args\":", ch.tool_arguments, "}}");
}

void AppendTextPart(std::string& out, std::string_view text, bool thought) {
  out += "{\"text\":"sv;
  AppendJsonString(out, text);
  out += thought ? ",\"thought\":true}"sv : "}"sv;
}

// A candidate: `append_parts` writes the parts; `finish` "" for none.
template <typename F>
void AppendCandidate(std::string& out, size_t index, F&& append_parts, std::string_view finish) {
  out += "{\"content\":{\"parts\":["sv;
  append_parts();
  out += "],\"role\":\"model\"}"sv;
  if (!finish.empty()) absl::StrAppend(&out, ",\"finishReason\":\"", Av(finish), "\"");
  absl::StrAppend(&out, ",\"index\":", index, "}");
}

void AppendBlocked(std::string& out, const Completion& c) {
  out += "{\"promptFeedback\":{\"blockReason\":"sv;
  AppendJsonString(out, c.block_reason);
  if (c.block_reason == "SAFETY") {
    out +=
        ",\"safetyRatings\":[{\"category\":\"HARM_CATEGORY_DANGEROUS_CONTENT\","
        "\"probability\":\"HIGH\",\"blocked\":true}]";
  }
  out += "},"sv;
  AppendUsageMetadata(out, c.usage, 0);
  AppendTail(out, c);
}

int64_t CandidatesTokens(const Usage& u) { return u.completion_tokens - u.reasoning_tokens; }

// The chunks of the stream, each a bare GenerateContentResponse JSON.
void RenderChunks(const Completion& c, const ChatRequest& request, EventSink sink) {
  std::string chunk;
  chunk.reserve(512);
  if (!c.block_reason.empty()) {
    chunk.clear();
    AppendBlocked(chunk, c);
    sink(EventKind::kFinish, chunk);
    return;
  }
  int64_t emitted = 0;  // answer words sent so far: the running candidatesTokenCount
  auto content_chunk = [&](size_t index, std::string_view text, bool thought) {
    chunk.assign("{\"candidates\":[");
    AppendCandidate(
        chunk, index, [&] { AppendTextPart(chunk, text, thought); }, "");
    chunk += "],"sv;
    AppendUsageMetadata(chunk, c.usage, emitted);
    AppendTail(chunk, c);
    sink(EventKind::kContent, chunk);
  };

  if (request.include_thoughts && c.usage.reasoning_tokens > 0) {
    const std::string thoughts = ReasoningText(c);
    size_t cursor = 0;
    for (std::string_view piece; !(piece = NextPiece(thoughts, cursor)).empty();) {
      content_chunk(0, piece, /*thought=*/true);
    }
  }
  // Text candidates round-robin, one word per chunk.
  std::vector<size_t> cursor(c.choices.size(), 0);
  for (bool progressed = true; progressed;) {
    progressed = false;
    for (size_t i = 0; i < c.choices.size(); ++i) {
      if (!c.choices[i].tool_name.empty()) continue;
      const std::string_view piece = NextPiece(c.choices[i].content, cursor[i]);
      if (piece.empty()) continue;
      progressed = true;
      ++emitted;
      content_chunk(i, piece, /*thought=*/false);
    }
  }

  chunk.assign("{\"candidates\":[");
  for (size_t i = 0; i < c.choices.size(); ++i) {
    const Choice& ch = c.choices[i];
    if (i > 0) chunk += ',';
    AppendCandidate(
        chunk, i,
        [&] {
          if (ch.tool_name.empty()) {
            AppendTextPart(chunk, "", false);
          } else {
            AppendFunctionCallPart(chunk, ch);
          }
        },
        FinishReason(ch.finish_reason));
  }
  chunk += "],"sv;
  AppendUsageMetadata(chunk, c.usage, CandidatesTokens(c.usage));
  AppendTail(chunk, c);
  sink(EventKind::kFinish, chunk);
}

std::string ModelJson(const ModelInfo& m) {
  return absl::StrCat(
      "{\"name\":\"models/", Av(m.name), "\",\"version\":\"001\",\"displayName\":\"",
      Av(m.display_name), "\",\"description\":\"", Av(m.display_name),
      " (mock)\",\"inputTokenLimit\":", m.input_limit, ",\"outputTokenLimit\":", m.output_limit,
      ",\"supportedGenerationMethods\":[\"generateContent\",\"countTokens\","
      "\"createCachedContent\",\"batchGenerateContent\"],\"temperature\":1,\"topP\":0.95,"
      "\"topK\":64,\"maxTemperature\":2,\"thinking\":true}");
}

Reply ErrorReply(const GeminiError& e) {
  Reply r;
  r.status = e.status;
  r.body = RenderGeminiErrorJson(e);
  r.content_type = kJsonContentType;
  return r;
}

// The missing- or wrong-key answer, or nullopt when the key is right (or not required).
std::optional<Reply> CheckKey(const Call& call) {
  if (call.require_key.empty()) return std::nullopt;
  std::string key(HeaderValue(call.request, "x-goog-api-key"));
  if (key.empty()) key = QueryParam(call.query, "key").value_or("");
  if (key == call.require_key) return std::nullopt;
  GeminiError e;
  if (key.empty()) {
    e.status = 403;
    e.rpc_status = "PERMISSION_DENIED";
    e.message =
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API.";
  } else {
    e.message = "API key not valid. Please pass a valid API key.";
    e.details =
        "[{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":\"API_KEY_INVALID\","
        "\"domain\":\"googleapis.com\",\"metadata\":{\"service\":"
        "\"generativelanguage.googleapis.com\"}},{\"@type\":"
        "\"type.googleapis.com/google.rpc.LocalizedMessage\",\"locale\":\"en-US\",\"message\":"
        "\"API key not valid. Please pass a valid API key.\"}]";
  }
  return ErrorReply(e);
}

// The model and method of a generation path ("" when it is not one).
std::pair<std::string_view, std::string_view> ModelAndMethod(std::string_view path) {
  if (!path.starts_with(kGeminiModelsPrefix)) return {};
  const std::string_view rest = path.substr(kGeminiModelsPrefix.size());
  const size_t colon = rest.find(':');
  if (colon == 0 || colon == std::string_view::npos) return {};
  const std::string_view model = rest.substr(0, colon);
  const std::string_view method = rest.substr(colon);
  if (model.find('/') != std::string_view::npos) return {};
  if (method != kGenerate && method != kStreamGenerate) return {};
  return {model, method};
}

}  // namespace

// ---------------------------------------------------------------------------------------------

GeminiError GeminiForcedError(int status, std::string_view model, int64_t retry_after_s) {
  GeminiError e;
  e.status = status;
  switch (status) {
    case 400:
      e.message = "Request contains an invalid argument.";
      break;
    case 401:
      e.rpc_status = "UNAUTHENTICATED";
      e.message =
          "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
          "cookie or other valid authentication credential.";
      break;
    case 403:
      e.rpc_status = "PERMISSION_DENIED";
      e.message = "The caller does not have permission";
      break;
    case 404:
      e.rpc_status = "NOT_FOUND";
      e.message = absl::StrCat("models/", Av(model),
                               " is not found for API version v1beta, or is not supported for "
                               "generateContent. Call ListModels to see the list of available "
                               "models and their supported methods.");
      break;
    case 429: {
      e.rpc_status = "RESOURCE_EXHAUSTED";
      e.message =
          "You exceeded your current quota, please check your plan and billing details. For more "
          "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.";
      std::string quota_model;
      AppendJsonString(quota_model, model);
      e.details = absl::StrCat(
          "[{\"@type\":\"type.googleapis.com/google.rpc.QuotaFailure\",\"violations\":[{"
          "\"quotaMetric\":\"generativelanguage.googleapis.com/generate_content_requests\","
          "\"quotaId\":\"GenerateRequestsPerMinutePerProjectPerModel\",\"quotaDimensions\":{"
          "\"location\":\"global\",\"model\":",
          quota_model,
          "},\"quotaValue\":\"1000\"}]},{\"@type\":\"type.googleapis.com/google.rpc.Help\","
          "\"links\":[{\"description\":\"Learn more about Gemini API quotas\",\"url\":"
          "\"https://ai.google.dev/gemini-api/docs/rate-limits\"}]},{\"@type\":"
          "\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"",
          retry_after_s > 0 ? retry_after_s : 1, "s\"}]");
      break;
    }
    case 500:
      e.rpc_status = "INTERNAL";
      e.message =
          "An internal error has occurred. Please retry or report in "
          "https://developers.generativeai.google/guide/troubleshooting";
      break;
    case 503:
      e.rpc_status = "UNAVAILABLE";
      e.message = "The model is overloaded. Please try again later.";
      break;
    case 504:
      e.rpc_status = "DEADLINE_EXCEEDED";
      e.message = "Deadline expired before operation could complete.";
      break;
    default:
      e.rpc_status = status >= 500 ? "INTERNAL" : "FAILED_PRECONDITION";
      e.message = absl::StrCat("Simulated error (status ", status, ").");
      break;
  }
  return e;
}

std::string RenderGeminiErrorJson(const GeminiError& error) {
  std::string out;
  absl::StrAppend(&out, "{\"error\":{\"code\":", error.status, ",\"message\":");
  AppendJsonString(out, error.message);
  out += ",\"status\":"sv;
  AppendJsonString(out, error.rpc_status);
  if (!error.details.empty()) absl::StrAppend(&out, ",\"details\":", error.details);
  out += "}}"sv;
  return out;
}

std::optional<GeminiError> ParseGenerateContentRequest(std::string_view body,
                                                       std::string_view model, ChatRequest& out) {
  RequestJson doc;
  if (auto e = ParseGeminiRequestObject(body, doc)) return e;
  const json::object* req = &doc.value().get_object();
  if (auto e = CheckGeminiFields(*req, kKnownFields, "")) return e;
  const json::value* contents_v = GeminiField(*req, "contents");
  if (contents_v == nullptr || !contents_v->is_array() || contents_v->get_array().empty()) {
    return GeminiInvalid("* GenerateContentRequest.contents: contents is not specified\n");
  }
  const json::array& contents = contents_v->get_array();
  for (size_t i = 0; i < contents.size(); ++i) {
    if (auto e = ValidateContent(contents[i], absl::StrCat("contents[", i, "]"))) return e;
  }
  const json::value* system = GeminiField(*req, "system_instruction");
  if (system != nullptr && !system->is_object()) return GeminiExpectedObject("system_instruction");

  ChatRequest parsed;
  if (const json::value* config = GeminiField(*req, "generation_config"); config != nullptr) {
    if (auto e = ValidateGenerationConfig(*config, parsed)) return e;
  }
  std::vector<std::string> tools;
  std::string chosen;
  if (auto e = ValidateTools(*req, tools, chosen)) return e;

  parsed.model = std::string(model);
  parsed.prompt_tokens = kPromptBaseTokens;
  for (const json::value& c : contents) {
    parsed.prompt_tokens += MessageTokens(PartsText(c.get_object().if_contains("parts")).size());
  }
  if (system != nullptr) {
    parsed.prompt_tokens +=
        MessageTokens(PartsText(system->get_object().if_contains("parts")).size());
  }
  for (size_t i = contents.size(); i-- > 0;) {
    const json::object& c = contents[i].get_object();
    if (Role(c) == "user" && !HasFunctionResponse(c)) {
      parsed.last_user_text = PartsText(c.if_contains("parts"));
      break;
    }
  }
  const json::object& last = contents.back().get_object();
  if (!tools.empty() && chosen != "none" && Role(last) == "user" && !HasFunctionResponse(last)) {
    parsed.tool_to_call = chosen.empty() ? tools.front() : chosen;
  }
  out = std::move(parsed);
  return std::nullopt;
}

std::string RenderGenerateContentJson(const Completion& c, const ChatRequest& request) {
  std::string out;
  if (request.json_array_stream) {
    // streamGenerateContent without alt=sse: the stream's chunks as one JSON array.
    out += '[';
    bool first = true;
    RenderChunks(c, request, [&](EventKind, std::string_view chunk) {
      out += first ? ""sv : ",\r\n"sv;
      out += chunk;
      first = false;
    });
    out += ']';
    return out;
  }
  if (!c.block_reason.empty()) {
    AppendBlocked(out, c);
    return out;
  }
  out.reserve(400 + c.choices.size() * (c.choices[0].content.size() + 120));
  out += "{\"candidates\":["sv;
  for (size_t i = 0; i < c.choices.size(); ++i) {
    const Choice& ch = c.choices[i];
    if (i > 0) out += ',';
    AppendCandidate(
        out, i,
        [&] {
          if (i == 0 && request.include_thoughts && c.usage.reasoning_tokens > 0) {
            AppendTextPart(out, ReasoningText(c), /*thought=*/true);
            out += ',';
          }
          if (ch.tool_name.empty()) {
            AppendTextPart(out, ch.content, false);
          } else {
            AppendFunctionCallPart(out, ch);
          }
        },
        FinishReason(ch.finish_reason));
  }
  out += "],"sv;
  AppendUsageMetadata(out, c.usage, CandidatesTokens(c.usage));
  AppendTail(out, c);
  return out;
}

void RenderGenerateContentStream(const Completion& c, const ChatRequest& request, EventSink sink) {
  std::string event;
  RenderChunks(c, request, [&](EventKind kind, std::string_view chunk) {
    event.assign("data: ");
    event += chunk;
    event += "\r\n\r\n"sv;
    sink(kind, event);
  });
}

std::vector<std::pair<EventKind, std::string>> GenerateContentStreamEvents(
    const Completion& completion, const ChatRequest& request) {
  std::vector<std::pair<EventKind, std::string>> events;
  RenderGenerateContentStream(completion, request, [&](EventKind kind, std::string_view data) {
    events.emplace_back(kind, std::string(data));
  });
  return events;
}

// ---------------------------------------------------------------------------------------------

bool GeminiDialect::Matches(std::string_view path) const {
  return !ModelAndMethod(path).first.empty();
}

std::optional<Reply> GeminiDialect::Models(const Call& call) const {
  constexpr std::string_view kList = "/v1beta/models";
  const bool one =
      call.path.starts_with(kGeminiModelsPrefix) && call.path.find(':') == std::string_view::npos;
  if (call.path != kList && !one) return std::nullopt;
  if (auto r = CheckKey(call)) return r;
  if (call.path == kList) {
    std::string body = "{\"models\":[";
    for (size_t i = 0; i < kModels.size(); ++i) {
      if (i > 0) body += ',';
      body += ModelJson(kModels[i]);
    }
    body += "]}"sv;
    return Reply{200, std::move(body), "", kJsonContentType};
  }
  const std::string_view name = call.path.substr(kGeminiModelsPrefix.size());
  const auto it = std::find_if(kModels.begin(), kModels.end(),
                               [&](const ModelInfo& m) { return m.name == name; });
  if (it == kModels.end()) return ErrorReply(GeminiForcedError(404, name, 0));
  return Reply{200, ModelJson(*it), "", kJsonContentType};
}

std::optional<Reply> GeminiDialect::Parse(const Call& call, ChatRequest& out) const {
  if (auto r = CheckKey(call)) return r;
  const auto [model, method] = ModelAndMethod(call.path);
  if (auto e = ParseGenerateContentRequest(call.request.body(), model, out)) return ErrorReply(*e);
  if (method == kStreamGenerate) {
    const bool sse = QueryParam(call.query, "alt").value_or("") == "sse";
    out.stream = sse;
    out.json_array_stream = !sse;
  }
  return std::nullopt;
}

Reply GeminiDialect::InvalidDirective(const Call& call, std::string_view message) const {
  return ErrorReply(GeminiInvalid(std::string(message)));
}

Reply GeminiDialect::Error(const Call& call, int status, std::string_view model,
                           int64_t retry_after_s, int64_t processing_ms) const {
  return ErrorReply(GeminiForcedError(status, model, retry_after_s));
}

std::string GeminiDialect::SuccessHeaders(const Call& call, const ChatRequest& request,
                                          int64_t processing_ms) const {
  return absl::StrCat("server-timing: gfet4t7; dur=", processing_ms, "\r\n");
}

std::string GeminiDialect::Body(const Completion& completion, const ChatRequest& request) const {
  return RenderGenerateContentJson(completion, request);
}

void GeminiDialect::Stream(const Completion& completion, const ChatRequest& request,
                           EventSink sink) const {
  RenderGenerateContentStream(completion, request, sink);
}

std::string GeminiDialect::StreamError(int status, const ChatRequest& request) const {
  // Anthropic's 529 "overloaded" is Google's 503 UNAVAILABLE.
  const int code = status == 529 ? 503 : status;
  return absl::StrCat("data: ", RenderGeminiErrorJson(GeminiForcedError(code, request.model, 0)),
                      "\r\n\r\n");
}

}  // namespace tollgate::tools::mock
