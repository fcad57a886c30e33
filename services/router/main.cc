// tollgate-router: loads the catalog, serves tollgate.v1.Router (+ gRPC health) on the data-plane
// address and tollgate.v1.RouterAdmin on the control-plane address, exposes Prometheus metrics,
// and hot-reloads the catalog file. SIGTERM/SIGINT: graceful stop, exit 0.

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "grpc/support/log.h"
#include "services/common/grpc_tls.h"
#include "services/common/logging.h"
#include "services/common/metrics.h"
#include "services/router/catalog.h"
#include "services/router/router_service.h"

ABSL_FLAG(std::string, catalog, "",
          "Path of the YAML catalog (providers, deployments, models). Required. See "
          "deploy/config/catalog.example.yaml.");
ABSL_FLAG(std::string, listen, "127.0.0.1:7001",
          "Data-plane gRPC address (host:port): tollgate.v1.Router and grpc.health.v1.Health.");
ABSL_FLAG(std::string, admin_listen, "127.0.0.1:7002",
          "Control-plane gRPC address (host:port): tollgate.v1.RouterAdmin.");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9101",
          "Address (host:port) serving Prometheus metrics at /metrics; empty disables it.");
ABSL_FLAG(std::string, log_level, "info", "Minimum log level: trace, debug, info, warn, error.");
ABSL_FLAG(int64_t, reload_interval_ms, 2000,
          "How often to check the catalog file for changes, in milliseconds; a changed valid "
          "file replaces the live catalog, an invalid one is logged and ignored. 0 disables "
          "reloading.");
ABSL_FLAG(int32_t, circuit_failure_threshold, 5,
          "Consecutive failed attempts (connect error, timeout, reset, 5xx, overload) reported "
          "for a deployment that open its circuit: it is not routed to until the open period "
          "ends.");
ABSL_FLAG(int64_t, circuit_open_ms, 30000,
          "How long an opened circuit stays open, in milliseconds; then it is half-open and "
          "one request at a time probes it (success closes it, failure reopens it).");
ABSL_FLAG(int64_t, circuit_probe_timeout_ms, 10000,
          "How long a half-open circuit's probe may take to be reported before another request "
          "may probe, in milliseconds.");
ABSL_FLAG(double, ewma_alpha, 0.2,
          "Weight (0 < alpha <= 1) of the newest sample in the latency, time-to-first-token and "
          "error-rate moving averages.");
ABSL_FLAG(int64_t, cooldown_default_ms, 1000,
          "Cooldown after a 429 without retry-after, in milliseconds: the deployment is not "
          "routed to meanwhile.");
ABSL_FLAG(int64_t, cooldown_max_ms, 300000,
          "Upper bound of a 429 cooldown (whatever retry-after says), in milliseconds.");
ABSL_FLAG(int32_t, limit_headroom_percent, 90,
          "A deployment whose reported requests or tokens over the last 60 s reach this "
          "percentage of its catalog rpm/tpm limit is tried after the others (1..100).");
ABSL_FLAG(int64_t, health_tick_ms, 250,
          "How often time-based health changes (circuit half-open, cooldown over, rate-limit "
          "window) are published to Watch streams and metrics, in milliseconds.");
ABSL_FLAG(int64_t, watch_heartbeat_ms, 5000,
          "Idle Watch streams get a heartbeat this often, in milliseconds.");
ABSL_FLAG(int32_t, watch_max_backlog, 1024,
          "Events queued for a slow Watch reader before its backlog is replaced by one fresh "
          "snapshot.");
ABSL_FLAG(int64_t, shutdown_timeout_ms, 5000,
          "On SIGTERM/SIGINT, how long in-flight RPCs may take to finish before being cancelled, "
          "in milliseconds.");

namespace tollgate::router {
namespace {

// gRPC's own diagnostics become JSON log lines like ours. gRPC "errors" are often transient or
// internal; what is fatal is decided (and logged as an error) by the code below, so they are
// warnings.
void LogGrpc(gpr_log_func_args* args) {
  const std::string where = absl::StrCat(args->file, ":", args->line);
  const std::string message = absl::StrCat("grpc: ", args->message);
  switch (args->severity) {
    case GPR_LOG_SEVERITY_DEBUG:
      LogDebug(message, {{"source", where}});
      break;
    case GPR_LOG_SEVERITY_INFO:
      LogInfo(message, {{"source", where}});
      break;
    default:
      LogWarn(message, {{"source", where}});
      break;
  }
}

int Fail(const std::string& message) {
  LogError(message);
  return 1;
}

int Run(int argc, char** argv) {
  absl::SetProgramUsageMessage("tollgate-router --catalog=PATH [flags]");
  const std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  InitLogging("router", absl::GetFlag(FLAGS_log_level));
  gpr_set_log_function(LogGrpc);
  if (positional.size() > 1) {
    return Fail(absl::StrCat("unexpected argument '", positional[1], "'"));
  }
  const std::string catalog_path = absl::GetFlag(FLAGS_catalog);
  if (catalog_path.empty()) return Fail("--catalog is required");
  const int64_t reload_interval_ms = absl::GetFlag(FLAGS_reload_interval_ms);
  if (reload_interval_ms < 0) return Fail("--reload_interval_ms must not be negative");
  HealthOptions health_options;
  health_options.failure_threshold = absl::GetFlag(FLAGS_circuit_failure_threshold);
  health_options.open_duration = absl::Milliseconds(absl::GetFlag(FLAGS_circuit_open_ms));
  health_options.probe_hold = absl::Milliseconds(absl::GetFlag(FLAGS_circuit_probe_timeout_ms));
  health_options.ewma_alpha = absl::GetFlag(FLAGS_ewma_alpha);
  health_options.default_cooldown = absl::Milliseconds(absl::GetFlag(FLAGS_cooldown_default_ms));
  health_options.max_cooldown = absl::Milliseconds(absl::GetFlag(FLAGS_cooldown_max_ms));
  health_options.limit_headroom_percent = absl::GetFlag(FLAGS_limit_headroom_percent);
  const int64_t health_tick_ms = absl::GetFlag(FLAGS_health_tick_ms);
  const int64_t heartbeat_ms = absl::GetFlag(FLAGS_watch_heartbeat_ms);
  const int32_t max_backlog = absl::GetFlag(FLAGS_watch_max_backlog);
  if (health_options.failure_threshold < 1) return Fail("--circuit_failure_threshold must be >= 1");
  if (health_options.open_duration <= absl::ZeroDuration()) {
    return Fail("--circuit_open_ms must be positive");
  }
  if (health_options.probe_hold <= absl::ZeroDuration()) {
    return Fail("--circuit_probe_timeout_ms must be positive");
  }
  if (!(health_options.ewma_alpha > 0 && health_options.ewma_alpha <= 1)) {
    return Fail("--ewma_alpha must be in (0, 1]");
  }
  if (health_options.default_cooldown <= absl::ZeroDuration() ||
      health_options.max_cooldown < health_options.default_cooldown) {
    return Fail("--cooldown_default_ms must be positive and not above --cooldown_max_ms");
  }
  if (health_options.limit_headroom_percent < 1 || health_options.limit_headroom_percent > 100) {
    return Fail("--limit_headroom_percent must be in 1..100");
  }
  if (health_tick_ms <= 0) return Fail("--health_tick_ms must be positive");
  if (heartbeat_ms <= 0) return Fail("--watch_heartbeat_ms must be positive");
  if (max_backlog < 1) return Fail("--watch_max_backlog must be >= 1");

  // Block the stop signals before any thread exists so every thread inherits the mask and
  // sigwait() below is the only receiver.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  absl::StatusOr<std::shared_ptr<const Catalog>> catalog = LoadCatalogFile(catalog_path);
  if (!catalog.ok()) return Fail(absl::StrCat("bad catalog: ", catalog.status().message()));

  auto registry = std::make_shared<prometheus::Registry>();
  absl::StatusOr<std::unique_ptr<RouterMetrics>> metrics = RouterMetrics::Create(*registry);
  if (!metrics.ok()) return Fail(std::string(metrics.status().message()));

  std::unique_ptr<prometheus::Exposer> exposer;
  const std::string metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  if (!metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<prometheus::Exposer>> started =
        StartMetricsExposer(metrics_listen, registry);
    if (!started.ok()) return Fail(std::string(started.status().message()));
    exposer = *std::move(started);
  }

  CatalogStore store(*catalog, metrics->get());
  LogInfo("catalog loaded", {{"catalog", catalog_path},
                             {"catalog_version", (*catalog)->version()},
                             {"models", std::to_string((*catalog)->models().size())},
                             {"deployments", std::to_string((*catalog)->deployments().size())}});
  HealthTracker health(health_options, Clock::Real(), metrics->get());
  WatchHub watch(&store, &health, Clock::Real(), metrics->get(), static_cast<size_t>(max_backlog));
  ConnectRouterParts(&store, &health, &watch);
  const RouterDeps deps{&health, &watch};
  RouterService router_service(&store, metrics->get(), deps);
  RouterAdminService admin_service(&store, deps);

  absl::StatusOr<GrpcTls> tls = GrpcTlsFromFlags();
  if (!tls.ok()) return Fail(std::string(tls.status().message()));
  const std::string listen = absl::GetFlag(FLAGS_listen);
  absl::StatusOr<StartedServer> data_plane =
      StartGrpcServer(listen, {&router_service}, /*with_health=*/true, tls->ServerCredentials());
  if (!data_plane.ok()) return Fail(std::string(data_plane.status().message()));
  const std::string admin_listen = absl::GetFlag(FLAGS_admin_listen);
  absl::StatusOr<StartedServer> control_plane =
      StartGrpcServer(admin_listen, {&admin_service}, /*with_health=*/false,
                      tls->ServerCredentials());
  if (!control_plane.ok()) {
    data_plane->server->Shutdown();
    return Fail(std::string(control_plane.status().message()));
  }

  CatalogReloader reloader(catalog_path, &store, metrics->get());
  if (reload_interval_ms > 0) reloader.Start(absl::Milliseconds(reload_interval_ms));
  Periodic health_ticker([&health] { health.Tick(); }, absl::Milliseconds(health_tick_ms));
  Periodic heartbeat([&watch] { watch.Heartbeat(); }, absl::Milliseconds(heartbeat_ms));

  LogInfo("router ready", {{"listen", listen},
                           {"admin_listen", admin_listen},
                           {"metrics_listen", metrics_listen},
                           {"catalog_version", (*catalog)->version()}});

  int signal_number = 0;
  while (sigwait(&stop_signals, &signal_number) != 0) {
  }
  LogInfo("router stopping", {{"signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"}});

  reloader.Stop();
  health_ticker.Stop();
  heartbeat.Stop();
  watch.CloseAll();  // Watch streams never end on their own; they must not hold the shutdown
  const auto deadline = std::chrono::system_clock::now() +
                        std::chrono::milliseconds(absl::GetFlag(FLAGS_shutdown_timeout_ms));
  data_plane->server->Shutdown(deadline);
  control_plane->server->Shutdown(deadline);
  data_plane->server->Wait();
  control_plane->server->Wait();
  exposer.reset();
  LogInfo("router stopped");
  return 0;
}

}  // namespace
}  // namespace tollgate::router

int main(int argc, char** argv) { return tollgate::router::Run(argc, argv); }
