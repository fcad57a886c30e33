// Routing and fallback through the real processes (issue 6): a healthy mock provider plus
// in-test fake upstreams that answer 429 with retry-after, 503, hang past the gateway's
// first-byte timeout, or drop the connection. Clients must see success while a healthy candidate
// exists; circuits open and recover; the router killed mid-traffic leaves the gateway routing
// from its Watch snapshot; a broken catalog edit is rejected while the old catalog keeps serving.
//
// The fakes are per-instance faults (the mock provider's directives travel in the request, so
// every upstream of one request would see the same ones).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "tests/testing/http_client.h"
#include "tests/testing/suite.h"
#include "tollgate/v1/router.grpc.pb.h"

namespace tollgate::testing {
namespace {

namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;

// A minimal HTTP/1.1 upstream on an ephemeral loopback port with a switchable behaviour. Each
// response closes its connection.
class FakeUpstream {
 public:
  enum class Mode { k429, k503, kHang, kDrop, kOk, kContextExceeded };

  explicit FakeUpstream(Mode mode) : mode_(mode) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd_, 64) != 0) {
      ADD_FAILURE() << "fake upstream cannot listen";
      return;
    }
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }

  ~FakeUpstream() {
    stop_ = true;
    if (acceptor_.joinable()) acceptor_.join();
    std::lock_guard<std::mutex> lock(mu_);
    for (std::thread& t : connections_) t.join();
    ::close(fd_);
  }

  int port() const { return port_; }
  void set_mode(Mode mode) { mode_ = mode; }
  int requests() const { return requests_.load(); }

 private:
  void AcceptLoop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int client = ::accept(fd_, nullptr, nullptr);
      if (client < 0) continue;
      std::lock_guard<std::mutex> lock(mu_);
      connections_.emplace_back([this, client] { Serve(client); });
    }
  }

  // Reads one request (headers + content-length body); false when the peer went away.
  bool ReadRequest(int client, std::string& request) {
    char buf[4096];
    while (!stop_) {
      const size_t end = request.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t length = 0;
        const size_t cl = request.find("ontent-length:");
        if (cl != std::string::npos && cl < end) length = std::stoul(request.substr(cl + 14));
        if (request.size() >= end + 4 + length) return true;
      }
      pollfd p{client, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const ssize_t n = ::read(client, buf, sizeof(buf));
      if (n <= 0) return false;
      request.append(buf, static_cast<size_t>(n));
    }
    return false;
  }

  static void WriteAll(int client, const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::send(client, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }

  void Serve(int client) {
    std::string request;
    if (ReadRequest(client, request)) {
      ++requests_;
      const bool stream = request.find("\"stream\":true") != std::string::npos;
      const std::string error = R"({"error":{"message":"fake failure","type":"server_error"}})";
      switch (mode_.load()) {
        case Mode::k429:
          WriteAll(client, absl::StrCat("HTTP/1.1 429 Too Many Requests\r\nretry-after: 2\r\n"
                                        "content-type: application/json\r\nconnection: close\r\n"
                                        "content-length: ",
                                        error.size(), "\r\n\r\n", error));
          break;
        case Mode::k503:
          WriteAll(client, absl::StrCat("HTTP/1.1 503 Service Unavailable\r\n"
                                        "content-type: application/json\r\nconnection: close\r\n"
                                        "content-length: ",
                                        error.size(), "\r\n\r\n", error));
          break;
        case Mode::kHang:
          while (!stop_) {
            pollfd p{client, POLLIN, 0};
            if (::poll(&p, 1, 50) > 0) {
              char buf[256];
              if (::read(client, buf, sizeof(buf)) <= 0) break;
            }
          }
          break;
        case Mode::kDrop:
          break;
        case Mode::kContextExceeded: {
          const std::string body =
              R"({"error":{"message":"This model's maximum context length is 16000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}})";
          WriteAll(client, absl::StrCat("HTTP/1.1 400 Bad Request\r\n"
                                        "content-type: application/json\r\nconnection: close\r\n"
                                        "content-length: ",
                                        body.size(), "\r\n\r\n", body));
          break;
        }
        case Mode::kOk:
          if (stream) {
            const std::string chunk =
                R"({"id":"c1","object":"chat.completion.chunk","created":1,"model":"fake","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]})";
            const std::string usage =
                R"({"id":"c1","object":"chat.completion.chunk","created":1,"model":"fake","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}})";
            WriteAll(client, absl::StrCat("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                                          "connection: close\r\n\r\ndata: ",
                                          chunk, "\n\ndata: ", usage, "\n\ndata: [DONE]\n\n"));
          } else {
            const std::string body =
                R"({"id":"c1","object":"chat.completion","created":1,"model":"fake","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}})";
            WriteAll(client, absl::StrCat("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                                          "connection: close\r\ncontent-length: ",
                                          body.size(), "\r\n\r\n", body));
          }
          break;
      }
    }
    ::close(client);
  }

  std::atomic<Mode> mode_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> connections_;
};

constexpr const char* kCatalog = R"yaml(
providers:
  - {name: mock, dialect: openai, base_url: "http://127.0.0.1:$MOCK/v1"}
  - {name: f429, dialect: openai, base_url: "http://127.0.0.1:$F429/v1"}
  - {name: f503, dialect: openai, base_url: "http://127.0.0.1:$F503/v1"}
  - {name: fhang, dialect: openai, base_url: "http://127.0.0.1:$FHANG/v1"}
  - {name: fdrop, dialect: openai, base_url: "http://127.0.0.1:$FDROP/v1"}
  - {name: fflaky, dialect: openai, base_url: "http://127.0.0.1:$FFLAKY/v1"}
  - {name: fctx, dialect: openai, base_url: "http://127.0.0.1:$FCTX/v1"}
deployments:
  - {id: d429, provider: f429, upstream_model: gpt-4o-mini, region: local,
     prices: {input: "0.15", cached_input: "0.075", output: "0.60"}, capabilities: [chat, stream]}
  - {id: d503, provider: f503, upstream_model: gpt-4o-mini, region: local,
     prices: {input: "0.15", cached_input: "0.075", output: "0.60"}, capabilities: [chat, stream]}
  - {id: dhang, provider: fhang, upstream_model: gpt-4o-mini, region: local,
     prices: {input: "0.15", cached_input: "0.075", output: "0.60"}, capabilities: [chat, stream]}
  - {id: ddrop, provider: fdrop, upstream_model: gpt-4o-mini, region: local,
     prices: {input: "0.15", cached_input: "0.075", output: "0.60"}, capabilities: [chat, stream]}
  - {id: flaky, provider: fflaky, upstream_model: gpt-4o-mini, region: local,
     prices: {input: "0.15", cached_input: "0.075", output: "0.60"}, capabilities: [chat, stream]}
  - {id: healthy, provider: mock, upstream_model: gpt-4o-mini, region: local,
     prices: {input: "0.15", cached_input: "0.075", output: "0.60"}, capabilities: [chat, stream]}
  - {id: dctx, provider: fctx, upstream_model: gpt-4o-mini, region: local,
     context_window: 16000, max_output_tokens: 4096,
     prices: {input: "0.15", cached_input: "0.075", output: "0.60"}, capabilities: [chat, stream]}
  - {id: healthy-big, provider: mock, upstream_model: gpt-4o, region: local,
     context_window: 200000,
     prices: {input: "2.50", cached_input: "1.25", output: "10.00"}, capabilities: [chat, stream]}
models:
  - {name: ctx, deployments: [dctx, healthy-big]}
  - {name: ctx-only, deployments: [dctx]}
  - {name: chaos, deployments: [d429, d503, dhang, ddrop, healthy]}
  - {name: flaky-model, deployments: [flaky, healthy]}
  - {name: plain, deployments: [healthy]}
  - {name: restricted, deployments: [healthy]}
teams:
  - {name: beta, allowed_models: [plain, chaos, flaky-model]}
)yaml";

struct Env {
  std::unique_ptr<FakeUpstream> f429, f503, fhang, fdrop, fflaky, fctx;
  std::unique_ptr<Suite> suite;
};
Env* g_env = nullptr;

class RoutingEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    env_ = std::make_unique<Env>();
    env_->f429 = std::make_unique<FakeUpstream>(FakeUpstream::Mode::k429);
    env_->f503 = std::make_unique<FakeUpstream>(FakeUpstream::Mode::k503);
    env_->fhang = std::make_unique<FakeUpstream>(FakeUpstream::Mode::kHang);
    env_->fdrop = std::make_unique<FakeUpstream>(FakeUpstream::Mode::kDrop);
    env_->fflaky = std::make_unique<FakeUpstream>(FakeUpstream::Mode::k503);
    env_->fctx = std::make_unique<FakeUpstream>(FakeUpstream::Mode::kContextExceeded);
    SuiteOptions options;
    options.catalog_template = kCatalog;
    options.catalog_vars = {{"$F429", absl::StrCat(env_->f429->port())},
                            {"$F503", absl::StrCat(env_->f503->port())},
                            {"$FHANG", absl::StrCat(env_->fhang->port())},
                            {"$FDROP", absl::StrCat(env_->fdrop->port())},
                            {"$FFLAKY", absl::StrCat(env_->fflaky->port())},
                            {"$FCTX", absl::StrCat(env_->fctx->port())}};
    options.router_flags = {"--circuit_failure_threshold=2", "--circuit_open_ms=1000",
                            "--reload_interval_ms=100", "--health_tick_ms=100",
                            "--watch_heartbeat_ms=500"};
    options.gateway_flags = {"--max_attempts=5", "--upstream_first_byte_timeout_ms=300",
                             "--route_timeout_ms=300", "--retry_backoff_ms=5"};
    auto suite = Suite::Start(options);
    ASSERT_TRUE(suite.ok()) << suite.status();
    env_->suite = std::move(*suite);
    g_env = env_.get();
  }
  void TearDown() override {
    g_env = nullptr;
    env_.reset();
  }

 private:
  std::unique_ptr<Env> env_;
};

const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new RoutingEnvironment);

std::string ChatBody(const std::string& model, const std::string& prompt, bool stream = false) {
  json::object body{{"model", model},
                    {"messages", json::array{json::object{{"role", "user"}, {"content", prompt}}}}};
  if (stream) body["stream"] = true;
  return json::serialize(body);
}

HttpResponse Post(const std::string& body, const std::string& key = Suite::kAlphaKey,
                  std::map<std::string, std::string> headers = {}) {
  headers["authorization"] = std::string("Bearer ") + key;
  auto r = HttpCall(g_env->suite->gateway_port(), "POST", "/v1/chat/completions", body, headers);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : HttpResponse{};
}

// The router's view of `deployment` (RouterAdmin.ListDeployments).
std::optional<v1::DeploymentHealth> Health(const std::string& deployment) {
  auto stub = v1::RouterAdmin::NewStub(grpc::CreateChannel(g_env->suite->router_admin_address(),
                                                           grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ListDeploymentsResponse response;
  if (!stub->ListDeployments(&context, v1::ListDeploymentsRequest(), &response).ok()) {
    return std::nullopt;
  }
  for (const v1::DeploymentHealth& h : response.health()) {
    if (h.deployment_id() == deployment) return h;
  }
  return std::nullopt;
}

double GatewayMetric(const std::string& series) {
  return ScrapeMetric(g_env->suite->gateway_port(), series);
}

TEST(Routing, FaultyCandidatesAreInvisibleToClients) {
  ASSERT_NE(g_env, nullptr);
  for (int i = 0; i < 8; ++i) {
    const bool stream = i % 2 == 1;
    HttpResponse r = Post(ChatBody("chaos", absl::StrCat("hello ", i), stream));
    ASSERT_EQ(r.status, 200) << r.body << g_env->suite->Logs();
    EXPECT_EQ(r.header("x-tollgate-deployment"), "healthy");
    EXPECT_FALSE(r.header("x-tollgate-route-reason").empty());
    if (stream) {
      EXPECT_EQ(r.body.find("\"error\""), std::string::npos) << r.body;
      EXPECT_NE(r.body.find("[DONE]"), std::string::npos) << r.body;
    }
  }
  // Every faulty deployment was tried (and failed) before the healthy one served.
  EXPECT_GE(g_env->f429->requests(), 1);
  EXPECT_GE(g_env->f503->requests(), 1);
  EXPECT_GE(g_env->fhang->requests(), 1);
  EXPECT_GE(g_env->fdrop->requests(), 1);
  // The gateway reported the outcomes: the router has seen the failures.
  const auto deadline = SteadyClock::now() + std::chrono::seconds(10);
  bool seen = false;
  while (!seen && SteadyClock::now() < deadline) {
    auto h503 = Health("d503");
    auto h429 = Health("d429");
    seen = h503 && h503->outcomes() >= 1 && h429 && h429->outcomes() >= 1;
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling
  }
  EXPECT_TRUE(seen) << g_env->suite->Logs();
  EXPECT_GT(GatewayMetric("tollgate_gateway_outcomes_total{result=\"sent\"}"), 0);
}

TEST(Routing, ContextLengthErrorFallsBackToALargerContextCandidate) {
  ASSERT_NE(g_env, nullptr);
  const int before = g_env->fctx->requests();
  HttpResponse r = Post(ChatBody("ctx", "a long prompt"));
  ASSERT_EQ(r.status, 200) << r.body << g_env->suite->Logs();
  EXPECT_EQ(r.header("x-tollgate-deployment"), "healthy-big");
  EXPECT_EQ(g_env->fctx->requests(), before + 1);
  // Without a larger candidate the provider's answer is passed through.
  HttpResponse only = Post(ChatBody("ctx-only", "a long prompt"));
  EXPECT_EQ(only.status, 400) << only.body;
  EXPECT_NE(only.body.find("context_length_exceeded"), std::string::npos) << only.body;
}

TEST(Routing, PermissionDeniedIs403AndClassHintIsPassed) {
  ASSERT_NE(g_env, nullptr);
  HttpResponse denied = Post(ChatBody("restricted", "hi"), Suite::kBetaKey);
  EXPECT_EQ(denied.status, 403) << denied.body;
  EXPECT_NE(denied.body.find("model_not_allowed"), std::string::npos) << denied.body;
  EXPECT_EQ(Post(ChatBody("restricted", "hi")).status, 200);

  HttpResponse bad = Post(ChatBody("plain", "hi"), Suite::kAlphaKey,
                          {{"x-tollgate-route-class", "no-such-class"}});
  EXPECT_EQ(bad.status, 400) << bad.body;
  HttpResponse code =
      Post(ChatBody("plain", "hi"), Suite::kAlphaKey, {{"x-tollgate-route-class", "code"}});
  EXPECT_EQ(code.status, 200) << code.body;
}

TEST(Routing, DecisionCacheServesRepeatedRequests) {
  ASSERT_NE(g_env, nullptr);
  const double before = GatewayMetric("tollgate_gateway_route_cache_lookups_total{result=\"hit\"}");
  for (int i = 0; i < 20; ++i) {
    HttpResponse r = Post(ChatBody("plain", "cache me"));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("x-tollgate-deployment"), "healthy");
  }
  EXPECT_GT(GatewayMetric("tollgate_gateway_route_cache_lookups_total{result=\"hit\"}"), before);
}

TEST(Routing, CircuitOpensAndRecovers) {
  ASSERT_NE(g_env, nullptr);
  bool opened = false;
  for (int i = 0; i < 40 && !opened; ++i) {
    HttpResponse r = Post(ChatBody("flaky-model", "circuit"));
    ASSERT_EQ(r.status, 200) << r.body;
    auto h = Health("flaky");
    ASSERT_TRUE(h.has_value());
    opened = h->circuit() == v1::CIRCUIT_OPEN;
  }
  ASSERT_TRUE(opened) << g_env->suite->Logs();

  g_env->fflaky->set_mode(FakeUpstream::Mode::kOk);
  bool recovered = false;
  const auto deadline = SteadyClock::now() + std::chrono::seconds(20);
  while (!recovered && SteadyClock::now() < deadline) {
    HttpResponse r = Post(ChatBody("flaky-model", "recover"));
    ASSERT_EQ(r.status, 200) << r.body;
    auto h = Health("flaky");
    recovered =
        r.header("x-tollgate-deployment") == "flaky" && h && h->circuit() == v1::CIRCUIT_CLOSED;
    if (!recovered) std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling
  }
  EXPECT_TRUE(recovered) << g_env->suite->Logs();
}

TEST(Routing, BrokenCatalogEditIsRejectedAndOldCatalogKeepsServing) {
  ASSERT_NE(g_env, nullptr);
  {
    std::ofstream out(g_env->suite->catalog_path(), std::ios::trunc);
    out << "models: [ this is not a catalog\n";
  }
  const auto deadline = SteadyClock::now() + std::chrono::seconds(10);
  bool rejected = false;
  while (!rejected && SteadyClock::now() < deadline) {
    rejected = g_env->suite->Logs().find("catalog reload failed") != std::string::npos;
    if (!rejected) std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling
  }
  EXPECT_TRUE(rejected) << g_env->suite->Logs();
  for (int i = 0; i < 5; ++i) {
    HttpResponse r = Post(ChatBody("plain", "still serving"));
    EXPECT_EQ(r.status, 200) << r.body;
  }
  EXPECT_TRUE(Health("healthy").has_value());
}

// Last: kills the router.
TEST(Routing, RouterKilledMidTrafficRequestsKeepSucceedingFromSnapshot) {
  ASSERT_NE(g_env, nullptr);
  const auto deadline = SteadyClock::now() + std::chrono::seconds(10);
  while (GatewayMetric("tollgate_gateway_router_snapshot_held") != 1 &&
         SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling
  }
  ASSERT_EQ(GatewayMetric("tollgate_gateway_router_snapshot_held"), 1);

  std::atomic<int> failures{0};
  std::atomic<bool> stop{false};
  std::thread traffic([&] {
    while (!stop) {
      HttpResponse r = Post(ChatBody("plain", "traffic"));
      if (r.status != 200) ++failures;
    }
  });
  g_env->suite->KillRouter();
  const auto fallback_deadline = SteadyClock::now() + std::chrono::seconds(15);
  while (GatewayMetric("tollgate_gateway_router_fallback_decisions_total") < 5 &&
         SteadyClock::now() < fallback_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling
  }
  stop = true;
  traffic.join();
  EXPECT_EQ(failures.load(), 0) << g_env->suite->Logs();
  EXPECT_GE(GatewayMetric("tollgate_gateway_router_fallback_decisions_total"), 5);
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = Post(ChatBody("chaos", "no router", i % 2 == 1));
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("x-tollgate-deployment"), "healthy");
  }
  auto ready = HttpCall(g_env->suite->gateway_port(), "GET", "/readyz");
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->status, 200) << ready->body;
}

}  // namespace
}  // namespace tollgate::testing
