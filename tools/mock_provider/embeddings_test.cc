#include "tools/mock_provider/embeddings.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "boost/json/parse.hpp"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/mock_provider/mock_handler.h"
#include "tools/mock_provider/mock_test_util.h"

namespace tollgate::tools::mock {
namespace {

namespace http = boost::beast::http;
namespace json = boost::json;
using ::testing::HasSubstr;

// --- Pure functions ----------------------------------------------------------------------------

TEST(EmbeddingsRouteTest, MatchesEveryRouteAndNothingElse) {
  auto openai = MatchEmbeddingsRoute("/v1/embeddings");
  ASSERT_TRUE(openai.has_value());
  EXPECT_EQ(openai->dialect, DialectId::kOpenAi);
  EXPECT_EQ(openai->api, EmbeddingsApi::kOpenAi);
  EXPECT_EQ(openai->chat_path, "/v1/chat/completions");

  auto deployment = MatchEmbeddingsRoute("/openai/deployments/emb-prod/embeddings");
  ASSERT_TRUE(deployment.has_value());
  EXPECT_EQ(deployment->dialect, DialectId::kAzure);
  EXPECT_EQ(deployment->model, "emb-prod");
  EXPECT_EQ(deployment->chat_path, "/openai/deployments/emb-prod/chat/completions");

  auto v1 = MatchEmbeddingsRoute("/openai/v1/embeddings");
  ASSERT_TRUE(v1.has_value());
  EXPECT_EQ(v1->dialect, DialectId::kAzure);
  EXPECT_EQ(v1->model, "");

  auto batch = MatchEmbeddingsRoute("/v1beta/models/gemini-embedding-001:batchEmbedContents");
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->dialect, DialectId::kGemini);
  EXPECT_EQ(batch->api, EmbeddingsApi::kGeminiBatch);
  EXPECT_EQ(batch->model, "gemini-embedding-001");
  EXPECT_EQ(batch->chat_path, "/v1beta/models/gemini-embedding-001:generateContent");
  auto single = MatchEmbeddingsRoute("/v1beta/models/text-embedding-004:embedContent");
  ASSERT_TRUE(single.has_value());
  EXPECT_EQ(single->api, EmbeddingsApi::kGeminiSingle);

  for (const char* path :
       {"/v1/embeddings/x", "/v1/chat/completions", "/openai/deployments//embeddings",
        "/openai/deployments/a/b/embeddings", "/v1beta/models/:embedContent",
        "/v1beta/models/m:generateContent", "/v1beta/models/a/b:embedContent"}) {
    EXPECT_FALSE(MatchEmbeddingsRoute(path).has_value()) << path;
  }
}

std::optional<ApiError> ParseOpenAi(std::string_view body, EmbeddingsRequest& out,
                                    std::string_view default_model = {}) {
  return ParseOpenAiEmbeddingsRequest(body, out, default_model);
}

TEST(OpenAiEmbeddingsRequestTest, AcceptsEveryInputShape) {
  EmbeddingsRequest r;
  ASSERT_FALSE(ParseOpenAi(R"({"model":"text-embedding-3-small","input":"hello"})", r));
  EXPECT_EQ(r.model, "text-embedding-3-small");
  ASSERT_EQ(r.inputs.size(), 1u);
  EXPECT_FALSE(r.inputs[0].is_tokens);
  EXPECT_EQ(r.inputs[0].text, "hello");
  EXPECT_EQ(r.inputs[0].dimensions, kDefaultEmbeddingDimensions);
  EXPECT_FALSE(r.base64);

  ASSERT_FALSE(ParseOpenAi(
      R"({"model":"m","input":["a","bb"],"encoding_format":"base64","dimensions":3,"user":"u"})",
      r));
  ASSERT_EQ(r.inputs.size(), 2u);
  EXPECT_EQ(r.inputs[1].text, "bb");
  EXPECT_EQ(r.inputs[1].dimensions, 3);
  EXPECT_TRUE(r.base64);

  // An array of integers is ONE input of token ids.
  ASSERT_FALSE(ParseOpenAi(R"({"model":"m","input":[1,2,3]})", r));
  ASSERT_EQ(r.inputs.size(), 1u);
  EXPECT_TRUE(r.inputs[0].is_tokens);
  EXPECT_EQ(r.inputs[0].token_ids, (std::vector<int64_t>{1, 2, 3}));

  ASSERT_FALSE(ParseOpenAi(R"({"model":"m","input":[[1,2],[3]],"encoding_format":null})", r));
  ASSERT_EQ(r.inputs.size(), 2u);
  EXPECT_EQ(r.inputs[1].token_ids, (std::vector<int64_t>{3}));

  // Azure deployments: the deployment is the default model.
  ASSERT_FALSE(ParseOpenAi(R"({"input":"x"})", r, "emb-prod"));
  EXPECT_EQ(r.model, "emb-prod");
}

struct BadRequest {
  std::string body;
  std::string param;     // expected error.param ("" = null)
  std::string code;      // expected error.code ("" = null)
  std::string contains;  // part of the message
};

TEST(OpenAiEmbeddingsRequestTest, RejectsLikeOpenAi) {
  const std::string long_text(4 * kMaxEmbeddingInputTokens + 1, 'a');
  const std::vector<BadRequest> cases = {
      {"not json", "", "", "could not parse the JSON body"},
      {"[]", "", "", "expected an object, but got an array"},
      {R"({"input":"x"})", "model", "missing_required_parameter", "must provide a model"},
      {R"({"model":"","input":"x"})", "model", "missing_required_parameter", "model"},
      {R"({"model":5,"input":"x"})", "model", "invalid_type", "expected a string"},
      {R"({"model":"m"})", "input", "missing_required_parameter", "'input'"},
      {R"({"model":"m","input":null})", "input", "missing_required_parameter", "'input'"},
      {R"({"model":"m","input":7})", "input", "invalid_type", "but got an integer instead"},
      {R"({"model":"m","input":{"a":1}})", "input", "invalid_type", "but got an object"},
      {R"({"model":"m","input":[]})", "input", "empty_array", "empty array"},
      {R"({"model":"m","input":""})", "input", "", "'$.input' is invalid"},
      {R"({"model":"m","input":["a",""]})", "input", "", "'$.input' is invalid"},
      {R"({"model":"m","input":["a",1]})", "input", "", "'$.input' is invalid"},
      {R"({"model":"m","input":[1,"a"]})", "input", "", "'$.input' is invalid"},
      {R"({"model":"m","input":[1,-2]})", "input", "", "'$.input' is invalid"},
      {R"({"model":"m","input":[1,2.5]})", "input", "", "'$.input' is invalid"},
      {R"({"model":"m","input":[[1],[]]})", "input", "", "'$.input' is invalid"},
      {R"({"model":"m","input":[true]})", "input", "", "'$.input' is invalid"},
      {R"({"model":"m","input":"x","encoding_format":"int8"})", "encoding_format", "invalid_value",
       "'float' and 'base64'"},
      {R"({"model":"m","input":"x","encoding_format":1})", "encoding_format", "invalid_type",
       "expected a string"},
      {R"({"model":"m","input":"x","dimensions":0})", "dimensions", "integer_below_min_value",
       ">= 1"},
      {R"({"model":"m","input":"x","dimensions":4000})", "dimensions", "integer_above_max_value",
       "<= 3072"},
      {R"({"model":"m","input":"x","dimensions":"8"})", "dimensions", "invalid_type",
       "expected an integer"},
      {R"({"model":"text-embedding-ada-002","input":"x","dimensions":8})", "dimensions", "",
       "does not support specifying dimensions"},
      {R"({"model":"m","input":"x","user":1})", "user", "invalid_type", "expected a string"},
      {R"({"model":"m","input":"x","stream":true})", "", "",
       "Unrecognized request argument supplied: stream"},
      {R"({"model":"m","input":")" + long_text + R"("})", "", "",
       "maximum context length is 8192 tokens, however you requested 8193 tokens"},
  };
  for (const BadRequest& c : cases) {
    EmbeddingsRequest r;
    const std::optional<ApiError> e = ParseOpenAi(c.body, r);
    ASSERT_TRUE(e.has_value()) << c.body.substr(0, 80);
    EXPECT_EQ(e->status, 400) << c.body.substr(0, 80);
    EXPECT_EQ(e->type, "invalid_request_error");
    EXPECT_EQ(e->param, c.param) << c.body.substr(0, 80);
    EXPECT_EQ(e->code, c.code) << c.body.substr(0, 80);
    EXPECT_THAT(e->message, HasSubstr(c.contains)) << c.body.substr(0, 80);
  }
  // The 2049th input is one too many.
  std::string many = R"({"model":"m","input":[)";
  for (size_t i = 0; i <= kMaxEmbeddingInputs; ++i) many += i == 0 ? "\"a\"" : ",\"a\"";
  many += "]}";
  EmbeddingsRequest r;
  const auto e = ParseOpenAi(many, r);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code, "array_above_max_length");
  EXPECT_THAT(e->message, HasSubstr("length 2049"));
}

TEST(EmbeddingsTokensTest, StringsUseTheMessageTextEstimateAndTokenArraysTheirLength) {
  EXPECT_EQ(EmbeddingTextTokens(1), 1);
  EXPECT_EQ(EmbeddingTextTokens(4), 1);
  EXPECT_EQ(EmbeddingTextTokens(5), 2);
  for (size_t bytes : {1u, 7u, 100u, 1001u}) {
    EXPECT_EQ(EmbeddingTextTokens(bytes), MessageTokens(bytes) - 4) << bytes;
  }
  EmbeddingsRequest r;
  ASSERT_FALSE(ParseOpenAi(R"({"model":"m","input":["hello","hello world!"]})", r));
  EXPECT_EQ(InputTokens(r.inputs[0]), 2);  // 5 bytes
  EXPECT_EQ(InputTokens(r.inputs[1]), 3);  // 12 bytes
  EXPECT_EQ(EmbeddingsTokens(r), 5);
  ASSERT_FALSE(ParseOpenAi(R"({"model":"m","input":[[1,2,3],[4],[5,6,7,8,9]]})", r));
  EXPECT_EQ(EmbeddingsTokens(r), 9);
  // Directive blocks are text the provider bills, like in chat prompts.
  ASSERT_FALSE(ParseOpenAi(R"({"model":"m","input":"hi [[mock: latency_ms=5]]"})", r));
  EXPECT_EQ(EmbeddingsTokens(r),
            EmbeddingTextTokens(std::string("hi [[mock: latency_ms=5]]").size()));
}

double Norm(const std::vector<int32_t>& v) {
  double n2 = 0;
  for (int32_t x : v) n2 += static_cast<double>(x) * x;
  return std::sqrt(n2) / kEmbeddingScale;
}

TEST(EmbeddingVectorTest, DeterministicNormalisedAndSized) {
  const std::vector<int32_t> a = EmbeddingVector(Fnv1a64("hello"), 8);
  EXPECT_EQ(a, EmbeddingVector(Fnv1a64("hello"), 8));
  EXPECT_NE(a, EmbeddingVector(Fnv1a64("hello!"), 8));
  ASSERT_EQ(a.size(), 8u);
  EXPECT_NEAR(Norm(a), 1.0, 1e-5);
  for (int64_t dims : {1, 2, 8, 256, 3072}) {
    const std::vector<int32_t> v = EmbeddingVector(42, dims);
    ASSERT_EQ(v.size(), static_cast<size_t>(dims));
    EXPECT_NEAR(Norm(v), 1.0, 1e-5) << dims;
    for (int32_t x : v) {
      EXPECT_GE(x, -kEmbeddingScale);
      EXPECT_LE(x, kEmbeddingScale);
    }
  }
  const int32_t one = EmbeddingVector(7, 1)[0];
  EXPECT_EQ(std::abs(one), kEmbeddingScale);
  // Pinned values: a change to the generator changes every test's vectors, so it must be
  // deliberate.
  std::string text;
  for (int32_t x : EmbeddingVector(Fnv1a64("hello"), 3)) {
    AppendEmbeddingValue(text, x);
    text += ' ';
  }
  EXPECT_EQ(text, "0.791472 0.207747 -0.574816 ");
}

TEST(EmbeddingVectorTest, SeedIgnoresDirectivesAndKeysTokenArraysByIds) {
  EmbeddingInput plain;
  plain.text = "hello";
  EmbeddingInput directed;
  directed.text = "hello [[mock: latency_ms=5]]";
  EXPECT_EQ(EmbeddingSeed(plain), EmbeddingSeed(directed));
  EmbeddingInput tokens;
  tokens.is_tokens = true;
  tokens.token_ids = {1, 23};
  EXPECT_EQ(EmbeddingSeed(tokens), Fnv1a64("1,23"));
}

TEST(EmbeddingValueTest, SixDecimalsNeverNegativeZero) {
  auto text = [](int32_t v) {
    std::string out;
    AppendEmbeddingValue(out, v);
    return out;
  };
  EXPECT_EQ(text(0), "0.000000");
  EXPECT_EQ(text(-1), "-0.000001");
  EXPECT_EQ(text(123456), "0.123456");
  EXPECT_EQ(text(-987654), "-0.987654");
  EXPECT_EQ(text(kEmbeddingScale), "1.000000");
  EXPECT_EQ(text(-kEmbeddingScale), "-1.000000");
}

std::vector<float> DecodeBase64Floats(const std::string& b64) {
  std::string bytes;
  EXPECT_TRUE(absl::Base64Unescape(b64, &bytes));
  EXPECT_EQ(bytes.size() % 4, 0u);
  std::vector<float> out;
  for (size_t i = 0; i + 4 <= bytes.size(); i += 4) {
    uint32_t bits = 0;
    for (int k = 0; k < 4; ++k) {
      bits |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + k])) << (8 * k);
    }
    float f = 0;
    std::memcpy(&f, &bits, sizeof(f));
    out.push_back(f);
  }
  return out;
}

TEST(EmbeddingBase64Test, RoundTripsToTheFloatValues) {
  const std::vector<int32_t> v = EmbeddingVector(Fnv1a64("round trip"), 16);
  const std::vector<float> decoded = DecodeBase64Floats(EmbeddingBase64(v));
  ASSERT_EQ(decoded.size(), v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_EQ(decoded[i], EmbeddingFloat(v[i])) << i;
    // The same float a client gets from the JSON number.
    std::string number;
    AppendEmbeddingValue(number, v[i]);
    EXPECT_EQ(decoded[i], static_cast<float>(std::stod(number))) << number;
  }
  // Known bytes: 1.0f is 00 00 80 3f, -0.5f is 00 00 00 bf.
  EXPECT_EQ(EmbeddingBase64({kEmbeddingScale, -kEmbeddingScale / 2}),
            absl::Base64Escape(std::string("\x00\x00\x80\x3f\x00\x00\x00\xbf", 8)));
}

TEST(OpenAiEmbeddingsRenderTest, ShapeUsageAndEncodings) {
  EmbeddingsRequest r;
  ASSERT_FALSE(ParseOpenAi(R"({"model":"text-embedding-3-small","input":["hello","there"]})", r));
  const json::value body = json::parse(RenderOpenAiEmbeddingsJson(r));
  EXPECT_EQ(body.at("object"), "list");
  EXPECT_EQ(body.at("model"), "text-embedding-3-small");
  EXPECT_EQ(body.at("usage").at("prompt_tokens"), 4);
  EXPECT_EQ(body.at("usage").at("total_tokens"), 4);
  const json::array& data = body.at("data").as_array();
  ASSERT_EQ(data.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(data[i].at("object"), "embedding");
    EXPECT_EQ(data[i].at("index"), static_cast<int64_t>(i));
    const json::array& values = data[i].at("embedding").as_array();
    const std::vector<int32_t> expected = EmbeddingVector(EmbeddingSeed(r.inputs[i]), 8);
    ASSERT_EQ(values.size(), 8u);
    for (size_t k = 0; k < 8; ++k) {
      EXPECT_EQ(static_cast<float>(values[k].to_number<double>()), EmbeddingFloat(expected[k]));
    }
  }

  ASSERT_FALSE(
      ParseOpenAi(R"({"model":"m","input":"hello","encoding_format":"base64","dimensions":5})", r));
  const json::value b64 = json::parse(RenderOpenAiEmbeddingsJson(r));
  const std::vector<float> decoded =
      DecodeBase64Floats(std::string(b64.at("data").at(0).at("embedding").as_string()));
  const std::vector<int32_t> expected = EmbeddingVector(Fnv1a64("hello"), 5);
  ASSERT_EQ(decoded.size(), 5u);
  for (size_t k = 0; k < 5; ++k) EXPECT_EQ(decoded[k], EmbeddingFloat(expected[k]));
}

TEST(GeminiEmbeddingsTest, BatchShapeDimensionsAndTokens) {
  EmbeddingsRequest r;
  ASSERT_FALSE(ParseGeminiEmbedRequest(
      R"({"requests":[
        {"model":"models/gemini-embedding-001","content":{"parts":[{"text":"hel"},{"text":"lo"}]}},
        {"model":"models/gemini-embedding-001","content":{"role":"user","parts":[{"text":"x"}]},
         "taskType":"RETRIEVAL_DOCUMENT","title":"t","outputDimensionality":4},
        {"model":"models/gemini-embedding-001","content":{"parts":[{"text":"y"}]},
         "output_dimensionality":2,"task_type":"CLUSTERING"}]})",
      "gemini-embedding-001", /*batch=*/true, r));
  ASSERT_EQ(r.inputs.size(), 3u);
  EXPECT_EQ(r.inputs[0].text, "hello");
  EXPECT_EQ(EmbeddingsTokens(r), 2 + 1 + 1);
  const json::value body = json::parse(RenderGeminiEmbeddingsJson(r, /*batch=*/true));
  ASSERT_TRUE(body.is_object());
  EXPECT_EQ(body.as_object().size(), 1u);  // no usage, as the real API
  const json::array& embeddings = body.at("embeddings").as_array();
  ASSERT_EQ(embeddings.size(), 3u);
  EXPECT_EQ(embeddings[0].at("values").as_array().size(), 8u);
  EXPECT_EQ(embeddings[1].at("values").as_array().size(), 4u);
  EXPECT_EQ(embeddings[2].at("values").as_array().size(), 2u);
  // The same text has the same vector in every dialect.
  EmbeddingsRequest o;
  ASSERT_FALSE(ParseOpenAi(R"({"model":"m","input":"hello"})", o));
  EXPECT_EQ(json::parse(RenderOpenAiEmbeddingsJson(o)).at("data").at(0).at("embedding"),
            embeddings[0].at("values"));

  ASSERT_FALSE(ParseGeminiEmbedRequest(R"({"content":{"parts":[{"text":"hello"}]}})",
                                       "text-embedding-004", /*batch=*/false, r));
  const json::value single = json::parse(RenderGeminiEmbeddingsJson(r, /*batch=*/false));
  EXPECT_EQ(single.at("embedding").at("values"), embeddings[0].at("values"));
}

// A batch of one request for models/gemini-embedding-001 with the given further fields.
std::string One(std::string_view fields) {
  return absl::StrCat(R"({"requests":[{"model":"models/gemini-embedding-001",)", Av(fields), "}]}");
}

TEST(GeminiEmbeddingsTest, RejectsLikeGoogle) {
  constexpr std::string_view kModel = "gemini-embedding-001";
  const std::vector<std::pair<std::string, std::string>> batch_cases = {
      {"{", "Invalid JSON payload"},
      {R"({"requests":[]})", "requests is not specified"},
      {R"({"inputs":[]})", "Unknown name \"inputs\""},
      {R"({"requests":[{"content":{"parts":[{"text":"a"}]}}]})",
       "requests[0].model: unexpected model name format"},
      {R"({"requests":[{"model":"gemini-embedding-001","content":{"parts":[{"text":"a"}]}}]})",
       "unexpected model name format"},
      {R"({"requests":[{"model":"models/other","content":{"parts":[{"text":"a"}]}}]})",
       "models/gemini-embedding-001"},
      {R"({"requests":[{"model":"models/gemini-embedding-001"}]})",
       "* BatchEmbedContentsRequest.requests[0].content: content is not specified"},
      {One(R"("content":{"parts":[]})"),
       "requests[0].content.parts: contents.parts must not be empty"},
      {One(R"("content":{"parts":[{"text":""}]})"),
       "requests[0].content.parts[0].data: required oneof field 'data'"},
      {One(R"("content":{"parts":[{"inlineData":{}}]})"), "only text parts"},
      {One(R"("content":{"parts":[{"text":"a"}]},"taskType":"NOPE")"),
       "Invalid value at 'requests[0].task_type'"},
      {One(R"("content":{"parts":[{"text":"a"}]},"outputDimensionality":0)"),
       "output_dimensionality must be between 1 and 3072"},
      {One(R"("content":{"parts":[{"text":"a"}]},"extra":1)"),
       "Unknown name \"extra\" at 'requests[0]'"},
  };
  for (const auto& [body, contains] : batch_cases) {
    EmbeddingsRequest r;
    const std::optional<GeminiError> e = ParseGeminiEmbedRequest(body, kModel, true, r);
    ASSERT_TRUE(e.has_value()) << body;
    EXPECT_EQ(e->status, 400);
    EXPECT_EQ(e->rpc_status, "INVALID_ARGUMENT");
    EXPECT_THAT(e->message, HasSubstr(contains)) << body;
  }
  std::string many = R"({"requests":[)";
  for (size_t i = 0; i <= kMaxGeminiEmbedRequests; ++i) {
    many += i == 0 ? "" : ",";
    many += R"({"model":"models/gemini-embedding-001","content":{"parts":[{"text":"a"}]}})";
  }
  many += "]}";
  EmbeddingsRequest r;
  const auto e = ParseGeminiEmbedRequest(many, kModel, true, r);
  ASSERT_TRUE(e.has_value());
  EXPECT_THAT(e->message, HasSubstr("at most 100 requests"));
  // embedContent: the model is optional but must match when given.
  const auto single = ParseGeminiEmbedRequest(
      R"({"model":"models/x","content":{"parts":[{"text":"a"}]}})", kModel, false, r);
  ASSERT_TRUE(single.has_value());
  EXPECT_THAT(single->message, HasSubstr("* EmbedContentRequest.model"));
}

// --- Through MockHandler -----------------------------------------------------------------------

MockHandler::Request Post(std::string body, std::string target = "/v1/embeddings") {
  return PostJson(std::move(body), std::move(target));
}

json::value Stats(const MockHandler& handler) { return json::parse(handler.stats().ToJson()); }

TEST(EmbeddingsHandlerTest, OpenAiSuccessAndStats) {
  MockHandler handler({});
  const ResponsePlan plan =
      handler.Handle(Post(R"({"model":"text-embedding-3-small","input":["hello","abcdefghi"]})"));
  EXPECT_EQ(plan.status, 200);
  EXPECT_FALSE(plan.close);
  ASSERT_EQ(plan.steps.size(), 1u);
  EXPECT_EQ(plan.steps[0].delay_ms, 0);
  auto res = ParseResponse(plan);
  EXPECT_EQ(res[http::field::content_type], "application/json");
  EXPECT_THAT(std::string(res["x-request-id"]), ::testing::StartsWith("req_"));
  const json::value body = json::parse(res.body());
  EXPECT_EQ(body.at("usage").at("prompt_tokens"), 2 + 3);
  EXPECT_EQ(body.at("data").as_array().size(), 2u);

  // A chat request next to it: prompt_tokens holds both, embedding_tokens the embeddings part.
  const std::string chat = R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]})";
  auto chat_res = ParseResponse(handler.Handle(Post(chat, "/v1/chat/completions")));
  const int64_t chat_prompt =
      json::parse(chat_res.body()).at("usage").at("prompt_tokens").to_number<int64_t>();
  const json::value stats = Stats(handler);
  EXPECT_EQ(stats.at("requests"), 2);
  EXPECT_EQ(stats.at("embedding_requests"), 1);
  EXPECT_EQ(stats.at("embedding_tokens"), 5);
  EXPECT_EQ(stats.at("prompt_tokens"), chat_prompt + 5);
  EXPECT_EQ(stats.at("by_status").at("200"), 2);
  const json::value& openai = stats.at("by_dialect").at("openai");
  EXPECT_EQ(openai.at("embedding_requests"), 1);
  EXPECT_EQ(openai.at("embedding_tokens"), 5);
  EXPECT_EQ(openai.at("completion_tokens"), stats.at("completion_tokens"));

  // /_mock/reset clears the new counters too.
  handler.Handle(MockHandler::Request(http::verb::post, "/_mock/reset", 11));
  EXPECT_EQ(Stats(handler).at("embedding_tokens"), 0);
  EXPECT_EQ(Stats(handler).at("embedding_requests"), 0);
}

TEST(EmbeddingsHandlerTest, ValidationErrorIsCountedAndAnsweredAtOnce) {
  MockHandler handler({.latency_ms = 50, .ttft_ms = 0, .inter_token_ms = 0, .require_key = ""});
  const ResponsePlan plan = handler.Handle(Post(R"({"model":"m","input":[]})"));
  EXPECT_EQ(plan.status, 400);
  EXPECT_EQ(plan.steps[0].delay_ms, 0);
  auto res = ParseResponse(plan);
  EXPECT_THAT(std::string(res["x-request-id"]), ::testing::StartsWith("req_"));
  const json::value err = json::parse(res.body()).at("error");
  EXPECT_EQ(err.at("param"), "input");
  EXPECT_EQ(err.at("code"), "empty_array");
  const json::value stats = Stats(handler);
  EXPECT_EQ(stats.at("by_dialect").at("openai").at("by_status").at("400"), 1);
  EXPECT_EQ(stats.at("embedding_requests"), 1);
  EXPECT_EQ(stats.at("prompt_tokens"), 0);
}

TEST(EmbeddingsHandlerTest, StatusAndLatencyDirectives) {
  MockHandler handler({});
  auto req = Post(R"({"model":"text-embedding-3-small","input":"x"})");
  req.set("x-mock-status", "429");
  req.set("x-mock-retry-after", "3");
  req.set("x-mock-latency-ms", "250");
  const ResponsePlan plan = handler.Handle(req);
  EXPECT_EQ(plan.status, 429);
  EXPECT_EQ(plan.steps[0].delay_ms, 250);
  auto res = ParseResponse(plan);
  EXPECT_EQ(res["retry-after"], "3");
  EXPECT_EQ(json::parse(res.body()).at("error").at("code"), "rate_limit_exceeded");

  // In-text directives work too (gateways do not forward x-mock-* headers), and leave the
  // vector alone.
  const ResponsePlan slow =
      handler.Handle(Post(R"({"model":"m","input":["hello [[mock: latency_ms=40 stall_ms=2]]"]})"));
  EXPECT_EQ(slow.status, 200);
  EXPECT_EQ(slow.steps[0].delay_ms, 42);
  const json::value body = json::parse(ParseResponse(slow).body());
  EmbeddingsRequest plain;
  ASSERT_FALSE(ParseOpenAiEmbeddingsRequest(R"({"model":"m","input":"hello"})", plain));
  EXPECT_EQ(body.at("data").at(0).at("embedding"),
            json::parse(RenderOpenAiEmbeddingsJson(plain)).at("data").at(0).at("embedding"));

  const ResponsePlan bad = handler.Handle(Post(R"({"model":"m","input":"[[mock: nope=1]]"})"));
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(json::parse(ParseResponse(bad).body()).at("error").at("code"),
            "invalid_mock_directive");

  const json::value stats = Stats(handler);
  EXPECT_EQ(stats.at("by_status").at("429"), 1);
  EXPECT_EQ(stats.at("by_status").at("200"), 1);
  EXPECT_EQ(stats.at("by_status").at("400"), 1);
  EXPECT_EQ(stats.at("embedding_tokens"), stats.at("prompt_tokens"));
}

TEST(EmbeddingsHandlerTest, FailFirstAndDisconnect) {
  MockHandler handler({});
  const std::string body = R"({"model":"m","input":"x [[mock: fail_first=1 key=emb status=503]]"})";
  EXPECT_EQ(handler.Handle(Post(body)).status, 503);
  EXPECT_EQ(handler.Handle(Post(body)).status, 200);

  const ResponsePlan cut =
      handler.Handle(Post(R"({"model":"m","input":"x [[mock: disconnect_after=0]]"})"));
  EXPECT_TRUE(cut.close);
  EXPECT_EQ(cut.bytes.find("\"usage\""), std::string::npos);
  const json::value stats = Stats(handler);
  EXPECT_EQ(stats.at("disconnects"), 1);
  EXPECT_EQ(stats.at("embedding_requests"), 3);
  // Only the one complete success is billed.
  EXPECT_EQ(stats.at("embedding_tokens"),
            EmbeddingTextTokens(std::string("x [[mock: fail_first=1 key=emb status=503]]").size()));
}

TEST(EmbeddingsHandlerTest, OpenAiAndAzureAccessRulesAreTheChatRoutes) {
  MockHandler handler(
      {.latency_ms = 0, .ttft_ms = 0, .inter_token_ms = 0, .require_key = "sk-secret-123456"});
  const std::string body = R"({"model":"text-embedding-3-small","input":"x"})";
  auto no_key = ParseResponse(handler.Handle(Post(body)));
  EXPECT_EQ(no_key.result_int(), 401);
  EXPECT_THAT(no_key.body(), HasSubstr("You didn't provide an API key"));
  auto ok = Post(body);
  ok.set(http::field::authorization, "Bearer sk-secret-123456");
  EXPECT_EQ(handler.Handle(ok).status, 200);

  const std::string deployment = "/openai/deployments/emb-prod/embeddings";
  auto missing_version = Post(R"({"input":"x"})", deployment);
  missing_version.set("api-key", "sk-secret-123456");
  auto r404 = ParseResponse(handler.Handle(missing_version));
  EXPECT_EQ(r404.result_int(), 404);
  EXPECT_THAT(r404.body(), HasSubstr("Resource not found"));

  auto wrong_key = Post(R"({"input":"x"})", deployment + "?api-version=2024-10-21");
  wrong_key.set("api-key", "nope");
  auto r401 = ParseResponse(handler.Handle(wrong_key));
  EXPECT_EQ(r401.result_int(), 401);
  EXPECT_THAT(r401.body(), HasSubstr("\"code\":\"401\""));

  auto azure = Post(R"({"input":"x"})", deployment + "?api-version=2024-10-21");
  azure.set("api-key", "sk-secret-123456");
  auto res = ParseResponse(handler.Handle(azure));
  ASSERT_EQ(res.result_int(), 200) << res.body();
  EXPECT_FALSE(res["apim-request-id"].empty());
  EXPECT_EQ(json::parse(res.body()).at("model"), "emb-prod");

  // The v1 path needs a model, like its chat route.
  auto v1 = Post(R"({"input":"x"})", "/openai/v1/embeddings");
  v1.set("api-key", "sk-secret-123456");
  auto v1_res = ParseResponse(handler.Handle(v1));
  EXPECT_EQ(v1_res.result_int(), 400);
  EXPECT_EQ(json::parse(v1_res.body()).at("error").at("param"), "model");
  EXPECT_FALSE(v1_res["apim-request-id"].empty());

  const json::value stats = Stats(handler);
  EXPECT_EQ(stats.at("by_dialect").at("openai").at("embedding_requests"), 2);
  EXPECT_EQ(stats.at("by_dialect").at("azure").at("embedding_requests"), 4);
  EXPECT_EQ(stats.at("by_dialect").at("azure").at("by_status").at("200"), 1);
}

TEST(EmbeddingsHandlerTest, GeminiBatchKeyAndForcedError) {
  MockHandler handler(
      {.latency_ms = 0, .ttft_ms = 0, .inter_token_ms = 0, .require_key = "AIza-secret"});
  const std::string target = "/v1beta/models/gemini-embedding-001:batchEmbedContents";
  const std::string body =
      R"({"requests":[
        {"model":"models/gemini-embedding-001","content":{"parts":[{"text":"hello"}]}},
        {"model":"models/gemini-embedding-001","content":{"parts":[{"text":"abc"}]},
         "outputDimensionality":3}]})";
  auto denied = ParseResponse(handler.Handle(Post(body, target)));
  EXPECT_EQ(denied.result_int(), 403);
  EXPECT_THAT(denied.body(), HasSubstr("PERMISSION_DENIED"));

  auto res = ParseResponse(handler.Handle(Post(body, target + "?key=AIza-secret")));
  ASSERT_EQ(res.result_int(), 200) << res.body();
  EXPECT_EQ(res[http::field::content_type], "application/json; charset=UTF-8");
  const json::value out = json::parse(res.body());
  ASSERT_EQ(out.at("embeddings").as_array().size(), 2u);
  EXPECT_EQ(out.at("embeddings").at(1).at("values").as_array().size(), 3u);
  EXPECT_FALSE(out.as_object().contains("usageMetadata"));

  auto forced = Post(body, target);
  forced.set("x-goog-api-key", "AIza-secret");
  forced.set("x-mock-status", "503");
  auto err = ParseResponse(handler.Handle(forced));
  EXPECT_EQ(err.result_int(), 503);
  EXPECT_EQ(json::parse(err.body()).at("error").at("status"), "UNAVAILABLE");

  auto invalid = Post(R"({"requests":[]})", target);
  invalid.set("x-goog-api-key", "AIza-secret");
  auto bad = ParseResponse(handler.Handle(invalid));
  EXPECT_EQ(bad.result_int(), 400);
  EXPECT_EQ(bad[http::field::content_type], "application/json; charset=UTF-8");
  EXPECT_EQ(json::parse(bad.body()).at("error").at("status"), "INVALID_ARGUMENT");

  auto single = Post(R"({"content":{"parts":[{"text":"hello"}]}})",
                     "/v1beta/models/gemini-embedding-001:embedContent");
  single.set("x-goog-api-key", "AIza-secret");
  auto one = ParseResponse(handler.Handle(single));
  ASSERT_EQ(one.result_int(), 200) << one.body();
  EXPECT_EQ(json::parse(one.body()).at("embedding").at("values"),
            out.at("embeddings").at(0).at("values"));

  const json::value g = Stats(handler).at("by_dialect").at("gemini");
  EXPECT_EQ(g.at("requests"), 5);
  EXPECT_EQ(g.at("embedding_requests"), 5);
  EXPECT_EQ(g.at("by_status").at("200"), 2);
  EXPECT_EQ(g.at("by_status").at("403"), 1);
  EXPECT_EQ(g.at("by_status").at("503"), 1);
  EXPECT_EQ(g.at("by_status").at("400"), 1);
  // hello (2) + abc (1) in the batch, hello (2) alone.
  EXPECT_EQ(g.at("embedding_tokens"), 5);
  EXPECT_EQ(g.at("prompt_tokens"), 5);
}

}  // namespace
}  // namespace tollgate::tools::mock
