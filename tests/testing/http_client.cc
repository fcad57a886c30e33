#include "tests/testing/http_client.h"

#include <sstream>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace tollgate::testing {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;

absl::StatusOr<HttpResponse> HttpCall(int port, const std::string& method, const std::string& target,
                                      const std::string& body,
                                      const std::map<std::string, std::string>& headers,
                                      int timeout_ms) {
  try {
    asio::io_context ioc;
    beast::tcp_stream stream(ioc);
    stream.expires_after(std::chrono::milliseconds(timeout_ms));
    stream.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                                           static_cast<unsigned short>(port)));
    http::request<http::string_body> req(http::string_to_verb(method), target, 11);
    req.set(http::field::host, absl::StrCat("127.0.0.1:", port));
    bool has_content_type = false;
    for (const auto& [k, v] : headers) {
      req.set(k, v);
      if (absl::AsciiStrToLower(k) == "content-type") has_content_type = true;
    }
    if (!body.empty() && !has_content_type) req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(256 * 1024 * 1024);
    http::read(stream, buffer, parser);
    HttpResponse out;
    out.status = static_cast<int>(parser.get().result_int());
    for (const auto& field : parser.get()) {
      out.headers[absl::AsciiStrToLower(std::string(field.name_string()))] =
          std::string(field.value());
    }
    out.body = std::move(parser.get().body());
    beast::error_code ec;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    return out;
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat(method, " ", target, " on port ", port, ": ", e.what()));
  }
}

std::vector<std::string> SseDataEvents(const std::string& body) {
  std::vector<std::string> events;
  std::string current;
  bool has_data = false;
  std::string normalized = body;
  absl::StrReplaceAll({{"\r\n", "\n"}}, &normalized);
  for (absl::string_view line : absl::StrSplit(normalized, '\n')) {
    if (line.empty()) {
      if (has_data) events.push_back(current);
      current.clear();
      has_data = false;
      continue;
    }
    if (absl::ConsumePrefix(&line, "data:")) {
      absl::ConsumePrefix(&line, " ");
      if (has_data) current += "\n";
      current.append(line.data(), line.size());
      has_data = true;
    }
  }
  if (has_data) events.push_back(current);
  return events;
}

double MetricValue(const std::string& exposition, const std::string& series) {
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

double ScrapeMetric(int port, const std::string& series) {
  absl::StatusOr<HttpResponse> r = HttpCall(port, "GET", "/metrics");
  return r.ok() ? MetricValue(r->body, series) : -1;
}

}  // namespace tollgate::testing
