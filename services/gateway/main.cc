// tollgate-gateway: the OpenAI-compatible HTTP front of Tollgate. Parses flags, loads the key
// configuration, wires the router and ledger clients, serves, and shuts down gracefully on
// SIGTERM/SIGINT (stop accepting, let requests in flight finish, flush the ledger queue, exit 0).

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/ssl/context.hpp"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "services/common/grpc_tls.h"
#include "services/common/logging.h"
#include "services/gateway/api_handler.h"
#include "services/gateway/auth.h"
#include "services/gateway/catalog_snapshot.h"
#include "services/gateway/chat_handler.h"
#include "services/gateway/config.h"
#include "services/gateway/gateway_metrics.h"
#include "services/gateway/http_server.h"
#include "services/gateway/key_watch.h"
#include "services/gateway/ledger_client.h"
#include "services/gateway/outcome_reporter.h"
#include "services/gateway/quota_manager.h"
#include "services/gateway/router_client.h"
#include "services/gateway/spool/spool.h"
#include "services/gateway/upstream_client.h"

ABSL_FLAG(std::string, config, "",
          "Path of the gateway YAML configuration (client keys). Required.");
ABSL_FLAG(std::string, listen, "127.0.0.1:8080", "HTTP listen address, host:port.");
ABSL_FLAG(int, threads, 2,
          "I/O worker threads; each runs its own event loop and acceptor (SO_REUSEPORT).");
ABSL_FLAG(std::string, router, "127.0.0.1:7001", "Router data-plane gRPC address, host:port.");
ABSL_FLAG(std::string, ledger, "127.0.0.1:7003", "Ledger data-plane gRPC address, host:port.");
ABSL_FLAG(std::string, log_level, "info", "Log level: trace, debug, info, warn, error.");
ABSL_FLAG(bool, access_log, true,
          "Log one structured \"request\" line (info) per request: request id, route, status, "
          "model, deployment, attempts, team, latency. The ledger's usage events and the metrics "
          "carry the same facts; false saves a log write per request.");
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
ABSL_FLAG(int64_t, max_total_retry_ms, 30000,
          "Fallback time budget per request: no new upstream attempt starts later than this "
          "after the first attempt started (backoff and retry-after waits included).");
ABSL_FLAG(int64_t, retry_backoff_ms, 25,
          "Base backoff before the next fallback attempt: base * 2^(attempt-1), jittered to "
          "[half, full]. 0 = no backoff.");
ABSL_FLAG(bool, snapshot_routing_only, false,
          "Benchmark baseline: route every request from the router's pushed catalog snapshot in "
          "priority order, with no Route call and no routing policy (the 'no-routing build' of "
          "docs/performance.md). Not for production: policies, health and limits are bypassed.");
ABSL_FLAG(bool, route_cache, true,
          "Reuse Router.Route answers within their cache scope and TTL (per I/O thread, "
          "invalidated by every router Watch event); needs the Watch snapshot.");
ABSL_FLAG(int64_t, outcome_queue_capacity, 10000,
          "Attempt outcomes buffered for Router.ReportOutcomes; when full, new ones are dropped "
          "(counted) so requests never wait.");
ABSL_FLAG(int64_t, outcome_batch_size, 256, "Most attempt outcomes per ReportOutcomes call.");
ABSL_FLAG(int64_t, outcome_batch_delay_ms, 50,
          "Longest an attempt outcome waits before it is reported to the router.");
ABSL_FLAG(int64_t, upstream_max_idle_per_host, 64,
          "Idle keep-alive upstream connections kept per (scheme, host, port) per thread.");
ABSL_FLAG(int64_t, upstream_connect_timeout_ms, 5000,
          "Upstream connection budget: DNS, TCP connect, the proxy CONNECT (HTTPS_PROXY) and the "
          "TLS handshake together.");
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
ABSL_FLAG(int64_t, ledger_batch_size, 2000,
          "Most usage events per ledger batch (about 1 MB at 2000; the ledger accepts up to its "
          "--max_batch_bytes).");
ABSL_FLAG(int64_t, ledger_batch_delay_ms, 100,
          "Longest a usage event waits for its batch to fill before it is sent (it is already "
          "durable in the spool). Larger batches cost the ledger and PostgreSQL less per event: "
          "100 ms against 20 ms cut their CPU by a third and the 64-connection p99 by a quarter "
          "in docs/performance.md.");
ABSL_FLAG(int64_t, ledger_flush_timeout_ms, 5000,
          "On shutdown, how long to wait for the ledger to acknowledge queued usage events.");
ABSL_FLAG(std::string, spool_dir, "./tollgate-spool",
          "Directory of the crash-proof usage spool: every usage event is written (and synced) "
          "here before it is sent to the ledger, and kept until the ledger acknowledges it; a "
          "restarted gateway resends what is left. Created if missing; one gateway process per "
          "directory. Empty = no spool (events buffered in memory only, lost if the process "
          "dies).");
ABSL_FLAG(int64_t, spool_segment_bytes, 16 * 1024 * 1024,
          "Usage spool segment file size; a segment is deleted once the ledger acknowledged "
          "every event in it.");
ABSL_FLAG(int64_t, spool_max_bytes, 1024ll * 1024 * 1024,
          "Bound on the usage spool's size on disk (reached when the ledger is down for long); "
          "then --spool_full_policy applies.");
ABSL_FLAG(std::string, spool_full_policy, "reject",
          "When the usage spool is full: \"reject\" = new chat requests get 503 spool_full with "
          "retry-after; \"drop\" = keep serving and drop their usage events (counted in "
          "tollgate_gateway_spool_events_total{result=\"dropped\"} and logged).");
ABSL_FLAG(int64_t, spool_commit_delay_us, 200,
          "Group commit window: after an event is written, the spool's syncer collects more writes "
          "for up to this long before one fdatasync covers them all. Requests never wait for it.");
ABSL_FLAG(bool, spool_fsync, true,
          "fdatasync each spool group commit (durable against power loss). false: events survive "
          "a crash of the gateway process but not of the machine.");
ABSL_FLAG(bool, metrics_customer_label, false,
          "Export spend per customer (tollgate_gateway_customer_cost_usd_total{customer}). Off by "
          "default: customer ids are unbounded; see --attribution_label_limit.");
ABSL_FLAG(bool, metrics_api_key_label, false,
          "Export spend per virtual API key id (tollgate_gateway_api_key_cost_usd_total{api_key}). "
          "Off by default; see --attribution_label_limit.");
ABSL_FLAG(int64_t, attribution_label_limit, 1000,
          "With --metrics_customer_label / --metrics_api_key_label: distinct values given their "
          "own label value; later ones are reported as \"other\" (protects the registry).");
ABSL_FLAG(int64_t, feature_label_limit, 100,
          "Distinct x-tollgate-feature values given their own metric label; later ones are "
          "reported as \"other\".");

ABSL_FLAG(std::string, ledger_admin, "",
          "Ledger control-plane gRPC address, host:port. When set, the gateway also accepts the "
          "ledger's virtual keys, pushed on TenancyAdmin.WatchKeys (docs/tenancy.md); needs "
          "--control_plane_token_file. Empty: only the keys of --config.");
ABSL_FLAG(std::string, control_plane_token_file, "",
          "File holding the plaintext control-plane bearer token (a ledger token with role "
          "gateway) used for WatchKeys; surrounding whitespace is ignored.");
ABSL_FLAG(int64_t, quota_lease_wait_ms, 1000,
          "With --ledger_admin: how long a request under a hard budget or rate limit may wait for "
          "the ledger to grant this gateway more lease (docs/budgets.md) before it gets 503 "
          "budget_unavailable.");
ABSL_FLAG(int64_t, quota_report_interval_ms, 1000,
          "With --ledger_admin: how often at most the gateway reports settled usage of a lease to "
          "the ledger (also the lease thread's idle tick is half of it).");
ABSL_FLAG(int64_t, quota_idle_release_ms, 10000,
          "With --ledger_admin: a lease nobody reserved from for this long is given back to the "
          "ledger, so other gateway replicas can use the allowance.");
ABSL_FLAG(int64_t, quota_max_waiters, 4096,
          "With --ledger_admin: requests that may wait for a lease at once (a bounded queue; "
          "tollgate_gateway_quota_state{state=\"waiters\"}); more are answered 503 at once.");
ABSL_FLAG(std::string, quota_when_ledger_down, "deny",
          "With --ledger_admin: what a request under a hard quota gets when its lease must grow "
          "and the ledger cannot be reached: deny (503 budget_unavailable; hard budgets stay "
          "hard) or allow (served uncounted by leases; tollgate_gateway_quota_decisions_total"
          "{result=\"unenforced\"}).");
ABSL_FLAG(int64_t, key_snapshot_wait_ms, 5000,
          "With --ledger_admin: at start, how long to wait for the first virtual-key snapshot "
          "before listening anyway (ledger keys are refused until it arrives).");

namespace tollgate::gateway {
namespace {

// Start-up failures: one plain line on stderr, exit 1.
[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "tollgate-gateway: %s\n", message.c_str());
  std::exit(1);
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target, const GrpcTls& tls) {
  // No keepalive pings: servers' default policy answers frequent pings on a quiet stream with
  // GOAWAY. Dead peers are caught by call deadlines (router) and the ack timeout (ledger).
  grpc::ChannelArguments args = tls.ChannelArgs();
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  return grpc::CreateCustomChannel(target, tls.ChannelCredentials(), args);
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
  // TLS (and mTLS) to the router and the ledger (docs/security.md).
  absl::StatusOr<GrpcTls> grpc_tls = GrpcTlsFromFlags();
  if (!grpc_tls.ok()) Die(std::string(grpc_tls.status().message()));
  if (config->keys.empty() && absl::GetFlag(FLAGS_ledger_admin).empty()) {
    Die(absl::StrCat(config_path,
                     ": no client keys: list some under 'keys' or set --ledger_admin "
                     "to serve the ledger's virtual keys"));
  }
  KeyStore keys(KeySnapshot::Build(config->keys));
  auto registry = std::make_shared<prometheus::Registry>();
  // Virtual keys, budgets and rate limits from the ledger's control plane (docs/tenancy.md,
  // docs/budgets.md).
  std::unique_ptr<KeyWatcher> key_watcher;
  std::unique_ptr<QuotaManager> quotas;
  if (const std::string ledger_admin = absl::GetFlag(FLAGS_ledger_admin); !ledger_admin.empty()) {
    const std::string token_path = absl::GetFlag(FLAGS_control_plane_token_file);
    if (token_path.empty()) Die("--ledger_admin needs --control_plane_token_file");
    std::ifstream in(token_path, std::ios::binary);
    if (!in) Die(absl::StrCat("cannot read --control_plane_token_file ", token_path));
    std::ostringstream text;
    text << in.rdbuf();
    std::string token(absl::StripAsciiWhitespace(text.str()));
    if (token.empty()) Die(absl::StrCat("--control_plane_token_file ", token_path, " is empty"));
    const std::string when_down = absl::GetFlag(FLAGS_quota_when_ledger_down);
    if (when_down != "deny" && when_down != "allow") {
      Die(absl::StrCat("--quota_when_ledger_down must be deny or allow (got '", when_down, "')"));
    }
    QuotaManager::Options quota_options;
    quota_options.lease_wait = std::chrono::milliseconds(
        Positive("quota_lease_wait_ms", absl::GetFlag(FLAGS_quota_lease_wait_ms)));
    quota_options.report_interval = std::chrono::milliseconds(
        Positive("quota_report_interval_ms", absl::GetFlag(FLAGS_quota_report_interval_ms)));
    quota_options.idle_release = std::chrono::milliseconds(
        Positive("quota_idle_release_ms", absl::GetFlag(FLAGS_quota_idle_release_ms)));
    quota_options.max_waiters =
        static_cast<size_t>(Positive("quota_max_waiters", absl::GetFlag(FLAGS_quota_max_waiters)));
    quota_options.allow_when_unavailable = when_down == "allow";
    std::shared_ptr<grpc::Channel> admin_channel = MakeChannel(ledger_admin, *grpc_tls);
    quotas = std::make_unique<QuotaManager>(MakeLedgerLeaseFn(admin_channel, token),
                                            std::move(quota_options), registry);
    quotas->Start();
    KeyWatcher::Options watch_options;
    watch_options.registry = registry;
    watch_options.on_snapshot = [quotas = quotas.get()](const v1::KeySetSnapshot& snapshot) {
      quotas->SetQuotas(snapshot.quotas());
    };
    key_watcher = std::make_unique<KeyWatcher>(std::move(admin_channel), &keys, std::move(token),
                                               std::move(watch_options));
    key_watcher->Start();
    if (!key_watcher->WaitForFirstSnapshot(
            absl::Milliseconds(std::max<int64_t>(0, absl::GetFlag(FLAGS_key_snapshot_wait_ms))))) {
      LogWarn(
          "no virtual-key snapshot from the ledger yet; serving static keys only until it "
          "arrives",
          {{"ledger_admin", ledger_admin}});
    }
  }

  const int threads = absl::GetFlag(FLAGS_threads);
  const int max_attempts = absl::GetFlag(FLAGS_max_attempts);
  if (max_attempts < 1) Die("--max_attempts must be at least 1");
  auto ms = [](int64_t v) { return std::chrono::milliseconds(v); };

  GatewayMetrics metrics(registry, static_cast<size_t>(std::max<int64_t>(
                                       0, absl::GetFlag(FLAGS_feature_label_limit))));
  metrics.EnableAttributionLabels(
      absl::GetFlag(FLAGS_metrics_customer_label), absl::GetFlag(FLAGS_metrics_api_key_label),
      static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_attribution_label_limit))));

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

  RouterClient router(MakeChannel(absl::GetFlag(FLAGS_router), *grpc_tls),
                      ms(Positive("route_timeout_ms", absl::GetFlag(FLAGS_route_timeout_ms))));
  router.Connect();
  // Catalog snapshot from Router.Watch (fallback routing, decision-cache invalidation) and the
  // attempt-outcome reporter, on the same channel as Route.
  auto router_channel = MakeChannel(absl::GetFlag(FLAGS_router), *grpc_tls);
  SnapshotStore snapshots;
  router.SetSnapshotStore(&snapshots);
  RouterWatcher watcher(router_channel, &snapshots, &metrics);
  OutcomeReporterOptions outcome_options;
  outcome_options.queue_capacity = static_cast<size_t>(
      Positive("outcome_queue_capacity", absl::GetFlag(FLAGS_outcome_queue_capacity)));
  outcome_options.batch_size =
      static_cast<size_t>(Positive("outcome_batch_size", absl::GetFlag(FLAGS_outcome_batch_size)));
  outcome_options.batch_delay =
      ms(Positive("outcome_batch_delay_ms", absl::GetFlag(FLAGS_outcome_batch_delay_ms)));
  outcome_options.rpc_timeout = ms(absl::GetFlag(FLAGS_route_timeout_ms));
  OutcomeReporter outcomes(router_channel, &metrics, outcome_options);
  watcher.Start();
  outcomes.Start();

  LedgerClientOptions ledger_options;
  ledger_options.queue_capacity = static_cast<size_t>(
      Positive("ledger_queue_capacity", absl::GetFlag(FLAGS_ledger_queue_capacity)));
  ledger_options.batch_max_events =
      static_cast<size_t>(Positive("ledger_batch_size", absl::GetFlag(FLAGS_ledger_batch_size)));
  ledger_options.batch_delay =
      ms(Positive("ledger_batch_delay_ms", absl::GetFlag(FLAGS_ledger_batch_delay_ms)));
  SpoolMetrics spool_metrics(*registry);
  std::unique_ptr<Spool> spool;  // declared before the ledger client: it outlives it
  if (const std::string spool_dir = absl::GetFlag(FLAGS_spool_dir); !spool_dir.empty()) {
    SpoolOptions spool_options;
    spool_options.dir = spool_dir;
    spool_options.segment_bytes = static_cast<uint64_t>(
        Positive("spool_segment_bytes", absl::GetFlag(FLAGS_spool_segment_bytes)));
    spool_options.max_bytes =
        static_cast<uint64_t>(Positive("spool_max_bytes", absl::GetFlag(FLAGS_spool_max_bytes)));
    absl::StatusOr<SpoolFullPolicy> policy =
        ParseSpoolFullPolicy(absl::GetFlag(FLAGS_spool_full_policy));
    if (!policy.ok()) Die(absl::StrCat("--", std::string(policy.status().message())));
    spool_options.full_policy = *policy;
    spool_options.commit_delay =
        std::chrono::microseconds(std::max<int64_t>(0, absl::GetFlag(FLAGS_spool_commit_delay_us)));
    spool_options.fsync = absl::GetFlag(FLAGS_spool_fsync);
    absl::StatusOr<std::unique_ptr<Spool>> opened = Spool::Open(spool_options, &spool_metrics);
    if (!opened.ok()) Die(absl::StrCat("usage spool: ", std::string(opened.status().message())));
    spool = std::move(*opened);
    ledger_options.spool = spool.get();
    ledger_options.spool_metrics = &spool_metrics;
  }
  auto ledger = std::make_unique<LedgerClient>(
      ledger_options, MakeChannel(absl::GetFlag(FLAGS_ledger), *grpc_tls), &metrics);

  ChatHandlerOptions chat_options;
  chat_options.max_attempts = max_attempts;
  chat_options.max_total_retry =
      ms(Positive("max_total_retry_ms", absl::GetFlag(FLAGS_max_total_retry_ms)));
  chat_options.retry_backoff = ms(std::max<int64_t>(0, absl::GetFlag(FLAGS_retry_backoff_ms)));
  chat_options.route_cache = absl::GetFlag(FLAGS_route_cache);
  chat_options.access_log = absl::GetFlag(FLAGS_access_log);
  chat_options.snapshot_routing_only = absl::GetFlag(FLAGS_snapshot_routing_only);
  chat_options.max_upstream_body_bytes = static_cast<size_t>(
      Positive("max_upstream_body_bytes", absl::GetFlag(FLAGS_max_upstream_body_bytes)));
  chat_options.max_stream_event_bytes = static_cast<size_t>(
      Positive("max_stream_event_bytes", absl::GetFlag(FLAGS_max_stream_event_bytes)));
  ChatHandler chat(chat_options, &keys, &router, ledger.get(), &metrics);
  chat.SetGuardrails(config->guardrails.get());
  chat.SetQuotas(quotas.get());
  chat.SetRouting(&snapshots, &outcomes);
  ApiHandler api(&chat, &keys, &router, &metrics);
  api.SetLedger(ledger.get());  // 503 spool_full while the spool is full under policy reject

  UpstreamOptions upstream;
  upstream.max_idle_per_host =
      static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_upstream_max_idle_per_host)));
  upstream.connect_timeout =
      ms(Positive("upstream_connect_timeout_ms", absl::GetFlag(FLAGS_upstream_connect_timeout_ms)));
  upstream.first_byte_timeout = ms(Positive("upstream_first_byte_timeout_ms",
                                            absl::GetFlag(FLAGS_upstream_first_byte_timeout_ms)));
  upstream.idle_timeout =
      ms(Positive("upstream_idle_timeout_ms", absl::GetFlag(FLAGS_upstream_idle_timeout_ms)));
  // HTTPS_PROXY / HTTP_PROXY / NO_PROXY, read once (upstream_client.h). Logged without
  // credentials.
  absl::StatusOr<ProxyConfig> proxy =
      ParseProxyConfig([](const char* name) -> const char* { return std::getenv(name); });
  if (!proxy.ok()) Die(std::string(proxy.status().message()));
  upstream.proxy = std::move(*proxy);
  if (upstream.proxy.enabled()) {
    LogInfo("upstream proxy",
            {{"https_proxy", upstream.proxy.https ? upstream.proxy.https->display : "none"},
             {"http_proxy", upstream.proxy.http ? upstream.proxy.http->display : "none"},
             {"no_proxy", NoProxyToString(upstream.proxy)}});
  }

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
  router.WaitIdle();                      // router completions target the workers' io_contexts
  if (quotas != nullptr) quotas->Stop();  // gives the leases back to the ledger
  // Make what the last requests wrote durable before the sender's final round.
  if (spool != nullptr && !spool->Flush(ms(5000))) {
    LogWarn("usage spool flush timed out at shutdown");
  }
  server->reset();
  watcher.Stop();
  if (key_watcher != nullptr) key_watcher->Stop();
  outcomes.Stop();

  const size_t lost =
      ledger->Shutdown(ms(std::max<int64_t>(0, absl::GetFlag(FLAGS_ledger_flush_timeout_ms))));
  if (spool != nullptr) spool->Close();  // unacknowledged events stay on disk for the next start
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
