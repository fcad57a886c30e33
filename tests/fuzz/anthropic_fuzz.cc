// The anthropic provider adapter on arbitrary bytes, read four ways: as a Messages response body,
// as an error body, as an upstream SSE stream (whole and split in two), and, when the bytes are
// an OpenAI request that ParseChatRequest accepts, as a request to translate. Nothing may crash;
// every output must be valid JSON (streams: "data: <JSON object | [DONE]>" events, [DONE] last
// and only after message_stop); normalised usage subsets never exceed their totals; a rejected
// request is a 400 naming the dialect.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "boost/json/parse.hpp"
#include "boost/json/serialize.hpp"
#include "services/gateway/openai_dialect.h"
#include "services/gateway/providers/anthropic.h"
#include "services/gateway/sse_parser.h"
#include "tests/fuzz/fuzz_check.h"

namespace json = boost::json;
using tollgate::gateway::AnthropicProvider;
using tollgate::gateway::ProviderCall;
using tollgate::gateway::SseEvent;
using tollgate::gateway::SseParser;
using tollgate::gateway::StreamProgress;

namespace {

void CheckUsage(const tollgate::v1::TokenUsage& u) {
  FUZZ_CHECK(u.input_tokens() >= 0 && u.output_tokens() >= 0);
  FUZZ_CHECK(u.cached_input_tokens() >= 0 && u.cache_write_5m_tokens() >= 0 &&
             u.cache_write_1h_tokens() >= 0 && u.reasoning_tokens() >= 0);
  FUZZ_CHECK(u.cached_input_tokens() <= u.input_tokens());
  FUZZ_CHECK(u.cache_write_5m_tokens() <= u.input_tokens() - u.cached_input_tokens());
  FUZZ_CHECK(u.cache_write_1h_tokens() <=
             u.input_tokens() - u.cached_input_tokens() - u.cache_write_5m_tokens());
  FUZZ_CHECK(u.reasoning_tokens() <= u.output_tokens());
}

json::value MustParse(std::string_view text) {
  json::error_code ec;
  json::value v = json::parse(text, ec);
  FUZZ_CHECK(!ec);
  return v;
}

// Checks the OpenAI SSE the translator produced; returns whether it ended with [DONE].
bool CheckOpenAiStream(const std::string& out) {
  SseParser parser(out.size() + 16);
  bool done = false;
  auto on_event = [&](const SseEvent& e) {
    FUZZ_CHECK(e.terminated);
    FUZZ_CHECK(e.has_data);
    FUZZ_CHECK(!done);  // nothing after [DONE]
    if (e.data == "[DONE]") {
      done = true;
      return;
    }
    const json::value v = MustParse(e.data);
    FUZZ_CHECK(v.is_object());
    if (const json::value* usage = v.as_object().if_contains("usage");
        usage != nullptr && usage->is_object()) {
      const json::value& u = *usage;
      FUZZ_CHECK(u.at("prompt_tokens").as_int64() >= 0);
      FUZZ_CHECK(u.at("prompt_tokens_details").at("cached_tokens").as_int64() <=
                 u.at("prompt_tokens").as_int64());
    }
  };
  FUZZ_CHECK(parser.Feed(out, on_event).ok());
  FUZZ_CHECK(parser.buffered_bytes() == 0);  // every event is complete
  return done;
}

std::string TranslateStream(std::string_view text, size_t split, const ProviderCall& call,
                            StreamProgress& progress) {
  auto translator = AnthropicProvider().NewStreamTranslator(call);
  FUZZ_CHECK(translator != nullptr);
  std::string out;
  SseParser parser(1 << 16);
  auto on_event = [&](const SseEvent& e) { translator->OnEvent(e, out); };
  (void)parser.Feed(text.substr(0, split), on_event);
  (void)parser.Feed(text.substr(split), on_event);
  parser.Finish(on_event);
  translator->Finish(out);
  progress = translator->progress();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  static const tollgate::v1::Deployment* const deployment = [] {
    auto* d = new tollgate::v1::Deployment();
    d->set_id("fuzz-claude");
    d->set_dialect("anthropic");
    d->set_upstream_model("claude-sonnet-4-20250514");
    d->set_max_output_tokens(8192);
    return d;
  }();
  ProviderCall call;
  call.deployment = deployment;
  call.base_path = "/v1";
  call.api_key = "sk-ant-fuzz";
  call.request_id = "fuzz";
  call.created_unix = 1;
  call.client_model = "claude";

  // Non-stream response.
  auto response = AnthropicProvider().TranslateChatResponse(text, call);
  if (response.ok()) {
    const json::value body = MustParse(response->body);
    FUZZ_CHECK(body.is_object());
    FUZZ_CHECK(body.at("choices").as_array().size() == 1);
    FUZZ_CHECK(response->output_bytes >= 0);
    if (response->usage) {
      CheckUsage(*response->usage);
      FUZZ_CHECK(body.at("usage").at("prompt_tokens").as_int64() ==
                 response->usage->input_tokens());
    }
  }

  // Error body.
  for (unsigned status : {400u, 429u, 502u, 529u}) {
    const auto error = AnthropicProvider().TranslateError(status, text);
    const json::value body = MustParse(error.body);
    FUZZ_CHECK(body.at("error").at("message").is_string());
    FUZZ_CHECK(body.at("error").at("type").is_string());
    FUZZ_CHECK(!body.at("error").at("message").as_string().empty());
  }

  // Stream, whole and split: identical bytes and progress.
  for (bool wants_usage : {false, true}) {
    call.client_wants_usage = wants_usage;
    StreamProgress whole_progress;
    StreamProgress split_progress;
    const std::string whole = TranslateStream(text, text.size(), call, whole_progress);
    const std::string split = TranslateStream(text, text.size() / 2, call, split_progress);
    FUZZ_CHECK(whole == split);
    FUZZ_CHECK(whole_progress.done == split_progress.done);
    const bool done = CheckOpenAiStream(whole);
    FUZZ_CHECK(done == whole_progress.done);
    FUZZ_CHECK(!(whole_progress.done && whole_progress.error));
    FUZZ_CHECK(whole_progress.output_bytes >= 0);
    if (whole_progress.usage) CheckUsage(*whole_progress.usage);
  }

  // Request translation.
  json::error_code ec;
  json::value request = json::parse(text, ec);
  if (ec) return 0;
  auto info = tollgate::gateway::ParseChatRequest(request);
  if (!info.ok()) return 0;
  const std::string before = json::serialize(request);
  for (bool stream : {false, true}) {
    call.stream = stream;
    auto out = AnthropicProvider().BuildChatRequest(request.as_object(), call);
    FUZZ_CHECK(json::serialize(request) == before);  // the request is reused across attempts
    if (!out.ok()) {
      FUZZ_CHECK(out.status().code() == absl::StatusCode::kInvalidArgument);
      FUZZ_CHECK(out.status().message().find("anthropic") != absl::string_view::npos);
      continue;
    }
    FUZZ_CHECK(out->target == "/v1/messages");
    const json::value body = MustParse(out->body);
    FUZZ_CHECK(body.at("model").as_string() == "claude-sonnet-4-20250514");
    FUZZ_CHECK(body.at("max_tokens").as_int64() >= 0);
    FUZZ_CHECK(body.as_object().contains("stream") == stream);
    // Turns alternate (same-role messages are merged) and use Anthropic's two roles.
    std::string_view previous;
    for (const json::value& m : body.at("messages").as_array()) {
      const std::string_view role = m.at("role").as_string();
      FUZZ_CHECK(role == "user" || role == "assistant");
      FUZZ_CHECK(role != previous);
      previous = role;
    }
  }
  return 0;
}
