#include "services/gateway/upstream_client.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "boost/asio/as_tuple.hpp"
#include "boost/asio/ip/network_v4.hpp"
#include "boost/asio/ip/network_v6.hpp"
#include "boost/asio/ssl/error.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/use_awaitable.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/core/tcp_stream.hpp"
#include "boost/beast/http/empty_body.hpp"
#include "boost/beast/http/error.hpp"
#include "boost/beast/http/read.hpp"
#include "boost/beast/http/write.hpp"
#include "boost/beast/ssl/ssl_stream.hpp"
#include "boost/url/parse.hpp"

namespace tollgate::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::chrono::seconds kDnsTtl{30};
constexpr size_t kResponseHeaderLimit = 64 * 1024;
constexpr size_t kReadChunkBytes = 16 * 1024;

bool IsIpAddress(const std::string& host) {
  boost::system::error_code ec;
  (void)asio::ip::make_address(host, ec);
  return !ec;
}

// The peer closed a reused keep-alive connection before sending any byte of a response: the
// request was most likely never processed (idle-close race), so it may be sent again.
bool ClosedBeforeResponse(const boost::system::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::ssl::error::stream_truncated;
}

bool IsHttpParseError(const boost::system::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_version).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message;
}

// host:port with IPv6 literals in brackets, as in a URL authority or a CONNECT target.
std::string Authority(const std::string& host, const std::string& port) {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

bool ValidPort(std::string_view port) {
  uint32_t number = 0;
  return !port.empty() && port.size() <= 5 &&
         port.find_first_not_of("0123456789") == std::string_view::npos &&
         absl::SimpleAtoi(absl::string_view(port.data(), port.size()), &number) && number >= 1 &&
         number <= 65535;
}

// Looks a variable up, lower-case name first; empty counts as unset. Returns the name used.
std::optional<std::pair<std::string, std::string>> LookUp(
    const std::function<const char*(const char*)>& getenv, const char* lower, const char* upper) {
  for (const char* name : {lower, upper}) {
    const char* value = getenv(name);
    if (value == nullptr) continue;
    std::string v(absl::StripAsciiWhitespace(value));
    if (!v.empty()) return std::make_pair(std::string(name), std::move(v));
  }
  return std::nullopt;
}

// Error messages name the variable, never its value: it may carry a password.
absl::StatusOr<ProxyEndpoint> ParseProxyUrl(const std::string& variable, std::string value) {
  if (value.find("://") == std::string::npos) value = absl::StrCat("http://", value);
  auto parsed = boost::urls::parse_uri(value);
  if (!parsed) {
    return absl::InvalidArgumentError(absl::StrCat(
        variable, " is not a valid proxy URL (expected http://[user:password@]host:port)"));
  }
  const boost::urls::url_view& url = *parsed;
  const std::string scheme = absl::AsciiStrToLower(std::string(url.scheme()));
  if (scheme != "http") {
    return absl::InvalidArgumentError(absl::StrCat(
        variable, ": ", scheme, ":// proxies are not supported; use an http:// proxy URL"));
  }
  ProxyEndpoint proxy;
  const std::string encoded_host(url.encoded_host());
  if (url.host_type() == boost::urls::host_type::ipv6) {
    proxy.host = encoded_host.substr(1, encoded_host.size() - 2);
  } else {
    proxy.host = absl::AsciiStrToLower(std::string(url.host()));
  }
  if (proxy.host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(variable, ": the proxy URL has no host"));
  }
  proxy.port = url.has_port() ? std::string(url.port()) : "80";
  if (!ValidPort(proxy.port)) {
    return absl::InvalidArgumentError(
        absl::StrCat(variable, ": the proxy URL has an invalid port"));
  }
  proxy.port = absl::StrCat(std::stoi(proxy.port));  // "08080" -> "8080"
  if (url.has_userinfo()) {
    const std::string credentials =
        absl::StrCat(std::string(url.user()), ":", std::string(url.password()));
    proxy.authorization = absl::StrCat("Basic ", absl::Base64Escape(credentials));
  }
  proxy.display = absl::StrCat("http://", Authority(proxy.host, proxy.port));
  return proxy;
}

absl::StatusOr<NoProxyRule> ParseNoProxyEntry(const std::string& variable, std::string entry) {
  NoProxyRule rule;
  if (entry.find('/') != std::string::npos) {
    boost::system::error_code ec;
    if (entry.find(':') != std::string::npos) {
      (void)asio::ip::make_network_v6(entry, ec);
    } else {
      (void)asio::ip::make_network_v4(entry, ec);
    }
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat(variable, ": '", entry, "' is not a valid CIDR block"));
    }
    rule.cidr = std::move(entry);
    return rule;
  }
  std::string host = entry;
  if (!entry.empty() && entry.front() == '[') {  // [v6] or [v6]:port
    const size_t close = entry.find(']');
    if (close == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(variable, ": '", entry, "' is malformed"));
    }
    host = entry.substr(1, close - 1);
    std::string_view rest = std::string_view(entry).substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':' || !ValidPort(rest.substr(1))) {
        return absl::InvalidArgumentError(
            absl::StrCat(variable, ": '", entry, "' has an invalid port"));
      }
      rule.port = std::string(rest.substr(1));
    }
  } else if (std::count(entry.begin(), entry.end(), ':') == 1) {  // host:port
    const size_t colon = entry.find(':');
    host = entry.substr(0, colon);
    rule.port = entry.substr(colon + 1);
    if (!ValidPort(rule.port)) {
      return absl::InvalidArgumentError(
          absl::StrCat(variable, ": '", entry, "' has an invalid port"));
    }
  }  // else a name, an IPv4 literal or a bare IPv6 literal
  if (!rule.port.empty()) rule.port = absl::StrCat(std::stoi(rule.port));
  if (absl::StartsWith(host, "*.")) {
    host.erase(0, 2);
  } else if (absl::StartsWith(host, ".")) {
    host.erase(0, 1);
  }
  while (!host.empty() && host.back() == '.') host.pop_back();
  boost::system::error_code ec;
  const asio::ip::address address = asio::ip::make_address(host, ec);
  if (!ec) host = address.to_string();  // canonical form, compared as an address
  if (host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(variable, ": '", entry, "' has no host"));
  }
  rule.host = std::move(host);
  return rule;
}

bool InCidr(const asio::ip::address& address, const std::string& cidr) {
  boost::system::error_code ec;
  if (address.is_v4()) {
    if (cidr.find(':') != std::string::npos) return false;
    const asio::ip::network_v4 network = asio::ip::make_network_v4(cidr, ec);
    if (ec) return false;
    const uint32_t mask = network.netmask().to_uint();
    return (address.to_v4().to_uint() & mask) == (network.address().to_uint() & mask);
  }
  if (cidr.find(':') == std::string::npos) return false;
  const asio::ip::network_v6 network = asio::ip::make_network_v6(cidr, ec);
  if (ec) return false;
  const auto a = address.to_v6().to_bytes();
  const auto n = network.address().to_bytes();
  unsigned bits = network.prefix_length();
  for (size_t i = 0; i < a.size() && bits > 0; ++i) {
    const unsigned take = std::min(bits, 8u);
    const uint8_t mask = static_cast<uint8_t>(0xff00u >> take);
    if ((a[i] & mask) != (n[i] & mask)) return false;
    bits -= take;
  }
  return true;
}

}  // namespace

absl::StatusOr<ProxyConfig> ParseProxyConfig(
    const std::function<const char*(const char*)>& getenv) {
  ProxyConfig config;
  if (auto v = LookUp(getenv, "https_proxy", "HTTPS_PROXY")) {
    auto proxy = ParseProxyUrl(v->first, std::move(v->second));
    if (!proxy.ok()) return proxy.status();
    config.https = std::move(*proxy);
  }
  if (auto v = LookUp(getenv, "http_proxy", "HTTP_PROXY")) {
    auto proxy = ParseProxyUrl(v->first, std::move(v->second));
    if (!proxy.ok()) return proxy.status();
    config.http = std::move(*proxy);
  }
  if (auto v = LookUp(getenv, "no_proxy", "NO_PROXY")) {
    for (absl::string_view piece :
         absl::StrSplit(v->second, absl::ByAnyChar(", \t"), absl::SkipEmpty())) {
      std::string entry = absl::AsciiStrToLower(piece);
      if (entry == "*") {
        config.no_proxy_all = true;
        continue;
      }
      auto rule = ParseNoProxyEntry(v->first, std::move(entry));
      if (!rule.ok()) return rule.status();
      config.no_proxy.push_back(std::move(*rule));
    }
  }
  return config;
}

bool NoProxyMatches(const ProxyConfig& config, std::string_view host_in, std::string_view port) {
  if (config.no_proxy_all) return true;
  if (config.no_proxy.empty()) return false;
  std::string host = absl::AsciiStrToLower(absl::string_view(host_in.data(), host_in.size()));
  while (!host.empty() && host.back() == '.') host.pop_back();
  boost::system::error_code ec;
  const asio::ip::address address = asio::ip::make_address(host, ec);
  const bool is_ip = !ec;
  if (is_ip) host = address.to_string();
  for (const NoProxyRule& rule : config.no_proxy) {
    if (!rule.port.empty() && rule.port != port) continue;
    if (!rule.cidr.empty()) {
      if (is_ip && InCidr(address, rule.cidr)) return true;
      continue;
    }
    if (host == rule.host) return true;
    // Domain suffix: names only; an address never matches a name rule or part of another one.
    if (!is_ip && host.size() > rule.host.size() &&
        absl::EndsWith(host, absl::StrCat(".", rule.host))) {
      return true;
    }
  }
  return false;
}

const ProxyEndpoint* ProxyFor(const ProxyConfig& config, const UpstreamTarget& target) {
  const std::optional<ProxyEndpoint>& proxy = target.tls ? config.https : config.http;
  if (!proxy.has_value()) return nullptr;
  if (NoProxyMatches(config, target.host, target.port)) return nullptr;
  return &*proxy;
}

std::string NoProxyToString(const ProxyConfig& config) {
  std::vector<std::string> entries;
  if (config.no_proxy_all) entries.push_back("*");
  for (const NoProxyRule& rule : config.no_proxy) {
    if (!rule.cidr.empty()) {
      entries.push_back(rule.cidr);
    } else if (rule.port.empty()) {
      entries.push_back(rule.host);
    } else {
      entries.push_back(Authority(rule.host, rule.port));
    }
  }
  return absl::StrJoin(entries, ",");
}

// A connection to one upstream: plain TCP or TLS over TCP.
class UpstreamConnection {
 public:
  UpstreamConnection(asio::io_context& ioc, asio::ssl::context* tls, std::string key)
      : key_(std::move(key)) {
    // Beast reads at most the buffer's free capacity (512 bytes when empty): without room, a
    // streamed answer arrives in 512-byte reads, each forwarded as its own client chunk.
    buffer_.reserve(kReadChunkBytes);
    if (tls != nullptr) {
      ssl_ = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ioc, *tls);
    } else {
      tcp_ = std::make_unique<beast::tcp_stream>(ioc);
    }
  }

  bool tls() const { return ssl_ != nullptr; }
  beast::tcp_stream& tcp() { return ssl_ ? beast::get_lowest_layer(*ssl_) : *tcp_; }
  beast::ssl_stream<beast::tcp_stream>& ssl() { return *ssl_; }
  const std::string& key() const { return key_; }
  beast::flat_buffer& buffer() { return buffer_; }

  // Runs `op` on the concrete stream; both branches return the same awaitable type.
  template <typename Op>
  auto Visit(Op&& op) {
    if (ssl_) return op(*ssl_);
    return op(*tcp_);
  }

  // An idle keep-alive connection receives nothing: readable means the peer closed it (EOF) or
  // misbehaved. TLS may legitimately carry late records (session tickets), so only EOF counts.
  bool LooksAlive() {
    if (buffer_.size() != 0) return false;
    char byte;
    const ssize_t n = ::recv(tcp().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return false;
    if (n > 0) return tls();
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }

  std::chrono::steady_clock::time_point idle_since;

 private:
  const std::string key_;
  std::unique_ptr<beast::tcp_stream> tcp_;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> ssl_;
  beast::flat_buffer buffer_;
};

std::string_view UpstreamErrorKindName(UpstreamErrorKind kind) {
  switch (kind) {
    case UpstreamErrorKind::kNone:
      return "none";
    case UpstreamErrorKind::kConnect:
      return "connect";
    case UpstreamErrorKind::kTls:
      return "tls";
    case UpstreamErrorKind::kTimeout:
      return "timeout";
    case UpstreamErrorKind::kIo:
      return "io";
    case UpstreamErrorKind::kProtocol:
      return "protocol";
    case UpstreamErrorKind::kTooLarge:
      return "too_large";
  }
  return "unknown";
}

absl::StatusOr<UpstreamTarget> ParseBaseUrl(std::string_view base_url) {
  auto parsed = boost::urls::parse_uri(base_url);
  if (!parsed) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid base_url '", std::string(base_url), "': ", parsed.error().message()));
  }
  const boost::urls::url_view& url = *parsed;
  UpstreamTarget t;
  const std::string scheme = absl::AsciiStrToLower(std::string(url.scheme()));
  if (scheme == "https") {
    t.tls = true;
  } else if (scheme != "http") {
    return absl::InvalidArgumentError(
        absl::StrCat("base_url '", std::string(base_url), "' must be http:// or https://"));
  }
  if (url.has_userinfo() || url.has_query() || url.has_fragment()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "base_url '", std::string(base_url), "' must not contain credentials, query or fragment"));
  }
  std::string encoded_host(url.encoded_host());
  if (url.host_type() == boost::urls::host_type::ipv6) {
    t.host = encoded_host.substr(1, encoded_host.size() - 2);
  } else {
    t.host = std::string(url.host());
  }
  if (t.host.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("base_url '", std::string(base_url), "' has no host"));
  }
  const std::string default_port = t.tls ? "443" : "80";
  if (url.has_port()) {
    const std::string port(url.port());
    uint32_t number = 0;
    if (port.empty() || !absl::SimpleAtoi(port, &number) || number == 0 || number > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("base_url '", std::string(base_url), "' has an invalid port"));
    }
    t.port = absl::StrCat(number);
  } else {
    t.port = default_port;
  }
  std::string path(url.encoded_path());
  while (!path.empty() && path.back() == '/') path.pop_back();
  t.base_path = std::move(path);
  t.host_header = encoded_host;
  if (t.port != default_port) absl::StrAppend(&t.host_header, ":", t.port);
  t.pool_key = absl::StrCat(scheme, "://", encoded_host, ":", t.port);
  return t;
}

// ---------------------------------------------------------------------------------------------
// UpstreamPool

UpstreamPool::UpstreamPool(asio::io_context& ioc, asio::ssl::context* tls, UpstreamOptions options)
    : ioc_(ioc), tls_(tls), options_(options) {}

UpstreamPool::~UpstreamPool() = default;

size_t UpstreamPool::idle_connections() const {
  size_t n = 0;
  for (const auto& [key, list] : idle_) n += list.size();
  return n;
}

void UpstreamPool::Close() {
  closed_ = true;
  idle_.clear();
}

const ProxyEndpoint* UpstreamPool::ProxyOf(const UpstreamTarget& target) const {
  if (!options_.proxy.enabled()) return nullptr;
  return ProxyFor(options_.proxy, target);
}

std::string UpstreamPool::ConnectionKey(const UpstreamTarget& target) const {
  const ProxyEndpoint* proxy = ProxyOf(target);
  if (proxy == nullptr) return target.pool_key;
  return absl::StrCat(target.pool_key, " via ", proxy->display);
}

std::unique_ptr<UpstreamConnection> UpstreamPool::TakeIdle(const UpstreamTarget& target) {
  auto it =
      ProxyOf(target) == nullptr ? idle_.find(target.pool_key) : idle_.find(ConnectionKey(target));
  if (it == idle_.end()) return nullptr;
  auto& list = it->second;
  const auto now = std::chrono::steady_clock::now();
  while (!list.empty()) {
    std::unique_ptr<UpstreamConnection> c = std::move(list.back());
    list.pop_back();
    if (now - c->idle_since > options_.idle_timeout) continue;  // closed by destruction
    if (!c->LooksAlive()) continue;
    return c;
  }
  return nullptr;
}

void UpstreamPool::Release(std::unique_ptr<UpstreamConnection> connection) {
  if (closed_ || options_.max_idle_per_host == 0) return;
  auto& list = idle_[connection->key()];
  if (list.size() >= options_.max_idle_per_host) list.erase(list.begin());  // the oldest
  connection->idle_since = std::chrono::steady_clock::now();
  list.push_back(std::move(connection));
}

asio::awaitable<absl::StatusOr<tcp::resolver::results_type>> UpstreamPool::Resolve(
    const std::string& host, const std::string& port, UpstreamFailure& failure) {
  const std::string key = absl::StrCat(host, ":", port);
  const auto now = std::chrono::steady_clock::now();
  if (auto it = dns_cache_.find(key); it != dns_cache_.end() && it->second.expires > now) {
    co_return it->second.results;
  }
  // Numeric hosts resolve without a lookup; names get a lookup bounded by the connect timeout.
  auto resolver = std::make_shared<tcp::resolver>(ioc_);
  const auto flags = IsIpAddress(host) ? tcp::resolver::numeric_host : tcp::resolver::flags();
  asio::steady_timer timer(ioc_);
  timer.expires_after(options_.connect_timeout);
  timer.async_wait([resolver](const boost::system::error_code& ec) {
    if (!ec) resolver->cancel();
  });
  auto [ec, results] = co_await resolver->async_resolve(
      host, port, flags | tcp::resolver::numeric_service, kUseTuple);
  const bool timed_out =
      ec == asio::error::operation_aborted && timer.expiry() <= std::chrono::steady_clock::now();
  timer.cancel();
  if (ec || results.empty()) {
    if (timed_out) {
      failure = {UpstreamErrorKind::kTimeout, "timed out"};
      co_return absl::DeadlineExceededError(absl::StrCat("resolving ", host, " timed out"));
    }
    failure = {UpstreamErrorKind::kConnect, "connection failed"};
    co_return absl::UnavailableError(
        absl::StrCat("cannot resolve ", host, ": ", ec ? ec.message() : "no addresses"));
  }
  if (dns_cache_.size() > 1024) dns_cache_.clear();  // bounded: deployments are few
  dns_cache_[key] = DnsEntry{results, now + kDnsTtl};
  co_return results;
}

namespace {

// Asks `proxy` for a tunnel to `target` over the connected `stream` (RFC 9110 §9.3.6). On
// success the stream carries raw bytes to the target from here on.
asio::awaitable<absl::Status> OpenTunnel(beast::tcp_stream& stream, const ProxyEndpoint& proxy,
                                         const UpstreamTarget& target,
                                         std::chrono::steady_clock::time_point deadline,
                                         UpstreamFailure& failure) {
  const std::string authority = Authority(target.host, target.port);
  http::request<http::empty_body> connect(http::verb::connect, authority, 11);
  connect.set(http::field::host, authority);
  connect.set(http::field::user_agent, "tollgate-gateway/0.1");
  if (!proxy.authorization.empty()) {
    connect.set(http::field::proxy_authorization, proxy.authorization);
  }
  auto timed_out = [&] {
    failure = {UpstreamErrorKind::kTimeout, "timed out"};
    return absl::DeadlineExceededError(
        absl::StrCat("CONNECT to ", authority, " through proxy ", proxy.display, " timed out"));
  };
  stream.expires_at(deadline);
  auto [wec, written] = co_await http::async_write(stream, connect, kUseTuple);
  if (wec) {
    if (wec == beast::error::timeout) co_return timed_out();
    failure = {UpstreamErrorKind::kConnect, "the proxy connection failed"};
    co_return absl::UnavailableError(absl::StrCat("sending CONNECT ", authority, " to proxy ",
                                                  proxy.display, ": ", wec.message()));
  }
  // A 2xx answer to CONNECT has no body whatever its headers say; skip() tells the parser so.
  http::response_parser<http::empty_body> parser;
  parser.skip(true);
  parser.header_limit(16 * 1024);
  beast::flat_buffer buffer;
  auto [rec, read] = co_await http::async_read_header(stream, buffer, parser, kUseTuple);
  if (rec) {
    if (rec == beast::error::timeout) co_return timed_out();
    failure = {UpstreamErrorKind::kConnect, "the proxy connection failed"};
    co_return absl::UnavailableError(
        absl::StrCat("reading the CONNECT response of proxy ", proxy.display, ": ", rec.message()));
  }
  const unsigned status = parser.get().result_int();
  if (status < 200 || status >= 300) {
    failure = {UpstreamErrorKind::kConnect,
               absl::StrCat("the proxy refused the tunnel (HTTP ", status, ")")};
    co_return absl::UnavailableError(absl::StrCat("proxy ", proxy.display, " refused CONNECT ",
                                                  authority, ": ", status, " ",
                                                  std::string(parser.get().reason())));
  }
  if (buffer.size() != 0) {
    // Bytes the TLS layer would never see: the tunnel is unusable.
    failure = {UpstreamErrorKind::kConnect, "the proxy connection failed"};
    co_return absl::UnavailableError(
        absl::StrCat("proxy ", proxy.display, " sent unexpected data after its CONNECT response"));
  }
  co_return absl::OkStatus();
}

}  // namespace

asio::awaitable<absl::StatusOr<std::unique_ptr<UpstreamConnection>>> UpstreamPool::Connect(
    const UpstreamTarget& target, UpstreamFailure& failure) {
  const std::string name = absl::StrCat(target.host, ":", target.port);
  if (target.tls && tls_ == nullptr) {
    failure = {UpstreamErrorKind::kTls, "TLS is not configured"};
    co_return absl::UnavailableError(absl::StrCat("TLS is not configured (", name, ")"));
  }
  const ProxyEndpoint* proxy = ProxyOf(target);
  // The connect timeout covers every step to a usable connection: DNS, TCP, CONNECT, TLS.
  const auto deadline = std::chrono::steady_clock::now() + options_.connect_timeout;
  // Not `cond ? co_await a : co_await b`: GCC 12 miscompiles co_await in a conditional
  // expression (the result is destroyed twice).
  const std::string& dial_host = proxy == nullptr ? target.host : proxy->host;
  const std::string& dial_port = proxy == nullptr ? target.port : proxy->port;
  auto endpoints = co_await Resolve(dial_host, dial_port, failure);
  if (!endpoints.ok()) {
    if (proxy == nullptr) co_return endpoints.status();
    if (failure.kind == UpstreamErrorKind::kConnect) failure.reason = "the proxy connection failed";
    co_return absl::Status(endpoints.status().code(),
                           absl::StrCat("proxy ", proxy->display, " (for ", name,
                                        "): ", std::string(endpoints.status().message())));
  }

  auto connection = std::make_unique<UpstreamConnection>(ioc_, target.tls ? tls_ : nullptr,
                                                         ConnectionKey(target));
  beast::tcp_stream& stream = connection->tcp();
  const std::string dialled = proxy == nullptr ? name : absl::StrCat("proxy ", proxy->display);
  stream.expires_at(deadline);
  auto [ec, endpoint] = co_await stream.async_connect(*endpoints, kUseTuple);
  if (ec) {
    if (ec == beast::error::timeout) {
      failure = {UpstreamErrorKind::kTimeout, "timed out"};
      co_return absl::DeadlineExceededError(absl::StrCat(
          "connecting to ", dialled, " timed out after ", options_.connect_timeout.count(), " ms"));
    }
    failure = {UpstreamErrorKind::kConnect,
               proxy == nullptr ? "connection failed" : "the proxy connection failed"};
    co_return absl::UnavailableError(absl::StrCat("connecting to ", dialled, ": ", ec.message()));
  }
  boost::system::error_code ignored;
  stream.socket().set_option(tcp::no_delay(true), ignored);

  // Plain http through a proxy needs no tunnel: requests go to the proxy in absolute form.
  if (proxy != nullptr && target.tls) {
    absl::Status tunnel = co_await OpenTunnel(stream, *proxy, target, deadline, failure);
    if (!tunnel.ok()) co_return tunnel;
  }

  if (target.tls) {
    auto& ssl = connection->ssl();
    SSL* native = ssl.native_handle();
    // The peer is verified against the real upstream host (never the proxy): SNI carries host
    // names only (RFC 6066), and OpenSSL checks the certificate's names or IP addresses.
    bool set_up = true;
    if (IsIpAddress(target.host)) {
      set_up = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(native), target.host.c_str()) == 1;
    } else {
      SSL_set_hostflags(native, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      set_up = SSL_set_tlsext_host_name(native, target.host.c_str()) == 1 &&
               SSL_set1_host(native, target.host.c_str()) == 1;
    }
    boost::system::error_code verify_ec;
    if (set_up) ssl.set_verify_mode(asio::ssl::verify_peer, verify_ec);
    if (!set_up || verify_ec) {
      failure = {UpstreamErrorKind::kTls, "TLS handshake failed"};
      co_return absl::UnavailableError(absl::StrCat("cannot set up TLS verification for ", name));
    }
    stream.expires_at(deadline);
    auto [hec] = co_await ssl.async_handshake(asio::ssl::stream_base::client, kUseTuple);
    if (hec) {
      const std::string via =
          proxy == nullptr ? "" : absl::StrCat(" (through proxy ", proxy->display, ")");
      if (hec == beast::error::timeout) {
        failure = {UpstreamErrorKind::kTimeout, "timed out"};
        co_return absl::DeadlineExceededError(
            absl::StrCat("TLS handshake with ", name, via, " timed out"));
      }
      if (const long verify = SSL_get_verify_result(native); verify != X509_V_OK) {
        failure = {UpstreamErrorKind::kTls, "TLS certificate verification failed"};
        co_return absl::UnavailableError(absl::StrCat("TLS certificate verification failed for ",
                                                      name, via, ": ",
                                                      X509_verify_cert_error_string(verify)));
      }
      failure = {UpstreamErrorKind::kTls, "TLS handshake failed"};
      co_return absl::UnavailableError(
          absl::StrCat("TLS handshake with ", name, via, " failed: ", hec.message()));
    }
  }
  co_return connection;
}

// ---------------------------------------------------------------------------------------------
// UpstreamExchange

UpstreamExchange::UpstreamExchange(UpstreamPool& pool) : pool_(pool) {}

UpstreamExchange::~UpstreamExchange() = default;

absl::Status UpstreamExchange::Fail(UpstreamErrorKind kind, absl::Status status,
                                    std::string reason) {
  failed_ = true;
  error_kind_ = kind;
  if (reason.empty()) {
    switch (kind) {
      case UpstreamErrorKind::kTimeout:
        reason = "timed out";
        break;
      case UpstreamErrorKind::kProtocol:
        reason = "the upstream response was malformed";
        break;
      case UpstreamErrorKind::kTooLarge:
        reason = "the upstream response was too large";
        break;
      default:
        reason = "connection failed";
    }
  }
  failure_reason_ = std::move(reason);
  return status;
}

unsigned UpstreamExchange::status() const { return parser_->get().result_int(); }

const UpstreamExchange::ResponseHeader& UpstreamExchange::header() const {
  return parser_->get().base();
}

asio::awaitable<absl::Status> UpstreamExchange::Start(const UpstreamTarget& target,
                                                      Request& request) {
  target_name_ = absl::StrCat(target.host, ":", target.port);
  const UpstreamOptions& options = pool_.options();
  // Plain http through HTTP_PROXY: absolute-form target and the proxy's credentials, for this
  // call only (the caller's request is restored on every way out).
  struct RestoreRequest {
    Request& request;
    std::string target;
    bool active = false;
    ~RestoreRequest() {
      if (!active) return;
      request.target(target);
      request.erase(http::field::proxy_authorization);
    }
  } restore{request, {}};
  if (const ProxyEndpoint* proxy = target.tls ? nullptr : pool_.ProxyOf(target)) {
    restore.target = std::string(request.target());
    restore.active = true;
    request.target(absl::StrCat("http://", target.host_header, restore.target));
    if (!proxy->authorization.empty()) {
      request.set(http::field::proxy_authorization, proxy->authorization);
    }
  }
  for (int round = 0;; ++round) {
    connection_.reset();
    parser_.reset();
    reused_ = false;
    if (round == 0) {
      connection_ = pool_.TakeIdle(target);
      reused_ = connection_ != nullptr;
    }
    if (connection_ == nullptr) {
      UpstreamFailure failure;
      auto connected = co_await pool_.Connect(target, failure);
      if (!connected.ok()) {
        co_return Fail(failure.kind, connected.status(), std::move(failure.reason));
      }
      connection_ = std::move(*connected);
    }

    UpstreamConnection& c = *connection_;
    c.tcp().expires_after(options.idle_timeout);
    auto [wec, written] = co_await c.Visit(
        [&](auto& stream) { return http::async_write(stream, request, kUseTuple); });
    if (wec) {
      if (reused_ && round == 0) continue;  // stale pooled connection: once more, fresh
      if (wec == beast::error::timeout) {
        co_return Fail(UpstreamErrorKind::kTimeout,
                       absl::DeadlineExceededError(
                           absl::StrCat("sending the request to ", target_name_, " timed out")));
      }
      co_return Fail(UpstreamErrorKind::kIo,
                     absl::UnavailableError(absl::StrCat("sending the request to ", target_name_,
                                                         ": ", wec.message())));
    }

    parser_.emplace();
    parser_->header_limit(kResponseHeaderLimit);
    parser_->body_limit(boost::none);  // callers bound what they keep
    c.tcp().expires_after(options.first_byte_timeout);
    auto [rec, read] = co_await c.Visit([&](auto& stream) {
      return http::async_read_header(stream, c.buffer(), *parser_, kUseTuple);
    });
    if (rec) {
      if (reused_ && round == 0 && ClosedBeforeResponse(rec)) continue;
      if (rec == beast::error::timeout) {
        co_return Fail(
            UpstreamErrorKind::kTimeout,
            absl::DeadlineExceededError(absl::StrCat("no response from ", target_name_, " within ",
                                                     options.first_byte_timeout.count(), " ms")));
      }
      if (IsHttpParseError(rec)) {
        co_return Fail(UpstreamErrorKind::kProtocol,
                       absl::InternalError(absl::StrCat("malformed response from ", target_name_,
                                                        ": ", rec.message())));
      }
      co_return Fail(UpstreamErrorKind::kIo,
                     absl::UnavailableError(absl::StrCat("reading the response from ", target_name_,
                                                         ": ", rec.message())));
    }
    co_return absl::OkStatus();
  }
}

asio::awaitable<absl::StatusOr<std::string_view>> UpstreamExchange::ReadSome() {
  if (failed_ || !parser_ || !connection_) {
    co_return absl::FailedPreconditionError("the upstream exchange is not readable");
  }
  if (parser_->is_done()) co_return std::string_view();
  if (chunk_.empty()) chunk_.resize(kReadChunkBytes);
  UpstreamConnection& c = *connection_;
  while (true) {
    auto& body = parser_->get().body();
    body.data = chunk_.data();
    body.size = chunk_.size();
    c.tcp().expires_after(pool_.options().idle_timeout);
    auto [ec, n] = co_await c.Visit([&](auto& stream) {
      return http::async_read_some(stream, c.buffer(), *parser_, kUseTuple);
    });
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      if (ec == beast::error::timeout) {
        co_return Fail(
            UpstreamErrorKind::kTimeout,
            absl::DeadlineExceededError(absl::StrCat("no data from ", target_name_, " for ",
                                                     pool_.options().idle_timeout.count(), " ms")));
      }
      const UpstreamErrorKind kind =
          IsHttpParseError(ec) ? UpstreamErrorKind::kProtocol : UpstreamErrorKind::kIo;
      co_return Fail(kind, absl::UnavailableError(absl::StrCat("reading the response from ",
                                                               target_name_, ": ", ec.message())));
    }
    // Beast stops after each chunk of a chunked body (each SSE event): parse the chunks already
    // received into the same piece, so one upstream read is one client write. Never waits for
    // the socket here (Beast's eager mode would, holding a slow stream's events back until a
    // complete next chunk arrives).
    while (chunk_.size() != body.size && body.size > 0 && c.buffer().size() > 0 &&
           !parser_->is_done()) {
      beast::error_code pec;
      const size_t used = parser_->put(c.buffer().data(), pec);
      c.buffer().consume(used);
      if (pec == http::error::need_more || pec == http::error::need_buffer) break;
      if (pec) {
        co_return Fail(UpstreamErrorKind::kProtocol,
                       absl::UnavailableError(absl::StrCat("reading the response from ",
                                                           target_name_, ": ", pec.message())));
      }
      if (used == 0) break;
    }
    const size_t got = chunk_.size() - body.size;
    if (got > 0) co_return std::string_view(chunk_.data(), got);
    if (parser_->is_done()) co_return std::string_view();
  }
}

asio::awaitable<absl::StatusOr<std::string>> UpstreamExchange::ReadAll(size_t limit) {
  std::string out;
  if (auto length = parser_ ? parser_->content_length() : boost::none; length && *length <= limit) {
    out.reserve(static_cast<size_t>(*length));
  }
  while (true) {
    auto piece = co_await ReadSome();
    if (!piece.ok()) co_return piece.status();
    if (piece->empty()) break;
    if (out.size() + piece->size() > limit) {
      co_return Fail(UpstreamErrorKind::kTooLarge,
                     absl::ResourceExhaustedError(absl::StrCat("the response from ", target_name_,
                                                               " exceeds ", limit, " bytes")));
    }
    out.append(piece->data(), piece->size());
  }
  co_return out;
}

void UpstreamExchange::Finish() {
  if (connection_ && !failed_ && parser_ && parser_->is_done() && parser_->get().keep_alive() &&
      connection_->buffer().size() == 0) {
    pool_.Release(std::move(connection_));
  }
  connection_.reset();
  failed_ = true;  // nothing more to read; header() stays valid
}

}  // namespace tollgate::gateway
