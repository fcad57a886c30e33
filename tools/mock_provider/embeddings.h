#pragma once
// Embeddings in the mock provider: request validation, deterministic vectors, token counts and
// the response bodies of OpenAI's /v1/embeddings (PROVIDERS.md §1.6, also served on Azure's
// paths) and Gemini's embedContent / batchEmbedContents. MockHandler routes the requests and
// applies directives, delays and counters (mock_handler.h). Everything here is pure and
// thread-safe.
//
// Routes (POST; access rules — keys, Azure api-version — exactly those of the dialect's chat
// route, see MockHandler):
//   /v1/embeddings                                             OpenAI
//   /openai/deployments/{d}/embeddings?api-version=...        Azure (model defaults to {d})
//   /openai/v1/embeddings                                      Azure (v1; model required)
//   /v1beta/models/{model}:embedContent                       Gemini, one content
//   /v1beta/models/{model}:batchEmbedContents                 Gemini, 1..100 requests
//
// OpenAI request: {model, input, encoding_format?, dimensions?, user?}; unknown fields are
// rejected like the chat route ("Unrecognized request argument supplied: X"). `input` is a
// non-empty string, or a non-empty array (at most 2048) of non-empty strings, of token ids
// (integers >= 0), or of non-empty token-id arrays. Errors are 400s in OpenAI's shape; an error
// about one parameter names it in `param` (OpenAI itself sends param null with its
// "'$.input' is invalid" message, which the mock uses for empty strings and mixed or malformed
// arrays); unknown fields, bad JSON and the context-length error have param null. `encoding_format`
// "float" (default) or "base64"; `dimensions` 1..3072 (rejected for text-embedding-ada-002, which
// cannot shorten its vectors); an input over 8192 tokens gets OpenAI's context-length error.
// Response: {"object":"list","data":[{"object":"embedding","index":i,"embedding":[...]}],
// "model":<request model>,"usage":{"prompt_tokens":N,"total_tokens":N}}; with base64 each
// "embedding" is the base64 of the vector's little-endian float32 values, as OpenAI sends it.
//
// Gemini request (camelCase or snake_case): embedContent {model?, content, taskType?, title?,
// outputDimensionality?}; batchEmbedContents {requests:[{model:"models/<m>", content, ...}]}
// where every request names the URL's model. content = {role?, parts:[{text}]} (text parts
// only). Errors are google.rpc.Status 400s; messages follow Google's field-path style (the exact
// wording of the model-mismatch and text-only errors is unverified). Response: embedContent
// {"embedding":{"values":[...]}}, batch {"embeddings":[{"values":[...]},...]}; no usage, as the
// real API.
//
// Determinism (what tests may rely on):
//   * Tokens per input: a string costs EmbeddingTextTokens(its UTF-8 bytes) = ceil(bytes / 4),
//     i.e. mock_logic.h MessageTokens without its 4 tokens of message framing (directive blocks
//     count, like in chat prompts); a token-id array costs its length; a Gemini request costs
//     EmbeddingTextTokens of its parts' text concatenated. Usage is the sum over inputs.
//   * Vectors: `dimensions` (default 8) values seeded by EmbeddingSeed: Fnv1a64 of the text with
//     its [[mock: ...]] blocks removed (mock_logic.h PromptText), or of the token ids written as
//     decimal numbers joined by ','. The raw values are L2-normalised and rounded to 6 decimals:
//     every value is a multiple of 1e-6 in [-1, 1] and the norm is 1 within 1e-5.
//   * Directives ([[mock: ...]] in any text input, applied in input order after the x-mock-*
//     headers) work as on the chat routes; see MockHandler for the ones that apply.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "tools/mock_provider/dialect.h"
#include "tools/mock_provider/gemini_dialect.h"
#include "tools/mock_provider/mock_logic.h"
#include "tools/mock_provider/openai_dialect.h"

namespace tollgate::tools::mock {

inline constexpr int64_t kDefaultEmbeddingDimensions = 8;
inline constexpr int64_t kMaxEmbeddingDimensions = 3072;
inline constexpr size_t kMaxEmbeddingInputs = 2048;        // OpenAI, per request
inline constexpr int64_t kMaxEmbeddingInputTokens = 8192;  // OpenAI, per input
inline constexpr size_t kMaxGeminiEmbedRequests = 100;     // Gemini, per batch
inline constexpr int32_t kEmbeddingScale = 1'000'000;      // values are integers / 1e6

// ---------------------------------------------------------------------------------------------
// Routes.

enum class EmbeddingsApi { kOpenAi, kGeminiSingle, kGeminiBatch };

struct EmbeddingsRoute {
  DialectId dialect = DialectId::kOpenAi;
  EmbeddingsApi api = EmbeddingsApi::kOpenAi;
  // Gemini: the model of the URL. Azure deployment path: the deployment (the default model).
  std::string model;
  // The dialect's chat path with the same access rules (used to run the dialect's own checks).
  std::string chat_path;
};

// The embeddings route of `path` (without query), or nullopt when it is not one.
std::optional<EmbeddingsRoute> MatchEmbeddingsRoute(std::string_view path);

// ---------------------------------------------------------------------------------------------
// Requests.

struct EmbeddingInput {
  bool is_tokens = false;
  std::string text;                // string input, raw (directive blocks included)
  std::vector<int64_t> token_ids;  // token-id input
  int64_t dimensions = kDefaultEmbeddingDimensions;
};

struct EmbeddingsRequest {
  std::string model;
  std::vector<EmbeddingInput> inputs;
  bool base64 = false;  // OpenAI encoding_format "base64"
};

// Validates an OpenAI embeddings body and fills `out`. `default_model` non-empty (Azure
// deployments): `model` may be omitted and then takes its value. Returns the 400 on failure.
std::optional<ApiError> ParseOpenAiEmbeddingsRequest(std::string_view body, EmbeddingsRequest& out,
                                                     std::string_view default_model = {});

// Validates a Gemini embedContent (`batch` false) or batchEmbedContents body for `model` (from
// the URL) and fills `out`. Returns the 400 on failure.
std::optional<GeminiError> ParseGeminiEmbedRequest(std::string_view body, std::string_view model,
                                                   bool batch, EmbeddingsRequest& out);

// Applies the [[mock: ...]] blocks of every text input, in input order.
absl::Status ParseEmbeddingDirectives(const EmbeddingsRequest& request, Directives& out);

// ---------------------------------------------------------------------------------------------
// Tokens and vectors.

// ceil(bytes / 4): MessageTokens(bytes) - MessageTokens(0).
int64_t EmbeddingTextTokens(size_t text_bytes);
int64_t InputTokens(const EmbeddingInput& input);
// The request's usage: the sum of InputTokens.
int64_t EmbeddingsTokens(const EmbeddingsRequest& request);

uint64_t EmbeddingSeed(const EmbeddingInput& input);

// `dimensions` (>= 1) values in units of 1/kEmbeddingScale, L2-normalised before rounding.
std::vector<int32_t> EmbeddingVector(uint64_t seed, int64_t dimensions);

// One value as a JSON number with 6 decimals ("-0.123456", "1.000000").
void AppendEmbeddingValue(std::string& out, int32_t value);
// The value as the float32 a client reads (from the JSON number or the base64 bytes).
float EmbeddingFloat(int32_t value);
// The base64 of the little-endian float32 values, as OpenAI's encoding_format "base64".
std::string EmbeddingBase64(const std::vector<int32_t>& vector);

// ---------------------------------------------------------------------------------------------
// Responses.

std::string RenderOpenAiEmbeddingsJson(const EmbeddingsRequest& request);
// {"embedding":{...}} (embedContent) or {"embeddings":[...]} (`batch`).
std::string RenderGeminiEmbeddingsJson(const EmbeddingsRequest& request, bool batch);

}  // namespace tollgate::tools::mock
