// tollgate-ledger: ingests usage events from gateways into PostgreSQL and serves spend queries.
//
// Start-up: connect to PostgreSQL (retrying up to --db_connect_timeout_s), apply migrations, then
// listen: --listen (Ledger.Ingest + gRPC health), --admin_listen (LedgerAdmin), --metrics_listen
// (Prometheus). SIGTERM/SIGINT: stop reading new batches, commit and acknowledge what was read,
// shut down, exit 0.

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "services/common/grpc_tls.h"
#include "services/common/logging.h"
#include "services/common/metrics.h"
#include "services/common/money.h"
#include "services/ledger/admin_service.h"
#include "services/ledger/ingest_service.h"
#include "services/ledger/ledger_metrics.h"
#include "services/ledger/maintenance.h"
#include "services/ledger/quota_service.h"
#include "services/ledger/quota_store.h"
#include "services/ledger/store.h"
#include "services/ledger/tenancy_admin_guard.h"
#include "services/ledger/tenancy_auth.h"
#include "services/ledger/tenancy_service.h"
#include "services/ledger/tenancy_store.h"

ABSL_FLAG(std::string, database_url, "",
          "PostgreSQL connection (libpq URL or key=value string). Default: the environment "
          "variable TOLLGATE_DATABASE_URL. Required one way or the other.");
ABSL_FLAG(std::string, listen, "127.0.0.1:7003",
          "Data-plane gRPC address: service Ledger (Ingest) and gRPC health.");
ABSL_FLAG(std::string, admin_listen, "127.0.0.1:7004",
          "Control-plane gRPC address: services LedgerAdmin (spend queries), TenancyAdmin (teams, "
          "keys, audit) and Quotas (budgets, rate limits, gateway leases).");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9102",
          "Prometheus metrics address (http://<address>/metrics).");
ABSL_FLAG(std::string, log_level, "info", "Minimum log level: trace, debug, info, warn, error.");
ABSL_FLAG(int, writers, 4,
          "Ingest writer threads, each with its own PostgreSQL connection (batches are committed "
          "in parallel by this many transactions, so PostgreSQL can group their WAL flushes).");
ABSL_FLAG(int, queue_capacity, 64,
          "Ingest batches read but not yet taken by a writer, over all streams. When full, "
          "streams stop reading (backpressure) instead of dropping.");
ABSL_FLAG(int, max_write_events, 10000,
          "Most events a writer commits in one transaction: it takes every queued batch it finds "
          "(from any stream) up to this many events, so a backlog drains in few large "
          "transactions. At least one batch is always taken whatever its size.");
ABSL_FLAG(int, query_threads, 2, "Spend-query threads, each with its own PostgreSQL connection.");
ABSL_FLAG(int, max_pending_queries, 64,
          "Spend queries waiting for a query thread; more get RESOURCE_EXHAUSTED.");
ABSL_FLAG(int, query_timeout_s, 30,
          "Longest a spend query may run (also capped by the caller's gRPC deadline).");
ABSL_FLAG(int, db_connect_timeout_s, 30,
          "At start, how long to keep trying to reach PostgreSQL (and migrate) before exiting 1.");
ABSL_FLAG(int, db_statement_timeout_s, 60,
          "PostgreSQL statement_timeout for ingest writes (0: none).");
ABSL_FLAG(int, ingest_retry_budget_s, 30,
          "How long a writer retries a batch after transient database errors before ending the "
          "stream with UNAVAILABLE (the gateway then reconnects and resends).");
ABSL_FLAG(int, drain_timeout_s, 20,
          "On SIGTERM, how long to wait for streams to commit and acknowledge what they read "
          "before cancelling them.");
ABSL_FLAG(int, partition_months_ahead, 3,
          "usage_events monthly partitions kept created ahead of the current UTC month (the "
          "ingest path also creates a missing one on demand).");
ABSL_FLAG(int, retention_months, 0,
          "Raw usage events are kept for this many whole UTC months before the current one; "
          "older monthly partitions are dropped (hourly rollups are kept). 0 keeps everything.");
ABSL_FLAG(int, maintenance_interval_s, 3600,
          "Seconds between maintenance passes: partitions ahead, retention, anomaly detection "
          "over the hours completed since the previous pass.");
ABSL_FLAG(int, anomaly_baseline_weeks, 4,
          "Anomaly baseline: mean spend of the same hour of week over this many previous weeks "
          "(0 disables anomaly detection).");
ABSL_FLAG(std::string, anomaly_ratio, "3",
          "An hour's spend per team/feature/model is an anomaly above this multiple of its "
          "baseline (decimal).");
ABSL_FLAG(std::string, anomaly_min_usd, "1",
          "...and at least this many USD (decimal), so tiny amounts never alert.");
ABSL_FLAG(bool, migrate_only, false,
          "Connect, apply pending schema migrations (under the advisory lock, safe beside running "
          "ledgers), and exit 0 without serving: for deployment hooks such as the Helm chart's "
          "migration Job.");
ABSL_FLAG(int, max_batch_bytes, 16 << 20, "Largest ingest batch message accepted, in bytes.");
ABSL_FLAG(int, admin_tokens_reload_ms, 2000,
          "How often the ledger rereads --admin_tokens_file; a changed file that parses replaces "
          "the tokens without a restart (a bad one is logged and ignored). 0: read once at "
          "start.");
ABSL_FLAG(std::string, admin_tokens_file, "",
          "YAML file of control-plane bearer tokens (SHA-256 hashes) and their roles: admin, "
          "team-admin, viewer, gateway (docs/tenancy.md). Required by the TenancyAdmin service "
          "(teams, virtual keys, audit, WatchKeys), whose calls all fail UNAUTHENTICATED without "
          "it. When set, LedgerAdmin calls need a token too (team-admin and viewer tokens read "
          "only their team's spend). Empty: LedgerAdmin calls are not authenticated (a warning "
          "is logged).");
ABSL_FLAG(int, key_poll_ms, 500,
          "How often the ledger rereads the active virtual keys, so that changes made through "
          "another ledger replica reach this replica's WatchKeys streams (local changes are "
          "pushed at once).");
ABSL_FLAG(int, key_heartbeat_ms, 1000, "Heartbeat interval of idle WatchKeys streams.");
ABSL_FLAG(int, quota_lease_term_ms, 30000,
          "How long a quota lease granted to a gateway lasts unless the gateway renews it (leases "
          "of per-minute windows end at most 5 s after their window). A lease that lapses without "
          "being released keeps counting at its granted amount until its window ends "
          "(docs/budgets.md).");
ABSL_FLAG(
    int, quota_state_interval_ms, 5000,
    "How often the ledger computes every budget's state in its current window: the "
    "tollgate_ledger_budget_* gauges and the 'budget alert' log lines when an alert threshold is "
    "crossed (each fires once per window, on one replica).");

namespace tollgate::ledger {
namespace {

int Fail(const std::string& message) {
  LogError(message);
  return 1;
}

// Waits up to `timeout` for SIGTERM/SIGINT (blocked in every thread). True when one arrived.
bool WaitForStopSignal(const sigset_t& signals, absl::Duration timeout) {
  if (timeout == absl::InfiniteDuration()) {
    int signal = 0;
    return sigwait(&signals, &signal) == 0;
  }
  const timespec ts = absl::ToTimespec(timeout);
  return sigtimedwait(&signals, nullptr, &ts) > 0;
}

std::unique_ptr<grpc::Server> StartServer(const std::string& address, const GrpcTls& tls,
                                          grpc::Service* service, bool health,
                                          int max_message_bytes,
                                          std::vector<grpc::Service*> extra_services = {}) {
  grpc::EnableDefaultHealthCheckService(health);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address, tls.ServerCredentials(), &port);
  builder.RegisterService(service);
  for (grpc::Service* extra : extra_services) builder.RegisterService(extra);
  builder.SetMaxReceiveMessageSize(max_message_bytes);
  // Ingest streams live for as long as a gateway runs: ping idle peers so a vanished gateway's
  // stream is torn down, and accept the gateways' own keepalive pings (one per 10 s at most).
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10'000);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) return nullptr;
  return server;
}

int Run() {
  // TLS and mTLS on both listeners (docs/security.md); checked before any database work.
  absl::StatusOr<GrpcTls> tls = GrpcTlsFromFlags();
  if (!tls.ok()) return Fail(std::string(tls.status().message()));
  std::string url = absl::GetFlag(FLAGS_database_url);
  if (url.empty()) {
    if (const char* env = std::getenv("TOLLGATE_DATABASE_URL")) url = env;
  }
  if (url.empty()) {
    return Fail("no database: pass --database_url or set TOLLGATE_DATABASE_URL");
  }
  const int writers = absl::GetFlag(FLAGS_writers);
  const int queue_capacity = absl::GetFlag(FLAGS_queue_capacity);
  const int query_threads = absl::GetFlag(FLAGS_query_threads);
  if (writers < 1 || writers > 64) return Fail("--writers must be between 1 and 64");
  if (queue_capacity < 1) return Fail("--queue_capacity must be at least 1");
  const int max_write_events = absl::GetFlag(FLAGS_max_write_events);
  if (max_write_events < 1) return Fail("--max_write_events must be at least 1");
  if (query_threads < 1 || query_threads > 64) {
    return Fail("--query_threads must be between 1 and 64");
  }
  if (absl::GetFlag(FLAGS_query_timeout_s) < 1) return Fail("--query_timeout_s must be >= 1");
  if (absl::GetFlag(FLAGS_db_statement_timeout_s) < 0) {
    return Fail("--db_statement_timeout_s must be >= 0");
  }
  if (absl::GetFlag(FLAGS_max_batch_bytes) < 1024) return Fail("--max_batch_bytes must be >= 1024");
  if (absl::GetFlag(FLAGS_partition_months_ahead) < 0 ||
      absl::GetFlag(FLAGS_partition_months_ahead) > 120) {
    return Fail("--partition_months_ahead must be between 0 and 120");
  }
  if (absl::GetFlag(FLAGS_retention_months) < 0) return Fail("--retention_months must be >= 0");
  if (absl::GetFlag(FLAGS_anomaly_baseline_weeks) < 0) {
    return Fail("--anomaly_baseline_weeks must be >= 0");
  }
  if (!ParseUsd(absl::GetFlag(FLAGS_anomaly_ratio)).ok() ||
      !ParseUsd(absl::GetFlag(FLAGS_anomaly_min_usd)).ok()) {
    return Fail("--anomaly_ratio and --anomaly_min_usd must be decimal numbers");
  }
  if (absl::GetFlag(FLAGS_maintenance_interval_s) < 1) {
    return Fail("--maintenance_interval_s must be >= 1");
  }

  // Every thread created from here on inherits the mask, so only sigwait sees these signals.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  PostgresUsageStore::Options store_options;
  store_options.database_url = url;
  store_options.statement_timeout = absl::Seconds(absl::GetFlag(FLAGS_db_statement_timeout_s));
  auto make_store = [&store_options] {
    return std::make_unique<PostgresUsageStore>(store_options);
  };

  // Ready means migrated: nothing listens before this succeeds.
  {
    const absl::Time give_up =
        absl::Now() + absl::Seconds(absl::GetFlag(FLAGS_db_connect_timeout_s));
    PostgresUsageStore store(store_options);
    for (int attempt = 1;; ++attempt) {
      absl::Status status = store.Connect();
      if (status.ok()) status = store.Migrate();
      if (status.ok()) break;
      if (status.code() != absl::StatusCode::kUnavailable) {
        return Fail(absl::StrCat("database migration failed: ", status.ToString()));
      }
      if (absl::Now() >= give_up) {
        return Fail(absl::StrCat("PostgreSQL unreachable after ",
                                 absl::GetFlag(FLAGS_db_connect_timeout_s),
                                 "s (--db_connect_timeout_s): ", status.message()));
      }
      LogWarn("waiting for PostgreSQL",
              {{"attempt", absl::StrCat(attempt)}, {"error", std::string(status.message())}});
      if (WaitForStopSignal(stop_signals, absl::Seconds(1))) {
        LogInfo("stopped before the database was ready");
        return 0;
      }
    }
  }
  LogInfo("database schema up to date");
  if (absl::GetFlag(FLAGS_migrate_only)) return 0;

  auto registry = std::make_shared<prometheus::Registry>();
  absl::StatusOr<std::unique_ptr<LedgerMetrics>> metrics = LedgerMetrics::Create(*registry);
  if (!metrics.ok()) return Fail(metrics.status().ToString());

  PartitionMaintainer::Options maintenance_options;
  maintenance_options.months_ahead = absl::GetFlag(FLAGS_partition_months_ahead);
  maintenance_options.retention_months = absl::GetFlag(FLAGS_retention_months);
  maintenance_options.interval = absl::Seconds(absl::GetFlag(FLAGS_maintenance_interval_s));
  maintenance_options.detect_anomalies = absl::GetFlag(FLAGS_anomaly_baseline_weeks) > 0;
  maintenance_options.anomaly.baseline_weeks =
      std::max(1, absl::GetFlag(FLAGS_anomaly_baseline_weeks));
  maintenance_options.anomaly.ratio = absl::GetFlag(FLAGS_anomaly_ratio);
  maintenance_options.anomaly.min_usd = absl::GetFlag(FLAGS_anomaly_min_usd);
  PartitionMaintainer maintainer(make_store(), maintenance_options, *registry);
  maintainer.Start();

  std::vector<std::unique_ptr<UsageStore>> writer_stores;
  for (int i = 0; i < writers; ++i) writer_stores.push_back(make_store());
  IngestService::Options ingest_options;
  ingest_options.queue_capacity = static_cast<size_t>(queue_capacity);
  ingest_options.max_write_events = static_cast<size_t>(max_write_events);
  ingest_options.retry_budget = absl::Seconds(absl::GetFlag(FLAGS_ingest_retry_budget_s));
  IngestService ingest(std::move(writer_stores), ingest_options, **metrics);

  std::vector<std::unique_ptr<UsageStore>> query_stores;
  for (int i = 0; i < query_threads; ++i) query_stores.push_back(make_store());
  LedgerAdminService::Options admin_options;
  admin_options.max_query_timeout = absl::Seconds(absl::GetFlag(FLAGS_query_timeout_s));
  admin_options.max_pending = static_cast<size_t>(absl::GetFlag(FLAGS_max_pending_queries));
  LedgerAdminService admin(std::move(query_stores), admin_options, **metrics);

  // Teams and virtual keys (docs/tenancy.md), on the admin listener.
  std::unique_ptr<AdminTokens> admin_tokens;
  std::unique_ptr<AdminTokensReloader> tokens_reloader;
  if (const std::string path = absl::GetFlag(FLAGS_admin_tokens_file); !path.empty()) {
    absl::StatusOr<AdminTokens> loaded = LoadAdminTokens(path);
    if (!loaded.ok()) return Fail(std::string(loaded.status().message()));
    admin_tokens = std::make_unique<AdminTokens>(std::move(*loaded));
    LogInfo("admin tokens loaded", {{"tokens", absl::StrCat(admin_tokens->size())}});
    if (const int reload_ms = absl::GetFlag(FLAGS_admin_tokens_reload_ms); reload_ms > 0) {
      tokens_reloader = std::make_unique<AdminTokensReloader>(path, admin_tokens.get(),
                                                              absl::Milliseconds(reload_ms));
      tokens_reloader->Start();
    }
  } else {
    LogWarn(
        "no --admin_tokens_file: LedgerAdmin calls are not authenticated; TenancyAdmin and "
        "Quotas calls are refused");
  }
  if (absl::GetFlag(FLAGS_key_poll_ms) < 10 || absl::GetFlag(FLAGS_key_heartbeat_ms) < 10) {
    return Fail("--key_poll_ms and --key_heartbeat_ms must be >= 10");
  }
  TenancyStore::Options tenancy_store_options;
  tenancy_store_options.database_url = url;
  TenancyAdminService::Options tenancy_options;
  tenancy_options.poll_interval = std::chrono::milliseconds(absl::GetFlag(FLAGS_key_poll_ms));
  tenancy_options.heartbeat_interval =
      std::chrono::milliseconds(absl::GetFlag(FLAGS_key_heartbeat_ms));
  TenancyAdminService tenancy(std::make_unique<TenancyStore>(tenancy_store_options),
                              admin_tokens.get(), tenancy_options);
  tenancy.Start();

  // Budgets and rate limits (docs/budgets.md), on the admin listener too.
  if (absl::GetFlag(FLAGS_quota_lease_term_ms) < 1000) {
    return Fail("--quota_lease_term_ms must be >= 1000");
  }
  if (absl::GetFlag(FLAGS_quota_state_interval_ms) < 100) {
    return Fail("--quota_state_interval_ms must be >= 100");
  }
  absl::StatusOr<std::unique_ptr<QuotaMetrics>> quota_metrics = QuotaMetrics::Create(*registry);
  if (!quota_metrics.ok()) return Fail(quota_metrics.status().ToString());
  QuotaStore::Options quota_store_options;
  quota_store_options.database = tenancy_store_options;
  quota_store_options.lease_term = absl::Milliseconds(absl::GetFlag(FLAGS_quota_lease_term_ms));
  QuotaService::Options quota_options;
  quota_options.state_interval =
      std::chrono::milliseconds(absl::GetFlag(FLAGS_quota_state_interval_ms));
  quota_options.on_change = [&tenancy] { tenancy.RequestRefresh(); };
  QuotaService quotas(std::make_unique<QuotaStore>(quota_store_options),
                      std::make_unique<QuotaStore>(quota_store_options), admin_tokens.get(),
                      quota_metrics->get(), quota_options);
  quotas.Start();
  // With tokens, LedgerAdmin calls need one too (docs/tenancy.md).
  std::unique_ptr<LedgerAdminGuard> guard;
  if (admin_tokens != nullptr) {
    guard = std::make_unique<LedgerAdminGuard>(&admin, admin_tokens.get());
  }

  const std::string metrics_address = absl::GetFlag(FLAGS_metrics_listen);
  absl::StatusOr<std::unique_ptr<prometheus::Exposer>> exposer =
      StartMetricsExposer(metrics_address, registry);
  if (!exposer.ok()) return Fail(std::string(exposer.status().message()));

  const std::string listen = absl::GetFlag(FLAGS_listen);
  const std::string admin_listen = absl::GetFlag(FLAGS_admin_listen);
  const int max_message = absl::GetFlag(FLAGS_max_batch_bytes);
  std::unique_ptr<grpc::Server> data_server =
      StartServer(listen, *tls, &ingest, /*health=*/true, max_message);
  if (data_server == nullptr) return Fail(absl::StrCat("cannot listen on ", listen, " (--listen)"));
  std::unique_ptr<grpc::Server> admin_server = StartServer(
      admin_listen, *tls, guard != nullptr ? static_cast<grpc::Service*>(guard.get()) : &admin,
      /*health=*/false, 4 << 20, {&tenancy, &quotas});
  if (admin_server == nullptr) {
    data_server->Shutdown();
    return Fail(absl::StrCat("cannot listen on ", admin_listen, " (--admin_listen)"));
  }
  LogInfo("ledger ready", {{"listen", listen},
                           {"admin_listen", admin_listen},
                           {"metrics_listen", metrics_address},
                           {"writers", absl::StrCat(writers)}});

  WaitForStopSignal(stop_signals, absl::InfiniteDuration());
  LogInfo("stopping: draining ingest streams");
  if (auto* health = data_server->GetHealthCheckService()) health->SetServingStatus(false);
  ingest.StartDrain();
  // Waits for every stream to commit and acknowledge what it read; cancels stragglers.
  data_server->Shutdown(
      absl::ToChronoTime(absl::Now() + absl::Seconds(absl::GetFlag(FLAGS_drain_timeout_s))));
  tenancy.Stop();  // ends WatchKeys streams, which would otherwise hold the shutdown
  quotas.Stop();   // finishes queued quota calls
  admin_server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  ingest.Stop();
  admin.Stop();
  maintainer.Stop();
  LogInfo("stopped");
  return 0;
}

}  // namespace
}  // namespace tollgate::ledger

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "tollgate-ledger: usage-event ingest (Ledger) and spend queries (LedgerAdmin) over "
      "PostgreSQL.");
  absl::ParseCommandLine(argc, argv);
  tollgate::InitLogging("ledger", absl::GetFlag(FLAGS_log_level));
  return tollgate::ledger::Run();
}
