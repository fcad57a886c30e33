#include "services/router/router_service.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <fstream>
#include <limits>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "services/common/grpc_status.h"
#include "services/common/logging.h"

namespace tollgate::router {
namespace {

constexpr char kUnknownModelLabel[] = "<unknown>";

// Fine buckets: a decision takes microseconds, and regressions show up there.
const prometheus::Histogram::BucketBoundaries& DecisionBucketsSeconds() {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2};
  return kBuckets;
}

bool HasCapability(const v1::Deployment& deployment, const std::string& capability) {
  for (const std::string& c : deployment.capabilities()) {
    if (c == capability) return true;
  }
  return false;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// RouterMetrics

absl::StatusOr<std::unique_ptr<RouterMetrics>> RouterMetrics::Create(
    prometheus::Registry& registry) {
  std::unique_ptr<RouterMetrics> m(new RouterMetrics());
  try {
    m->route_requests_ = &prometheus::BuildCounter()
                              .Name("tollgate_router_route_requests_total")
                              .Help(
                                  "Route calls by canonical model and result "
                                  "(ok, not_found, no_candidates, invalid_argument)")
                              .Register(registry);
    m->route_duration_ = &prometheus::BuildHistogram()
                              .Name("tollgate_router_route_duration_seconds")
                              .Help("Time to decide a Route call, in process")
                              .Register(registry)
                              .Add({}, DecisionBucketsSeconds());
    auto& reloads = prometheus::BuildCounter()
                        .Name("tollgate_router_catalog_reloads_total")
                        .Help("Catalog file reloads by result (success, failure)")
                        .Register(registry);
    m->reload_success_ = &reloads.Add({{"result", "success"}});
    m->reload_failure_ = &reloads.Add({{"result", "failure"}});
    m->catalog_deployments_ = &prometheus::BuildGauge()
                                   .Name("tollgate_router_catalog_deployments")
                                   .Help("Enabled deployments in the live catalog")
                                   .Register(registry)
                                   .Add({});
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("cannot register router metrics: ", e.what()));
  }
  return m;
}

prometheus::Counter& RouterMetrics::RouteRequests(const std::string& model,
                                                  const std::string& result) {
  return route_requests_->Add({{"model", model}, {"result", result}});
}

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
                                  &metrics_->RouteRequests(model.name, "no_candidates")});
  }
  snapshot->not_found = &metrics_->RouteRequests(kUnknownModelLabel, "not_found");
  snapshot->invalid_argument = &metrics_->RouteRequests(kUnknownModelLabel, "invalid_argument");
  snapshot->catalog = std::move(catalog);
  return snapshot;
}

void CatalogStore::Install(std::shared_ptr<const Catalog> catalog) {
  for (const std::string& note : catalog->notes()) {
    LogInfo(note, {{"catalog", catalog->source()}, {"catalog_version", catalog->version()}});
  }
  const double deployments = static_cast<double>(catalog->deployments().size());
  snapshot_.store(MakeSnapshot(std::move(catalog)), std::memory_order_release);
  metrics_->catalog_deployments().Set(deployments);
}

// ---------------------------------------------------------------------------------------------
// Routing

absl::Status RouteByPriority(const CatalogModel& model, const v1::RouteRequest& request,
                             v1::RouteResponse* response) {
  std::vector<std::string> required(request.required_capabilities().begin(),
                                    request.required_capabilities().end());
  if (request.stream() && std::find(required.begin(), required.end(), "stream") == required.end()) {
    required.push_back("stream");
  }
  // Both are validated non-negative; __int128 keeps a hostile pair of huge values from wrapping.
  const __int128 needed_tokens =
      static_cast<__int128>(request.estimated_input_tokens()) + request.max_output_tokens();

  std::vector<const v1::Deployment*> kept;
  std::vector<std::string> rejections;
  for (const v1::Deployment* d : model.deployments) {
    std::string why;
    for (const std::string& capability : required) {
      if (!HasCapability(*d, capability)) {
        why = absl::StrCat("lacks capability '", capability, "'");
        break;
      }
    }
    if (why.empty() && needed_tokens > 0 && d->context_window() < needed_tokens) {
      why = absl::StrCat("context window ", d->context_window(), " < ",
                         static_cast<int64_t>(std::min<__int128>(
                             needed_tokens, std::numeric_limits<int64_t>::max())),
                         " tokens (estimated input ", request.estimated_input_tokens(),
                         " + max output ", request.max_output_tokens(), ")");
    }
    if (why.empty()) {
      kept.push_back(d);
    } else {
      rejections.push_back(absl::StrCat("deployment '", d->id(), "' ", why));
    }
  }
  if (kept.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("no deployment of model '", model.name,
                     "' can serve this request: ", absl::StrJoin(rejections, "; ")));
  }
  response->set_model(model.name);
  response->set_policy("priority");
  response->set_cache_ttl_ms(0);
  for (size_t i = 0; i < kept.size(); ++i) {
    v1::Candidate* candidate = response->add_candidates();
    *candidate->mutable_deployment() = *kept[i];
    candidate->set_reason(absl::StrCat("priority ", i + 1, " of ", kept.size()));
  }
  return absl::OkStatus();
}

void ToModelInfo(const Catalog& catalog, const CatalogModel& model, v1::ModelInfo* info) {
  info->set_id(model.name);
  info->set_owned_by(model.owned_by);
  info->set_created(catalog.loaded_at_unix());
  for (const std::string& alias : model.aliases) info->add_aliases(alias);
  for (const v1::Deployment* d : model.deployments) info->add_deployment_ids(d->id());
}

// ---------------------------------------------------------------------------------------------
// RouterService

RouterService::RouterService(const CatalogStore* store, RouterMetrics* metrics)
    : store_(store), metrics_(metrics) {}

grpc::ServerUnaryReactor* RouterService::Route(grpc::CallbackServerContext* context,
                                               const v1::RouteRequest* request,
                                               v1::RouteResponse* response) {
  const auto start = std::chrono::steady_clock::now();
  const std::shared_ptr<const CatalogSnapshot> snapshot = store_->Get();
  absl::Status status;
  if (request->model().empty()) {
    status = absl::InvalidArgumentError("model is required");
    snapshot->invalid_argument->Increment();
  } else if (request->estimated_input_tokens() < 0 || request->max_output_tokens() < 0) {
    status = absl::InvalidArgumentError(
        "estimated_input_tokens and max_output_tokens must not be negative");
    snapshot->invalid_argument->Increment();
  } else if (const CatalogModel* model = snapshot->catalog->FindModel(request->model());
             model == nullptr) {
    status = absl::NotFoundError(absl::StrCat("model '", request->model(), "' not found"));
    snapshot->not_found->Increment();
  } else {
    status = RouteByPriority(*model, *request, response);
    const CatalogSnapshot::ModelCounters& counters = snapshot->counters[model->index];
    (status.ok() ? counters.ok : counters.no_candidates)->Increment();
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

// ---------------------------------------------------------------------------------------------
// RouterAdminService

RouterAdminService::RouterAdminService(const CatalogStore* store) : store_(store) {}

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
                                              bool with_health) {
  grpc::EnableDefaultHealthCheckService(with_health);
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default, which would let a second process "bind" a busy port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  StartedServer started;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &started.port);
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
