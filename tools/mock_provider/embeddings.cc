#include "tools/mock_provider/embeddings.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "boost/json/object.hpp"
#include "boost/json/string.hpp"

namespace tollgate::tools::mock {
using std::string_view_literals::operator""sv;
namespace json = boost::json;
namespace {

// --- OpenAI ----------------------------------------------------------------------------------

// OpenAI's answer to an `input` whose shape its schema rejects (empty strings, mixed arrays).
ApiError InvalidInput() {
  return InvalidRequest(
      "'$.input' is invalid. Please check the API reference: "
      "https://platform.openai.com/docs/api-reference.",
      "input");
}

constexpr std::array<std::string_view, 5> kOpenAiParams = {"dimensions", "encoding_format", "input",
                                                           "model", "user"};

EmbeddingInput TextInput(const json::string& text) {
  EmbeddingInput input;
  input.text = std::string(ToStd(text));
  return input;
}

std::optional<ApiError> ParseTokenIds(const json::array& ids, std::vector<int64_t>& out) {
  out.reserve(ids.size());
  for (const json::value& id : ids) {
    const std::optional<int64_t> n = AsInteger(id);
    if (!n.has_value() || *n < 0) return InvalidInput();
    out.push_back(*n);
  }
  return std::nullopt;
}

// Fills `inputs` from a validated-present `input`.
std::optional<ApiError> ParseOpenAiInput(const json::value& input,
                                         std::vector<EmbeddingInput>& inputs) {
  constexpr std::string_view kExpected =
      "one of a string, an array of strings, an array of integers, or an array of arrays of "
      "integers";
  if (input.is_string()) {
    if (input.get_string().empty()) return InvalidInput();
    inputs.push_back(TextInput(input.get_string()));
    return std::nullopt;
  }
  if (!input.is_array()) return InvalidType("input", kExpected, input);
  const json::array& list = input.get_array();
  if (list.empty()) return EmptyArray("input");
  if (list.size() > kMaxEmbeddingInputs) {
    return InvalidRequest(absl::StrCat("Invalid 'input': array too long. Expected an array with "
                                       "maximum length ",
                                       kMaxEmbeddingInputs, ", but got an array with length ",
                                       list.size(), " instead."),
                          "input", "array_above_max_length");
  }
  if (AsInteger(list[0]).has_value()) {
    // One input of token ids.
    EmbeddingInput one;
    one.is_tokens = true;
    if (auto e = ParseTokenIds(list, one.token_ids)) return e;
    inputs.push_back(std::move(one));
    return std::nullopt;
  }
  const bool strings = list[0].is_string();
  for (const json::value& item : list) {
    if (strings) {
      if (!item.is_string() || item.get_string().empty()) return InvalidInput();
      inputs.push_back(TextInput(item.get_string()));
      continue;
    }
    if (!item.is_array() || item.get_array().empty()) return InvalidInput();
    EmbeddingInput one;
    one.is_tokens = true;
    if (auto e = ParseTokenIds(item.get_array(), one.token_ids)) return e;
    inputs.push_back(std::move(one));
  }
  return std::nullopt;
}

// --- Gemini ----------------------------------------------------------------------------------

constexpr std::array<std::string_view, 9> kTaskTypes = {
    "TASK_TYPE_UNSPECIFIED", "RETRIEVAL_QUERY",   "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",   "CLASSIFICATION",    "CLUSTERING",
    "QUESTION_ANSWERING",    "FACT_VERIFICATION", "CODE_RETRIEVAL_QUERY"};
// The fields of an EmbedContentRequest and of a BatchEmbedContentsRequest.
constexpr std::array<std::string_view, 5> kEmbedContentFields = {"model", "content", "task_type",
                                                                 "title", "output_dimensionality"};
constexpr std::array<std::string_view, 1> kBatchEmbedFields = {"requests"};

// `at` joined to a field: "requests[0]" + "content" -> "requests[0].content"; "" + "content" ->
// "content".
std::string Path(std::string_view at, std::string_view field) {
  return at.empty() ? std::string(field) : absl::StrCat(Av(at), ".", Av(field));
}

// Validates one EmbedContentRequest at `at` ("" for embedContent's body, "requests[i]" in a
// batch) and appends its input. `message` is the request type in Google's messages.
std::optional<GeminiError> ParseEmbedContent(const json::value& v, std::string_view url_model,
                                             bool batch, const std::string& at,
                                             std::vector<EmbeddingInput>& inputs) {
  const std::string_view type = batch ? "BatchEmbedContentsRequest" : "EmbedContentRequest";
  const json::object* req = v.if_object();
  if (req == nullptr) return GeminiExpectedObject(at);
  if (auto e = CheckGeminiFields(*req, kEmbedContentFields, at)) return e;

  const json::value* model = GeminiField(*req, "model");
  if (batch || model != nullptr) {
    const std::string model_path = Path(at, "model");
    const std::string_view name =
        model != nullptr && model->is_string() ? ToStd(model->get_string()) : "";
    if (!name.starts_with("models/") || name.size() == 7) {
      return GeminiInvalid(
          absl::StrCat("* ", Av(type), ".", model_path, ": unexpected model name format\n"));
    }
    if (name.substr(7) != url_model) {
      return GeminiInvalid(absl::StrCat("* ", Av(type), ".", model_path,
                                        ": model must be the model of the request URL (models/",
                                        Av(url_model), ")\n"));
    }
  }

  const std::string content_path = Path(at, "content");
  const json::value* content = GeminiField(*req, "content");
  if (content == nullptr) {
    return GeminiInvalid(
        absl::StrCat("* ", Av(type), ".", content_path, ": content is not specified\n"));
  }
  if (!content->is_object()) return GeminiExpectedObject(content_path);
  if (auto e = CheckGeminiFields(content->get_object(), kGeminiContentFields, content_path)) {
    return e;
  }
  const json::value* parts = content->get_object().if_contains("parts");
  if (parts == nullptr || !parts->is_array() || parts->get_array().empty()) {
    return GeminiInvalid(absl::StrCat("* ", Av(type), ".", content_path,
                                      ".parts: contents.parts must not be empty.\n"));
  }
  EmbeddingInput input;
  const json::array& list = parts->get_array();
  for (size_t j = 0; j < list.size(); ++j) {
    const std::string part_path = absl::StrCat(content_path, ".parts[", j, "]");
    const json::object* part = list[j].if_object();
    // An empty text is proto3's default: the part's data oneof is then unset.
    const json::value* text = part == nullptr ? nullptr : part->if_contains("text");
    const bool has_text = text != nullptr && text->is_string() && !text->get_string().empty();
    const bool has_other =
        part != nullptr && std::any_of(part->begin(), part->end(), [](const auto& kv) {
          const std::string key = GeminiSnakeCase(ToStd(kv.key()));
          return key != "text" && OneOf(kGeminiPartDataFields, key);
        });
    if (!has_text && !has_other) {
      return GeminiInvalid(
          absl::StrCat("* ", Av(type), ".", part_path,
                       ".data: required oneof field 'data' must have one initialized "
                       "field\n"));
    }
    if (has_other) {
      return GeminiInvalid(absl::StrCat("* ", Av(type), ".", part_path,
                                        ": only text parts can be embedded by this model\n"));
    }
    input.text += ToStd(text->get_string());
  }

  if (const json::value* task = GeminiField(*req, "task_type"); task != nullptr) {
    const std::string_view t = task->is_string() ? ToStd(task->get_string()) : "";
    if (!OneOf(kTaskTypes, t)) {
      return GeminiInvalid(absl::StrCat(
          "Invalid value at '", Path(at, "task_type"),
          "' (type.googleapis.com/google.ai.generativelanguage.v1beta.TaskType), \"", Av(t), "\""));
    }
  }
  if (const json::value* title = GeminiField(*req, "title");
      title != nullptr && !title->is_string()) {
    return GeminiInvalid(absl::StrCat("Invalid value at '", Path(at, "title"), "' (TYPE_STRING)"));
  }
  if (const json::value* dims = GeminiField(*req, "output_dimensionality"); dims != nullptr) {
    const std::string dims_path = Path(at, "output_dimensionality");
    const std::optional<int64_t> n = AsInteger(*dims);
    if (!n.has_value()) {
      return GeminiInvalid(absl::StrCat("Invalid value at '", dims_path, "' (TYPE_INT32)"));
    }
    if (*n < 1 || *n > kMaxEmbeddingDimensions) {
      return GeminiInvalid(absl::StrCat("* ", Av(type), ".", dims_path,
                                        ": output_dimensionality must be between 1 and ",
                                        kMaxEmbeddingDimensions, ".\n"));
    }
    input.dimensions = *n;
  }
  inputs.push_back(std::move(input));
  return std::nullopt;
}

// Appends the JSON array of a vector's values.
void AppendValues(std::string& out, const std::vector<int32_t>& vector) {
  out += '[';
  for (size_t i = 0; i < vector.size(); ++i) {
    if (i > 0) out += ',';
    AppendEmbeddingValue(out, vector[i]);
  }
  out += ']';
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::optional<EmbeddingsRoute> MatchEmbeddingsRoute(std::string_view path) {
  // Only routing needs these: the suffix of an Azure deployment route and Gemini's two methods.
  constexpr std::string_view kEmbeddingsSuffix = "/embeddings";
  constexpr std::string_view kEmbedContent = ":embedContent";
  constexpr std::string_view kBatchEmbedContents = ":batchEmbedContents";
  if (path == "/v1/embeddings") {
    return EmbeddingsRoute{DialectId::kOpenAi, EmbeddingsApi::kOpenAi, "", "/v1/chat/completions"};
  }
  if (path == "/openai/v1/embeddings") {
    return EmbeddingsRoute{DialectId::kAzure, EmbeddingsApi::kOpenAi, "",
                           "/openai/v1/chat/completions"};
  }
  if (path.starts_with(kAzureDeploymentsPrefix) && path.ends_with(kEmbeddingsSuffix)) {
    const std::string_view d =
        path.substr(kAzureDeploymentsPrefix.size(),
                    path.size() - kAzureDeploymentsPrefix.size() - kEmbeddingsSuffix.size());
    if (d.empty() || d.find('/') != std::string_view::npos) return std::nullopt;
    return EmbeddingsRoute{DialectId::kAzure, EmbeddingsApi::kOpenAi, std::string(d),
                           absl::StrCat(Av(kAzureDeploymentsPrefix), Av(d), "/chat/completions")};
  }
  if (path.starts_with(kGeminiModelsPrefix)) {
    const std::string_view rest = path.substr(kGeminiModelsPrefix.size());
    const size_t colon = rest.find(':');
    if (colon == 0 || colon == std::string_view::npos) return std::nullopt;
    const std::string_view model = rest.substr(0, colon);
    const std::string_view method = rest.substr(colon);
    if (model.find('/') != std::string_view::npos) return std::nullopt;
    if (method != kEmbedContent && method != kBatchEmbedContents) return std::nullopt;
    return EmbeddingsRoute{
        DialectId::kGemini,
        method == kEmbedContent ? EmbeddingsApi::kGeminiSingle : EmbeddingsApi::kGeminiBatch,
        std::string(model), absl::StrCat(Av(kGeminiModelsPrefix), Av(model), ":generateContent")};
  }
  return std::nullopt;
}

std::optional<ApiError> ParseOpenAiEmbeddingsRequest(std::string_view body, EmbeddingsRequest& out,
                                                     std::string_view default_model) {
  RequestJson doc;
  if (auto e = ParseOpenAiRequestObject(body, kOpenAiParams, doc)) return e;
  const json::object& req = doc.value().get_object();

  EmbeddingsRequest parsed;
  if (auto e = ParseOpenAiModel(req, default_model, parsed.model)) return e;

  const json::value* input = req.if_contains("input");
  if (input == nullptr || input->is_null()) return MissingParam("input");
  if (auto e = ParseOpenAiInput(*input, parsed.inputs)) return e;

  if (const json::value* format = req.if_contains("encoding_format");
      format != nullptr && !format->is_null()) {
    if (!format->is_string()) return InvalidType("encoding_format", "a string", *format);
    const std::string_view f = ToStd(format->get_string());
    if (f != "float" && f != "base64") {
      return InvalidValue("encoding_format", f, "'float' and 'base64'");
    }
    parsed.base64 = f == "base64";
  }

  int64_t dimensions = 0;  // stays 0 when absent or null
  if (auto e = CheckInteger(req, "dimensions", 1, kMaxEmbeddingDimensions, dimensions)) return e;
  if (dimensions > 0) {
    if (parsed.model == "text-embedding-ada-002") {
      return InvalidRequest("This model does not support specifying dimensions.", "dimensions");
    }
    for (EmbeddingInput& in : parsed.inputs) in.dimensions = dimensions;
  }

  if (const json::value* user = req.if_contains("user");
      user != nullptr && !user->is_null() && !user->is_string()) {
    return InvalidType("user", "a string", *user);
  }

  for (const EmbeddingInput& in : parsed.inputs) {
    const int64_t tokens = InputTokens(in);
    if (tokens > kMaxEmbeddingInputTokens) {
      return InvalidRequest(absl::StrCat(
          "This model's maximum context length is ", kMaxEmbeddingInputTokens,
          " tokens, however you requested ", tokens, " tokens (", tokens,
          " in your prompt; 0 for the completion). Please reduce your prompt; or completion "
          "length."));
    }
  }
  out = std::move(parsed);
  return std::nullopt;
}

std::optional<GeminiError> ParseGeminiEmbedRequest(std::string_view body, std::string_view model,
                                                   bool batch, EmbeddingsRequest& out) {
  RequestJson doc;
  if (auto e = ParseGeminiRequestObject(body, doc)) return e;
  const json::object* req = &doc.value().get_object();

  EmbeddingsRequest parsed;
  parsed.model = std::string(model);
  if (!batch) {
    if (auto e = ParseEmbedContent(doc.value(), model, false, "", parsed.inputs)) return e;
    out = std::move(parsed);
    return std::nullopt;
  }
  if (auto e = CheckGeminiFields(*req, kBatchEmbedFields, "")) return e;
  const json::value* requests = req->if_contains("requests");
  if (requests == nullptr || !requests->is_array() || requests->get_array().empty()) {
    return GeminiInvalid("* BatchEmbedContentsRequest.requests: requests is not specified\n");
  }
  const json::array& list = requests->get_array();
  if (list.size() > kMaxGeminiEmbedRequests) {
    return GeminiInvalid(absl::StrCat("* BatchEmbedContentsRequest.requests: at most ",
                                      kMaxGeminiEmbedRequests, " requests can be in one batch\n"));
  }
  for (size_t i = 0; i < list.size(); ++i) {
    if (auto e = ParseEmbedContent(list[i], model, true, absl::StrCat("requests[", i, "]"),
                                   parsed.inputs)) {
      return e;
    }
  }
  out = std::move(parsed);
  return std::nullopt;
}

absl::Status ParseEmbeddingDirectives(const EmbeddingsRequest& request, Directives& out) {
  for (const EmbeddingInput& in : request.inputs) {
    if (in.is_tokens) continue;
    if (absl::Status st = ParseDirectives(in.text, out); !st.ok()) return st;
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------

int64_t EmbeddingTextTokens(size_t text_bytes) {
  return MessageTokens(text_bytes) - MessageTokens(0);
}

int64_t InputTokens(const EmbeddingInput& input) {
  return input.is_tokens ? static_cast<int64_t>(input.token_ids.size())
                         : EmbeddingTextTokens(input.text.size());
}

int64_t EmbeddingsTokens(const EmbeddingsRequest& request) {
  int64_t n = 0;
  for (const EmbeddingInput& in : request.inputs) n += InputTokens(in);
  return n;
}

uint64_t EmbeddingSeed(const EmbeddingInput& input) {
  if (!input.is_tokens) return Fnv1a64(PromptText(input.text));
  std::string ids;
  for (size_t i = 0; i < input.token_ids.size(); ++i) {
    absl::StrAppend(&ids, i == 0 ? "" : ",", input.token_ids[i]);
  }
  return Fnv1a64(ids);
}

std::vector<int32_t> EmbeddingVector(uint64_t seed, int64_t dimensions) {
  const size_t n = static_cast<size_t>(std::max<int64_t>(dimensions, 1));
  std::vector<double> raw(n);
  uint64_t state = seed;
  double norm2 = 0;
  for (double& x : raw) {
    // 53 random bits -> [-1, 1).
    x = static_cast<double>(SplitMix64(state) >> 11) * 0x1.0p-52 - 1.0;
    norm2 += x * x;
  }
  const double norm = std::sqrt(norm2);
  std::vector<int32_t> out(n);
  for (size_t i = 0; i < n; ++i) {
    const double unit = norm > 0 ? raw[i] / norm : 0.0;
    out[i] = static_cast<int32_t>(std::llround(unit * kEmbeddingScale));
  }
  return out;
}

void AppendEmbeddingValue(std::string& out, int32_t value) {
  // Written from the integer so the text is exact and never "-0.000000".
  if (value < 0) out += '-';
  const int64_t magnitude = value < 0 ? -static_cast<int64_t>(value) : value;
  char frac[6];
  int64_t f = magnitude % kEmbeddingScale;
  for (int i = 5; i >= 0; --i) {
    frac[i] = static_cast<char>('0' + f % 10);
    f /= 10;
  }
  absl::StrAppend(&out, magnitude / kEmbeddingScale, ".", absl::string_view(frac, 6));
}

float EmbeddingFloat(int32_t value) {
  return static_cast<float>(static_cast<double>(value) / kEmbeddingScale);
}

std::string EmbeddingBase64(const std::vector<int32_t>& vector) {
  std::string bytes;
  bytes.reserve(vector.size() * 4);
  for (int32_t v : vector) {
    const float f = EmbeddingFloat(v);
    uint32_t bits = 0;
    std::memcpy(&bits, &f, sizeof(bits));
    for (int k = 0; k < 4; ++k) bytes += static_cast<char>((bits >> (8 * k)) & 0xff);
  }
  return absl::Base64Escape(bytes);
}

std::string RenderOpenAiEmbeddingsJson(const EmbeddingsRequest& request) {
  std::string out = "{\"object\":\"list\",\"data\":[";
  for (size_t i = 0; i < request.inputs.size(); ++i) {
    const EmbeddingInput& in = request.inputs[i];
    const std::vector<int32_t> vector = EmbeddingVector(EmbeddingSeed(in), in.dimensions);
    absl::StrAppend(&out, i == 0 ? "" : ",", "{\"object\":\"embedding\",\"index\":", i,
                    ",\"embedding\":");
    if (request.base64) {
      AppendJsonString(out, EmbeddingBase64(vector));
    } else {
      AppendValues(out, vector);
    }
    out += '}';
  }
  out += "],\"model\":"sv;
  AppendJsonString(out, request.model);
  const int64_t tokens = EmbeddingsTokens(request);
  absl::StrAppend(&out, ",\"usage\":{\"prompt_tokens\":", tokens, ",\"total_tokens\":", tokens,
                  "}}");
  return out;
}

std::string RenderGeminiEmbeddingsJson(const EmbeddingsRequest& request, bool batch) {
  std::string out = batch ? "{\"embeddings\":[" : "{\"embedding\":";
  for (size_t i = 0; i < request.inputs.size(); ++i) {
    const EmbeddingInput& in = request.inputs[i];
    out += i == 0 ? "{\"values\":"sv : ",{\"values\":"sv;
    AppendValues(out, EmbeddingVector(EmbeddingSeed(in), in.dimensions));
    out += '}';
  }
  out += batch ? "]}"sv : "}"sv;
  return out;
}

}  // namespace tollgate::tools::mock
