#pragma once
// HTTP/1.1 client for upstream providers: a per-thread keep-alive connection pool and one
// request/response exchange at a time, over plain TCP or TLS (OpenSSL through beast::ssl_stream).
//
//   UpstreamPool pool(ioc, &tls_context, options);          // one per I/O thread, no locks
//   UpstreamExchange exchange(pool);
//   absl::Status st = co_await exchange.Start(target, request);   // request out, header in
//   if (exchange.status() == 200) {
//     while (true) {
//       auto piece = co_await exchange.ReadSome();                 // body as it arrives
//       if (!piece.ok() || piece->empty()) break;
//       ...
//     }
//   }
//   exchange.Finish();   // back to the pool only if fully read and keep-alive
//
// Connections are keyed by (scheme, host, port). TLS verifies the peer against the system CAs
// (plus an optional CA file, configured on the ssl::context), sends SNI and checks the host name.
// Every socket has TCP_NODELAY. Timeouts: connect (DNS + TCP + TLS handshake), first byte
// (request written until the response header is in), idle (each read or write after that).
// A pooled connection that turns out to be closed by the peer when reused is replaced by a fresh
// one once, transparently (only when the peer closed without sending any response byte).
//
// Not thread-safe: a pool and its exchanges belong to the thread running the pool's io_context.
// The pool must outlive its exchanges.

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "boost/asio/awaitable.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/ssl/context.hpp"
#include "boost/beast/http/buffer_body.hpp"
#include "boost/beast/http/parser.hpp"
#include "boost/beast/http/string_body.hpp"

namespace tollgate::gateway {

// Where a deployment's base_url points.
struct UpstreamTarget {
  bool tls = false;
  std::string host;         // as in the URL, without IPv6 brackets
  std::string port;         // numeric
  std::string base_path;    // path prefix without a trailing '/', e.g. "/v1" (may be empty)
  std::string host_header;  // value of the Host header: host, or host:port when not default
  std::string pool_key;     // "https://host:port"
};

// Parses "http(s)://host[:port][/path]". Errors: kInvalidArgument (other schemes, no host,
// userinfo, query or fragment present, bad port).
absl::StatusOr<UpstreamTarget> ParseBaseUrl(std::string_view base_url);

struct UpstreamOptions {
  size_t max_idle_per_host = 64;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds first_byte_timeout{60000};
  std::chrono::milliseconds idle_timeout{60000};
};

// Why an exchange failed; decides fallback and the client-facing status.
enum class UpstreamErrorKind {
  kNone,
  kConnect,   // DNS or TCP connect failed
  kTls,       // TLS handshake or certificate verification failed
  kTimeout,   // connect, first-byte or idle timeout
  kIo,        // the connection broke (reset, EOF mid-message)
  kProtocol,  // malformed HTTP response
  kTooLarge,  // body over the limit
};

// "connect", "tls", "timeout", "io", "protocol", "too_large".
std::string_view UpstreamErrorKindName(UpstreamErrorKind kind);

class UpstreamConnection;

class UpstreamPool {
 public:
  // `tls` may be null, in which case https targets fail with kTls errors. Both `ioc` and `tls`
  // must outlive the pool.
  UpstreamPool(boost::asio::io_context& ioc, boost::asio::ssl::context* tls,
               UpstreamOptions options);
  ~UpstreamPool();

  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  const UpstreamOptions& options() const { return options_; }
  boost::asio::io_context& io_context() { return ioc_; }

  // An idle connection to `target` that still looks alive, or null.
  std::unique_ptr<UpstreamConnection> TakeIdle(const UpstreamTarget& target);
  // A new connection (DNS, TCP connect, TLS handshake) within connect_timeout. On error, `kind`
  // tells why.
  boost::asio::awaitable<absl::StatusOr<std::unique_ptr<UpstreamConnection>>> Connect(
      const UpstreamTarget& target, UpstreamErrorKind& kind);
  // Keeps `connection` for reuse (bounded by max_idle_per_host; the oldest beyond are closed).
  void Release(std::unique_ptr<UpstreamConnection> connection);
  // Closes every idle connection; later Releases close their connection.
  void Close();

  size_t idle_connections() const;

 private:
  boost::asio::awaitable<absl::StatusOr<boost::asio::ip::tcp::resolver::results_type>> Resolve(
      const UpstreamTarget& target, UpstreamErrorKind& kind);

  struct DnsEntry {
    boost::asio::ip::tcp::resolver::results_type results;
    std::chrono::steady_clock::time_point expires;
  };

  boost::asio::io_context& ioc_;
  boost::asio::ssl::context* const tls_;
  const UpstreamOptions options_;
  bool closed_ = false;
  absl::flat_hash_map<std::string, std::vector<std::unique_ptr<UpstreamConnection>>> idle_;
  absl::flat_hash_map<std::string, DnsEntry> dns_cache_;
};

class UpstreamExchange {
 public:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;
  using ResponseHeader = boost::beast::http::response_header<>;

  explicit UpstreamExchange(UpstreamPool& pool);
  // Closes the connection if Finish was not called.
  ~UpstreamExchange();

  UpstreamExchange(const UpstreamExchange&) = delete;
  UpstreamExchange& operator=(const UpstreamExchange&) = delete;

  // Sends `request` (Host, keep-alive and content-length must already be set) and reads the
  // response header within first_byte_timeout. Errors: kUnavailable (connect, TLS, broken
  // connection), kDeadlineExceeded (timeouts), kInternal (malformed response); error_kind() says
  // which.
  boost::asio::awaitable<absl::Status> Start(const UpstreamTarget& target, Request& request);

  // Valid after Start succeeded.
  unsigned status() const;
  const ResponseHeader& header() const;

  // The next bytes of the body as soon as they arrive (idle_timeout per read); an empty view at
  // the end of the body. The view is valid until the next call.
  boost::asio::awaitable<absl::StatusOr<std::string_view>> ReadSome();
  // The rest of the body; kResourceExhausted (kind kTooLarge) past `limit` bytes.
  boost::asio::awaitable<absl::StatusOr<std::string>> ReadAll(size_t limit);

  // The connection was reused from the pool (for logs and tests).
  bool reused() const { return reused_; }
  UpstreamErrorKind error_kind() const { return error_kind_; }

  // Returns the connection to the pool when the response was read completely without error and
  // both sides allow keep-alive; closes it otherwise. status() and header() stay valid.
  // Idempotent.
  void Finish();

 private:
  absl::Status Fail(UpstreamErrorKind kind, absl::Status status);

  UpstreamPool& pool_;
  std::unique_ptr<UpstreamConnection> connection_;
  std::optional<boost::beast::http::response_parser<boost::beast::http::buffer_body>> parser_;
  std::vector<char> chunk_;
  std::string target_name_;  // host:port, for error messages
  bool reused_ = false;
  bool failed_ = false;
  UpstreamErrorKind error_kind_ = UpstreamErrorKind::kNone;
};

}  // namespace tollgate::gateway
