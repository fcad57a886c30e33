#include "services/gateway/upstream_client.h"

#include <sys/socket.h>

#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/as_tuple.hpp"
#include "boost/asio/ssl/error.hpp"
#include "boost/asio/ssl/host_name_verification.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/use_awaitable.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/core/tcp_stream.hpp"
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

}  // namespace

// A connection to one upstream: plain TCP or TLS over TCP.
class UpstreamConnection {
 public:
  UpstreamConnection(asio::io_context& ioc, asio::ssl::context* tls, std::string key)
      : key_(std::move(key)) {
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

std::unique_ptr<UpstreamConnection> UpstreamPool::TakeIdle(const UpstreamTarget& target) {
  auto it = idle_.find(target.pool_key);
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
    const UpstreamTarget& target, UpstreamErrorKind& kind) {
  const std::string key = absl::StrCat(target.host, ":", target.port);
  const auto now = std::chrono::steady_clock::now();
  if (auto it = dns_cache_.find(key); it != dns_cache_.end() && it->second.expires > now) {
    co_return it->second.results;
  }
  // Numeric hosts resolve without a lookup; names get a lookup bounded by the connect timeout.
  auto resolver = std::make_shared<tcp::resolver>(ioc_);
  const auto flags =
      IsIpAddress(target.host) ? tcp::resolver::numeric_host : tcp::resolver::flags();
  asio::steady_timer timer(ioc_);
  timer.expires_after(options_.connect_timeout);
  timer.async_wait([resolver](const boost::system::error_code& ec) {
    if (!ec) resolver->cancel();
  });
  auto [ec, results] = co_await resolver->async_resolve(
      target.host, target.port, flags | tcp::resolver::numeric_service, kUseTuple);
  const bool timed_out =
      ec == asio::error::operation_aborted && timer.expiry() <= std::chrono::steady_clock::now();
  timer.cancel();
  if (ec || results.empty()) {
    kind = timed_out ? UpstreamErrorKind::kTimeout : UpstreamErrorKind::kConnect;
    if (timed_out) {
      co_return absl::DeadlineExceededError(absl::StrCat("resolving ", target.host, " timed out"));
    }
    co_return absl::UnavailableError(
        absl::StrCat("cannot resolve ", target.host, ": ", ec ? ec.message() : "no addresses"));
  }
  if (dns_cache_.size() > 1024) dns_cache_.clear();  // bounded: deployments are few
  dns_cache_[key] = DnsEntry{results, now + kDnsTtl};
  co_return results;
}

asio::awaitable<absl::StatusOr<std::unique_ptr<UpstreamConnection>>> UpstreamPool::Connect(
    const UpstreamTarget& target, UpstreamErrorKind& kind) {
  const std::string name = absl::StrCat(target.host, ":", target.port);
  if (target.tls && tls_ == nullptr) {
    kind = UpstreamErrorKind::kTls;
    co_return absl::UnavailableError(absl::StrCat("TLS is not configured (", name, ")"));
  }
  auto endpoints = co_await Resolve(target, kind);
  if (!endpoints.ok()) co_return endpoints.status();

  auto connection =
      std::make_unique<UpstreamConnection>(ioc_, target.tls ? tls_ : nullptr, target.pool_key);
  beast::tcp_stream& stream = connection->tcp();
  stream.expires_after(options_.connect_timeout);
  auto [ec, endpoint] = co_await stream.async_connect(*endpoints, kUseTuple);
  if (ec) {
    if (ec == beast::error::timeout) {
      kind = UpstreamErrorKind::kTimeout;
      co_return absl::DeadlineExceededError(absl::StrCat(
          "connecting to ", name, " timed out after ", options_.connect_timeout.count(), " ms"));
    }
    kind = UpstreamErrorKind::kConnect;
    co_return absl::UnavailableError(absl::StrCat("connecting to ", name, ": ", ec.message()));
  }
  boost::system::error_code ignored;
  stream.socket().set_option(tcp::no_delay(true), ignored);

  if (target.tls) {
    auto& ssl = connection->ssl();
    // SNI carries host names only, never IP literals (RFC 6066).
    if (!IsIpAddress(target.host) &&
        SSL_set_tlsext_host_name(ssl.native_handle(), target.host.c_str()) != 1) {
      kind = UpstreamErrorKind::kTls;
      co_return absl::UnavailableError(absl::StrCat("cannot set SNI for ", target.host));
    }
    boost::system::error_code verify_ec;
    ssl.set_verify_mode(asio::ssl::verify_peer, verify_ec);
    if (!verify_ec) {
      ssl.set_verify_callback(asio::ssl::host_name_verification(target.host), verify_ec);
    }
    if (verify_ec) {
      kind = UpstreamErrorKind::kTls;
      co_return absl::UnavailableError(
          absl::StrCat("cannot set up TLS verification for ", name, ": ", verify_ec.message()));
    }
    stream.expires_after(options_.connect_timeout);
    auto [hec] = co_await ssl.async_handshake(asio::ssl::stream_base::client, kUseTuple);
    if (hec) {
      if (hec == beast::error::timeout) {
        kind = UpstreamErrorKind::kTimeout;
        co_return absl::DeadlineExceededError(
            absl::StrCat("TLS handshake with ", name, " timed out"));
      }
      kind = UpstreamErrorKind::kTls;
      co_return absl::UnavailableError(
          absl::StrCat("TLS handshake with ", name, " failed: ", hec.message()));
    }
  }
  co_return connection;
}

// ---------------------------------------------------------------------------------------------
// UpstreamExchange

UpstreamExchange::UpstreamExchange(UpstreamPool& pool) : pool_(pool) {}

UpstreamExchange::~UpstreamExchange() = default;

absl::Status UpstreamExchange::Fail(UpstreamErrorKind kind, absl::Status status) {
  failed_ = true;
  error_kind_ = kind;
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
  for (int round = 0;; ++round) {
    connection_.reset();
    parser_.reset();
    reused_ = false;
    if (round == 0) {
      connection_ = pool_.TakeIdle(target);
      reused_ = connection_ != nullptr;
    }
    if (connection_ == nullptr) {
      UpstreamErrorKind kind = UpstreamErrorKind::kNone;
      auto connected = co_await pool_.Connect(target, kind);
      if (!connected.ok()) co_return Fail(kind, connected.status());
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
