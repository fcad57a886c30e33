#include "services/gateway/http_util.h"

#include "absl/random/random.h"
#include "boost/beast/http/field.hpp"
#include "services/gateway/openai_dialect.h"

namespace tollgate::gateway {

namespace http = boost::beast::http;

HttpResponse JsonResponse(unsigned status, std::string body, bool keep_alive) {
  HttpResponse response(static_cast<http::status>(status), 11);
  response.set(http::field::content_type, "application/json");
  response.keep_alive(keep_alive);
  response.body() = std::move(body);
  response.prepare_payload();
  return response;
}

HttpResponse ErrorResponse(unsigned status, std::string_view type, std::string_view code,
                           std::string_view param, std::string_view message, bool keep_alive) {
  return JsonResponse(status, ErrorBody(message, type, param, code), keep_alive);
}

std::string NewRequestId() {
  thread_local absl::BitGen bitgen;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (int half = 0; half < 2; ++half) {
    uint64_t bits = absl::Uniform<uint64_t>(bitgen);
    for (int i = 0; i < 16; ++i) {
      id[half * 16 + i] = kHex[bits & 0xf];
      bits >>= 4;
    }
  }
  return id;
}

std::string_view RequestPath(std::string_view target) {
  const size_t query = target.find('?');
  return query == std::string_view::npos ? target : target.substr(0, query);
}

}  // namespace tollgate::gateway
