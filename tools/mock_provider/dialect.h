#pragma once
// Dialect: one provider wire format the mock speaks (openai_dialect.h for OpenAI and Azure
// OpenAI, anthropic_dialect.h, gemini_dialect.h). A dialect knows its URLs, headers, request
// validation, error bodies, response bodies and stream events; everything else — directives,
// delays, fault injection, counters — is MockHandler's and the same for every dialect. The
// deterministic content comes from mock_logic.h, so one prompt gets the same words and token
// counts in every dialect.
//
// Per request, MockHandler calls: Parse; then (unless it fails) Error, BlockedPrompt, or
// SuccessHeaders with Body / Stream / StreamError.
//
// Implementations are immutable after construction: every method is const and thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "boost/beast/http/message.hpp"
#include "boost/beast/http/string_body.hpp"
#include "tools/mock_provider/mock_logic.h"

namespace tollgate::tools::mock {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;

enum class DialectId : uint8_t { kOpenAi = 0, kAzure = 1, kAnthropic = 2, kGemini = 3 };
inline constexpr size_t kDialectCount = 4;

// "openai", "azure", "anthropic", "gemini" (the keys of /_mock/stats by_dialect).
std::string_view DialectName(DialectId id);

// A complete answer other than a generated one (errors, model lists).
struct Reply {
  int status = 200;
  std::string body;
  std::string headers;  // extra "name: value\r\n" lines
  std::string_view content_type = "application/json";
};

// One request as a dialect sees it. References are valid for the duration of the call.
struct Call {
  const HttpRequest& request;
  std::string_view path;         // target without the query
  std::string_view query;        // after '?', "" if none
  uint64_t seq = 0;              // numbers the request (ids, request-id headers)
  std::string_view require_key;  // non-empty: the API key the dialect must demand
};

// What a dialect can express beyond the common completion.
struct DialectTraits {
  bool cache_writes = false;   // usage reports cache writes (cache_write_5m / cache_write_1h)
  bool block_in_band = false;  // block=REASON answers 200 with the reason (Completion)
};

class Dialect {
 public:
  virtual ~Dialect() = default;

  virtual DialectId id() const = 0;
  virtual DialectTraits traits() const { return {}; }
  virtual IdStyle ids() const { return {}; }

  // True when `path` is this dialect's generation endpoint (answered for POST).
  virtual bool Matches(std::string_view path) const = 0;

  // The answer to a GET of this dialect's model list or model, or nullopt when `call` is not one.
  virtual std::optional<Reply> Models(const Call& call) const = 0;

  // Checks protocol headers, the API key and URL parameters, validates the body and fills `out`.
  // On failure, the provider's error answer.
  virtual std::optional<Reply> Parse(const Call& call, ChatRequest& out) const = 0;

  // The provider's 400 for a bad mock directive (`message` says what is wrong).
  virtual Reply InvalidDirective(const Call& call, std::string_view message) const = 0;

  // The provider's answer for HTTP `status` (status= and fail_first= directives), with its retry
  // headers. `retry_after_s` <= 0 means the default of 1 second where the provider sends one.
  // `processing_ms` is the simulated processing time, for headers that report it.
  virtual Reply Error(const Call& call, int status, std::string_view model, int64_t retry_after_s,
                      int64_t processing_ms) const = 0;

  // block=REASON when the provider refuses a filtered prompt with an error (Azure's 400
  // content_filter); nullopt when it answers in band (traits().block_in_band) or has no such
  // answer (the directive is then ignored).
  virtual std::optional<Reply> BlockedPrompt(const Call& call, const ChatRequest& request,
                                             std::string_view reason) const {
    return std::nullopt;
  }

  // Extra headers of a successful answer.
  virtual std::string SuccessHeaders(const Call& call, const ChatRequest& request,
                                     int64_t processing_ms) const = 0;

  // The non-stream body.
  virtual std::string Body(const Completion& completion, const ChatRequest& request) const = 0;

  // Content types of Body and of Stream.
  virtual std::string_view ContentType() const { return "application/json"; }
  virtual std::string_view StreamContentType() const { return "text/event-stream; charset=utf-8"; }

  // The events of the stream, in order, each as its full wire text.
  virtual void Stream(const Completion& completion, const ChatRequest& request,
                      EventSink sink) const = 0;

  // The event a stream that fails after its 200 ends with (stream_error=), for HTTP `status`.
  virtual std::string StreamError(int status, const ChatRequest& request) const = 0;
};

// The value of header `name` ("" when absent).
std::string_view HeaderValue(const HttpRequest& request, std::string_view name);

// The percent-decoded value of query parameter `name`, or nullopt when absent.
std::optional<std::string> QueryParam(std::string_view query, std::string_view name);

// The key carried as "Authorization: Bearer <key>" (scheme case-insensitive), or nullopt.
std::optional<std::string_view> BearerToken(const HttpRequest& request);

// `key` masked for error messages: its first 3 and last 4 characters ("***" when short).
std::string MaskKey(std::string_view key);

}  // namespace tollgate::tools::mock
