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
  RouterService router_service(&store, metrics->get());
  RouterAdminService admin_service(&store);

  const std::string listen = absl::GetFlag(FLAGS_listen);
  absl::StatusOr<StartedServer> data_plane =
      StartGrpcServer(listen, {&router_service}, /*with_health=*/true);
  if (!data_plane.ok()) return Fail(std::string(data_plane.status().message()));
  const std::string admin_listen = absl::GetFlag(FLAGS_admin_listen);
  absl::StatusOr<StartedServer> control_plane =
      StartGrpcServer(admin_listen, {&admin_service}, /*with_health=*/false);
  if (!control_plane.ok()) {
    data_plane->server->Shutdown();
    return Fail(std::string(control_plane.status().message()));
  }

  CatalogReloader reloader(catalog_path, &store, metrics->get());
  if (reload_interval_ms > 0) reloader.Start(absl::Milliseconds(reload_interval_ms));

  LogInfo("router ready", {{"listen", listen},
                           {"admin_listen", admin_listen},
                           {"metrics_listen", metrics_listen},
                           {"catalog_version", (*catalog)->version()}});

  int signal_number = 0;
  while (sigwait(&stop_signals, &signal_number) != 0) {
  }
  LogInfo("router stopping", {{"signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"}});

  reloader.Stop();
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
