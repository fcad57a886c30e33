// tollgate-gateway: the OpenAI-compatible HTTP front of Tollgate. Parses flags, loads the key
// configuration, wires the router and ledger clients, serves, and shuts down gracefully on
// SIGTERM/SIGINT (stop accepting, let requests in flight finish, flush the ledger queue, exit 0).

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/ssl/context.hpp"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "services/common/logging.h"
#include "services/gateway/api_handler.h"
#include "services/gateway/auth.h"
#include "services/gateway/chat_handler.h"
#include "services/gateway/config.h"
#include "services/gateway/gateway_metrics.h"
#include "services/gateway/http_server.h"
#include "services/gateway/ledger_client.h"
#include "services/gateway/router_client.h"

ABSL_FLAG(std::string, config, "",
          "Path of the gateway YAML configuration (client keys). Required.");
ABSL_FLAG(std::string, listen, "127.0.0.1:8080", "HTTP listen address, host:port.");
ABSL_FLAG(int, threads, 2,
          "I/O worker threads; each runs its own event loop and acceptor (SO_REUSEPORT).");
ABSL_FLAG(std::string, router, "127.0.0.1:7001", "Router data-plane gRPC address, host:port.");
ABSL_FLAG(std::string, ledger, "127.0.0.1:7003", "Ledger data-plane gRPC address, host:port.");
ABSL_FLAG(std::string, log_level, "info", "Log level: trace, debug, info, warn, error.");
ABSL_FLAG(int64_t, max_body_bytes, 4 * 1024 * 1024,
          "Largest accepted request body in bytes; larger requests get 413.");
ABSL_FLAG(int64_t, header_timeout_ms, 10000,
          "Time allowed to receive a request's headers (and a new connection's first byte).");
ABSL_FLAG(int64_t, idle_timeout_ms, 60000,
          "Client connection idle timeout: keep-alive wait between requests, request body "
          "read, and each response write.");
ABSL_FLAG(int64_t, shutdown_grace_ms, 10000,
          "On SIGTERM/SIGINT, how long requests in flight may take to finish.");
ABSL_FLAG(int64_t, route_timeout_ms, 1000, "Deadline of each Router.Route / ListModels call.");
ABSL_FLAG(int, max_attempts, 3,
          "Most upstream candidates tried for one request (fallback on connect errors, "
          "timeouts, 429 and 5xx).");
ABSL_FLAG(int64_t, upstream_max_idle_per_host, 64,
          "Idle keep-alive upstream connections kept per (scheme, host, port) per thread.");
ABSL_FLAG(int64_t, upstream_connect_timeout_ms, 5000,
          "Upstream DNS + TCP connect + TLS handshake timeout.");
ABSL_FLAG(int64_t, upstream_first_byte_timeout_ms, 60000,
          "Time from sending the upstream request to receiving the response headers.");
ABSL_FLAG(int64_t, upstream_idle_timeout_ms, 60000,
          "Upstream read/write inactivity timeout once the response started; also the longest a "
          "pooled connection is kept idle.");
ABSL_FLAG(std::string, upstream_ca_file, "",
          "Extra PEM CA bundle trusted for upstream TLS, in addition to the system CAs.");
ABSL_FLAG(int64_t, max_upstream_body_bytes, 16 * 1024 * 1024,
          "Largest non-stream upstream response body accepted.");
ABSL_FLAG(int64_t, max_stream_event_bytes, 1024 * 1024,
          "Largest single SSE event accepted from an upstream stream.");
ABSL_FLAG(int64_t, ledger_queue_capacity, 100000,
          "Usage events buffered for the ledger; when full, new events are dropped (counted and "
          "logged) so requests never wait on the ledger.");
ABSL_FLAG(int64_t, ledger_batch_size, 256, "Most usage events per ledger batch.");
ABSL_FLAG(int64_t, ledger_batch_delay_ms, 20,
          "Longest a usage event waits for its batch to fill before it is sent.");
ABSL_FLAG(int64_t, ledger_flush_timeout_ms, 5000,
          "On shutdown, how long to wait for the ledger to acknowledge queued usage events.");
ABSL_FLAG(int64_t, feature_label_limit, 100,
          "Distinct x-tollgate-feature values given their own metric label; later ones are "
          "reported as \"other\".");

namespace tollgate::gateway {
namespace {

// Start-up failures: one plain line on stderr, exit 1.
[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "tollgate-gateway: %s\n", message.c_str());
  std::exit(1);
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target) {
  // No keepalive pings: servers' default policy answers frequent pings on a quiet stream with
  // GOAWAY. Dead peers are caught by call deadlines (router) and the ack timeout (ledger).
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

int64_t Positive(const char* name, int64_t value) {
  if (value <= 0) Die(absl::StrCat("--", name, " must be positive (got ", value, ")"));
  return value;
}

int Run() {
  // Signals are taken synchronously by this thread; every thread started later inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const std::string config_path = absl::GetFlag(FLAGS_config);
  if (config_path.empty()) Die("--config is required (YAML file with the client keys)");
  absl::StatusOr<GatewayConfig> config = LoadGatewayConfig(config_path);
  if (!config.ok()) Die(std::string(config.status().message()));
  KeyStore keys(KeySnapshot::Build(config->keys));

  const int threads = absl::GetFlag(FLAGS_threads);
  const int max_attempts = absl::GetFlag(FLAGS_max_attempts);
  if (max_attempts < 1) Die("--max_attempts must be at least 1");
  auto ms = [](int64_t v) { return std::chrono::milliseconds(v); };

  auto registry = std::make_shared<prometheus::Registry>();
  GatewayMetrics metrics(registry, static_cast<size_t>(std::max<int64_t>(
                                       0, absl::GetFlag(FLAGS_feature_label_limit))));

  boost::asio::ssl::context tls(boost::asio::ssl::context::tls_client);
  try {
    tls.set_options(boost::asio::ssl::context::default_workarounds |
                    boost::asio::ssl::context::no_sslv2 | boost::asio::ssl::context::no_sslv3 |
                    boost::asio::ssl::context::no_tlsv1 | boost::asio::ssl::context::no_tlsv1_1);
    tls.set_default_verify_paths();
    const std::string ca_file = absl::GetFlag(FLAGS_upstream_ca_file);
    if (!ca_file.empty()) tls.load_verify_file(ca_file);
    tls.set_verify_mode(boost::asio::ssl::verify_peer);
  } catch (const std::exception& e) {
    Die(absl::StrCat("cannot set up upstream TLS: ", e.what()));
  }

  RouterClient router(MakeChannel(absl::GetFlag(FLAGS_router)),
                      ms(Positive("route_timeout_ms", absl::GetFlag(FLAGS_route_timeout_ms))));
  router.Connect();

  LedgerClientOptions ledger_options;
  ledger_options.queue_capacity = static_cast<size_t>(
      Positive("ledger_queue_capacity", absl::GetFlag(FLAGS_ledger_queue_capacity)));
  ledger_options.batch_max_events =
      static_cast<size_t>(Positive("ledger_batch_size", absl::GetFlag(FLAGS_ledger_batch_size)));
  ledger_options.batch_delay =
      ms(Positive("ledger_batch_delay_ms", absl::GetFlag(FLAGS_ledger_batch_delay_ms)));
  auto ledger = std::make_unique<LedgerClient>(ledger_options,
                                               MakeChannel(absl::GetFlag(FLAGS_ledger)), &metrics);

  ChatHandlerOptions chat_options;
  chat_options.max_attempts = max_attempts;
  chat_options.max_upstream_body_bytes = static_cast<size_t>(
      Positive("max_upstream_body_bytes", absl::GetFlag(FLAGS_max_upstream_body_bytes)));
  chat_options.max_stream_event_bytes = static_cast<size_t>(
      Positive("max_stream_event_bytes", absl::GetFlag(FLAGS_max_stream_event_bytes)));
  ChatHandler chat(chat_options, &keys, &router, ledger.get(), &metrics);
  ApiHandler api(&chat, &keys, &router, &metrics);

  UpstreamOptions upstream;
  upstream.max_idle_per_host =
      static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_upstream_max_idle_per_host)));
  upstream.connect_timeout =
      ms(Positive("upstream_connect_timeout_ms", absl::GetFlag(FLAGS_upstream_connect_timeout_ms)));
  upstream.first_byte_timeout = ms(Positive("upstream_first_byte_timeout_ms",
                                            absl::GetFlag(FLAGS_upstream_first_byte_timeout_ms)));
  upstream.idle_timeout =
      ms(Positive("upstream_idle_timeout_ms", absl::GetFlag(FLAGS_upstream_idle_timeout_ms)));

  HttpServerOptions server_options;
  server_options.listen = absl::GetFlag(FLAGS_listen);
  server_options.threads = threads;
  server_options.max_body_bytes =
      static_cast<size_t>(Positive("max_body_bytes", absl::GetFlag(FLAGS_max_body_bytes)));
  server_options.header_timeout =
      ms(Positive("header_timeout_ms", absl::GetFlag(FLAGS_header_timeout_ms)));
  server_options.idle_timeout =
      ms(Positive("idle_timeout_ms", absl::GetFlag(FLAGS_idle_timeout_ms)));
  auto server = HttpServer::Create(
      server_options, &api, &metrics,
      [&tls, upstream](int, boost::asio::io_context& ioc) -> std::unique_ptr<WorkerState> {
        return std::make_unique<GatewayWorker>(ioc, &tls, upstream);
      });
  if (!server.ok()) Die(std::string(server.status().message()));
  ledger->Start();
  (*server)->Start();
  LogInfo("gateway listening", {{"listen", server_options.listen},
                                {"port", absl::StrCat((*server)->port())},
                                {"threads", absl::StrCat(threads)},
                                {"keys", absl::StrCat(config->keys.size())},
                                {"router", absl::GetFlag(FLAGS_router)},
                                {"ledger", absl::GetFlag(FLAGS_ledger)}});

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  LogInfo("shutting down", {{"signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"},
                            {"in_flight", absl::StrCat((*server)->in_flight())}});

  const auto grace = ms(std::max<int64_t>(0, absl::GetFlag(FLAGS_shutdown_grace_ms)));
  (*server)->BeginShutdown();
  if (!(*server)->WaitIdle(std::chrono::steady_clock::now() + grace)) {
    LogWarn("shutdown grace period over; abandoning requests in flight",
            {{"in_flight", absl::StrCat((*server)->in_flight())}});
  }
  (*server)->Stop();
  router.WaitIdle();  // router completions target the workers' io_contexts
  server->reset();

  const size_t lost =
      ledger->Shutdown(ms(std::max<int64_t>(0, absl::GetFlag(FLAGS_ledger_flush_timeout_ms))));
  LogInfo("stopped", {{"unflushed_usage_events", absl::StrCat(lost)}});
  return 0;
}

}  // namespace
}  // namespace tollgate::gateway

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Tollgate gateway: OpenAI-compatible LLM gateway.\n"
      "  tollgate-gateway --config=gateway.yaml [--listen=127.0.0.1:8080] [--threads=2]\n"
      "                   [--router=127.0.0.1:7001] [--ledger=127.0.0.1:7003]");
  absl::ParseCommandLine(argc, argv);
  tollgate::InitLogging("gateway", absl::GetFlag(FLAGS_log_level));
  return tollgate::gateway::Run();
}
