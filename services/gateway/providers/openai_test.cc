// The openai and azure_openai adapters: URLs, authentication, the OpenAI-compatible quirks
// (PROVIDERS.md §4), extension stripping, and pass-through of responses, streams and errors.

#include "services/gateway/providers/openai.h"

#include <string>

#include "boost/json/parse.hpp"
#include "boost/json/serialize.hpp"
#include "gtest/gtest.h"
#include "services/gateway/openai_dialect.h"
#include "services/gateway/providers/azure_openai.h"
#include "services/gateway/sse_parser.h"

namespace tollgate::gateway {
namespace {

namespace json = boost::json;

v1::Deployment MakeDeployment(std::string provider, std::string model,
                              std::initializer_list<std::pair<std::string, std::string>> options) {
  v1::Deployment d;
  d.set_id(provider + "-" + model);
  d.set_provider(std::move(provider));
  d.set_upstream_model(std::move(model));
  for (const auto& [key, value] : options) (*d.mutable_options())[key] = value;
  return d;
}

ProviderCall Call(const v1::Deployment& d, bool stream = false, std::string_view key = "sk-1") {
  ProviderCall call;
  call.deployment = &d;
  call.base_path = "/v1";
  call.api_key = key;
  call.stream = stream;
  call.request_id = "r1";
  return call;
}

json::object Request(std::string_view text) { return json::parse(text).as_object(); }

std::string Header(const ProviderRequest& r, std::string_view name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "<absent>";
}

TEST(OpenAiProviderTest, RewritesModelForcesUsageAndAuthenticates) {
  const v1::Deployment d = MakeDeployment("openai", "gpt-4o-mini-2024-07-18", {});
  json::object request = Request(R"({"model":"mini","messages":[{"role":"user","content":"hi"}]})");
  auto out = OpenAiProvider().BuildChatRequest(request, Call(d, /*stream=*/true));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->target, "/v1/chat/completions");
  EXPECT_EQ(Header(*out, "authorization"), "Bearer sk-1");
  const json::value body = json::parse(out->body);
  EXPECT_EQ(body.at("model"), "gpt-4o-mini-2024-07-18");
  EXPECT_EQ(body.at("stream_options").at("include_usage"), true);
}

TEST(OpenAiProviderTest, KeylessUpstreamGetsNoAuthorization) {
  const v1::Deployment d = MakeDeployment("ollama", "llama3", {{"compat", "ollama"}});
  json::object request = Request(R"({"model":"m","messages":[{"role":"user","content":"hi"}]})");
  auto out = OpenAiProvider().BuildChatRequest(request, Call(d, false, ""));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(Header(*out, "authorization"), "<absent>");
}

TEST(OpenAiProviderTest, StripsTollgateExtensionsWithoutTouchingTheCallersRequest) {
  const v1::Deployment d = MakeDeployment("openai", "gpt-4o", {});
  json::object request = Request(R"({"model":"m","messages":[
      {"role":"system","content":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}]},
      {"role":"assistant","content":"a","reasoning_content":"r","reasoning_signature":"sig"},
      {"role":"user","content":"u","cache_control":{"type":"ephemeral","ttl":"1h"}}],
      "tools":[{"type":"function","function":{"name":"f"},"cache_control":{"type":"ephemeral"}}]})");
  const std::string before = json::serialize(request);
  auto out = OpenAiProvider().BuildChatRequest(request, Call(d));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->body.find("cache_control"), std::string::npos) << out->body;
  EXPECT_EQ(out->body.find("reasoning_"), std::string::npos) << out->body;
  // An Anthropic fallback candidate still sees the breakpoints.
  EXPECT_EQ(json::serialize(request), before);
}

TEST(OpenAiProviderTest, ThinkingAndTopKAreRejectedNamingTheParameter) {
  const v1::Deployment d = MakeDeployment("openai", "gpt-4o", {});
  json::object thinking = Request(
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"thinking":{"type":"enabled"}})");
  auto out = OpenAiProvider().BuildChatRequest(thinking, Call(d));
  ASSERT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParamOf(out.status()), "thinking");
  EXPECT_NE(std::string(out.status().message()).find("openai"), std::string::npos);

  json::object top_k =
      Request(R"({"model":"m","messages":[{"role":"user","content":"x"}],"top_k":5})");
  EXPECT_EQ(ParamOf(OpenAiProvider().BuildChatRequest(top_k, Call(d)).status()), "top_k");
  const v1::Deployment vllm = MakeDeployment("vllm", "qwen", {{"compat", "vllm"}});
  auto accepted = OpenAiProvider().BuildChatRequest(top_k, Call(vllm));
  ASSERT_TRUE(accepted.ok());
  EXPECT_EQ(json::parse(accepted->body).at("top_k"), 5);
}

TEST(OpenAiProviderTest, MistralQuirks) {
  const v1::Deployment d =
      MakeDeployment("mistral", "mistral-large-latest", {{"compat", "mistral"}});
  json::object request =
      Request(R"({"model":"m","messages":[{"role":"user","content":"x","name":"bob"}],
      "max_completion_tokens":100,"tool_choice":"required","seed":7,"temperature":null,
      "tools":[{"type":"function","function":{"name":"f"}}]})");
  auto out = OpenAiProvider().BuildChatRequest(request, Call(d, /*stream=*/true));
  ASSERT_TRUE(out.ok()) << out.status();
  const json::object body = json::parse(out->body).as_object();
  EXPECT_EQ(body.at("max_tokens"), 100);
  EXPECT_FALSE(body.contains("max_completion_tokens"));
  EXPECT_EQ(body.at("tool_choice"), "any");
  EXPECT_EQ(body.at("random_seed"), 7);
  EXPECT_FALSE(body.contains("seed"));
  EXPECT_FALSE(body.contains("temperature"));
  EXPECT_FALSE(body.contains("stream_options"));
  EXPECT_FALSE(body.at("messages").at(0).as_object().contains("name"));
  EXPECT_EQ(body.at("model"), "mistral-large-latest");
}

TEST(OpenAiProviderTest, GroqRejectsWhatGroqRejects) {
  const v1::Deployment d = MakeDeployment("groq", "llama-3.3-70b-versatile", {{"compat", "groq"}});
  for (const char* extra : {R"("logprobs":true)", R"("logit_bias":{"1":2})", R"("n":2)"}) {
    json::object request = Request(
        std::string(R"({"model":"m","messages":[{"role":"user","content":"x"}],)") + extra + "}");
    auto out = OpenAiProvider().BuildChatRequest(request, Call(d));
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << extra;
  }
  json::object ok = Request(
      R"({"model":"m","messages":[{"role":"user","content":"x","name":"n"}],"logprobs":false})");
  auto out = OpenAiProvider().BuildChatRequest(ok, Call(d));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->body.find("\"name\""), std::string::npos);
}

TEST(OpenAiProviderTest, UnknownCompatIsAConfigurationError) {
  const v1::Deployment d = MakeDeployment("x", "m", {{"compat", "nonsense"}});
  json::object request = Request(R"({"model":"m","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(OpenAiProvider().BuildChatRequest(request, Call(d)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(OpenAiProviderTest, ResponseUsageIncludingDeepSeekAndGroqShapes) {
  const v1::Deployment d = MakeDeployment("deepseek", "deepseek-chat", {{"compat", "deepseek"}});
  const std::string body =
      R"({"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"hello"}}],
          "usage":{"prompt_tokens":100,"completion_tokens":7,"prompt_cache_hit_tokens":60,
                   "prompt_cache_miss_tokens":40}})";
  auto out = OpenAiProvider().TranslateChatResponse(body, Call(d));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->body, body);  // forwarded byte for byte
  ASSERT_TRUE(out->usage.has_value());
  EXPECT_EQ(out->usage->input_tokens(), 100);
  EXPECT_EQ(out->usage->cached_input_tokens(), 60);
  EXPECT_EQ(out->usage->output_tokens(), 7);
}

TEST(OpenAiProviderTest, StreamForwardsBytesAndHidesTheUsageChunkUnlessAsked) {
  const v1::Deployment d = MakeDeployment("groq", "llama", {{"compat", "groq"}});
  const std::string upstream =
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n"
      ": keep-alive\n\n"
      "data: {\"choices\":[],\"x_groq\":{\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}}"
      "\n\n"
      "data: [DONE]\n\n";
  for (bool wants_usage : {false, true}) {
    ProviderCall call = Call(d, true);
    call.client_wants_usage = wants_usage;
    auto translator = OpenAiProvider().NewStreamTranslator(call);
    SseParser parser(1 << 20);
    std::string out;
    bool saw_output = false;
    ASSERT_TRUE(parser
                    .Feed(upstream,
                          [&](const SseEvent& e) {
                            translator->OnEvent(e, out);
                            saw_output = saw_output || translator->progress().has_output;
                          })
                    .ok());
    EXPECT_TRUE(saw_output);
    EXPECT_TRUE(translator->progress().done);
    ASSERT_TRUE(translator->progress().usage.has_value());
    EXPECT_EQ(translator->progress().usage->input_tokens(), 5);
    EXPECT_EQ(translator->progress().output_bytes, 2);
    EXPECT_EQ(out.find("x_groq") != std::string::npos, wants_usage);
    EXPECT_NE(out.find(": keep-alive\n\n"), std::string::npos);
    EXPECT_NE(out.find("data: [DONE]\n\n"), std::string::npos);
  }
}

TEST(OpenAiProviderTest, ContextLengthErrors) {
  const v1::Deployment d = MakeDeployment("openai", "gpt-4o", {});
  const std::string body =
      R"({"error":{"message":"too long","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}})";
  ProviderError error = OpenAiProvider().TranslateError(400, body);
  EXPECT_TRUE(error.context_length_exceeded);
  EXPECT_EQ(error.body, body);
  EXPECT_FALSE(OpenAiProvider().TranslateError(401, R"({"error":{}})").context_length_exceeded);
}

TEST(OpenAiProviderTest, Embeddings) {
  const v1::Deployment d = MakeDeployment("openai", "text-embedding-3-small", {});
  json::object request = Request(R"({"model":"embed","input":["a","b"]})");
  auto out = OpenAiProvider().BuildEmbeddingsRequest(request, Call(d));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->target, "/v1/embeddings");
  EXPECT_EQ(json::parse(out->body).at("model"), "text-embedding-3-small");
  auto response = OpenAiProvider().TranslateEmbeddingsResponse(
      R"({"object":"list","data":[],"usage":{"prompt_tokens":8,"total_tokens":8}})", Call(d));
  ASSERT_TRUE(response.ok());
  ASSERT_TRUE(response->usage.has_value());
  EXPECT_EQ(response->usage->input_tokens(), 8);
  EXPECT_FALSE(OpenAiProvider().TranslateEmbeddingsResponse("nope", Call(d)).ok());
}

TEST(AzureOpenAiProviderTest, DeploymentsUrlStyleWithApiVersionAndApiKey) {
  const v1::Deployment d = MakeDeployment("azure", "gpt4o-prod", {{"api_version", "2024-10-21"}});
  ProviderCall call = Call(d);
  call.base_path = "";
  json::object request = Request(R"({"model":"m","messages":[{"role":"user","content":"x"}]})");
  auto out = AzureOpenAiProvider().BuildChatRequest(request, call);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->target, "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21");
  EXPECT_EQ(Header(*out, "api-key"), "sk-1");
  EXPECT_EQ(Header(*out, "authorization"), "<absent>");
  EXPECT_EQ(AzureOpenAiProvider().dialect(), "azure_openai");
}

TEST(AzureOpenAiProviderTest, V1UrlStyleAndConfigurationErrors) {
  const v1::Deployment v1 = MakeDeployment("azure", "gpt4o", {{"url_style", "v1"}});
  ProviderCall call = Call(v1);
  call.base_path = "";
  json::object request = Request(R"({"model":"m","messages":[{"role":"user","content":"x"}]})");
  auto out = AzureOpenAiProvider().BuildChatRequest(request, call);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->target, "/openai/v1/chat/completions");
  EXPECT_EQ(json::parse(out->body).at("model"), "gpt4o");

  const v1::Deployment missing = MakeDeployment("azure", "gpt4o", {});
  EXPECT_EQ(AzureOpenAiProvider().BuildChatRequest(request, Call(missing)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(ProviderRegistryTest, FindsEveryCatalogDialect) {
  for (std::string_view dialect : {"openai", "azure_openai", "anthropic", "gemini"}) {
    const Provider* p = FindProvider(dialect);
    ASSERT_NE(p, nullptr) << dialect;
    EXPECT_EQ(p->dialect(), dialect);
  }
  EXPECT_EQ(FindProvider("")->dialect(), "openai");
  EXPECT_EQ(FindProvider("bedrock"), nullptr);
}

}  // namespace
}  // namespace tollgate::gateway
