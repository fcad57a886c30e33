// The Anthropic Messages ingress on arbitrary bytes, read four ways: as a client request to
// translate, as an OpenAI chat completion to turn into an Anthropic message, as OpenAI stream
// chunks (one per line) to encode as Anthropic SSE, and as an upstream error body. Nothing may
// crash; every request the ingress accepts must pass ParseChatRequest with the same model, stream
// flag and max_tokens; rejections are 400s naming a field; every output is valid JSON with
// Anthropic's shape, usage is never negative and adds up to the normalised input; streams obey
// Anthropic's event order (message_start first, blocks strictly sequential, message_delta then
// message_stop last, or an error event that ends the stream).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "boost/json/parse.hpp"
#include "boost/json/serialize.hpp"
#include "services/gateway/messages_ingress.h"
#include "services/gateway/openai_dialect.h"
#include "tests/fuzz/fuzz_check.h"

namespace json = boost::json;
using tollgate::gateway::ChatRequestInfo;
using tollgate::gateway::MessagesStreamEncoder;

namespace {

json::value MustParse(std::string_view text) {
  json::error_code ec;
  json::value v = json::parse(text, ec);
  FUZZ_CHECK(!ec);
  return v;
}

bool IsCount(const json::value* v) { return v != nullptr && v->is_int64() && v->get_int64() >= 0; }

// Anthropic usage derived from `u`: every count present and non-negative; the three input counts
// add up to the normalised input when that is consistent.
void CheckUsage(const json::value& usage, const tollgate::v1::TokenUsage& u) {
  const json::object& o = usage.as_object();
  for (const char* k : {"input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
                        "output_tokens"}) {
    FUZZ_CHECK(IsCount(o.if_contains(k)));
  }
  const json::value& creation = o.at("cache_creation");
  FUZZ_CHECK(IsCount(creation.as_object().if_contains("ephemeral_5m_input_tokens")));
  FUZZ_CHECK(IsCount(creation.as_object().if_contains("ephemeral_1h_input_tokens")));
  FUZZ_CHECK(o.at("output_tokens").as_int64() == u.output_tokens());
  const int64_t cached_and_written =
      u.cached_input_tokens() + u.cache_write_5m_tokens() + u.cache_write_1h_tokens();
  if (u.input_tokens() >= cached_and_written) {
    FUZZ_CHECK(o.at("input_tokens").as_int64() + o.at("cache_creation_input_tokens").as_int64() +
                   o.at("cache_read_input_tokens").as_int64() ==
               u.input_tokens());
  }
}

void CheckRequest(std::string_view text) {
  json::error_code ec;
  json::value body = json::parse(text, ec);
  if (ec) return;
  absl::StatusOr<json::object> chat = tollgate::gateway::MessagesToChatRequest(body);
  if (!chat.ok()) {
    FUZZ_CHECK(chat.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(!body.is_object() || !tollgate::gateway::ParamOf(chat.status()).empty());
    return;
  }
  // What the ingress produces is valid JSON that the chat pipeline accepts as it is.
  const json::value round = MustParse(json::serialize(*chat));
  absl::StatusOr<ChatRequestInfo> info = tollgate::gateway::ParseChatRequest(round);
  FUZZ_CHECK(info.ok());
  const json::object& req = body.as_object();
  FUZZ_CHECK(info->model == std::string_view(req.at("model").as_string()));
  FUZZ_CHECK(info->max_output_tokens > 0);
  const json::value* stream = req.if_contains("stream");
  const bool want_stream = stream != nullptr && stream->is_bool() && stream->get_bool();
  FUZZ_CHECK(info->stream == want_stream);
  FUZZ_CHECK(info->client_wants_usage == want_stream);
  for (const json::value& m : round.at("messages").as_array()) {
    const std::string_view role = m.at("role").as_string();
    FUZZ_CHECK(role == "system" || role == "user" || role == "assistant" || role == "tool");
    if (role == "tool") FUZZ_CHECK(m.at("tool_call_id").is_string());
    if (const json::value* calls = m.as_object().if_contains("tool_calls")) {
      for (const json::value& c : calls->as_array()) {
        // Arguments are serialised objects.
        FUZZ_CHECK(MustParse(c.at("function").at("arguments").as_string()).is_object());
      }
    }
  }
}

void CheckResponse(std::string_view text, const tollgate::v1::TokenUsage& usage) {
  absl::StatusOr<std::string> message = tollgate::gateway::ChatResponseToMessage(text, usage);
  if (!message.ok()) {
    FUZZ_CHECK(message.status().code() == absl::StatusCode::kDataLoss);
    return;
  }
  const json::value v = MustParse(*message);
  FUZZ_CHECK(v.at("type") == "message" && v.at("role") == "assistant");
  FUZZ_CHECK(v.at("id").as_string().starts_with("msg_"));
  FUZZ_CHECK(v.at("stop_reason").is_string());
  for (const json::value& block : v.at("content").as_array()) {
    const std::string_view type = block.at("type").as_string();
    FUZZ_CHECK(type == "text" || type == "thinking" || type == "tool_use");
    if (type == "tool_use") FUZZ_CHECK(block.at("input").is_object());
  }
  CheckUsage(v.at("usage"), usage);
}

// Anthropic SSE: "event: <type>\ndata: <json>\n\n" with data.type == type, in Anthropic's order.
void CheckStream(const std::string& out, bool finished, bool errored,
                 const tollgate::v1::TokenUsage& usage) {
  std::string_view rest = out;
  std::vector<std::string> types;
  int open = -1;
  int next = 0;
  bool delta = false;
  while (!rest.empty()) {
    const size_t end = rest.find("\n\n");
    FUZZ_CHECK(end != std::string_view::npos);
    const std::string_view event = rest.substr(0, end);
    rest.remove_prefix(end + 2);
    FUZZ_CHECK(event.starts_with("event: "));
    const size_t nl = event.find('\n');
    FUZZ_CHECK(nl != std::string_view::npos);
    const std::string type(event.substr(7, nl - 7));
    FUZZ_CHECK(event.substr(nl + 1).starts_with("data: "));
    const json::value data = MustParse(event.substr(nl + 7));
    FUZZ_CHECK(data.at("type") == json::value(type));
    FUZZ_CHECK(types.empty() || types.back() != "message_stop");
    FUZZ_CHECK(types.empty() || types.back() != "error");
    if (types.empty()) FUZZ_CHECK(type == "message_start" || type == "error");
    if (type == "content_block_start") {
      FUZZ_CHECK(open == -1 && data.at("index").as_int64() == next);
      const std::string_view block = data.at("content_block").at("type").as_string();
      FUZZ_CHECK(block == "text" || block == "thinking" || block == "tool_use");
      open = next++;
    } else if (type == "content_block_delta") {
      FUZZ_CHECK(open >= 0 && data.at("index").as_int64() == open);
    } else if (type == "content_block_stop") {
      FUZZ_CHECK(open >= 0 && data.at("index").as_int64() == open);
      open = -1;
    } else if (type == "message_delta") {
      FUZZ_CHECK(open == -1 && !delta);
      FUZZ_CHECK(data.at("delta").at("stop_reason").is_string());
      CheckUsage(data.at("usage"), usage);
      delta = true;
    } else if (type == "message_stop") {
      FUZZ_CHECK(delta);
    } else if (type == "error") {
      FUZZ_CHECK(data.at("error").at("type").is_string());
    } else {
      FUZZ_CHECK(type == "message_start" || type == "ping");
    }
    types.push_back(type);
  }
  if (finished && !types.empty() && types.back() != "error") {
    FUZZ_CHECK(types.back() == "message_stop");
  }
  if (errored) FUZZ_CHECK(!types.empty() && types.back() == "error");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  // Usage from the first bytes, so inconsistent usage (cache counts above the input) is covered.
  tollgate::v1::TokenUsage usage;
  auto byte = [&](size_t i) -> int64_t { return i < size ? data[i] : 0; };
  usage.set_input_tokens(byte(0) * 40);
  usage.set_cached_input_tokens(byte(1) * 10);
  usage.set_cache_write_5m_tokens(byte(2) * 5);
  usage.set_cache_write_1h_tokens(byte(3) * 5);
  usage.set_output_tokens(byte(4));
  usage.set_reasoning_tokens(byte(5) / 2);

  CheckRequest(text);
  CheckResponse(text, usage);

  // Stream: each line is one chunk's data; sometimes the stream ends with an error.
  MessagesStreamEncoder encoder(size % 2 ? "msg_1" : "", size % 3 ? "model" : "");
  std::string out;
  std::string_view rest = text;
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    encoder.OnChunk(rest.substr(0, nl), out);
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  const bool error_end = size % 5 == 4;
  if (error_end) encoder.Error("api_error", text.substr(0, 32), out);
  encoder.Finish(usage, out);
  CheckStream(out, true, error_end, usage);
  std::string after;
  encoder.Finish(usage, after);
  encoder.OnChunk(R"({"choices":[{"index":0,"delta":{"content":"x"}}]})", after);
  FUZZ_CHECK(after.empty());

  const json::value error =
      MustParse(tollgate::gateway::MessagesErrorBody(400 + static_cast<unsigned>(byte(0)), text));
  FUZZ_CHECK(error.at("type") == "error");
  FUZZ_CHECK(error.at("error").at("message").is_string());
  return 0;
}
