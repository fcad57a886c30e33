#include "services/gateway/http_util.h"

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


std::string_view RequestPath(std::string_view target) {
  const size_t query = target.find('?');
  return query == std::string_view::npos ? target : target.substr(0, query);
}

}  // namespace tollgate::gateway
