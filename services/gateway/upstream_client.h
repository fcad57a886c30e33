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
// Connections are keyed by (scheme, host, port) plus the proxy they go through, so tunnelled and
// direct connections never mix. TLS verifies the peer against the system CAs (plus an optional
// CA file, configured on the ssl::context), sends SNI and checks the host name (or IP address).
//
// Proxies (ProxyConfig, read once at start from the environment by ParseProxyConfig):
//   - https upstreams through HTTPS_PROXY: a CONNECT host:port tunnel to the proxy, then TLS with
//     SNI and full verification against the real host, end to end through the tunnel.
//   - http upstreams through HTTP_PROXY: the request goes to the proxy in absolute form
//     ("POST http://host:port/v1/... HTTP/1.1"), as curl and most clients do (CONNECT to non-443
//     ports is commonly refused by proxies).
//   - Proxy-Authorization: Basic from the proxy URL's user:password, sent to the proxy only.
//   - Credentials never appear in error messages, pool keys or logs (ProxyEndpoint::display).
// Every socket has TCP_NODELAY. Timeouts: connect (DNS, then one budget for TCP + proxy
// CONNECT + TLS handshake), first byte (request written until the response header is in), idle
// (each read or write after that).
// A pooled connection that turns out to be closed by the peer when reused is replaced by a fresh
// one once, transparently (only when the peer closed without sending any response byte).
//
// Not thread-safe: a pool and its exchanges belong to the thread running the pool's io_context.
// The pool must outlive its exchanges.

#include <chrono>
#include <cstddef>
#include <functional>
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

// An HTTP proxy from HTTPS_PROXY / HTTP_PROXY. Only http:// proxies are supported (the hop to
// the proxy is plain TCP; TLS to an https upstream is end to end through the CONNECT tunnel).
struct ProxyEndpoint {
  std::string host;  // without IPv6 brackets
  std::string port;  // numeric; 80 when the URL has none
  // "Basic <base64(user:password)>" when the URL has userinfo, else empty. A secret: never log it.
  std::string authorization;
  // "http://host:port": safe to log and to put in error messages (no credentials).
  std::string display;
};

// One NO_PROXY entry, normalised (lower case, no leading "." or "*.", no trailing ".").
struct NoProxyRule {
  std::string host;  // a host name (matches itself and its subdomains) or an IP literal (exact)
  std::string port;  // empty: any port
  // A CIDR block ("10.0.0.0/8", "fd00::/8"): matches IP-literal upstream hosts inside it.
  std::string cidr;
};

// The proxy settings of the process, read once at start.
//
// Variables (a lower-case name wins over its upper-case form when both are set; an empty value
// counts as unset):
//   https_proxy / HTTPS_PROXY  proxy for https:// upstreams (CONNECT tunnel)
//   http_proxy  / HTTP_PROXY   proxy for http:// upstreams (absolute-form requests)
//   no_proxy    / NO_PROXY     upstreams reached directly, comma (or space) separated:
//     "*"                        every upstream (proxies off)
//     "example.com", ".example.com", "*.example.com"
//                                example.com and every subdomain of it (curl semantics)
//     "host:port", "[v6]:port"   only that port of that host
//     "10.0.0.1", "::1"          that IP literal, exactly (no DNS resolution is involved:
//                                a name is matched as a name, an address as an address)
//     "10.0.0.0/8", "fd00::/8"   upstream IP literals inside the block
//   Loopback is NOT excluded implicitly: add "localhost,127.0.0.1,::1" to NO_PROXY to reach
//   local upstreams directly while a proxy is set.
// Proxy URLs: "http://host:port", "http://user:password@host:port" (percent-encoded userinfo is
// decoded), or "host:port" (http:// assumed); the port defaults to 80; any path is ignored.
// ALL_PROXY and https:// / socks proxies are not supported (the latter are rejected).
struct ProxyConfig {
  std::optional<ProxyEndpoint> https;  // for https:// upstreams
  std::optional<ProxyEndpoint> http;   // for http:// upstreams
  bool no_proxy_all = false;           // NO_PROXY=*
  std::vector<NoProxyRule> no_proxy;

  bool enabled() const { return https.has_value() || http.has_value(); }
};

// Reads the variables above through `getenv` (std::getenv in production; a fake in tests).
// Errors: kInvalidArgument naming the variable, e.g. for an https:// or socks5:// proxy, a bad
// port or no host; the message never contains the variable's value (it may hold a password).
absl::StatusOr<ProxyConfig> ParseProxyConfig(const std::function<const char*(const char*)>& getenv);

// True when NO_PROXY sends `host` (as in UpstreamTarget::host: no brackets) on `port` directly.
bool NoProxyMatches(const ProxyConfig& config, std::string_view host, std::string_view port);

// The proxy that serves `target`, or null for a direct connection.
const ProxyEndpoint* ProxyFor(const ProxyConfig& config, const UpstreamTarget& target);

// "NO_PROXY" entries as a comma list again, for the start-up log.
std::string NoProxyToString(const ProxyConfig& config);

struct UpstreamOptions {
  ProxyConfig proxy;
  size_t max_idle_per_host = 64;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds first_byte_timeout{60000};
  std::chrono::milliseconds idle_timeout{60000};
};

// Why an exchange failed; decides fallback and the client-facing status.
enum class UpstreamErrorKind {
  kNone,
  kConnect,   // DNS or TCP connect failed, or the proxy refused the CONNECT tunnel
  kTls,       // TLS handshake or certificate verification failed
  kTimeout,   // connect, first-byte or idle timeout
  kIo,        // the connection broke (reset, EOF mid-message)
  kProtocol,  // malformed HTTP response
  kTooLarge,  // body over the limit
};

// "connect", "tls", "timeout", "io", "protocol", "too_large".
std::string_view UpstreamErrorKindName(UpstreamErrorKind kind);

// Why a connection or exchange failed: the kind, and a short client-safe reason (no host names,
// credentials or paths), e.g. "TLS certificate verification failed".
struct UpstreamFailure {
  UpstreamErrorKind kind = UpstreamErrorKind::kNone;
  std::string reason;
};

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

  // The proxy `target` goes through (options().proxy), or null for a direct connection.
  const ProxyEndpoint* ProxyOf(const UpstreamTarget& target) const;
  // The pool key of `target`'s connections: target.pool_key, plus " via <proxy>" when proxied.
  std::string ConnectionKey(const UpstreamTarget& target) const;

  // An idle connection to `target` that still looks alive, or null.
  std::unique_ptr<UpstreamConnection> TakeIdle(const UpstreamTarget& target);
  // A new connection (DNS, TCP connect, CONNECT through the proxy if any, TLS handshake) within
  // connect_timeout. On error, `failure` tells why.
  boost::asio::awaitable<absl::StatusOr<std::unique_ptr<UpstreamConnection>>> Connect(
      const UpstreamTarget& target, UpstreamFailure& failure);
  // Keeps `connection` for reuse (bounded by max_idle_per_host; the oldest beyond are closed).
  void Release(std::unique_ptr<UpstreamConnection> connection);
  // Closes every idle connection; later Releases close their connection.
  void Close();

  size_t idle_connections() const;

 private:
  boost::asio::awaitable<absl::StatusOr<boost::asio::ip::tcp::resolver::results_type>> Resolve(
      const std::string& host, const std::string& port, UpstreamFailure& failure);

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
  // response header within first_byte_timeout. Errors: kUnavailable (connect, TLS, proxy,
  // broken connection), kDeadlineExceeded (timeouts), kInternal (malformed response);
  // error_kind() says which, failure_reason() says it in client-safe words. When the request
  // goes through an HTTP_PROXY its target is sent in absolute form with Proxy-Authorization;
  // `request` is back as it was when Start returns.
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
  // Short and safe to show to API clients (no host names, paths or credentials), e.g.
  // "connection failed", "TLS certificate verification failed", "the proxy refused the tunnel
  // (HTTP 407)", "timed out". Empty while nothing failed.
  const std::string& failure_reason() const { return failure_reason_; }

  // Returns the connection to the pool when the response was read completely without error and
  // both sides allow keep-alive; closes it otherwise. status() and header() stay valid.
  // Idempotent.
  void Finish();

 private:
  absl::Status Fail(UpstreamErrorKind kind, absl::Status status, std::string reason = "");

  UpstreamPool& pool_;
  std::unique_ptr<UpstreamConnection> connection_;
  std::optional<boost::beast::http::response_parser<boost::beast::http::buffer_body>> parser_;
  std::vector<char> chunk_;
  std::string target_name_;  // host:port, for error messages
  bool reused_ = false;
  bool failed_ = false;
  UpstreamErrorKind error_kind_ = UpstreamErrorKind::kNone;
  std::string failure_reason_;
};

}  // namespace tollgate::gateway
