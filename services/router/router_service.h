#pragma once
// The router's gRPC services and the pieces they share.
//
//   auto metrics = *RouterMetrics::Create(*registry);
//   CatalogStore store(*LoadCatalogFile(path), metrics.get());
//   RouterService data_plane(&store, metrics.get());        // tollgate.v1.Router
//   RouterAdminService control_plane(&store);               // tollgate.v1.RouterAdmin
//   CatalogReloader reloader(path, &store, metrics.get());
//   reloader.Start(absl::Milliseconds(2000));
//
// Handlers use the gRPC callback API and never block: each one takes the current catalog
// snapshot (an atomic shared_ptr load), computes its answer and finishes the call inline.
// A catalog reload is a pointer swap; a request keeps the snapshot it started with.

#include <atomic>
#include <cstdint>
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
#include "tollgate/v1/router.grpc.pb.h"

namespace tollgate::router {

// The router's Prometheus metrics, registered once at start. Thread-safe to update.
//   tollgate_router_route_requests_total{model,result}  result: ok | not_found | no_candidates |
//       invalid_argument; model is the canonical catalog name, or "<unknown>" when the request
//       named no catalog model (keeps label cardinality bounded by the catalog).
//   tollgate_router_route_duration_seconds            decision time in process (histogram)
//   tollgate_router_catalog_reloads_total{result}     result: success | failure
//   tollgate_router_catalog_deployments               enabled deployments in the live catalog
class RouterMetrics {
 public:
  // Errors: kInvalidArgument when the families cannot be registered (e.g. a family of the same
  // name but another help text or type already exists on `registry`).
  static absl::StatusOr<std::unique_ptr<RouterMetrics>> Create(prometheus::Registry& registry);

  // Counter of Route calls for `model` ending with `result`. Takes a lock inside prometheus-cpp:
  // call when a catalog is installed (or on rare paths), not per request.
  prometheus::Counter& RouteRequests(const std::string& model, const std::string& result);

  prometheus::Histogram& route_duration() { return *route_duration_; }
  prometheus::Counter& reload_success() { return *reload_success_; }
  prometheus::Counter& reload_failure() { return *reload_failure_; }
  prometheus::Gauge& catalog_deployments() { return *catalog_deployments_; }

 private:
  RouterMetrics() = default;

  prometheus::Family<prometheus::Counter>* route_requests_ = nullptr;
  prometheus::Histogram* route_duration_ = nullptr;
  prometheus::Counter* reload_success_ = nullptr;
  prometheus::Counter* reload_failure_ = nullptr;
  prometheus::Gauge* catalog_deployments_ = nullptr;
};

// An installed catalog together with the per-model counters the hot path increments, so a
// request never looks up a labelled metric.
struct CatalogSnapshot {
  struct ModelCounters {
    prometheus::Counter* ok = nullptr;
    prometheus::Counter* no_candidates = nullptr;
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
  // `initial` must not be null.
  CatalogStore(std::shared_ptr<const Catalog> initial, RouterMetrics* metrics);

  std::shared_ptr<const CatalogSnapshot> Get() const;
  std::shared_ptr<const Catalog> catalog() const { return Get()->catalog; }

  // Makes `catalog` (not null) live, updates the deployments gauge and logs the catalog's notes.
  void Install(std::shared_ptr<const Catalog> catalog);

 private:
  std::shared_ptr<const CatalogSnapshot> MakeSnapshot(std::shared_ptr<const Catalog> catalog);

  RouterMetrics* metrics_;
  std::atomic<std::shared_ptr<const CatalogSnapshot>> snapshot_;
};

// The "priority" policy: the model's deployments in catalog order, minus those that cannot serve
// `request` (a missing required capability — "stream" is implied by request.stream() — or a
// context window smaller than estimated_input_tokens + max_output_tokens when either is given).
// Fills `response` (model, policy, candidates with reasons, cache_ttl_ms = 0). Errors:
// kFailedPrecondition naming each deployment and the filter that removed it when none is left.
absl::Status RouteByPriority(const CatalogModel& model, const v1::RouteRequest& request,
                             v1::RouteResponse* response);

// tollgate.v1.Router (data plane). Errors: kInvalidArgument (no model, negative token counts),
// kNotFound ("model 'x' not found"), kFailedPrecondition (see RouteByPriority). Thread-safe;
// `store` and `metrics` must outlive the service.
class RouterService final : public v1::Router::CallbackService {
 public:
  RouterService(const CatalogStore* store, RouterMetrics* metrics);

  grpc::ServerUnaryReactor* Route(grpc::CallbackServerContext* context,
                                  const v1::RouteRequest* request,
                                  v1::RouteResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;

 private:
  const CatalogStore* store_;
  RouterMetrics* metrics_;
};

// tollgate.v1.RouterAdmin (control plane): ListCatalog reports the enabled providers,
// deployments and models and the catalog_version. Thread-safe; `store` must outlive it.
class RouterAdminService final : public v1::RouterAdmin::CallbackService {
 public:
  explicit RouterAdminService(const CatalogStore* store);

  grpc::ServerUnaryReactor* ListCatalog(grpc::CallbackServerContext* context,
                                        const v1::ListCatalogRequest* request,
                                        v1::ListCatalogResponse* response) override;

 private:
  const CatalogStore* store_;
};

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

// Builds and starts an insecure gRPC server on `address` ("host:port"; port 0 picks a free port,
// for tests) serving `services`, plus the standard grpc.health.v1 service when `with_health`.
// SO_REUSEPORT is disabled so a port already in use is an error. Not thread-safe with respect to
// other server builds (the health-service switch is process-global). Errors: kUnavailable when
// the address cannot be bound.
absl::StatusOr<StartedServer> StartGrpcServer(const std::string& address,
                                              const std::vector<grpc::Service*>& services,
                                              bool with_health);

}  // namespace tollgate::router
