#include "services/gateway/providers/openai.h"

#include "absl/strings/str_cat.h"
#include "boost/json/serialize.hpp"
#include "services/common/status.h"
#include "services/gateway/openai_dialect.h"
#include "services/gateway/providers/json_util.h"

namespace tollgate::gateway {
namespace {

namespace json = boost::json;

enum class Compat { kOpenAi, kDeepSeek, kMistral, kGroq, kTogether, kVllm, kOllama };

absl::StatusOr<Compat> CompatOf(const v1::Deployment& d) {
  const std::string_view name = DeploymentOption(d, "compat", "openai");
  if (name == "openai") return Compat::kOpenAi;
  if (name == "deepseek") return Compat::kDeepSeek;
  if (name == "mistral") return Compat::kMistral;
  if (name == "groq") return Compat::kGroq;
  if (name == "together") return Compat::kTogether;
  if (name == "vllm") return Compat::kVllm;
  if (name == "ollama") return Compat::kOllama;
  return absl::FailedPreconditionError(
      absl::StrCat("deployment '", d.id(), "': unknown compat option '", std::string(name),
                   "' (valid: openai, deepseek, mistral, groq, together, vllm, ollama)"));
}

absl::Status Unsupported(const ProviderCall& call, std::string_view param, std::string_view why) {
  return InvalidParamError(
      param, absl::StrCat("parameter '", std::string(param), "' is not supported by provider '",
                          call.deployment->provider(), "' (deployment '", call.deployment->id(),
                          "')", why.empty() ? "" : ": ", std::string(why)));
}

bool Present(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && !v->is_null();
}

// True when the request carries Tollgate extensions that must not reach an OpenAI-compatible
// server, or fields a quirk rewrites: then the request is copied before it is changed.
bool NeedsRewrite(const json::object& request, Compat compat) {
  if (compat == Compat::kMistral || compat == Compat::kGroq) return true;
  if (const json::value* tools = request.if_contains("tools"); tools && tools->is_array()) {
    for (const json::value& tool : tools->get_array()) {
      if (Member(tool, "cache_control") != nullptr) return true;
    }
  }
  const json::value* messages = request.if_contains("messages");
  if (messages == nullptr || !messages->is_array()) return false;
  for (const json::value& m : messages->get_array()) {
    const json::object* message = m.if_object();
    if (message == nullptr) continue;
    if (message->contains("cache_control") || message->contains("reasoning_content") ||
        message->contains("reasoning_signature") || message->contains("is_error")) {
      return true;
    }
    if (const json::value* content = message->if_contains("content");
        content && content->is_array()) {
      for (const json::value& part : content->get_array()) {
        if (Member(part, "cache_control") != nullptr) return true;
      }
    }
  }
  return false;
}

void StripExtensions(json::object& request, Compat compat) {
  if (json::value* tools = request.if_contains("tools"); tools && tools->is_array()) {
    for (json::value& tool : tools->get_array()) {
      if (json::object* t = tool.if_object()) t->erase("cache_control");
    }
  }
  json::value* messages = request.if_contains("messages");
  if (messages == nullptr || !messages->is_array()) return;
  for (json::value& m : messages->get_array()) {
    json::object* message = m.if_object();
    if (message == nullptr) continue;
    message->erase("cache_control");
    message->erase("reasoning_content");
    message->erase("reasoning_signature");
    message->erase("is_error");  // a failed tool result (Anthropic ingress); the text says so
    if (compat == Compat::kMistral || compat == Compat::kGroq) message->erase("name");
    if (json::value* content = message->if_contains("content"); content && content->is_array()) {
      for (json::value& part : content->get_array()) {
        if (json::object* p = part.if_object()) p->erase("cache_control");
      }
    }
  }
}

absl::Status ApplyMistral(json::object& body) {
  if (json::value* mct = body.if_contains("max_completion_tokens"); mct && !mct->is_null()) {
    body["max_tokens"] = *mct;
  }
  body.erase("max_completion_tokens");
  if (json::value* choice = body.if_contains("tool_choice")) {
    if ((choice->is_string() && choice->get_string() == "required") || choice->is_object()) {
      *choice = "any";
    }
  }
  if (json::value* seed = body.if_contains("seed"); seed && !seed->is_null()) {
    body["random_seed"] = *seed;
  }
  body.erase("seed");
  body.erase("stream_options");
  for (auto it = body.begin(); it != body.end();) {
    it = it->value().is_null() ? body.erase(it) : std::next(it);
  }
  return absl::OkStatus();
}

absl::Status CheckGroq(const json::object& body, const ProviderCall& call) {
  for (const char* param : {"logprobs", "top_logprobs", "logit_bias"}) {
    const json::value* v = body.if_contains(param);
    if (v != nullptr && !v->is_null() && !(v->is_bool() && !v->get_bool())) {
      return Unsupported(call, param, "");
    }
  }
  if (const json::value* n = body.if_contains("n"); n && !n->is_null() && CountOf(n) != 1) {
    return Unsupported(call, "n", "only n = 1 is accepted");
  }
  return absl::OkStatus();
}

class OpenAiStreamTranslator final : public StreamTranslator {
 public:
  explicit OpenAiStreamTranslator(bool client_wants_usage)
      : client_wants_usage_(client_wants_usage) {}

  void OnEvent(const SseEvent& event, std::string& out) override {
    bool forward = true;
    progress_.has_output = false;
    if (event.has_data) {
      const StreamChunkInfo chunk = InspectStreamChunk(event.data);
      if (chunk.done) progress_.done = true;
      if (chunk.is_error) progress_.error = true;
      if (chunk.usage) progress_.usage = *chunk.usage;
      // The gateway asked for usage on the client's behalf: hide that chunk unless the client
      // asked for it too.
      if (chunk.usage_only && !client_wants_usage_) forward = false;
      if (chunk.has_output) {
        progress_.has_output = true;
        progress_.output_bytes += chunk.output_bytes;
      }
    }
    if (forward) {
      out.append(event.raw.data(), event.raw.size());
      if (!event.terminated) out.append("\n\n");
    }
  }

  void Finish(std::string&) override {}

 private:
  const bool client_wants_usage_;
};

}  // namespace

absl::StatusOr<std::string> OpenAiCompatibleProvider::Target(const ProviderCall& call,
                                                             std::string_view endpoint) const {
  return absl::StrCat(std::string(call.base_path), "/", std::string(endpoint));
}

void OpenAiCompatibleProvider::AddAuth(const ProviderCall& call, ProviderRequest& request) const {
  if (!call.api_key.empty()) {
    request.headers.emplace_back("authorization",
                                 absl::StrCat("Bearer ", std::string(call.api_key)));
  }
}

absl::StatusOr<ProviderRequest> OpenAiCompatibleProvider::BuildChatRequest(
    json::object& request, const ProviderCall& call) const {
  const v1::Deployment& d = *call.deployment;
  TOLLGATE_ASSIGN_OR_RETURN(const Compat compat, CompatOf(d));
  if (Present(request, "thinking")) {
    return Unsupported(call, "thinking", "use reasoning_effort with OpenAI reasoning models");
  }
  const bool top_k_ok =
      compat == Compat::kTogether || compat == Compat::kVllm || compat == Compat::kOllama;
  if (Present(request, "top_k") && !top_k_ok) return Unsupported(call, "top_k", "");
  if (compat == Compat::kGroq) TOLLGATE_RETURN_IF_ERROR(CheckGroq(request, call));

  ProviderRequest out;
  TOLLGATE_ASSIGN_OR_RETURN(out.target, Target(call, "chat/completions"));
  AddAuth(call, out);
  if (!NeedsRewrite(request, compat)) {
    // The common case: model and stream_options are overwritten on every attempt, so the
    // caller's object is changed in place, with no copy.
    out.body = RewriteChatRequest(request, d.upstream_model(), call.stream);
    return out;
  }
  json::object body = request;
  StripExtensions(body, compat);
  if (compat == Compat::kMistral) {
    TOLLGATE_RETURN_IF_ERROR(ApplyMistral(body));
    if (!d.upstream_model().empty()) body["model"] = d.upstream_model();
    out.body = json::serialize(body);
    return out;
  }
  out.body = RewriteChatRequest(body, d.upstream_model(), call.stream);
  return out;
}

absl::StatusOr<ProviderResponse> OpenAiCompatibleProvider::TranslateChatResponse(
    std::string_view body, const ProviderCall&) const {
  ChatResponseUsage extracted = ExtractChatResponseUsage(body);
  ProviderResponse out;
  out.body = std::string(body);
  out.usage = extracted.usage;
  out.output_bytes = extracted.output_bytes;
  return out;
}

std::unique_ptr<StreamTranslator> OpenAiCompatibleProvider::NewStreamTranslator(
    const ProviderCall& call) const {
  return std::make_unique<OpenAiStreamTranslator>(call.client_wants_usage);
}

ProviderError OpenAiCompatibleProvider::TranslateError(unsigned status,
                                                       std::string_view body) const {
  ProviderError out;
  out.body = std::string(body);
  out.context_length_exceeded =
      status == 400 && body.find("context_length_exceeded") != std::string_view::npos;
  return out;
}

absl::StatusOr<ProviderRequest> OpenAiCompatibleProvider::BuildEmbeddingsRequest(
    json::object& request, const ProviderCall& call) const {
  ProviderRequest out;
  TOLLGATE_ASSIGN_OR_RETURN(out.target, Target(call, "embeddings"));
  AddAuth(call, out);
  if (!call.deployment->upstream_model().empty()) {
    request["model"] = call.deployment->upstream_model();
  }
  out.body = json::serialize(request);
  return out;
}

absl::StatusOr<ProviderResponse> OpenAiCompatibleProvider::TranslateEmbeddingsResponse(
    std::string_view body, const ProviderCall&) const {
  ChatResponseUsage extracted = ExtractChatResponseUsage(body);
  if (!extracted.parsed) {
    return absl::DataLossError("the upstream embeddings response is not a JSON object");
  }
  ProviderResponse out;
  out.body = std::string(body);
  out.usage = extracted.usage;
  return out;
}

const Provider& OpenAiProvider() {
  static const OpenAiCompatibleProvider provider;
  return provider;
}

}  // namespace tollgate::gateway
