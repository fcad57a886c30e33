#pragma once
// The "gemini" dialect (PROVIDERS.md §3): Google's Generative Language API behind the Provider
// interface.
//
//   chat:        POST {base_path}/models/{upstream_model}:generateContent
//   stream:      POST {base_path}/models/{upstream_model}:streamGenerateContent?alt=sse
//   embeddings:  POST {base_path}/models/{upstream_model}:batchEmbedContents
//   auth:        x-goog-api-key: <key> (omitted when the key is empty)
//
// Request translation (OpenAI chat -> GenerateContentRequest):
//   - system / developer messages -> systemInstruction.parts (all of them, in order: Gemini has
//     one system instruction, so a system message in the middle of a conversation moves there);
//     text parts only.
//   - user -> role "user", assistant -> role "model"; content parts: text -> text; image_url and
//     file.file_data (a base64 data URL, or bare base64 typed by the filename's extension) ->
//     inlineData{mimeType,data} (file_id is 400: Gemini cannot read OpenAI files); http(s)/gs://
//     image URLs -> fileData{mimeType,fileUri} with the mime type guessed from the path's
//     extension, else "application/octet-stream" (whether Gemini fetches an arbitrary https URL is
//     unverified); input_audio {data,format} -> inlineData audio/<format>. image_url.detail is
//     ignored. Assistant refusal parts are sent as text. Empty text parts are dropped; a message
//     left with no parts is dropped (only system messages left: 400 on `messages`).
//   - assistant tool_calls -> functionCall{name,args} parts (arguments must be a JSON object or
//     ""; anything else is 400). A tool call's `extra_content.google.thought_signature` (Google's
//     own OpenAI-compatibility convention, which this adapter also emits) goes back as the part's
//     thoughtSignature. reasoning_content of past assistant turns is not sent back (Gemini
//     cannot take thought text as input); a `refusal` is sent as text.
//   - tool messages -> functionResponse{name,response} parts, the name looked up from the earlier
//     tool call with that id (unknown id: 400); response = the content when it parses as a JSON
//     object, else {"content": <text>}. Consecutive tool messages share one user turn (Gemini
//     expects all responses to one model turn's calls together).
//   - tools -> one tools[0].functionDeclarations; `parameters` converted to Gemini's OpenAPI
//     subset (GeminiSchema below); `strict` is dropped. tool_choice auto/none/required/named ->
//     toolConfig.functionCallingConfig mode AUTO/NONE/ANY/ANY+allowedFunctionNames.
//     parallel_tool_calls is ignored (Gemini has no switch; it may call several functions).
//   - response_format json_object -> generationConfig.responseMimeType "application/json";
//     json_schema -> + responseJsonSchema (the client's JSON Schema unchanged: lossless, accepted
//     by Gemini 2.5+). Deployment option `json_schema_field: responseSchema` sends the
//     OpenAPI-subset responseSchema (converted like tool parameters) for older models.
//   - max_completion_tokens ?? max_tokens -> maxOutputTokens (0 is 400: Gemini needs >= 1);
//     temperature, top_p -> topP, top_k -> topK, stop -> stopSequences, n -> candidateCount,
//     seed, presence_penalty -> presencePenalty, frequency_penalty -> frequencyPenalty.
//   - reasoning_effort -> thinkingConfig.thinkingBudget, Google's own OpenAI-compatibility
//     mapping: none 0, minimal 512 (the smallest budget every 2.5 model accepts), low 1024,
//     medium 8192, high 24576. Deployment option `include_thoughts: "true"` also sets
//     thinkingConfig.includeThoughts so thought summaries come back as reasoning_content.
//   - 400 (InvalidParamError naming the parameter, the dialect and the deployment): logprobs:true,
//     top_logprobs, logit_bias (non-empty), the `thinking` extension, audio, modalities other than
//     ["text"], functions / function_call (legacy), web_search_options, verbosity, and any other
//     top-level field this adapter does not know (OpenAI rejects unknown fields too).
//   - ignored: user, store, metadata, service_tier, prompt_cache_key, safety_identifier,
//     prediction, stream / stream_options (the target decides streaming; Gemini always reports
//     usage), message `name`s and Tollgate's `cache_control` (Gemini caches implicitly).
//
// Response translation (GenerateContentResponse -> chat.completion): id "chatcmpl-<request id>",
// created = call.created_unix, model = modelVersion or the deployment's upstream model;
// candidates -> choices (text parts joined into content; thought:true parts -> reasoning_content;
// functionCall parts -> tool_calls with ids "call_<n>", n counting from 0 across the response
// (or the functionCall's own `id` when Gemini sends one), arguments = the serialised args, and
// a part's thoughtSignature as the tool call's extra_content.google.thought_signature).
// finishReason: STOP -> stop (tool_calls when the candidate called functions), MAX_TOKENS ->
// length, SAFETY / RECITATION / BLOCKLIST / PROHIBITED_CONTENT / SPII / IMAGE_SAFETY /
// IMAGE_PROHIBITED_CONTENT / IMAGE_RECITATION -> content_filter, anything else (LANGUAGE, OTHER,
// MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL, unknown) -> stop (or tool_calls).
// promptFeedback.blockReason without candidates -> one choice, empty content, content_filter.
//
// Usage (exact): input = promptTokenCount (which already includes cachedContentTokenCount) +
// toolUsePromptTokenCount; cached = cachedContentTokenCount; output = candidatesTokenCount +
// thoughtsTokenCount; reasoning = thoughtsTokenCount. Streams: usageMetadata is cumulative, the
// last one wins.
//
// Streams: Gemini sends one complete GenerateContentResponse per `data:` event and no end marker.
// The translator emits a role chunk when a candidate first appears, then content /
// reasoning_content / tool_calls deltas (each function call whole, in one fragment), and a
// finish_reason chunk when finishReason arrives. Finish() at EOF after a finishReason emits the
// usage-only chunk (when the client asked for it) and "data: [DONE]"; EOF without a finishReason
// emits nothing and leaves progress().done false (a broken stream). An {"error":{...}} event (or
// a data event that is not JSON) becomes an OpenAI-shaped error event and sets progress().error;
// later events are ignored.
//
// Errors: google.rpc.Status bodies -> OpenAI error bodies (type / code from the status and HTTP
// code; context_length_exceeded when the message says the input token count exceeds the maximum;
// insufficient_quota for per-day QuotaFailure violations).
//
// Embeddings: {model, input: string | string[], dimensions?, encoding_format: "float"?, user?} ->
// batchEmbedContents {requests:[{model:"models/<m>", content:{parts:[{text}]},
// outputDimensionality?}]}; token-array input and encoding_format "base64" are 400. The response
// {embeddings:[{values}]} -> OpenAI list. Gemini reports no token usage for embeddings: usage is
// nullopt, output_bytes 0 and the body has no `usage` (the gateway estimates input tokens).

#include <optional>

#include "absl/status/statusor.h"
#include "boost/json/value.hpp"
#include "services/gateway/providers/provider.h"

namespace tollgate::gateway {

// The process-wide gemini adapter (stateless, thread-safe).
const Provider& GeminiProvider();

// A JSON Schema (tool parameters, response schemas) converted to Gemini's OpenAPI-3.0 subset
// (Schema: type, format, title, description, nullable, enum, items, properties, required,
// anyOf, min/max{Items,Properties,Length}, minimum, maximum, pattern, example, default,
// propertyOrdering). Local $refs (#/$defs/X, #/definitions/X) are inlined; "type":[T,"null"]
// becomes type T + nullable; oneOf becomes anyOf; a single-element allOf is inlined; string
// `const` becomes a one-value enum; enums that are not all strings, formats Gemini rejects and
// every other keyword (additionalProperties, $schema, $id, $defs, strict, exclusive bounds,
// multipleOf, uniqueItems, patternProperties, not, if/then/else, ...) are dropped. These only
// constrain validation, so the model still sees the structure. Errors (kInvalidArgument, ParamOf
// = `param`): an unresolvable or too deeply nested $ref, a multi-element allOf, tuple `items`.
absl::StatusOr<boost::json::value> GeminiSchema(const boost::json::value& schema,
                                                std::string_view param);

}  // namespace tollgate::gateway
