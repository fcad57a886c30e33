#pragma once
// A small synchronous HTTP/1.1 client for tests (Boost.Beast), one connection per call, and an
// SSE splitter for reading streamed responses. Not for production use.

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tollgate::testing {

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// Sends one request to 127.0.0.1:port. `body` is sent with content-type application/json unless
// headers say otherwise. Errors: kUnavailable on connection/read failures.
absl::StatusOr<HttpResponse> HttpCall(int port, const std::string& method, const std::string& target,
                                      const std::string& body = "",
                                      const std::map<std::string, std::string>& headers = {},
                                      int timeout_ms = 30000);

// The value of one series ("name{labels}" exactly as exposed) in a Prometheus text exposition,
// or -1 when absent; and the same scraped from http://127.0.0.1:port/metrics.
double MetricValue(const std::string& exposition, const std::string& series);
double ScrapeMetric(int port, const std::string& series);

// The `data:` payloads of an SSE body, in order (multi-line data joined with '\n').
std::vector<std::string> SseDataEvents(const std::string& body);

}  // namespace tollgate::testing
