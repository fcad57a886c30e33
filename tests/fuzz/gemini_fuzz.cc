// Fuzz target for the gemini provider adapter (services/gateway/providers/gemini.h): arbitrary
// bytes as a non-stream response, an error body, an embeddings response, an SSE stream (whole and
// split at an input-dependent byte), and, when they form an OpenAI request ParseChatRequest
// accepts, as a chat request to translate (and an embeddings request). Invariants: nothing
// crashes; every output is well-formed JSON / SSE in OpenAI shape; usage subsets never exceed
// their totals; stream output does not depend on how the bytes were split; [DONE] comes last and
// only with progress().done; request errors are kInvalidArgument naming the dialect and the
// parameter.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "boost/json/parse.hpp"
#include "services/gateway/openai_dialect.h"
#include "services/gateway/providers/gemini.h"
#include "services/gateway/providers/json_util.h"
#include "services/gateway/sse_parser.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace tollgate::gateway;  // NOLINT
namespace json = boost::json;
namespace v1 = tollgate::v1;

void CheckUsage(const v1::TokenUsage& u) {
  FUZZ_CHECK(u.input_tokens() >= 0);
  FUZZ_CHECK(u.output_tokens() >= 0);
  FUZZ_CHECK(u.cached_input_tokens() >= 0 && u.cached_input_tokens() <= u.input_tokens());
  FUZZ_CHECK(u.reasoning_tokens() >= 0 && u.reasoning_tokens() <= u.output_tokens());
}

json::value ParseOrDie(std::string_view text) {
  json::error_code ec;
  json::value v = json::parse(text, ec);
  FUZZ_CHECK(!ec);
  return v;
}

bool IsFinishReason(const json::value& v) {
  if (!v.is_string()) return false;
  const std::string_view s(v.get_string().data(), v.get_string().size());
  return s == kFinishStop || s == kFinishLength || s == kFinishToolCalls ||
         s == kFinishContentFilter;
}

void CheckChatResponse(std::string_view body, const ProviderCall& call) {
  auto out = GeminiProvider().TranslateChatResponse(body, call);
  if (!out.ok()) return;
  const json::value v = ParseOrDie(out->body);
  FUZZ_CHECK(v.is_object());
  const json::value* choices = v.get_object().if_contains("choices");
  FUZZ_CHECK(choices != nullptr && choices->is_array() && !choices->get_array().empty());
  for (const json::value& c : choices->get_array()) {
    FUZZ_CHECK(c.is_object() && c.get_object().contains("message"));
    FUZZ_CHECK(IsFinishReason(c.get_object().at("finish_reason")));
  }
  FUZZ_CHECK(out->output_bytes >= 0);
  if (out->usage.has_value()) {
    CheckUsage(*out->usage);
    const json::value* usage = v.get_object().if_contains("usage");
    FUZZ_CHECK(usage != nullptr && usage->is_object());
  }
}

void CheckError(unsigned status, std::string_view body) {
  const ProviderError e = GeminiProvider().TranslateError(status, body);
  const json::value v = ParseOrDie(e.body);
  const json::value* error = v.is_object() ? v.get_object().if_contains("error") : nullptr;
  FUZZ_CHECK(error != nullptr && error->is_object());
  const json::value* message = error->get_object().if_contains("message");
  FUZZ_CHECK(message != nullptr && message->is_string() && !message->get_string().empty());
  FUZZ_CHECK(error->get_object().at("type").is_string());
}

void CheckEmbeddings(std::string_view body, const ProviderCall& call) {
  auto out = GeminiProvider().TranslateEmbeddingsResponse(body, call);
  if (!out.ok()) return;
  FUZZ_CHECK(!out->usage.has_value());
  const json::value v = ParseOrDie(out->body);
  FUZZ_CHECK(v.is_object() && v.get_object().at("data").is_array());
  for (const json::value& e : v.get_object().at("data").get_array()) {
    FUZZ_CHECK(e.get_object().at("embedding").is_array());
  }
}

struct StreamRun {
  std::string out;
  StreamProgress progress;
};

StreamRun RunStream(std::string_view bytes, size_t cut, const ProviderCall& call) {
  StreamRun run;
  auto translator = GeminiProvider().NewStreamTranslator(call);
  FUZZ_CHECK(translator != nullptr);
  SseParser parser(1 << 16);
  auto on_event = [&](const SseEvent& e) {
    translator->OnEvent(e, run.out);
    if (translator->progress().usage.has_value()) CheckUsage(*translator->progress().usage);
  };
  const bool ok = parser.Feed(bytes.substr(0, cut), on_event).ok() &&
                  parser.Feed(bytes.substr(cut), on_event).ok();
  if (ok) parser.Finish(on_event);
  translator->Finish(run.out);
  const size_t size = run.out.size();
  translator->Finish(run.out);  // idempotent
  FUZZ_CHECK(run.out.size() == size);
  run.progress = translator->progress();
  return run;
}

void CheckStream(std::string_view bytes, const ProviderCall& call) {
  const StreamRun whole = RunStream(bytes, bytes.size(), call);
  const size_t cut =
      bytes.empty() ? 0 : (static_cast<unsigned char>(bytes[0]) * 131u) % bytes.size();
  const StreamRun split = RunStream(bytes, cut, call);
  FUZZ_CHECK(split.out == whole.out);
  FUZZ_CHECK(split.progress.done == whole.progress.done);
  FUZZ_CHECK(split.progress.error == whole.progress.error);
  FUZZ_CHECK(split.progress.output_bytes == whole.progress.output_bytes);
  FUZZ_CHECK(!(whole.progress.done && whole.progress.error));

  // The output is a sequence of "data: <json object>\n\n" events; "[DONE]" only last, iff done.
  std::string_view out = whole.out;
  bool saw_done = false;
  while (!out.empty()) {
    FUZZ_CHECK(!saw_done);
    FUZZ_CHECK(out.substr(0, 6) == "data: ");
    const size_t end = out.find("\n\n");
    FUZZ_CHECK(end != std::string_view::npos);
    const std::string_view data = out.substr(6, end - 6);
    out.remove_prefix(end + 2);
    if (data == "[DONE]") {
      saw_done = true;
      continue;
    }
    FUZZ_CHECK(ParseOrDie(data).is_object());
  }
  FUZZ_CHECK(saw_done == whole.progress.done);
}

// A request error names the dialect, and the parameter (unless it is the empty key "").
bool NamesDialect(const absl::Status& status) {
  const std::string_view message(status.message().data(), status.message().size());
  return message.find("gemini") != std::string_view::npos &&
         (!ParamOf(status).empty() || message.find("''") != std::string_view::npos);
}

void CheckRequest(std::string_view bytes, ProviderCall call) {
  json::error_code ec;
  json::value v = json::parse(bytes, ec);
  if (ec || !v.is_object()) return;
  if (ParseChatRequest(v).ok()) {
    for (bool stream : {false, true}) {
      call.stream = stream;
      json::object request = v.get_object();
      const json::object before = request;
      auto out = GeminiProvider().BuildChatRequest(request, call);
      FUZZ_CHECK(request == before);
      if (!out.ok()) {
        FUZZ_CHECK(out.status().code() == absl::StatusCode::kInvalidArgument);
        FUZZ_CHECK(NamesDialect(out.status()));
        continue;
      }
      FUZZ_CHECK(out->target.rfind("/v1beta/models/", 0) == 0);
      const json::value body = ParseOrDie(out->body);
      const json::value* contents = body.get_object().if_contains("contents");
      FUZZ_CHECK(contents != nullptr && contents->is_array() && !contents->get_array().empty());
      for (const json::value& c : contents->get_array()) {
        const json::string& role = c.get_object().at("role").get_string();
        FUZZ_CHECK(role == "user" || role == "model");
        FUZZ_CHECK(!c.get_object().at("parts").get_array().empty());
      }
    }
  }
  json::object request = v.get_object();
  auto emb = GeminiProvider().BuildEmbeddingsRequest(request, call);
  if (emb.ok()) {
    FUZZ_CHECK(ParseOrDie(emb->body).get_object().at("requests").is_array());
  } else {
    FUZZ_CHECK(emb.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(NamesDialect(emb.status()));
  }
  // Any JSON as a schema: converts or fails naming the parameter.
  auto schema = GeminiSchema(v, "p");
  FUZZ_CHECK(schema.ok() || (ParamOf(schema.status()) == "p" && NamesDialect(schema.status())));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  v1::Deployment deployment;
  deployment.set_id("fuzz");
  deployment.set_upstream_model("gemini-2.5-flash");
  ProviderCall call;
  call.deployment = &deployment;
  call.base_path = "/v1beta";
  call.api_key = "k";
  call.request_id = "fuzz";
  call.created_unix = 1;
  call.client_wants_usage = size % 2 == 0;

  CheckChatResponse(bytes, call);
  CheckError(size == 0 ? 500 : 400 + static_cast<unsigned char>(bytes[0]) % 200, bytes);
  CheckEmbeddings(bytes, call);
  CheckStream(bytes, call);
  CheckRequest(bytes, call);
  return 0;
}
