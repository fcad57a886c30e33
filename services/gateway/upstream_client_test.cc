#include "services/gateway/upstream_client.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "boost/asio/as_tuple.hpp"
#include "boost/asio/co_spawn.hpp"
#include "boost/asio/connect.hpp"
#include "boost/asio/detached.hpp"
#include "boost/asio/read_until.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/use_awaitable.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/core/tcp_stream.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl/ssl_stream.hpp"
#include "gtest/gtest.h"

namespace tollgate::gateway {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

TEST(ParseBaseUrl, Https) {
  auto t = ParseBaseUrl("https://api.openai.com/v1");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(t->tls);
  EXPECT_EQ(t->host, "api.openai.com");
  EXPECT_EQ(t->port, "443");
  EXPECT_EQ(t->base_path, "/v1");
  EXPECT_EQ(t->host_header, "api.openai.com");
  EXPECT_EQ(t->pool_key, "https://api.openai.com:443");
}

TEST(ParseBaseUrl, PlainWithPortAndTrailingSlash) {
  auto t = ParseBaseUrl("http://127.0.0.1:9090/v1/");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_FALSE(t->tls);
  EXPECT_EQ(t->host, "127.0.0.1");
  EXPECT_EQ(t->port, "9090");
  EXPECT_EQ(t->base_path, "/v1");
  EXPECT_EQ(t->host_header, "127.0.0.1:9090");
  EXPECT_EQ(t->pool_key, "http://127.0.0.1:9090");

  t = ParseBaseUrl("HTTP://localhost:80");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->base_path, "");
  EXPECT_EQ(t->host_header, "localhost") << "default ports are not repeated in Host";
}

TEST(ParseBaseUrl, Ipv6) {
  auto t = ParseBaseUrl("http://[::1]:8000/openai/v1");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->host, "::1");
  EXPECT_EQ(t->host_header, "[::1]:8000");
  EXPECT_EQ(t->base_path, "/openai/v1");
}

TEST(ParseBaseUrl, Rejects) {
  for (const char* bad :
       {"", "not a url", "ftp://host/v1", "https://user:pw@host/v1", "https://host/v1?x=1",
        "https://host/v1#f", "http:///v1", "http://host:0/v1", "http://host:99999/v1"}) {
    auto t = ParseBaseUrl(bad);
    EXPECT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(UpstreamErrorKindName, Names) {
  EXPECT_EQ(UpstreamErrorKindName(UpstreamErrorKind::kConnect), "connect");
  EXPECT_EQ(UpstreamErrorKindName(UpstreamErrorKind::kTimeout), "timeout");
  EXPECT_EQ(UpstreamErrorKindName(UpstreamErrorKind::kTls), "tls");
}

// ---------------------------------------------------------------------------------------------
// Proxy configuration

using Env = std::map<std::string, std::string>;

absl::StatusOr<ProxyConfig> ParseEnv(const Env& env) {
  return ParseProxyConfig([&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST(ParseProxyConfig, NothingSet) {
  auto config = ParseEnv({});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->enabled());
  EXPECT_FALSE(config->no_proxy_all);
  EXPECT_TRUE(config->no_proxy.empty());
}

TEST(ParseProxyConfig, CredentialsBecomeBasicAuthAndStayOutOfDisplay) {
  auto config = ParseEnv({{"HTTPS_PROXY", "http://alice:p%40ss:w@Proxy.Corp:3128/"}});
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(config->https.has_value());
  EXPECT_FALSE(config->http.has_value()) << "HTTPS_PROXY does not apply to http upstreams";
  EXPECT_EQ(config->https->host, "proxy.corp");
  EXPECT_EQ(config->https->port, "3128");
  // base64("alice:p@ss:w"): the password is percent-decoded and may contain ':'.
  EXPECT_EQ(config->https->authorization, "Basic YWxpY2U6cEBzczp3");
  EXPECT_EQ(config->https->display, "http://proxy.corp:3128");
}

TEST(ParseProxyConfig, FormsAndDefaults) {
  auto config = ParseEnv({{"HTTPS_PROXY", "proxy.local:8080"},
                          {"HTTP_PROXY", "http://[::1]"},
                          {"https_proxy", ""}});  // empty counts as unset
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(config->https.has_value());
  EXPECT_EQ(config->https->host, "proxy.local");
  EXPECT_EQ(config->https->port, "8080");
  EXPECT_EQ(config->https->authorization, "");
  ASSERT_TRUE(config->http.has_value());
  EXPECT_EQ(config->http->host, "::1");
  EXPECT_EQ(config->http->port, "80");
  EXPECT_EQ(config->http->display, "http://[::1]:80");
}

TEST(ParseProxyConfig, LowerCaseWins) {
  auto config = ParseEnv({{"HTTPS_PROXY", "http://upper:1"},
                          {"https_proxy", "http://lower:2"},
                          {"HTTP_PROXY", "http://upper:3"},
                          {"http_proxy", "http://lower:4"},
                          {"NO_PROXY", "upper.example"},
                          {"no_proxy", "lower.example"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->https->display, "http://lower:2");
  EXPECT_EQ(config->http->display, "http://lower:4");
  EXPECT_TRUE(NoProxyMatches(*config, "lower.example", "443"));
  EXPECT_FALSE(NoProxyMatches(*config, "upper.example", "443"));
}

TEST(ParseProxyConfig, RejectsWithoutEchoingSecrets) {
  for (const char* bad :
       {"https://bob:s3cret@proxy:443", "socks5://bob:s3cret@proxy:1080", "http://bob:s3cret@:8080",
        "http://bob:s3cret@proxy:0", "http://bob:s3cret@proxy:99999",
        "http://bob:s3cret@proxy:port", "http://bob:s3cret@[::1"}) {
    auto config = ParseEnv({{"HTTPS_PROXY", bad}});
    ASSERT_FALSE(config.ok()) << bad;
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    const std::string message(config.status().message());
    EXPECT_NE(message.find("HTTPS_PROXY"), std::string::npos) << message;
    EXPECT_EQ(message.find("s3cret"), std::string::npos) << message;
  }
  auto config = ParseEnv({{"http_proxy", "https://proxy:443"}});
  ASSERT_FALSE(config.ok());
  EXPECT_NE(std::string(config.status().message()).find("http_proxy"), std::string::npos)
      << "names the variable that was actually read";
}

TEST(ParseProxyConfig, RejectsBadNoProxyEntries) {
  for (const char* bad : {"10.0.0.0/33", "host:99999", "[::1", "[::1]x", "host:"}) {
    auto config = ParseEnv({{"NO_PROXY", bad}});
    EXPECT_FALSE(config.ok()) << bad;
  }
}

// ---------------------------------------------------------------------------------------------
// NO_PROXY matching

TEST(NoProxyMatches, HostsSuffixesPortsAndAddresses) {
  auto config = ParseEnv({{"NO_PROXY",
                           "localhost, .example.com,internal.corp *.svc.local,10.0.0.0/8,"
                           "[::1]:8080,192.168.1.5,api.foo:8443,FD00::/8,Upper.Case."}});
  ASSERT_TRUE(config.ok()) << config.status();
  struct Case {
    const char* host;
    const char* port;
    bool direct;
  };
  for (const Case& c : std::vector<Case>{
           {"localhost", "443", true},
           {"LOCALHOST", "80", true},
           {"localhost.", "443", true},
           {"example.com", "443", true},  // ".example.com" also covers the domain itself
           {"api.example.com", "443", true},
           {"a.b.example.com", "443", true},
           {"notexample.com", "443", false},
           {"example.com.evil.net", "443", false},
           {"internal.corp", "443", true},
           {"x.internal.corp", "443", true},
           {"svc.local", "443", true},
           {"a.svc.local", "443", true},
           {"10.1.2.3", "443", true},
           {"11.0.0.1", "443", false},
           {"::1", "8080", true},
           {"::1", "8081", false},
           {"0:0::1", "8080", true},  // addresses compare as addresses
           {"192.168.1.5", "443", true},
           {"192.168.1.50", "443", false},
           {"api.foo", "8443", true},
           {"api.foo", "443", false},
           {"fd00::1", "443", true},
           {"fe80::1", "443", false},
           {"upper.case", "443", true},
           {"127.0.0.1", "443", false},  // loopback is not excluded implicitly
           {"api.openai.com", "443", false},
       }) {
    EXPECT_EQ(NoProxyMatches(*config, c.host, c.port), c.direct) << c.host << ":" << c.port;
  }
  EXPECT_EQ(NoProxyToString(*config),
            "localhost,example.com,internal.corp,svc.local,10.0.0.0/8,[::1]:8080,192.168.1.5,"
            "api.foo:8443,fd00::/8,upper.case");
}

TEST(NoProxyMatches, AddressesNeverSuffixMatch) {
  auto config = ParseEnv({{"NO_PROXY", "0.1,1"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(NoProxyMatches(*config, "127.0.0.1", "443"));
  EXPECT_FALSE(NoProxyMatches(*config, "10.0.0.1", "443"));
}

TEST(NoProxyMatches, Star) {
  auto config = ParseEnv({{"no_proxy", "*"}, {"https_proxy", "http://proxy:3128"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(NoProxyMatches(*config, "anything.example", "443"));
  auto target = ParseBaseUrl("https://api.openai.com/v1");
  ASSERT_TRUE(target.ok());
  EXPECT_EQ(ProxyFor(*config, *target), nullptr);
}

TEST(ProxyFor, PicksTheSchemesProxyUnlessExcluded) {
  auto config = ParseEnv({{"HTTPS_PROXY", "http://tls-proxy:3128"},
                          {"HTTP_PROXY", "http://plain-proxy:3128"},
                          {"NO_PROXY", "internal.corp"}});
  ASSERT_TRUE(config.ok()) << config.status();
  auto https = ParseBaseUrl("https://api.openai.com/v1");
  auto http = ParseBaseUrl("http://vllm.example:8000/v1");
  auto internal = ParseBaseUrl("https://llm.internal.corp/v1");
  ASSERT_TRUE(https.ok() && http.ok() && internal.ok());
  ASSERT_NE(ProxyFor(*config, *https), nullptr);
  EXPECT_EQ(ProxyFor(*config, *https)->host, "tls-proxy");
  ASSERT_NE(ProxyFor(*config, *http), nullptr);
  EXPECT_EQ(ProxyFor(*config, *http)->host, "plain-proxy");
  EXPECT_EQ(ProxyFor(*config, *internal), nullptr);

  auto only_http = ParseEnv({{"HTTP_PROXY", "http://plain-proxy:3128"}});
  ASSERT_TRUE(only_http.ok());
  EXPECT_EQ(ProxyFor(*only_http, *https), nullptr) << "https upstreams use HTTPS_PROXY only";
}

TEST(UpstreamPool, TunnelledAndDirectConnectionsHaveDistinctKeys) {
  asio::io_context ioc;
  UpstreamOptions proxied;
  auto config =
      ParseEnv({{"HTTPS_PROXY", "http://user:hunter2@proxy:3128"}, {"NO_PROXY", "direct.example"}});
  ASSERT_TRUE(config.ok());
  proxied.proxy = *config;
  UpstreamPool pool(ioc, nullptr, proxied);
  auto via = ParseBaseUrl("https://api.openai.com/v1");
  auto direct = ParseBaseUrl("https://direct.example/v1");
  ASSERT_TRUE(via.ok() && direct.ok());
  EXPECT_EQ(pool.ConnectionKey(*via), "https://api.openai.com:443 via http://proxy:3128");
  EXPECT_EQ(pool.ConnectionKey(*direct), "https://direct.example:443");
  UpstreamPool plain(ioc, nullptr, UpstreamOptions());
  EXPECT_EQ(plain.ConnectionKey(*via), "https://api.openai.com:443");
}

// ---------------------------------------------------------------------------------------------
// Loopback: a TLS origin, an in-test CONNECT proxy, and the client, all on one io_context.

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// ---------------------------------------------------------------------------------------------
// Streamed bodies: every chunk already received comes out in one piece, and a piece never waits
// for bytes the upstream has not sent yet.

std::string Chunk(std::string_view data) {
  return absl::StrCat(absl::Hex(data.size()), "\r\n", std::string(data), "\r\n");
}

TEST(UpstreamExchangeStream, ReadSomeCoalescesReceivedChunksAndNeverWaitsForMore) {
  asio::io_context ioc;
  tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const int port = acceptor.local_endpoint().port();
  // The origin sends two events, then holds the third until the client has read the first
  // piece (or 5 s pass: a client waiting for more would then see all three in one piece).
  asio::steady_timer gate(ioc);
  gate.expires_after(std::chrono::seconds(5));
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
        std::string request;
        co_await asio::async_read_until(socket, asio::dynamic_buffer(request), "{}", kTuple);
        co_await asio::async_write(
            socket,
            asio::buffer(absl::StrCat("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                                      "transfer-encoding: chunked\r\n\r\n",
                                      Chunk("data: a\n\n"), Chunk("data: b\n\n"))),
            kTuple);
        co_await gate.async_wait(kTuple);
        co_await asio::async_write(
            socket, asio::buffer(absl::StrCat(Chunk("data: c\n\n"), "0\r\n\r\n")), kTuple);
      },
      asio::detached);

  auto target = ParseBaseUrl(absl::StrCat("http://127.0.0.1:", port, "/v1"));
  ASSERT_TRUE(target.ok());
  UpstreamOptions options;
  options.idle_timeout = std::chrono::seconds(10);
  UpstreamPool pool(ioc, nullptr, options);
  std::vector<std::string> pieces;
  absl::Status status;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        UpstreamExchange::Request request(http::verb::post, target->base_path + "/chat", 11);
        request.set(http::field::host, target->host_header);
        request.body() = "{}";
        request.prepare_payload();
        UpstreamExchange exchange(pool);
        status = co_await exchange.Start(*target, request);
        if (!status.ok()) co_return;
        for (;;) {
          absl::StatusOr<std::string_view> piece = co_await exchange.ReadSome();
          if (!piece.ok()) {
            status = piece.status();
            co_return;
          }
          if (piece->empty()) break;
          pieces.emplace_back(*piece);
          gate.cancel();
        }
        exchange.Finish();
      },
      [&](std::exception_ptr) { ioc.stop(); });
  ioc.run();
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[0], "data: a\n\ndata: b\n\n") << "both received chunks in one piece";
  EXPECT_EQ(pieces[1], "data: c\n\n");
}

struct TestCert {
  std::string cert_pem;
  std::string key_pem;
};

std::string BioToString(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(size));
}

// A self-signed certificate (its own trust anchor) with the given subject alternative names.
TestCert MakeSelfSigned(const std::string& common_name, const std::string& san) {
  static long serial = 1;
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x509 = X509_new();
  X509_set_version(x509, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x509), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x509), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x509), 24 * 3600);
  X509_set_pubkey(x509, key);
  X509_NAME* name = X509_get_subject_name(x509);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(x509, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x509, x509, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
  X509_add_ext(x509, ext, -1);
  X509_EXTENSION_free(ext);
  X509_sign(x509, key, EVP_sha256());
  TestCert out;
  BIO* cert_bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(cert_bio, x509);
  out.cert_pem = BioToString(cert_bio);
  BIO_free(cert_bio);
  BIO* key_bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(key_bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  out.key_pem = BioToString(key_bio);
  BIO_free(key_bio);
  X509_free(x509);
  EVP_PKEY_free(key);
  return out;
}

struct OriginState {
  struct Seen {
    std::string target, host, proxy_authorization;
  };
  std::vector<Seen> requests;
  int connections = 0;
  int failed_handshakes = 0;
};

struct ProxyState {
  std::vector<std::string> request_lines;  // "CONNECT localhost:1234", "POST http://..."
  std::vector<std::string> authorizations;
  unsigned connect_status = 200;
};

asio::awaitable<void> Pump(std::shared_ptr<tcp::socket> from, std::shared_ptr<tcp::socket> to) {
  std::array<char, 16384> data;
  while (true) {
    auto [ec, n] = co_await from->async_read_some(asio::buffer(data), kTuple);
    if (ec) break;
    auto [wec, written] = co_await asio::async_write(*to, asio::buffer(data.data(), n), kTuple);
    if (wec) break;
  }
  boost::system::error_code ignored;
  to->shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> ServeProxyConnection(tcp::socket socket, ProxyState& state) {
  auto client = std::make_shared<tcp::socket>(std::move(socket));
  beast::flat_buffer buffer;
  while (true) {
    http::request<http::string_body> request;
    auto [ec, n] = co_await http::async_read(*client, buffer, request, kTuple);
    if (ec) co_return;
    state.request_lines.push_back(
        absl::StrCat(std::string(request.method_string()), " ", std::string(request.target())));
    state.authorizations.push_back(std::string(request[http::field::proxy_authorization]));
    if (request.method() != http::verb::connect) {
      // Absolute-form request: the proxy answers as the origin would.
      http::response<http::string_body> response(http::status::ok, 11);
      response.body() = "answered by the proxy";
      response.keep_alive(request.keep_alive());
      response.prepare_payload();
      auto [wec, written] = co_await http::async_write(*client, response, kTuple);
      if (wec) co_return;
      continue;
    }
    if (state.connect_status != 200) {
      const std::string refusal =
          absl::StrCat("HTTP/1.1 ", state.connect_status,
                       " Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\n"
                       "Content-Length: 0\r\n\r\n");
      co_await asio::async_write(*client, asio::buffer(refusal), kTuple);
      co_return;
    }
    const std::string authority(request.target());
    const size_t colon = authority.rfind(':');
    tcp::resolver resolver(client->get_executor());
    auto [rec, endpoints] = co_await resolver.async_resolve(authority.substr(0, colon),
                                                            authority.substr(colon + 1), kTuple);
    if (rec) co_return;
    auto upstream = std::make_shared<tcp::socket>(client->get_executor());
    auto [cec, endpoint] = co_await asio::async_connect(*upstream, endpoints, kTuple);
    if (cec) co_return;
    static constexpr std::string_view kEstablished = "HTTP/1.1 200 Connection established\r\n\r\n";
    co_await asio::async_write(*client, asio::buffer(kEstablished), kTuple);
    auto executor = client->get_executor();
    asio::co_spawn(executor, Pump(client, upstream), asio::detached);
    asio::co_spawn(executor, Pump(upstream, client), asio::detached);
    co_return;
  }
}

asio::awaitable<void> ServeOriginConnection(tcp::socket socket, asio::ssl::context& tls,
                                            OriginState& state) {
  ++state.connections;
  beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), tls);
  auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kTuple);
  if (hec) {
    ++state.failed_handshakes;
    co_return;
  }
  beast::flat_buffer buffer;
  while (true) {
    http::request<http::string_body> request;
    auto [ec, n] = co_await http::async_read(stream, buffer, request, kTuple);
    if (ec) co_return;
    state.requests.push_back({std::string(request.target()),
                              std::string(request[http::field::host]),
                              std::string(request[http::field::proxy_authorization])});
    http::response<http::string_body> response(http::status::ok, 11);
    response.body() = "hello over tls";
    response.keep_alive(request.keep_alive());
    response.prepare_payload();
    auto [wec, written] = co_await http::async_write(stream, response, kTuple);
    if (wec) co_return;
  }
}

template <typename Serve>
asio::awaitable<void> AcceptLoop(tcp::acceptor& acceptor, Serve serve) {
  while (true) {
    auto [ec, socket] = co_await acceptor.async_accept(kTuple);
    if (ec) co_return;
    asio::co_spawn(acceptor.get_executor(), serve(std::move(socket)), asio::detached);
  }
}

struct ExchangeResult {
  absl::Status status;
  unsigned http_status = 0;
  std::string body;
  bool reused = false;
  UpstreamErrorKind kind = UpstreamErrorKind::kNone;
  std::string reason;
  std::string target_after;  // the request's target once Start returned
  bool proxy_authorization_after = false;
};

asio::awaitable<ExchangeResult> DoExchange(UpstreamPool& pool, const UpstreamTarget& target) {
  UpstreamExchange::Request request(http::verb::post, target.base_path + "/chat", 11);
  request.set(http::field::host, target.host_header);
  request.keep_alive(true);
  request.body() = "{}";
  request.prepare_payload();
  UpstreamExchange exchange(pool);
  ExchangeResult result;
  result.status = co_await exchange.Start(target, request);
  result.target_after = std::string(request.target());
  result.proxy_authorization_after = request.count(http::field::proxy_authorization) != 0;
  result.kind = exchange.error_kind();
  result.reason = exchange.failure_reason();
  if (!result.status.ok()) co_return result;
  result.http_status = exchange.status();
  result.reused = exchange.reused();
  auto body = co_await exchange.ReadAll(1 << 20);
  if (!body.ok()) {
    result.status = body.status();
    co_return result;
  }
  result.body = *body;
  exchange.Finish();
  co_return result;
}

class ProxyLoopbackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_tls_.use_certificate_chain(asio::buffer(cert_.cert_pem));
    server_tls_.use_private_key(asio::buffer(cert_.key_pem), asio::ssl::context::pem);
    trusting_tls_.add_certificate_authority(asio::buffer(cert_.cert_pem));
    trusting_tls_.set_verify_mode(asio::ssl::verify_peer);
    other_tls_.add_certificate_authority(asio::buffer(other_.cert_pem));
    other_tls_.set_verify_mode(asio::ssl::verify_peer);
    unrelated_server_tls_.use_certificate_chain(asio::buffer(other_.cert_pem));
    unrelated_server_tls_.use_private_key(asio::buffer(other_.key_pem), asio::ssl::context::pem);
    origin_port_ = Listen(origin_acceptor_);
    unrelated_port_ = Listen(unrelated_acceptor_);
    proxy_port_ = Listen(proxy_acceptor_);
    asio::co_spawn(ioc_,
                   AcceptLoop(unrelated_acceptor_,
                              [this](tcp::socket s) {
                                return ServeOriginConnection(std::move(s), unrelated_server_tls_,
                                                             unrelated_);
                              }),
                   asio::detached);
    asio::co_spawn(ioc_,
                   AcceptLoop(origin_acceptor_,
                              [this](tcp::socket s) {
                                return ServeOriginConnection(std::move(s), server_tls_, origin_);
                              }),
                   asio::detached);
    asio::co_spawn(
        ioc_,
        AcceptLoop(proxy_acceptor_,
                   [this](tcp::socket s) { return ServeProxyConnection(std::move(s), proxy_); }),
        asio::detached);
  }

  static int Listen(tcp::acceptor& acceptor) {
    const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
    acceptor.open(endpoint.protocol());
    acceptor.bind(endpoint);
    acceptor.listen();
    return acceptor.local_endpoint().port();
  }

  UpstreamOptions Options(const Env& env) {
    UpstreamOptions options;
    auto config = ParseEnv(env);
    EXPECT_TRUE(config.ok()) << config.status();
    if (config.ok()) options.proxy = *config;
    options.connect_timeout = std::chrono::seconds(10);
    options.first_byte_timeout = std::chrono::seconds(10);
    options.idle_timeout = std::chrono::seconds(10);
    return options;
  }

  std::string ProxyUrl(const std::string& userinfo = "") const {
    return absl::StrCat("http://", userinfo, "127.0.0.1:", proxy_port_);
  }

  // Runs `body` on the test's io_context (servers included) until it completes.
  void Run(std::function<asio::awaitable<void>()> body) {
    std::exception_ptr error;
    bool done = false;
    asio::co_spawn(ioc_, body(), [&](std::exception_ptr e) {
      error = e;
      done = true;
      ioc_.stop();
    });
    ioc_.run();
    ioc_.restart();
    ASSERT_TRUE(done);
    if (error) std::rethrow_exception(error);
  }

  // Destroyed after the io_context, whose pending server coroutines refer to them.
  TestCert cert_ = MakeSelfSigned("localhost", "DNS:localhost,IP:127.0.0.1");
  TestCert other_ = MakeSelfSigned("unrelated.test", "DNS:unrelated.test");
  asio::ssl::context server_tls_{asio::ssl::context::tls_server};
  asio::ssl::context trusting_tls_{asio::ssl::context::tls_client};
  asio::ssl::context other_tls_{asio::ssl::context::tls_client};
  asio::ssl::context unrelated_server_tls_{asio::ssl::context::tls_server};
  OriginState origin_;
  OriginState unrelated_;
  ProxyState proxy_;
  asio::io_context ioc_;
  tcp::acceptor origin_acceptor_{ioc_};
  tcp::acceptor proxy_acceptor_{ioc_};
  tcp::acceptor unrelated_acceptor_{ioc_};
  int origin_port_ = 0;
  int unrelated_port_ = 0;
  int proxy_port_ = 0;
};

TEST_F(ProxyLoopbackTest, HttpsThroughConnectTunnelVerifiesTheRealHost) {
  auto target = ParseBaseUrl(absl::StrCat("https://localhost:", origin_port_, "/v1"));
  ASSERT_TRUE(target.ok());
  UpstreamPool pool(ioc_, &trusting_tls_, Options({{"HTTPS_PROXY", ProxyUrl("user:secret@")}}));
  ExchangeResult first, second;
  Run([&]() -> asio::awaitable<void> {
    first = co_await DoExchange(pool, *target);
    second = co_await DoExchange(pool, *target);
  });
  ASSERT_TRUE(first.status.ok()) << first.status;
  EXPECT_EQ(first.http_status, 200u);
  EXPECT_EQ(first.body, "hello over tls");
  EXPECT_FALSE(first.reused);
  ASSERT_TRUE(second.status.ok()) << second.status;
  EXPECT_TRUE(second.reused) << "the tunnelled TLS connection is pooled and reused";
  EXPECT_EQ(pool.idle_connections(), 1u);

  ASSERT_EQ(proxy_.request_lines.size(), 1u);
  EXPECT_EQ(proxy_.request_lines[0], absl::StrCat("CONNECT localhost:", origin_port_));
  EXPECT_EQ(proxy_.authorizations[0], "Basic dXNlcjpzZWNyZXQ=");  // user:secret
  ASSERT_EQ(origin_.requests.size(), 2u);
  EXPECT_EQ(origin_.requests[0].target, "/v1/chat") << "origin form inside the tunnel";
  EXPECT_EQ(origin_.requests[0].host, absl::StrCat("localhost:", origin_port_));
  EXPECT_EQ(origin_.requests[0].proxy_authorization, "")
      << "the proxy's credentials never reach the upstream";
  EXPECT_EQ(origin_.connections, 1);
}

TEST_F(ProxyLoopbackTest, RefusedConnectIsAConnectErrorWithTheProxyStatus) {
  proxy_.connect_status = 407;
  auto target = ParseBaseUrl(absl::StrCat("https://localhost:", origin_port_, "/v1"));
  ASSERT_TRUE(target.ok());
  UpstreamPool pool(ioc_, &trusting_tls_, Options({{"HTTPS_PROXY", ProxyUrl("user:secret@")}}));
  ExchangeResult result;
  Run([&]() -> asio::awaitable<void> { result = co_await DoExchange(pool, *target); });
  ASSERT_FALSE(result.status.ok());
  EXPECT_EQ(result.kind, UpstreamErrorKind::kConnect);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kUnavailable);
  const std::string message(result.status.message());
  EXPECT_NE(message.find("407"), std::string::npos) << message;
  EXPECT_NE(message.find(ProxyUrl()), std::string::npos) << message;
  EXPECT_EQ(message.find("secret"), std::string::npos) << message;
  EXPECT_EQ(message.find("dXNlcjpzZWNyZXQ="), std::string::npos) << message;
  EXPECT_EQ(result.reason, "the proxy refused the tunnel (HTTP 407)");
  EXPECT_EQ(origin_.connections, 0);
}

TEST_F(ProxyLoopbackTest, UntrustedCertificateThroughTheTunnelFailsVerification) {
  auto target = ParseBaseUrl(absl::StrCat("https://localhost:", origin_port_, "/v1"));
  ASSERT_TRUE(target.ok());
  UpstreamPool pool(ioc_, &other_tls_, Options({{"HTTPS_PROXY", ProxyUrl()}}));
  ExchangeResult result;
  Run([&]() -> asio::awaitable<void> { result = co_await DoExchange(pool, *target); });
  ASSERT_FALSE(result.status.ok());
  EXPECT_EQ(result.kind, UpstreamErrorKind::kTls);
  const std::string message(result.status.message());
  EXPECT_NE(message.find("certificate verification failed"), std::string::npos) << message;
  EXPECT_NE(message.find("through proxy"), std::string::npos) << message;
  EXPECT_EQ(result.reason, "TLS certificate verification failed");
  ASSERT_EQ(proxy_.request_lines.size(), 1u);
  EXPECT_TRUE(origin_.requests.empty());
}

TEST_F(ProxyLoopbackTest, DirectTlsChecksTheHostNameOrAddress) {
  UpstreamPool pool(ioc_, &trusting_tls_, Options({}));
  auto by_ip = ParseBaseUrl(absl::StrCat("https://127.0.0.1:", origin_port_, "/v1"));
  ASSERT_TRUE(by_ip.ok());
  // A trusted certificate for another name than the one dialled.
  UpstreamPool other_pool(ioc_, &other_tls_, Options({}));
  auto mismatch = ParseBaseUrl(absl::StrCat("https://localhost:", unrelated_port_, "/v1"));
  ASSERT_TRUE(mismatch.ok());
  ExchangeResult ok_result, mismatch_result;
  Run([&]() -> asio::awaitable<void> {
    ok_result = co_await DoExchange(pool, *by_ip);  // matches the IP:127.0.0.1 SAN
    mismatch_result = co_await DoExchange(other_pool, *mismatch);
  });
  ASSERT_TRUE(ok_result.status.ok()) << ok_result.status;
  EXPECT_EQ(ok_result.http_status, 200u);
  ASSERT_FALSE(mismatch_result.status.ok());
  EXPECT_EQ(mismatch_result.kind, UpstreamErrorKind::kTls);
  EXPECT_EQ(mismatch_result.reason, "TLS certificate verification failed");
  EXPECT_NE(std::string(mismatch_result.status.message()).find("mismatch"), std::string::npos)
      << mismatch_result.status;
  EXPECT_TRUE(proxy_.request_lines.empty());
}

TEST_F(ProxyLoopbackTest, NoProxyGoesDirect) {
  auto target = ParseBaseUrl(absl::StrCat("https://localhost:", origin_port_, "/v1"));
  ASSERT_TRUE(target.ok());
  UpstreamPool pool(ioc_, &trusting_tls_,
                    Options({{"HTTPS_PROXY", ProxyUrl()}, {"NO_PROXY", "example.com,localhost"}}));
  EXPECT_EQ(pool.ConnectionKey(*target), target->pool_key);
  ExchangeResult result;
  Run([&]() -> asio::awaitable<void> { result = co_await DoExchange(pool, *target); });
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.http_status, 200u);
  EXPECT_TRUE(proxy_.request_lines.empty());
  EXPECT_EQ(origin_.requests.size(), 1u);
}

TEST_F(ProxyLoopbackTest, PlainHttpGoesToTheProxyInAbsoluteForm) {
  // Never resolved by the gateway: the proxy resolves (here: answers) for it.
  auto target = ParseBaseUrl("http://upstream.invalid:8080/v1");
  ASSERT_TRUE(target.ok());
  UpstreamPool pool(ioc_, nullptr, Options({{"HTTP_PROXY", ProxyUrl("bob:pw@")}}));
  ExchangeResult first, second;
  Run([&]() -> asio::awaitable<void> {
    first = co_await DoExchange(pool, *target);
    second = co_await DoExchange(pool, *target);
  });
  ASSERT_TRUE(first.status.ok()) << first.status;
  EXPECT_EQ(first.body, "answered by the proxy");
  EXPECT_EQ(first.target_after, "/v1/chat") << "the caller's request is restored";
  EXPECT_FALSE(first.proxy_authorization_after);
  ASSERT_TRUE(second.status.ok()) << second.status;
  EXPECT_TRUE(second.reused);
  ASSERT_EQ(proxy_.request_lines.size(), 2u);
  EXPECT_EQ(proxy_.request_lines[0], "POST http://upstream.invalid:8080/v1/chat");
  EXPECT_EQ(proxy_.authorizations[0], "Basic Ym9iOnB3");  // bob:pw
}

TEST_F(ProxyLoopbackTest, UnreachableProxyIsAConnectError) {
  tcp::acceptor closed(ioc_);
  const int dead_port = Listen(closed);
  closed.close();  // nothing listens there any more: connection refused
  auto target = ParseBaseUrl(absl::StrCat("https://localhost:", origin_port_, "/v1"));
  ASSERT_TRUE(target.ok());
  UpstreamPool pool(ioc_, &trusting_tls_,
                    Options({{"HTTPS_PROXY", absl::StrCat("http://127.0.0.1:", dead_port)}}));
  ExchangeResult result;
  Run([&]() -> asio::awaitable<void> { result = co_await DoExchange(pool, *target); });
  ASSERT_FALSE(result.status.ok());
  EXPECT_EQ(result.kind, UpstreamErrorKind::kConnect);
  EXPECT_EQ(result.reason, "the proxy connection failed");
  EXPECT_NE(std::string(result.status.message()).find("proxy http://127.0.0.1:"), std::string::npos)
      << result.status;
  EXPECT_EQ(origin_.connections, 0);
}

}  // namespace
}  // namespace tollgate::gateway
