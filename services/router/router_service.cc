#include "services/router/router_service.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "services/common/grpc_status.h"
#include "services/common/logging.h"
#include "services/router/watch.h"

namespace tollgate::router {
namespace {

// Per-thread generator for weighted draws and exploration: no locking on the hot path.
std::mt19937_64& ThreadRng() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return rng;
}

constexpr char kUnknownModelLabel[] = "<unknown>";

}  // namespace

// ---------------------------------------------------------------------------------------------
// CatalogStore

CatalogStore::CatalogStore(std::shared_ptr<const Catalog> initial, RouterMetrics* metrics)
    : metrics_(metrics) {
  Install(std::move(initial));
}

std::shared_ptr<const CatalogSnapshot> CatalogStore::Get() const {
  return snapshot_.load(std::memory_order_acquire);
}

std::shared_ptr<const CatalogSnapshot> CatalogStore::MakeSnapshot(
    std::shared_ptr<const Catalog> catalog) {
  auto snapshot = std::make_shared<CatalogSnapshot>();
  snapshot->counters.reserve(catalog->models().size());
  for (const CatalogModel& model : catalog->models()) {
    snapshot->counters.push_back({&metrics_->RouteRequests(model.name, "ok"),
                                  &metrics_->RouteRequests(model.name, "no_candidates"),
                                  &metrics_->RouteRequests(model.name, "permission_denied")});
  }
  snapshot->not_found = &metrics_->RouteRequests(kUnknownModelLabel, "not_found");
  snapshot->invalid_argument = &metrics_->RouteRequests(kUnknownModelLabel, "invalid_argument");
  snapshot->catalog = std::move(catalog);
  return snapshot;
}

void CatalogStore::Install(std::shared_ptr<const Catalog> catalog) {
  absl::MutexLock lock(&install_mu_);
  for (const std::string& note : catalog->notes()) {
    LogInfo(note, {{"catalog", catalog->source()}, {"catalog_version", catalog->version()}});
  }
  const double deployments = static_cast<double>(catalog->deployments().size());
  snapshot_.store(MakeSnapshot(catalog), std::memory_order_release);
  metrics_->catalog_deployments().Set(deployments);
  for (const Listener& listener : listeners_) listener(catalog);
}

void CatalogStore::AddListener(Listener listener) {
  absl::MutexLock lock(&install_mu_);
  listeners_.push_back(std::move(listener));
}

void ConnectRouterParts(CatalogStore* store, HealthTracker* health, WatchHub* watch) {
  if (health != nullptr) {
    health->SetCatalog(*store->catalog());
    store->AddListener(
        [health](const std::shared_ptr<const Catalog>& catalog) { health->SetCatalog(*catalog); });
  }
  if (watch != nullptr) {
    store->AddListener(
        [watch](const std::shared_ptr<const Catalog>&) { watch->PublishSnapshot(); });
    if (health != nullptr) {
      health->AddListener(
          [watch](const std::vector<v1::HealthEvent>& events) { watch->PublishHealth(events); });
    }
  }
}

Periodic::Periodic(std::function<void()> fn, absl::Duration interval) {
  thread_ = std::thread([this, fn = std::move(fn), interval] {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        mu_.AwaitWithTimeout(absl::Condition(&stop_), interval);
        if (stop_) return;
      }
      fn();
    }
  });
}

Periodic::~Periodic() { Stop(); }

void Periodic::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

// ---------------------------------------------------------------------------------------------
// Routing

void ToModelInfo(const Catalog& catalog, const CatalogModel& model, v1::ModelInfo* info) {
  info->set_id(model.name);
  info->set_owned_by(model.owned_by);
  info->set_created(catalog.loaded_at_unix());
  for (const std::string& alias : model.aliases) info->add_aliases(alias);
  for (const v1::Deployment* d : model.deployments) info->add_deployment_ids(d->id());
}

// ---------------------------------------------------------------------------------------------
// RouterService

RouterService::RouterService(const CatalogStore* store, RouterMetrics* metrics, RouterDeps deps)
    : store_(store),
      metrics_(metrics),
      deps_(deps),
      clock_(deps.health != nullptr ? deps.health->clock() : Clock::Real()) {}

grpc::ServerUnaryReactor* RouterService::Route(grpc::CallbackServerContext* context,
                                               const v1::RouteRequest* request,
                                               v1::RouteResponse* response) {
  const auto start = std::chrono::steady_clock::now();
  const std::shared_ptr<const CatalogSnapshot> snapshot = store_->Get();
  const Catalog& catalog = *snapshot->catalog;
  const std::shared_ptr<const HealthSnapshot> health =
      deps_.health == nullptr ? nullptr : deps_.health->Get();
  RouteEnv env;
  env.health = health.get();
  env.now = clock_->Now();
  env.rng = &ThreadRng();
  if (deps_.health != nullptr) env.probe_hold = deps_.health->options().probe_hold;
  RouteDecision decision;
  absl::Status status = DecideRoute(catalog, *request, env, &decision);
  if (decision.model == nullptr) {
    (status.code() == absl::StatusCode::kNotFound ? snapshot->not_found
                                                  : snapshot->invalid_argument)
        ->Increment();
  } else {
    const CatalogSnapshot::ModelCounters& counters = snapshot->counters[decision.model->index];
    switch (status.code()) {
      case absl::StatusCode::kOk:
        counters.ok->Increment();
        FillRouteResponse(catalog, *request, decision, response);
        if (response->candidates_size() > 0) {
          metrics_->Decisions(decision.model->name, RequestClassName(decision.request_class),
                              PolicyKindName(decision.policy),
                              response->candidates(0).deployment().id())
              .Increment();
        }
        break;
      case absl::StatusCode::kPermissionDenied:
        counters.permission_denied->Increment();
        break;
      default:
        counters.no_candidates->Increment();
        break;
    }
  }
  metrics_->route_duration().Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  if (status.ok()) {
    LogDebug("route", {{"request_id", request->request_id()},
                       {"model", response->model()},
                       {"first", response->candidates(0).deployment().id()}});
  } else {
    LogDebug("route failed", {{"request_id", request->request_id()},
                              {"model", request->model()},
                              {"error", std::string(status.message())}});
    response->Clear();
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* RouterService::ListModels(grpc::CallbackServerContext* context,
                                                    const v1::ListModelsRequest* /*request*/,
                                                    v1::ListModelsResponse* response) {
  const std::shared_ptr<const Catalog> catalog = store_->catalog();
  for (const CatalogModel& model : catalog->models()) {
    ToModelInfo(*catalog, model, response->add_models());
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* RouterService::ReportOutcomes(grpc::CallbackServerContext* context,
                                                        const v1::ReportOutcomesRequest* request,
                                                        v1::ReportOutcomesResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (deps_.health == nullptr) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "health tracking is off"));
    return reactor;
  }
  const ReportCounts counts = deps_.health->Report(request->outcomes());
  response->set_accepted(counts.accepted);
  response->set_unknown_deployment(counts.unknown_deployment);
  response->set_rejected(counts.rejected);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

namespace {

// A stream that ends at once with `status`.
class FinishedWriter final : public grpc::ServerWriteReactor<v1::WatchEvent> {
 public:
  explicit FinishedWriter(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

grpc::ServerWriteReactor<v1::WatchEvent>* OpenWatch(WatchHub* hub,
                                                    grpc::CallbackServerContext* context,
                                                    const v1::WatchRequest* request) {
  if (hub == nullptr) {
    return new FinishedWriter(
        grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "watch is not enabled"));
  }
  return hub->Open(context, request);
}

}  // namespace

grpc::ServerWriteReactor<v1::WatchEvent>* RouterService::Watch(grpc::CallbackServerContext* context,
                                                               const v1::WatchRequest* request) {
  return OpenWatch(deps_.watch, context, request);
}

// ---------------------------------------------------------------------------------------------
// RouterAdminService

RouterAdminService::RouterAdminService(const CatalogStore* store, RouterDeps deps)
    : store_(store),
      deps_(deps),
      clock_(deps.health != nullptr ? deps.health->clock() : Clock::Real()) {}

grpc::ServerUnaryReactor* RouterAdminService::ExplainRoute(grpc::CallbackServerContext* context,
                                                           const v1::RouteRequest* request,
                                                           v1::ExplainRouteResponse* response) {
  const std::shared_ptr<const HealthSnapshot> health =
      deps_.health == nullptr ? nullptr : deps_.health->Get();
  tollgate::router::ExplainRoute(*store_->catalog(), health.get(), clock_->Now(), *request,
                                 response);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* RouterAdminService::ListDeployments(
    grpc::CallbackServerContext* context, const v1::ListDeploymentsRequest* /*request*/,
    v1::ListDeploymentsResponse* response) {
  const std::shared_ptr<const Catalog> catalog = store_->catalog();
  const std::shared_ptr<const HealthSnapshot> health =
      deps_.health == nullptr ? nullptr : deps_.health->Get();
  const absl::Time now = clock_->Now();
  for (size_t i = 0; i < catalog->deployments().size(); ++i) {
    *response->add_deployments() = catalog->deployments()[i];
    FillDeploymentHealth(*catalog, i, health.get(), now, response->add_health());
  }
  response->set_catalog_version(catalog->version());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerWriteReactor<v1::WatchEvent>* RouterAdminService::Watch(
    grpc::CallbackServerContext* context, const v1::WatchRequest* request) {
  return OpenWatch(deps_.watch, context, request);
}

void ExplainRoute(const Catalog& catalog, const HealthSnapshot* health, absl::Time now,
                  const v1::RouteRequest& request, v1::ExplainRouteResponse* response) {
  // A fixed seed: an explanation shows one possible draw, and must not disturb routing's.
  std::mt19937_64 rng(1);
  RouteEnv env;
  env.health = health;
  env.now = now;
  env.rng = &rng;
  env.grant_probes = false;
  RouteDecision decision;
  const absl::Status status = DecideRoute(catalog, request, env, &decision);
  response->set_catalog_version(catalog.version());
  response->set_error_code(static_cast<int32_t>(status.code()));
  response->set_error(std::string(status.message()));
  if (status.ok()) FillRouteResponse(catalog, request, decision, response->mutable_decision());
  if (decision.model == nullptr) return;
  if (!decision.policy_path.empty()) {
    response->set_request_class(std::string(RequestClassName(decision.request_class)));
    response->set_policy(std::string(PolicyKindName(decision.policy)));
    response->set_policy_path(decision.policy_path);
  }
  for (const std::string& rule : decision.rules) response->add_rules(rule);
  for (const Removal& removal : decision.removed) {
    v1::RemovedDeployment* removed = response->add_removed();
    removed->set_deployment_id(removal.deployment->id());
    removed->set_filter(std::string(RemovalFilterName(removal.filter)));
    removed->set_detail(removal.detail);
  }
  for (const v1::Deployment* d : decision.model->deployments) {
    FillDeploymentHealth(catalog, catalog.IndexOf(d), health, now, response->add_health());
  }
}

grpc::ServerUnaryReactor* RouterAdminService::ListCatalog(grpc::CallbackServerContext* context,
                                                          const v1::ListCatalogRequest* /*request*/,
                                                          v1::ListCatalogResponse* response) {
  const std::shared_ptr<const Catalog> catalog = store_->catalog();
  for (const CatalogProvider& p : catalog->providers()) {
    v1::ProviderInfo* info = response->add_providers();
    info->set_name(p.name);
    info->set_dialect(p.dialect);
    info->set_base_url(p.base_url);
    info->set_api_key_env(p.api_key_env);
  }
  for (const v1::Deployment& d : catalog->deployments()) *response->add_deployments() = d;
  for (const CatalogModel& model : catalog->models()) {
    ToModelInfo(*catalog, model, response->add_models());
  }
  response->set_catalog_version(catalog->version());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

// ---------------------------------------------------------------------------------------------
// CatalogReloader

CatalogReloader::CatalogReloader(std::string path, CatalogStore* store, RouterMetrics* metrics,
                                 CatalogLoadOptions options)
    : path_(std::move(path)), store_(store), metrics_(metrics), options_(std::move(options)) {}

CatalogReloader::~CatalogReloader() { Stop(); }

absl::StatusOr<bool> CatalogReloader::CheckOnce() {
  absl::MutexLock lock(&check_mu_);
  // Reading a small file and hashing it every interval is cheap and, unlike mtime, also sees a
  // Kubernetes ConfigMap update (an atomic symlink swap that can keep the old mtime).
  std::string key;
  std::string contents;
  absl::Status read_status;
  {
    std::ifstream in(path_, std::ios::binary);
    if (!in) {
      read_status = absl::UnavailableError(absl::StrCat("cannot read catalog file '", path_, "'"));
    } else {
      std::ostringstream buffer;
      buffer << in.rdbuf();
      if (in.bad()) {
        read_status =
            absl::UnavailableError(absl::StrCat("error reading catalog file '", path_, "'"));
      }
      contents = std::move(buffer).str();
    }
  }
  if (read_status.ok()) {
    key = ContentHash(contents);
    if (key == store_->catalog()->version()) {
      failed_key_.clear();
      return false;
    }
  } else {
    key = absl::StrCat("read error: ", read_status.message());
  }
  if (key == failed_key_) return failed_status_;  // already logged and counted

  absl::StatusOr<std::shared_ptr<const Catalog>> loaded =
      read_status.ok() ? LoadCatalogFromString(contents, path_, options_)
                       : absl::StatusOr<std::shared_ptr<const Catalog>>(read_status);
  if (!loaded.ok()) {
    failed_key_ = key;
    failed_status_ = loaded.status();
    metrics_->reload_failure().Increment();
    LogError("catalog reload failed; keeping the current catalog",
             {{"catalog", path_},
              {"current_version", store_->catalog()->version()},
              {"error", std::string(loaded.status().message())}});
    return failed_status_;
  }
  failed_key_.clear();
  const std::string previous = store_->catalog()->version();
  const std::shared_ptr<const Catalog>& catalog = *loaded;
  LogInfo("catalog reloaded", {{"catalog", path_},
                               {"previous_version", previous},
                               {"catalog_version", catalog->version()},
                               {"models", std::to_string(catalog->models().size())},
                               {"deployments", std::to_string(catalog->deployments().size())}});
  store_->Install(catalog);
  metrics_->reload_success().Increment();
  return true;
}

void CatalogReloader::Start(absl::Duration interval) {
  Stop();
  {
    absl::MutexLock lock(&mu_);
    stop_ = false;
  }
  thread_ = std::thread([this, interval] {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        mu_.AwaitWithTimeout(absl::Condition(&stop_), interval);
        if (stop_) return;
      }
      // CheckOnce() reports through its status, logs and metrics; nothing else to do here.
      (void)CheckOnce();
    }
  });
}

void CatalogReloader::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

// ---------------------------------------------------------------------------------------------
// Servers

absl::StatusOr<StartedServer> StartGrpcServer(const std::string& address,
                                              const std::vector<grpc::Service*>& services,
                                              bool with_health,
                                              std::shared_ptr<grpc::ServerCredentials> credentials) {
  grpc::EnableDefaultHealthCheckService(with_health);
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default, which would let a second process "bind" a busy port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  StartedServer started;
  builder.AddListeningPort(
      address, credentials != nullptr ? credentials : grpc::InsecureServerCredentials(),
      &started.port);
  for (grpc::Service* service : services) builder.RegisterService(service);
  started.server = builder.BuildAndStart();
  if (started.server == nullptr || started.port == 0) {
    if (started.server != nullptr) started.server->Shutdown();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on '", address, "': address in use, not local or malformed"));
  }
  return started;
}

}  // namespace tollgate::router
