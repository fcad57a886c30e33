#pragma once
// The router's gRPC services and the pieces they share.
//
//   auto metrics = *RouterMetrics::Create(*registry);
//   CatalogStore store(*LoadCatalogFile(path), metrics.get());
//   HealthTracker health(HealthOptions{}, Clock::Real(), metrics.get());
//   WatchHub watch(&store, &health, Clock::Real(), metrics.get());
//   ConnectRouterParts(&store, &health, &watch);           // catalog -> health -> watch
//   RouterDeps deps{&health, &watch};
//   RouterService data_plane(&store, metrics.get(), deps);   // tollgate.v1.Router
//   RouterAdminService control_plane(&store, deps);          // tollgate.v1.RouterAdmin
//   CatalogReloader reloader(path, &store, metrics.get());
//   reloader.Start(absl::Milliseconds(2000));
//   Periodic ticker([&] { health.Tick(); }, absl::Milliseconds(250));
//
// Handlers use the gRPC callback API and never block: each one takes the current catalog and
// health snapshots (atomic shared_ptr loads), computes its answer and finishes the call inline
// (ReportOutcomes takes short per-deployment locks). A catalog reload is a pointer swap; a
// request keeps the snapshots it started with.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/server.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "services/router/catalog.h"
#include "services/router/clock.h"
#include "services/router/health.h"
#include "services/router/route_engine.h"
#include "services/router/router_metrics.h"
#include "services/router/watch.h"
#include "tollgate/v1/router.grpc.pb.h"

namespace tollgate::router {

// An installed catalog together with the per-model counters the hot path increments, so a
// request never looks up a labelled metric.
struct CatalogSnapshot {
  struct ModelCounters {
    prometheus::Counter* ok = nullptr;
    prometheus::Counter* no_candidates = nullptr;
    prometheus::Counter* permission_denied = nullptr;
  };

  std::shared_ptr<const Catalog> catalog;
  std::vector<ModelCounters> counters;  // indexed by CatalogModel::index
  prometheus::Counter* not_found = nullptr;
  prometheus::Counter* invalid_argument = nullptr;
};

// Holds the live catalog. Get() is lock-free for readers' purposes (one atomic load) and safe
// from any thread; Install() may be called from any thread and replaces the snapshot atomically.
// `metrics` must outlive the store.
class CatalogStore {
 public:
  using Listener = std::function<void(const std::shared_ptr<const Catalog>& catalog)>;

  // `initial` must not be null.
  CatalogStore(std::shared_ptr<const Catalog> initial, RouterMetrics* metrics);

  std::shared_ptr<const CatalogSnapshot> Get() const;
  std::shared_ptr<const Catalog> catalog() const { return Get()->catalog; }

  // Makes `catalog` (not null) live, updates the deployments gauge, logs the catalog's notes,
  // then calls the listeners in the order they were added. Installs are serialised.
  void Install(std::shared_ptr<const Catalog> catalog);

  // Calls `listener` after every later Install (not for the current catalog).
  void AddListener(Listener listener);

 private:
  std::shared_ptr<const CatalogSnapshot> MakeSnapshot(std::shared_ptr<const Catalog> catalog);

  RouterMetrics* metrics_;
  std::atomic<std::shared_ptr<const CatalogSnapshot>> snapshot_;
  absl::Mutex install_mu_;
  std::vector<Listener> listeners_ ABSL_GUARDED_BY(install_mu_);
};

// The optional parts the services use. Null members disable what needs them: without `health`
// every deployment counts as healthy and ReportOutcomes is UNIMPLEMENTED; without `watch`,
// Watch is UNIMPLEMENTED.
struct RouterDeps {
  HealthTracker* health = nullptr;
  WatchHub* watch = nullptr;
};

// Makes `health` and `watch` (either may be null) follow `store`: `health` is aligned with the
// current catalog now and with every installed one; `watch` gets a snapshot after each install
// and every health change. Call once, before serving.
void ConnectRouterParts(CatalogStore* store, HealthTracker* health, WatchHub* watch);

// Runs `fn` every `interval` on its own thread until Stop() or destruction. Thread-safe.
class Periodic {
 public:
  Periodic(std::function<void()> fn, absl::Duration interval);
  ~Periodic();
  Periodic(const Periodic&) = delete;
  Periodic& operator=(const Periodic&) = delete;
  void Stop();

 private:
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// tollgate.v1.Router (data plane). Route runs DecideRoute (route_engine.h) on the live catalog
// and health snapshots; its errors are DecideRoute's. Thread-safe; `store` and `metrics` must
// outlive the service.
//
// ReportOutcomes feeds `deps.health` (HealthTracker::Report). Watch streams from `deps.watch`.
class RouterService final : public v1::Router::CallbackService {
 public:
  RouterService(const CatalogStore* store, RouterMetrics* metrics, RouterDeps deps = {});

  grpc::ServerUnaryReactor* Route(grpc::CallbackServerContext* context,
                                  const v1::RouteRequest* request,
                                  v1::RouteResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* ReportOutcomes(grpc::CallbackServerContext* context,
                                           const v1::ReportOutcomesRequest* request,
                                           v1::ReportOutcomesResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchEvent>* Watch(grpc::CallbackServerContext* context,
                                                  const v1::WatchRequest* request) override;

 private:
  const CatalogStore* store_;
  RouterMetrics* metrics_;
  RouterDeps deps_;
  const Clock* clock_;
};

// tollgate.v1.RouterAdmin (control plane): ListCatalog reports the enabled providers,
// deployments and models and the catalog_version; ExplainRoute runs the decision without side
// effects and reports its inputs; ListDeployments reports each deployment's health; Watch is
// the data plane's stream. Thread-safe; `store` and `deps` must outlive it.
class RouterAdminService final : public v1::RouterAdmin::CallbackService {
 public:
  explicit RouterAdminService(const CatalogStore* store, RouterDeps deps = {});

  grpc::ServerUnaryReactor* ListCatalog(grpc::CallbackServerContext* context,
                                        const v1::ListCatalogRequest* request,
                                        v1::ListCatalogResponse* response) override;
  grpc::ServerUnaryReactor* ExplainRoute(grpc::CallbackServerContext* context,
                                         const v1::RouteRequest* request,
                                         v1::ExplainRouteResponse* response) override;
  grpc::ServerUnaryReactor* ListDeployments(grpc::CallbackServerContext* context,
                                            const v1::ListDeploymentsRequest* request,
                                            v1::ListDeploymentsResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchEvent>* Watch(grpc::CallbackServerContext* context,
                                                  const v1::WatchRequest* request) override;

 private:
  const CatalogStore* store_;
  RouterDeps deps_;
  const Clock* clock_;
};

// ExplainRoute's answer for `request` against `catalog` and `health` (may be null) at `now`.
void ExplainRoute(const Catalog& catalog, const HealthSnapshot* health, absl::Time now,
                  const v1::RouteRequest& request, v1::ExplainRouteResponse* response);

// Fills `info` from `model` (created = the catalog's load time).
void ToModelInfo(const Catalog& catalog, const CatalogModel& model, v1::ModelInfo* info);

// Watches the catalog file and installs each new valid version into `store`.
//
// CheckOnce() reads the file and compares its content hash with the live catalog's version; a
// changed file is validated and installed, or logged and counted as a failure while the good
// catalog stays live. A content (or read error) that already failed is not re-reported.
// Start() runs CheckOnce() every `interval` on a background thread until Stop() or destruction.
// Thread-safe. `store` and `metrics` must outlive the reloader.
class CatalogReloader {
 public:
  CatalogReloader(std::string path, CatalogStore* store, RouterMetrics* metrics,
                  CatalogLoadOptions options = {});
  ~CatalogReloader();
  CatalogReloader(const CatalogReloader&) = delete;
  CatalogReloader& operator=(const CatalogReloader&) = delete;

  // true: a new catalog was installed; false: unchanged; error: the file is unreadable or
  // invalid (the live catalog is kept).
  absl::StatusOr<bool> CheckOnce();

  void Start(absl::Duration interval);
  void Stop();

 private:
  const std::string path_;
  CatalogStore* const store_;
  RouterMetrics* const metrics_;
  const CatalogLoadOptions options_;

  absl::Mutex check_mu_;
  std::string failed_key_ ABSL_GUARDED_BY(check_mu_);  // what last failed: content hash or error
  absl::Status failed_status_ ABSL_GUARDED_BY(check_mu_);

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// A started gRPC server and the port it bound.
struct StartedServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

// Builds and starts a gRPC server on `address` ("host:port"; port 0 picks a free port, for tests)
// serving `services`, plus the standard grpc.health.v1 service when `with_health`, with
// `credentials` (null: plaintext; services/common/grpc_tls.h).
// SO_REUSEPORT is disabled so a port already in use is an error. Not thread-safe with respect to
// other server builds (the health-service switch is process-global). Errors: kUnavailable when
// the address cannot be bound.
absl::StatusOr<StartedServer> StartGrpcServer(const std::string& address,
                                              const std::vector<grpc::Service*>& services,
                                              bool with_health,
                                              std::shared_ptr<grpc::ServerCredentials> credentials =
                                                  nullptr);

}  // namespace tollgate::router
