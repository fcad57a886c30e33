// Upstream TLS and HTTPS_PROXY end to end (issue 3, items 5 and 7): the mock provider serves
// HTTPS with a certificate from a throw-away CA made here with the openssl CLI, and real gateway
// processes reach it
//   (a) trusting that CA (--upstream_ca_file): 200, non-stream and stream, usage in the ledger;
//   (b) trusting only an unrelated CA: 502, certificate verification failure, no secret leaked;
//   (c) through an in-test HTTP CONNECT proxy (HTTPS_PROXY with credentials): 200, the proxy
//       saw CONNECT localhost:<port>; with NO_PROXY=localhost the proxy is bypassed.

#include <boost/json.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/as_tuple.hpp"
#include "boost/asio/co_spawn.hpp"
#include "boost/asio/connect.hpp"
#include "boost/asio/detached.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/use_awaitable.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/http.hpp"
#include "gtest/gtest.h"
#include "tests/testing/http_client.h"
#include "tests/testing/process.h"
#include "tests/testing/certs.h"
#include "tests/testing/suite.h"

namespace tollgate::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

constexpr const char* kProviderKey = "sk-tls-test-provider-secret";
constexpr const char* kProxyUser = "proxyuser";
constexpr const char* kProxyPassword = "proxy-pa55word";

// One mock-backed deployment over HTTPS, addressed by name so SNI and host-name verification
// are exercised (the certificate names DNS:localhost and IP:127.0.0.1).
constexpr const char* kCatalog = R"yaml(
providers:
  - name: tls-mock
    dialect: openai
    base_url: https://localhost:$MOCK/v1
    api_key_env: TLS_TEST_PROVIDER_KEY
deployments:
  - id: tls-gpt-4o-mini
    provider: tls-mock
    upstream_model: gpt-4o-mini
    region: local
    prices: {input: "0.15", cached_input: "0.075", output: "0.60"}
    capabilities: [chat, stream, tools, json]
models:
  - name: gpt-4o-mini
    owned_by: openai
    deployments: [tls-gpt-4o-mini]
)yaml";

// Environment of every gateway here: the provider key, and no proxy inherited from the machine
// running the test (an empty value counts as unset).
std::map<std::string, std::string> BaseGatewayEnv() {
  return {{"TLS_TEST_PROVIDER_KEY", kProviderKey},
          {"HTTPS_PROXY", ""},
          {"https_proxy", ""},
          {"HTTP_PROXY", ""},
          {"http_proxy", ""},
          {"NO_PROXY", ""},
          {"no_proxy", ""}};
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP CONNECT proxy on its own thread: records each CONNECT target and its
// Proxy-Authorization, answers 200 and relays bytes both ways.

class ConnectProxy {
 public:
  ConnectProxy() : acceptor_(ioc_) {
    const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(ioc_, Accept(), asio::detached);
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~ConnectProxy() {
    ioc_.stop();
    thread_.join();
  }

  int port() const { return port_; }

  struct Seen {
    std::string request_line;
    std::string authorization;
  };
  std::vector<Seen> seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }

 private:
  static constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

  asio::awaitable<void> Accept() {
    while (true) {
      auto [ec, socket] = co_await acceptor_.async_accept(kTuple);
      if (ec) co_return;
      asio::co_spawn(ioc_, Serve(std::make_shared<tcp::socket>(std::move(socket))), asio::detached);
    }
  }

  static asio::awaitable<void> Pump(std::shared_ptr<tcp::socket> from,
                                    std::shared_ptr<tcp::socket> to) {
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

  asio::awaitable<void> Serve(std::shared_ptr<tcp::socket> client) {
    beast::flat_buffer buffer;
    http::request<http::empty_body> request;
    auto [ec, n] = co_await http::async_read(*client, buffer, request, kTuple);
    if (ec) co_return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen_.push_back(
          {absl::StrCat(std::string(request.method_string()), " ", std::string(request.target())),
           std::string(request[http::field::proxy_authorization])});
    }
    if (request.method() != http::verb::connect) {
      static constexpr std::string_view kRefused =
          "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      co_await asio::async_write(*client, asio::buffer(kRefused), kTuple);
      co_return;
    }
    const std::string authority(request.target());
    const size_t colon = authority.rfind(':');
    tcp::resolver resolver(ioc_);
    auto [rec, endpoints] = co_await resolver.async_resolve(authority.substr(0, colon),
                                                            authority.substr(colon + 1), kTuple);
    auto upstream = std::make_shared<tcp::socket>(ioc_);
    boost::system::error_code cec = rec;
    if (!cec)
      std::tie(cec, std::ignore) = co_await asio::async_connect(*upstream, endpoints, kTuple);
    if (cec) {
      static constexpr std::string_view kBadGateway =
          "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      co_await asio::async_write(*client, asio::buffer(kBadGateway), kTuple);
      co_return;
    }
    static constexpr std::string_view kEstablished = "HTTP/1.1 200 Connection established\r\n\r\n";
    co_await asio::async_write(*client, asio::buffer(kEstablished), kTuple);
    if (buffer.size() != 0) {  // bytes the client sent right behind its CONNECT
      co_await asio::async_write(*upstream, buffer.data(), kTuple);
    }
    asio::co_spawn(ioc_, Pump(client, upstream), asio::detached);
    asio::co_spawn(ioc_, Pump(upstream, client), asio::detached);
  }

  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<Seen> seen_;
};

// ---------------------------------------------------------------------------------------------

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = new TempDir();
    const std::string& dir = certs_->path();
    absl::Status st = MakeCa(dir, "ca", "Tollgate Test CA");
    if (st.ok()) st = MakeLeafCert(dir, "ca", "server", CertUse::kServer);
    if (st.ok()) st = MakeCa(dir, "unrelated", "Unrelated Test CA");
    ASSERT_TRUE(st.ok()) << st;

    SuiteOptions options;
    options.catalog_template = kCatalog;
    options.mock_flags = {"--tls_cert_file=" + dir + "/server.pem",
                          "--tls_key_file=" + dir + "/server.key",
                          absl::StrCat("--require_key=", kProviderKey)};
    options.gateway_flags = {"--upstream_ca_file=" + dir + "/ca.pem"};
    options.gateway_env = BaseGatewayEnv();
    auto suite = Suite::Start(options);
    ASSERT_TRUE(suite.ok()) << suite.status();
    suite_ = suite->release();
  }

  static void TearDownTestSuite() {
    delete suite_;
    suite_ = nullptr;
    delete certs_;
    certs_ = nullptr;
  }

  void SetUp() override {
    if (suite_ == nullptr) GTEST_SKIP() << "the suite did not start";
  }

  static std::string CertPath(const std::string& name) { return certs_->path() + "/" + name; }

  // Another gateway process against the suite's router, with its own flags and environment.
  // Its usage events are not needed here: the ledger address is a closed port, the shutdown
  // flush is skipped and the usage spool is a directory of its own under the suite's temp dir.
  struct ExtraGateway {
    std::unique_ptr<Process> process;
    int port = 0;
  };
  static ExtraGateway StartGateway(const std::string& name, const std::vector<std::string>& flags,
                                   const std::map<std::string, std::string>& env) {
    ExtraGateway g;
    g.port = PickFreePort();
    std::vector<std::string> argv = {Suite::Binary("tollgate-gateway"),
                                     "--config=" + suite_->dir() + "/gateway.yaml",
                                     absl::StrCat("--listen=127.0.0.1:", g.port),
                                     "--router=" + suite_->router_address(),
                                     absl::StrCat("--ledger=127.0.0.1:", PickFreePort()),
                                     "--spool_dir=" + suite_->dir() + "/spool-" + name,
                                     "--ledger_flush_timeout_ms=0",
                                     "--max_attempts=1"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    auto p = Process::Start(argv, suite_->dir() + "/" + name + ".log", env);
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return g;
    g.process = std::move(*p);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline && g.process->Running()) {
      if (WaitForPort(g.port, std::chrono::milliseconds(100)).ok()) return g;
    }
    ADD_FAILURE() << name << " did not start:\n" << g.process->LogTail();
    g.process.reset();
    return g;
  }

  static TempDir* certs_;
  static Suite* suite_;
};

TempDir* TlsTest::certs_ = nullptr;
Suite* TlsTest::suite_ = nullptr;

std::string ChatBody(const std::string& prompt, bool stream) {
  json::object body{{"model", "gpt-4o-mini"},
                    {"messages", json::array{json::object{{"role", "user"}, {"content", prompt}}}}};
  if (stream) {
    body["stream"] = true;
    body["stream_options"] = json::object{{"include_usage", true}};
  }
  return json::serialize(body);
}

HttpResponse Chat(int port, const std::string& prompt, bool stream) {
  auto r = HttpCall(port, "POST", "/v1/chat/completions", ChatBody(prompt, stream),
                    {{"authorization", std::string("Bearer ") + Suite::kAlphaKey}});
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : HttpResponse{};
}

// The assistant text of a non-stream or stream response.
std::string Content(const HttpResponse& r, bool stream) {
  if (!stream) {
    return std::string(
        json::parse(r.body).at("choices").at(0).at("message").at("content").as_string());
  }
  std::string text;
  for (const std::string& event : SseDataEvents(r.body)) {
    if (event == "[DONE]") continue;
    json::value chunk = json::parse(event);
    const auto& choices = chunk.at("choices").as_array();
    if (choices.empty()) continue;
    if (auto* c = choices[0].at("delta").as_object().if_contains("content"); c && c->is_string()) {
      text += c->as_string();
    }
  }
  return text;
}

// Polls the ledger until `sql` returns `expected` or 20 s pass; returns the last value.
std::string WaitForSql(Suite& suite, const std::string& sql, const std::string& expected) {
  std::string last;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = suite.Sql(sql);
    last = r.ok() ? *r : std::string(r.status().message());
    if (last == expected) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return last;
}

std::string ReadLog(const Process& process) { return process.LogTail(1 << 20); }

// (a) -----------------------------------------------------------------------------------------

TEST_F(TlsTest, TrustedCaServesNonStreamAndStreamAndRecordsUsage) {
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "stream" : "non-stream");
    HttpResponse r = Chat(suite_->gateway_port(), "Hello over TLS.", stream);
    ASSERT_EQ(r.status, 200) << r.body << suite_->Logs();
    EXPECT_EQ(r.header("x-tollgate-deployment"), "tls-gpt-4o-mini");
    EXPECT_FALSE(Content(r, stream).empty()) << r.body;
    if (stream) {
      const std::vector<std::string> events = SseDataEvents(r.body);
      ASSERT_FALSE(events.empty());
      EXPECT_EQ(events.back(), "[DONE]");
    }
    const std::string request_id = r.header("x-tollgate-request-id");
    ASSERT_FALSE(request_id.empty());
    const std::string want =
        absl::StrCat("tls-gpt-4o-mini|tls-mock|200|", stream ? "t" : "f", "|t");
    EXPECT_EQ(WaitForSql(*suite_,
                         absl::StrCat("SELECT served_deployment, provider, http_status, stream,"
                                      " input_tokens > 0 AND output_tokens > 0"
                                      " FROM usage_events WHERE request_id = '",
                                      request_id, "'"),
                         want),
              want);
  }
}

// (b) -----------------------------------------------------------------------------------------

TEST_F(TlsTest, UnknownCaFailsVerificationWithAClearErrorAndNoSecrets) {
  std::map<std::string, std::string> env = BaseGatewayEnv();
  ExtraGateway g = StartGateway("gateway-unrelated-ca",
                                {"--upstream_ca_file=" + CertPath("unrelated.pem")}, env);
  ASSERT_NE(g.process, nullptr);
  HttpResponse r = Chat(g.port, "Hello over TLS.", /*stream=*/false);
  ASSERT_EQ(r.status, 502) << r.body;
  json::value v = json::parse(r.body);
  const auto& error = v.at("error").as_object();
  EXPECT_EQ(error.at("code").as_string(), "upstream_error") << r.body;
  const std::string message(error.at("message").as_string());
  EXPECT_NE(message.find("tls-gpt-4o-mini"), std::string::npos) << message;
  EXPECT_NE(message.find("certificate verification failed"), std::string::npos) << message;
  for (const std::string& secret :
       {std::string(kProviderKey), CertPath(""), std::string("BEGIN CERTIFICATE")}) {
    EXPECT_EQ(r.body.find(secret), std::string::npos) << "leaked '" << secret << "': " << r.body;
  }
  // Operators see the precise cause in the gateway's log (the client gets the short reason).
  g.process->Stop();
  const std::string log = ReadLog(*g.process);
  EXPECT_NE(log.find("TLS certificate verification failed for localhost:"), std::string::npos)
      << log;
  EXPECT_NE(log.find("unable to get local issuer certificate"), std::string::npos) << log;
  EXPECT_EQ(log.find(kProviderKey), std::string::npos) << "the provider key leaked to the log";
}

// (c) -----------------------------------------------------------------------------------------

TEST_F(TlsTest, HttpsProxyTunnelsToTheUpstreamAndNoProxyBypassesIt) {
  ConnectProxy proxy;
  std::map<std::string, std::string> env = BaseGatewayEnv();
  env["HTTPS_PROXY"] =
      absl::StrCat("http://", kProxyUser, ":", kProxyPassword, "@127.0.0.1:", proxy.port());
  const std::vector<std::string> flags = {"--upstream_ca_file=" + CertPath("ca.pem")};
  {
    ExtraGateway g = StartGateway("gateway-proxied", flags, env);
    ASSERT_NE(g.process, nullptr);
    for (bool stream : {false, true}) {
      HttpResponse r = Chat(g.port, "Hello through the proxy.", stream);
      ASSERT_EQ(r.status, 200) << r.body << ReadLog(*g.process);
      EXPECT_FALSE(Content(r, stream).empty()) << r.body;
    }
    const std::vector<ConnectProxy::Seen> seen = proxy.seen();
    ASSERT_FALSE(seen.empty()) << "the gateway did not use HTTPS_PROXY";
    for (const auto& s : seen) {
      EXPECT_EQ(s.request_line, absl::StrCat("CONNECT localhost:", suite_->mock_port()));
      EXPECT_EQ(s.authorization, absl::StrCat("Basic ", absl::Base64Escape(absl::StrCat(
                                                            kProxyUser, ":", kProxyPassword))));
    }
    g.process->Stop();
    const std::string log = ReadLog(*g.process);
    EXPECT_NE(log.find(absl::StrCat("http://127.0.0.1:", proxy.port())), std::string::npos)
        << "the start-up log names the proxy: " << log;
    EXPECT_EQ(log.find(kProxyPassword), std::string::npos) << "proxy password in the log";
  }

  const size_t connects_before = proxy.seen().size();
  env["NO_PROXY"] = "example.com,localhost";
  ExtraGateway direct = StartGateway("gateway-no-proxy", flags, env);
  ASSERT_NE(direct.process, nullptr);
  HttpResponse r = Chat(direct.port, "Hello, directly.", /*stream=*/false);
  ASSERT_EQ(r.status, 200) << r.body << ReadLog(*direct.process);
  EXPECT_EQ(proxy.seen().size(), connects_before) << "NO_PROXY=localhost must bypass the proxy";
}

TEST_F(TlsTest, UnreachableProxyIsABadGatewayWithoutLeakingCredentials) {
  // A proxy port where nothing listens: the connection to the proxy fails.
  std::map<std::string, std::string> env = BaseGatewayEnv();
  env["HTTPS_PROXY"] =
      absl::StrCat("http://", kProxyUser, ":", kProxyPassword, "@127.0.0.1:", PickFreePort());
  ExtraGateway g =
      StartGateway("gateway-dead-proxy", {"--upstream_ca_file=" + CertPath("ca.pem")}, env);
  ASSERT_NE(g.process, nullptr);
  HttpResponse r = Chat(g.port, "Hello?", /*stream=*/false);
  EXPECT_EQ(r.status, 502) << r.body;
  EXPECT_EQ(r.body.find(kProxyPassword), std::string::npos) << r.body;
  g.process->Stop();
  const std::string log = ReadLog(*g.process);
  EXPECT_NE(log.find("connecting to proxy http://127.0.0.1:"), std::string::npos) << log;
  EXPECT_EQ(log.find(kProxyPassword), std::string::npos) << "proxy password in the log";
}

}  // namespace
}  // namespace tollgate::testing
