// Provider output and client requests in the OpenAI dialect: arbitrary bytes must never crash
// the usage extractors, and any request the validator accepts must rewrite into valid JSON with
// the upstream model and forced usage reporting.

#include <boost/json.hpp>
#include <cstdint>
#include <string_view>

#include "services/gateway/openai_dialect.h"
#include "tests/fuzz/fuzz_check.h"

namespace json = boost::json;

namespace {

void CheckUsage(const tollgate::v1::TokenUsage& u) {
  FUZZ_CHECK(u.input_tokens() >= 0 && u.output_tokens() >= 0);
  FUZZ_CHECK(u.cached_input_tokens() <= u.input_tokens());
  FUZZ_CHECK(u.reasoning_tokens() <= u.output_tokens());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto response = tollgate::gateway::ExtractChatResponseUsage(text);
  if (response.usage) CheckUsage(*response.usage);
  FUZZ_CHECK(response.output_bytes >= 0);
  auto chunk = tollgate::gateway::InspectStreamChunk(text);
  if (chunk.usage) CheckUsage(*chunk.usage);

  json::error_code ec;
  json::value body = json::parse(text, ec);
  if (ec) return 0;
  auto info = tollgate::gateway::ParseChatRequest(body);
  if (!info.ok()) return 0;
  FUZZ_CHECK(!info->model.empty());
  for (bool stream : {false, true}) {
    std::string out = tollgate::gateway::RewriteChatRequest(body.as_object(), "upstream-model", stream);
    json::value rewritten = json::parse(out, ec);
    FUZZ_CHECK(!ec);
    FUZZ_CHECK(rewritten.at("model").as_string() == "upstream-model");
    if (stream) {
      FUZZ_CHECK(rewritten.at("stream_options").at("include_usage").as_bool());
    }
  }
  return 0;
}
