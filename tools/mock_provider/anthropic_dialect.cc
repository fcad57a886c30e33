#include "tools/mock_provider/anthropic_dialect.h"

#include <algorithm>
#include <array>
#include <cstddef>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "boost/json/object.hpp"
#include "boost/json/string.hpp"

namespace tollgate::tools::mock {
using std::string_view_literals::operator""sv;
namespace json = boost::json;
namespace {

constexpr std::array<std::string_view, 2> kVersions = {"2023-06-01", "2023-01-01"};

constexpr std::array<std::string_view, 17> kKnownParams = {
    "container", "context_management", "max_tokens",     "mcp_servers", "messages", "metadata",
    "model",     "service_tier",       "stop_sequences", "stream",      "system",   "temperature",
    "thinking",  "tool_choice",        "tools",          "top_k",       "top_p"};

constexpr std::array<std::string_view, 15> kBlockTypes = {"text",
                                                          "image",
                                                          "document",
                                                          "search_result",
                                                          "tool_use",
                                                          "tool_result",
                                                          "thinking",
                                                          "redacted_thinking",
                                                          "server_tool_use",
                                                          "web_search_tool_result",
                                                          "web_fetch_tool_result",
                                                          "code_execution_tool_result",
                                                          "container_upload",
                                                          "mcp_tool_use",
                                                          "mcp_tool_result"};

struct ModelInfo {
  std::string_view id;
  std::string_view display_name;
  std::string_view created_at;
};
constexpr std::array<ModelInfo, 3> kModels = {{
    {"claude-sonnet-4-20250514", "Claude Sonnet 4", "2025-05-22T00:00:00Z"},
    {"claude-opus-4-20250514", "Claude Opus 4", "2025-05-22T00:00:00Z"},
    {"claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22T00:00:00Z"},
}};

// Rate limits the headers advertise.
constexpr int64_t kRequestsLimit = 4000;
constexpr int64_t kInputTokensLimit = 2'000'000;
constexpr int64_t kOutputTokensLimit = 400'000;

AnthropicError Invalid(std::string message) {
  AnthropicError e;
  e.message = std::move(message);
  return e;
}

std::string RequestId(uint64_t seq) { return absl::StrFormat("req_011CMock%016x", seq); }

std::string Rfc3339In(int64_t seconds) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now() + absl::Seconds(seconds),
                          absl::UTCTimeZone());
}

// Headers Anthropic puts on every API response.
std::string AnthropicHeaders(uint64_t seq, int64_t input_tokens, int64_t retry_after_s,
                             bool rate_limited) {
  const std::string reset = Rfc3339In(rate_limited ? retry_after_s : 1);
  std::string h;
  h.reserve(900);
  absl::StrAppend(&h, "request-id: ", RequestId(seq),
                  "\r\nanthropic-organization-id: 00000000-0000-4000-8000-000000000000\r\n");
  auto limit = [&](std::string_view name, int64_t max, int64_t used) {
    absl::StrAppend(&h, "anthropic-ratelimit-", Av(name), "-limit: ", max, "\r\n",
                    "anthropic-ratelimit-", Av(name),
                    "-remaining: ", rate_limited ? 0 : std::max<int64_t>(max - used, 0), "\r\n",
                    "anthropic-ratelimit-", Av(name), "-reset: ", reset, "\r\n");
  };
  limit("requests", kRequestsLimit, 1);
  limit("input-tokens", kInputTokensLimit, input_tokens);
  limit("output-tokens", kOutputTokensLimit, 0);
  limit("tokens", kInputTokensLimit + kOutputTokensLimit, input_tokens);
  if (retry_after_s > 0) absl::StrAppend(&h, "retry-after: ", retry_after_s, "\r\n");
  return h;
}

Reply ErrorReply(const AnthropicError& e, uint64_t seq) {
  return Reply{e.status, RenderAnthropicErrorJson(e, RequestId(seq)),
               AnthropicHeaders(seq, 0, e.retry_after_s, e.status == 429)};
}

bool HasToolResult(const json::value& content) {
  if (!content.is_array()) return false;
  return std::any_of(content.get_array().begin(), content.get_array().end(),
                     [](const json::value& b) {
                       const json::object* o = b.if_object();
                       const json::value* t = o == nullptr ? nullptr : o->if_contains("type");
                       return t != nullptr && t->is_string() && t->get_string() == "tool_result";
                     });
}

bool IsToolName(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

std::optional<AnthropicError> CheckNumber(const json::object& req, const char* name, double min,
                                          double max) {
  const json::value* v = req.if_contains(name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) return Invalid(absl::StrCat(name, ": Input should be a valid number"));
  const double d = v->to_number<double>();
  if (d < min)
    return Invalid(absl::StrCat(name, ": Input should be greater than or equal to ", min));
  if (d > max) return Invalid(absl::StrCat(name, ": Input should be less than or equal to ", max));
  return std::nullopt;
}

// The tool_use ids of an assistant message waiting for their tool_result blocks.
struct PendingToolUses {
  size_t message_index = 0;
  std::vector<std::string> ids;
};

// Validates the content blocks of messages[i]; collects tool_use ids (assistant) and checks
// tool_result ids against `pending` (user).
std::optional<AnthropicError> ValidateBlocks(const json::array& blocks, size_t i,
                                             std::string_view role, PendingToolUses& pending,
                                             std::vector<std::string>& tool_use_ids) {
  std::vector<std::string> answered;
  for (size_t j = 0; j < blocks.size(); ++j) {
    const std::string p = absl::StrCat("messages.", i, ".content.", j);
    const json::object* block = blocks[j].if_object();
    if (block == nullptr) return Invalid(absl::StrCat(p, ": Input should be a valid dictionary"));
    const json::value* type = block->if_contains("type");
    if (type == nullptr) return Invalid(absl::StrCat(p, ".type: Field required"));
    const std::string_view t = type->is_string() ? ToStd(type->get_string()) : "";
    if (!OneOf(kBlockTypes, t)) {
      return Invalid(absl::StrCat(
          p, ".type: Input tag '", Av(t),
          "' found using 'type' does not match any of the expected tags: 'text', 'image', "
          "'document', 'search_result', 'tool_use', 'tool_result', 'thinking', "
          "'redacted_thinking', 'server_tool_use', 'web_search_tool_result'"));
    }
    if (t == "text") {
      const json::value* text = block->if_contains("text");
      if (text == nullptr) return Invalid(absl::StrCat(p, ".text: Field required"));
      if (!text->is_string())
        return Invalid(absl::StrCat(p, ".text: Input should be a valid string"));
      if (text->get_string().empty()) {
        return Invalid("messages: text content blocks must be non-empty");
      }
    } else if (t == "tool_use") {
      if (role != "assistant") {
        return Invalid(absl::StrCat(p, ": tool_use blocks may only appear in assistant messages"));
      }
      const json::value* id = block->if_contains("id");
      const json::value* name = block->if_contains("name");
      const json::value* input = block->if_contains("input");
      if (id == nullptr || !id->is_string()) return Invalid(absl::StrCat(p, ".id: Field required"));
      if (name == nullptr || !name->is_string()) {
        return Invalid(absl::StrCat(p, ".name: Field required"));
      }
      if (input == nullptr || !input->is_object()) {
        return Invalid(absl::StrCat(p, ".input: Input should be a valid dictionary"));
      }
      tool_use_ids.emplace_back(ToStd(id->get_string()));
    } else if (t == "tool_result") {
      const json::value* id = block->if_contains("tool_use_id");
      if (id == nullptr || !id->is_string()) {
        return Invalid(absl::StrCat(p, ".tool_use_id: Field required"));
      }
      const std::string_view tid = ToStd(id->get_string());
      const bool expected =
          role == "user" && pending.message_index + 1 == i &&
          std::find(pending.ids.begin(), pending.ids.end(), tid) != pending.ids.end();
      if (!expected) {
        return Invalid(absl::StrCat(
            p, ": unexpected `tool_use_id` found in `tool_result` blocks: ", Av(tid),
            ". Each `tool_result` block must have a corresponding `tool_use` block in the "
            "previous message."));
      }
      answered.emplace_back(tid);
    }
  }
  if (!pending.ids.empty() && pending.message_index + 1 == i) {
    std::string missing;
    for (const auto& id : pending.ids) {
      if (std::find(answered.begin(), answered.end(), id) == answered.end()) {
        absl::StrAppend(&missing, missing.empty() ? "" : ", ", id);
      }
    }
    if (!missing.empty()) {
      return Invalid(absl::StrCat(
          "messages.", pending.message_index,
          ": `tool_use` ids were found without `tool_result` blocks immediately after: ", missing,
          ". Each `tool_use` block must have a corresponding `tool_result` block in the next "
          "message."));
    }
  }
  return std::nullopt;
}

// The text of `system` (a string or text blocks), or the error.
std::optional<AnthropicError> SystemText(const json::value& system, std::string& text) {
  if (system.is_string()) {
    text = std::string(ToStd(system.get_string()));
    return std::nullopt;
  }
  if (!system.is_array()) return Invalid("system: Input should be a valid string");
  const json::array& blocks = system.get_array();
  for (size_t j = 0; j < blocks.size(); ++j) {
    const json::object* b = blocks[j].if_object();
    const json::value* type = b == nullptr ? nullptr : b->if_contains("type");
    const json::value* t = b == nullptr ? nullptr : b->if_contains("text");
    if (type == nullptr || !type->is_string() || type->get_string() != "text" || t == nullptr ||
        !t->is_string()) {
      return Invalid(absl::StrCat("system.", j, ": Input should be a valid text block"));
    }
  }
  text = ContentText(system);
  return std::nullopt;
}

// Collects the names of the custom (callable) tools.
std::optional<AnthropicError> ValidateTools(const json::value& tools,
                                            std::vector<std::string>& names) {
  if (!tools.is_array()) return Invalid("tools: Input should be a valid list");
  const json::array& list = tools.get_array();
  for (size_t i = 0; i < list.size(); ++i) {
    const json::object* tool = list[i].if_object();
    if (tool == nullptr)
      return Invalid(absl::StrCat("tools.", i, ": Input should be a valid dictionary"));
    const json::value* type = tool->if_contains("type");
    const bool custom =
        type == nullptr || type->is_null() || (type->is_string() && type->get_string() == "custom");
    const json::value* name = tool->if_contains("name");
    const std::string p = absl::StrCat("tools.", i, custom ? ".custom" : "");
    if (name == nullptr) return Invalid(absl::StrCat(p, ".name: Field required"));
    if (!name->is_string() || !IsToolName(ToStd(name->get_string()))) {
      return Invalid(
          absl::StrCat(p, ".name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'"));
    }
    if (!custom) continue;  // server tools (web search, bash, ...) run at Anthropic, not here
    const json::value* schema = tool->if_contains("input_schema");
    if (schema == nullptr) return Invalid(absl::StrCat(p, ".input_schema: Field required"));
    if (!schema->is_object()) {
      return Invalid(absl::StrCat(p, ".input_schema: Input should be a valid dictionary"));
    }
    names.emplace_back(ToStd(name->get_string()));
  }
  return std::nullopt;
}

// Resolves tool_choice: `chosen` receives the named tool, "none", or "" (model's choice).
std::optional<AnthropicError> ValidateToolChoice(const json::value& choice, std::string& chosen) {
  const json::object* obj = choice.if_object();
  if (obj == nullptr) return Invalid("tool_choice: Input should be a valid dictionary");
  const json::value* type = obj->if_contains("type");
  if (type == nullptr) return Invalid("tool_choice.type: Field required");
  const std::string_view t = type->is_string() ? ToStd(type->get_string()) : "";
  if (t == "none") {
    chosen = "none";
  } else if (t == "tool") {
    const json::value* name = obj->if_contains("name");
    if (name == nullptr || !name->is_string())
      return Invalid("tool_choice.tool.name: Field required");
    chosen = std::string(ToStd(name->get_string()));
  } else if (t != "auto" && t != "any") {
    return Invalid(absl::StrCat("tool_choice.type: Input tag '", Av(t),
                                "' found using 'type' does not match any of the expected tags: "
                                "'auto', 'any', 'tool', 'none'"));
  }
  return std::nullopt;
}

std::optional<AnthropicError> ValidateThinking(const json::value& thinking, int64_t max_tokens) {
  const json::object* obj = thinking.if_object();
  if (obj == nullptr) return Invalid("thinking: Input should be a valid dictionary");
  const json::value* type = obj->if_contains("type");
  const std::string_view t = type != nullptr && type->is_string() ? ToStd(type->get_string()) : "";
  if (t == "disabled") return std::nullopt;
  if (t != "enabled") {
    return Invalid(absl::StrCat("thinking.type: Input tag '", Av(t),
                                "' found using 'type' does not match any of the expected tags: "
                                "'enabled', 'disabled'"));
  }
  const json::value* budget = obj->if_contains("budget_tokens");
  if (budget == nullptr) return Invalid("thinking.enabled.budget_tokens: Field required");
  const std::optional<int64_t> b = AsInteger(*budget);
  if (!b.has_value())
    return Invalid("thinking.enabled.budget_tokens: Input should be a valid integer");
  if (*b < 1024) {
    return Invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024");
  }
  if (max_tokens <= *b) {
    return Invalid(
        "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
        "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
        "#max-tokens-and-context-window-size");
  }
  return std::nullopt;
}

std::string_view StopReason(std::string_view finish_reason) {
  if (finish_reason == "length") return "max_tokens";
  if (finish_reason == "tool_calls") return "tool_use";
  return "end_turn";
}

// Anthropic's usage object. `full`: the message form (with the cache_creation split and
// service_tier); otherwise the message_delta form.
void AppendUsage(std::string& out, const Usage& u, int64_t output_tokens, bool full) {
  const int64_t writes = u.cache_write_5m_tokens + u.cache_write_1h_tokens;
  absl::StrAppend(&out, "{\"input_tokens\":", u.prompt_tokens - u.cached_tokens - writes,
                  ",\"cache_creation_input_tokens\":", writes,
                  ",\"cache_read_input_tokens\":", u.cached_tokens);
  if (full) {
    absl::StrAppend(&out,
                    ",\"cache_creation\":{\"ephemeral_5m_input_tokens\":", u.cache_write_5m_tokens,
                    ",\"ephemeral_1h_input_tokens\":", u.cache_write_1h_tokens, "}");
  }
  absl::StrAppend(&out, ",\"output_tokens\":", output_tokens);
  if (full) out += ",\"service_tier\":\"standard\""sv;
  out += '}';
}

// The message object up to (excluding) "content".
void AppendMessageHead(std::string& out, const Completion& c) {
  out += "{\"id\":"sv;
  AppendJsonString(out, c.id);
  out += ",\"type\":\"message\",\"role\":\"assistant\",\"model\":"sv;
  AppendJsonString(out, c.model);
}

std::string Signature(const Completion& c) {
  return absl::Base64Escape(absl::StrCat("mock-thinking-signature/", c.seq, "/", c.seed));
}

}  // namespace

// ---------------------------------------------------------------------------------------------

AnthropicError AnthropicForcedError(int status, std::string_view model, int64_t retry_after_s) {
  AnthropicError e;
  e.status = status;
  e.type = std::string(ErrorTypeForStatus(status));
  switch (status) {
    case 400:
      e.message = "Invalid request (simulated by the mock provider).";
      break;
    case 401:
      e.message = "invalid x-api-key";
      break;
    case 402:
      e.message =
          "Your credit balance is too low to access the Anthropic API. Please go to Plans & "
          "Billing to upgrade or purchase credits.";
      break;
    case 403:
      e.message = "Your API key does not have permission to use the specified resource.";
      break;
    case 404:
      e.message = absl::StrCat("model: ", Av(model));
      break;
    case 413:
      e.message = "Request exceeds the maximum allowed number of bytes.";
      break;
    case 429:
      e.message =
          "This request would exceed the rate limit for your organization (mock) of 4,000 "
          "requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. "
          "You can see the response headers for current usage. Please reduce the prompt length or "
          "the maximum tokens requested, or try again later.";
      e.retry_after_s = retry_after_s > 0 ? retry_after_s : 1;
      break;
    case 500:
      e.message = "Internal server error";
      break;
    case 504:
      e.message = "Request timed out before a response was generated.";
      break;
    case 529:
      e.message = "Overloaded";
      e.retry_after_s = std::max<int64_t>(retry_after_s, 0);
      break;
    default:
      e.message = absl::StrCat("Simulated error (status ", status, ").");
      break;
  }
  return e;
}

std::string RenderAnthropicErrorJson(const AnthropicError& error, std::string_view request_id) {
  std::string out = "{\"type\":\"error\",\"error\":{\"type\":";
  AppendJsonString(out, error.type);
  out += ",\"message\":"sv;
  AppendJsonString(out, error.message);
  out += '}';
  if (!request_id.empty()) {
    out += ",\"request_id\":"sv;
    AppendJsonString(out, request_id);
  }
  out += '}';
  return out;
}

std::optional<AnthropicError> ParseMessagesRequest(std::string_view body, ChatRequest& out) {
  RequestJson doc;
  boost::system::error_code ec;
  const json::value& root = doc.Parse(body, ec);
  if (ec) {
    return Invalid(absl::StrCat("The request body is not valid JSON: ", ec.message()));
  }
  const json::object* req = root.if_object();
  if (req == nullptr) return Invalid("Input should be a valid dictionary");
  for (const auto& kv : *req) {
    if (!OneOf(kKnownParams, ToStd(kv.key()))) {
      return Invalid(absl::StrCat(Av(ToStd(kv.key())), ": Extra inputs are not permitted"));
    }
  }

  const json::value* model = req->if_contains("model");
  if (model == nullptr) return Invalid("model: Field required");
  if (!model->is_string()) return Invalid("model: Input should be a valid string");

  const json::value* max_tokens_v = req->if_contains("max_tokens");
  if (max_tokens_v == nullptr) return Invalid("max_tokens: Field required");
  const std::optional<int64_t> max_tokens = AsInteger(*max_tokens_v);
  if (!max_tokens.has_value()) return Invalid("max_tokens: Input should be a valid integer");
  if (*max_tokens < 1) return Invalid("max_tokens: Input should be greater than or equal to 1");

  const json::value* messages_v = req->if_contains("messages");
  if (messages_v == nullptr) return Invalid("messages: Field required");
  if (!messages_v->is_array()) return Invalid("messages: Input should be a valid list");
  const json::array& messages = messages_v->get_array();
  if (messages.empty()) return Invalid("messages: at least one message is required");
  PendingToolUses pending;
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string p = absl::StrCat("messages.", i);
    const json::object* m = messages[i].if_object();
    if (m == nullptr) return Invalid(absl::StrCat(p, ": Input should be a valid dictionary"));
    const json::value* role_v = m->if_contains("role");
    if (role_v == nullptr) return Invalid(absl::StrCat(p, ".role: Field required"));
    const std::string_view role = role_v->is_string() ? ToStd(role_v->get_string()) : "";
    if (role == "system") {
      return Invalid(
          "messages: Unexpected role \"system\". The Messages API accepts a top-level `system` "
          "parameter, not \"system\" as an input message role.");
    }
    if (role != "user" && role != "assistant") {
      return Invalid(absl::StrCat(p, ".role: Input should be 'user' or 'assistant'"));
    }
    const json::value* content = m->if_contains("content");
    if (content == nullptr) return Invalid(absl::StrCat(p, ".content: Field required"));
    const bool last = i + 1 == messages.size();
    const bool empty = (content->is_string() && content->get_string().empty()) ||
                       (content->is_array() && content->get_array().empty());
    if (empty && !(last && role == "assistant")) {
      return Invalid(absl::StrCat(p,
                                  ": all messages must have non-empty content except for the "
                                  "optional final assistant message"));
    }
    std::vector<std::string> tool_use_ids;
    if (content->is_array()) {
      if (auto e = ValidateBlocks(content->get_array(), i, role, pending, tool_use_ids)) return e;
    } else if (!content->is_string()) {
      return Invalid(absl::StrCat(p, ".content: Input should be a valid string or list"));
    } else if (!pending.ids.empty() && pending.message_index + 1 == i) {
      json::array none;
      if (auto e = ValidateBlocks(none, i, role, pending, tool_use_ids)) return e;
    }
    pending = PendingToolUses{i, std::move(tool_use_ids)};
  }

  std::string system_text;
  bool has_system = false;
  if (const json::value* system = req->if_contains("system"); system != nullptr) {
    if (auto e = SystemText(*system, system_text)) return e;
    has_system = !(system->is_string() && system->get_string().empty()) &&
                 !(system->is_array() && system->get_array().empty());
  }

  bool stream = false;
  if (const json::value* s = req->if_contains("stream"); s != nullptr) {
    if (!s->is_bool()) return Invalid("stream: Input should be a valid boolean");
    stream = s->get_bool();
  }
  if (auto e = CheckNumber(*req, "temperature", 0, 1)) return e;
  if (auto e = CheckNumber(*req, "top_p", 0, 1)) return e;
  if (const json::value* stops = req->if_contains("stop_sequences"); stops != nullptr) {
    if (!stops->is_array() || !std::all_of(stops->get_array().begin(), stops->get_array().end(),
                                           [](const json::value& v) { return v.is_string(); })) {
      return Invalid("stop_sequences: Input should be a valid list of strings");
    }
  }
  if (const json::value* thinking = req->if_contains("thinking"); thinking != nullptr) {
    if (auto e = ValidateThinking(*thinking, *max_tokens)) return e;
  }
  std::vector<std::string> tools;
  if (const json::value* t = req->if_contains("tools"); t != nullptr) {
    if (auto e = ValidateTools(*t, tools)) return e;
  }
  std::string chosen;
  if (const json::value* c = req->if_contains("tool_choice"); c != nullptr) {
    if (auto e = ValidateToolChoice(*c, chosen)) return e;
  }

  out = ChatRequest();
  out.model = std::string(ToStd(model->get_string()));
  out.stream = stream;
  out.max_completion_tokens = *max_tokens;
  out.prompt_tokens =
      CountPromptTokens(messages) + (has_system ? MessageTokens(system_text.size()) : 0);
  for (size_t i = messages.size(); i-- > 0;) {
    const json::object& m = messages[i].get_object();
    const json::value& content = m.at("content");
    if (m.at("role").get_string() == "user" && !HasToolResult(content)) {
      out.last_user_text = ContentText(content);
      break;
    }
  }
  const json::object& last = messages.back().get_object();
  const bool last_is_question =
      last.at("role").get_string() == "user" && !HasToolResult(last.at("content"));
  if (!tools.empty() && chosen != "none" && last_is_question) {
    out.tool_to_call = chosen.empty() ? tools.front() : chosen;
  }
  return std::nullopt;
}

std::string RenderMessageJson(const Completion& c) {
  const Choice* choice = c.choices.empty() ? nullptr : &c.choices.front();
  std::string out;
  out.reserve(400 + (choice ? choice->content.size() : 0) + c.usage.reasoning_tokens * 8);
  AppendMessageHead(out, c);
  out += ",\"content\":["sv;
  bool first = true;
  if (c.usage.reasoning_tokens > 0) {
    out += "{\"type\":\"thinking\",\"thinking\":"sv;
    AppendJsonString(out, ReasoningText(c));
    out += ",\"signature\":"sv;
    AppendJsonString(out, Signature(c));
    out += '}';
    first = false;
  }
  if (choice != nullptr && !choice->tool_name.empty()) {
    out += first ? ""sv : ","sv;
    out += "{\"type\":\"tool_use\",\"id\":"sv;
    AppendJsonString(out, choice->tool_call_id);
    out += ",\"name\":"sv;
    AppendJsonString(out, choice->tool_name);
    absl::StrAppend(&out, ",\"input\":", choice->tool_arguments, "}");
  } else if (choice != nullptr && choice->words > 0) {
    out += first ? ""sv : ","sv;
    out += "{\"type\":\"text\",\"text\":"sv;
    AppendJsonString(out, choice->content);
    out += '}';
  }
  absl::StrAppend(&out, "],\"stop_reason\":\"",
                  Av(StopReason(choice ? std::string_view(choice->finish_reason) : "")),
                  "\",\"stop_sequence\":null,\"usage\":");
  AppendUsage(out, c.usage, c.usage.completion_tokens, /*full=*/true);
  out += '}';
  return out;
}

void RenderMessageStream(const Completion& c, EventSink sink) {
  const Choice* choice = c.choices.empty() ? nullptr : &c.choices.front();
  std::string event;  // reused for every event
  event.reserve(512);
  auto begin = [&](std::string_view type) {
    event.assign("event: ");
    absl::StrAppend(&event, Av(type), "\ndata: {\"type\":\"", Av(type), "\"");
  };
  auto end = [&](EventKind kind) {
    event += "}\n\n"sv;
    sink(kind, event);
  };
  constexpr std::string_view kPing = "event: ping\ndata: {\"type\": \"ping\"}\n\n";

  begin("message_start");
  event += ",\"message\":"sv;
  AppendMessageHead(event, c);
  event += ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":"sv;
  AppendUsage(event, c.usage, std::min<int64_t>(1, c.usage.completion_tokens), /*full=*/true);
  event += '}';
  end(EventKind::kRole);

  int index = 0;
  bool pinged = false;
  auto start_block = [&](auto&& append_block) {
    begin("content_block_start");
    absl::StrAppend(&event, ",\"index\":", index, ",\"content_block\":");
    append_block();
    end(EventKind::kFrame);
    if (!pinged) sink(EventKind::kFrame, kPing);
    pinged = true;
  };
  auto delta = [&](std::string_view delta_type, std::string_view field, std::string_view value) {
    begin("content_block_delta");
    absl::StrAppend(&event, ",\"index\":", index, ",\"delta\":{\"type\":\"", Av(delta_type),
                    "\",\"", Av(field), "\":");
    AppendJsonString(event, value);
    event += '}';
    end(EventKind::kContent);
  };
  auto stop_block = [&] {
    begin("content_block_stop");
    absl::StrAppend(&event, ",\"index\":", index);
    end(EventKind::kFrame);
    ++index;
  };

  if (c.usage.reasoning_tokens > 0) {
    start_block([&] { event += "{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}"sv; });
    const std::string thinking = ReasoningText(c);
    size_t cursor = 0;
    for (std::string_view piece; !(piece = NextPiece(thinking, cursor)).empty();) {
      delta("thinking_delta", "thinking", piece);
    }
    delta("signature_delta", "signature", Signature(c));
    stop_block();
  }
  if (choice != nullptr && !choice->tool_name.empty()) {
    start_block([&] {
      event += "{\"type\":\"tool_use\",\"id\":"sv;
      AppendJsonString(event, choice->tool_call_id);
      event += ",\"name\":"sv;
      AppendJsonString(event, choice->tool_name);
      event += ",\"input\":{}}"sv;
    });
    delta("input_json_delta", "partial_json", "");
    for (std::string_view fragment : SplitToolArguments(choice->tool_arguments)) {
      delta("input_json_delta", "partial_json", fragment);
    }
    stop_block();
  } else if (choice != nullptr && choice->words > 0) {
    start_block([&] { event += "{\"type\":\"text\",\"text\":\"\"}"sv; });
    size_t cursor = 0;
    for (std::string_view piece; !(piece = NextPiece(choice->content, cursor)).empty();) {
      delta("text_delta", "text", piece);
    }
    stop_block();
  }
  if (!pinged) sink(EventKind::kFrame, kPing);

  begin("message_delta");
  absl::StrAppend(&event, ",\"delta\":{\"stop_reason\":\"",
                  Av(StopReason(choice ? std::string_view(choice->finish_reason) : "")),
                  "\",\"stop_sequence\":null},\"usage\":");
  AppendUsage(event, c.usage, c.usage.completion_tokens, /*full=*/false);
  end(EventKind::kFinish);
  begin("message_stop");
  end(EventKind::kDone);
}

std::vector<std::pair<EventKind, std::string>> MessageStreamEvents(const Completion& completion) {
  std::vector<std::pair<EventKind, std::string>> events;
  RenderMessageStream(completion, [&](EventKind kind, std::string_view data) {
    events.emplace_back(kind, std::string(data));
  });
  return events;
}

// ---------------------------------------------------------------------------------------------

std::optional<Reply> AnthropicDialect::Models(const Call& call) const {
  constexpr std::string_view kList = "/v1/models";
  const bool models_path = call.path == kList || call.path.starts_with("/v1/models/");
  // /v1/models is OpenAI's too: Anthropic clients are told apart by their version header.
  if (!models_path || HeaderValue(call.request, "anthropic-version").empty()) return std::nullopt;
  if (!call.require_key.empty()) {
    std::string_view key = HeaderValue(call.request, "x-api-key");
    if (key.empty()) key = BearerToken(call.request).value_or(std::string_view());
    if (key != call.require_key) return ErrorReply(AnthropicForcedError(401, "", 0), call.seq);
  }
  auto append = [](std::string& out, const ModelInfo& m) {
    absl::StrAppend(&out, "{\"type\":\"model\",\"id\":\"", Av(m.id), "\",\"display_name\":\"",
                    Av(m.display_name), "\",\"created_at\":\"", Av(m.created_at), "\"}");
  };
  std::string body;
  if (call.path == kList) {
    body = "{\"data\":[";
    for (size_t i = 0; i < kModels.size(); ++i) {
      if (i > 0) body += ',';
      append(body, kModels[i]);
    }
    absl::StrAppend(&body, "],\"has_more\":false,\"first_id\":\"", Av(kModels.front().id),
                    "\",\"last_id\":\"", Av(kModels.back().id), "\"}");
  } else {
    const std::string_view id = call.path.substr(kList.size() + 1);
    const auto it = std::find_if(kModels.begin(), kModels.end(),
                                 [&](const ModelInfo& m) { return m.id == id; });
    if (it == kModels.end()) return ErrorReply(AnthropicForcedError(404, id, 0), call.seq);
    append(body, *it);
  }
  return Reply{200, std::move(body), AnthropicHeaders(call.seq, 0, 0, false)};
}

std::optional<Reply> AnthropicDialect::Parse(const Call& call, ChatRequest& out) const {
  const std::string_view version = HeaderValue(call.request, "anthropic-version");
  if (version.empty()) {
    return ErrorReply(Invalid("anthropic-version: header is required"), call.seq);
  }
  if (!OneOf(kVersions, version)) {
    return ErrorReply(
        Invalid(absl::StrCat("anthropic-version: \"", Av(version), "\" is not a valid version")),
        call.seq);
  }
  if (!call.require_key.empty()) {
    std::string_view key = HeaderValue(call.request, "x-api-key");
    if (key.empty()) key = BearerToken(call.request).value_or(std::string_view());
    if (key != call.require_key) {
      AnthropicError e = AnthropicForcedError(401, "", 0);
      if (key.empty()) e.message = "x-api-key header is required";
      return ErrorReply(e, call.seq);
    }
  }
  if (auto e = ParseMessagesRequest(call.request.body(), out)) return ErrorReply(*e, call.seq);
  return std::nullopt;
}

Reply AnthropicDialect::InvalidDirective(const Call& call, std::string_view message) const {
  return ErrorReply(Invalid(std::string(message)), call.seq);
}

Reply AnthropicDialect::Error(const Call& call, int status, std::string_view model,
                              int64_t retry_after_s, int64_t processing_ms) const {
  return ErrorReply(AnthropicForcedError(status, model, retry_after_s), call.seq);
}

std::string AnthropicDialect::SuccessHeaders(const Call& call, const ChatRequest& request,
                                             int64_t processing_ms) const {
  return AnthropicHeaders(call.seq, request.prompt_tokens, 0, false);
}

std::string AnthropicDialect::Body(const Completion& completion, const ChatRequest& request) const {
  return RenderMessageJson(completion);
}

void AnthropicDialect::Stream(const Completion& completion, const ChatRequest& request,
                              EventSink sink) const {
  RenderMessageStream(completion, sink);
}

std::string AnthropicDialect::StreamError(int status, const ChatRequest& request) const {
  std::string event = "event: error\ndata: ";
  event += RenderAnthropicErrorJson(AnthropicForcedError(status, request.model, 0), "");
  event += "\n\n"sv;
  return event;
}

}  // namespace tollgate::tools::mock
