#pragma once
// Test-only helpers shared by the tests that drive MockHandler directly (mock_handler_test.cc,
// embeddings_test.cc): a request to hand to MockHandler::Handle, and the ResponsePlan read back
// as a client reads it. Header-only; not part of mock_provider_lib. The helpers use gtest
// assertions, so call them from a test body.

// GCC 12 with -fsanitize=address reports a false -Wmaybe-uninitialized inside Beast's
// basic_parser (boost::optional content length) when a response is parsed. The pragma stays in
// effect for the rest of the including file, where Beast's parser templates are instantiated.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <cstddef>
#include <string>
#include <utility>

#include "boost/asio/buffer.hpp"
#include "boost/beast/core/error.hpp"
#include "boost/beast/http/parser.hpp"
#include "boost/beast/http/string_body.hpp"
#include "gtest/gtest.h"
#include "tools/mock_provider/mock_handler.h"

namespace tollgate::tools::mock {

// An HTTP/1.1 POST of the JSON `body` to `target`, with Content-Length set.
inline MockHandler::Request PostJson(std::string body, std::string target) {
  MockHandler::Request req(boost::beast::http::verb::post, target, 11);
  req.set(boost::beast::http::field::content_type, "application/json");
  req.body() = std::move(body);
  req.prepare_payload();
  return req;
}

// The whole response of `plan` as a client sees it (chunked bodies decoded). A response that does
// not parse completely fails the calling test.
inline boost::beast::http::response<boost::beast::http::string_body> ParseResponse(
    const ResponsePlan& plan) {
  boost::beast::http::response_parser<boost::beast::http::string_body> parser;
  parser.eager(true);
  boost::beast::error_code ec;
  const size_t used = parser.put(boost::asio::buffer(plan.bytes), ec);
  EXPECT_FALSE(ec) << ec.message() << "\n" << plan.bytes;
  EXPECT_EQ(used, plan.bytes.size());
  EXPECT_TRUE(parser.is_done());
  return parser.release();
}

}  // namespace tollgate::tools::mock
