#include "services/gateway/catalog_snapshot.h"

#include <algorithm>
#include <random>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/support/sync_stream.h"
#include "services/common/logging.h"
#include "services/gateway/gateway_metrics.h"

namespace tollgate::gateway {

std::shared_ptr<const v1::RouterSnapshot> SnapshotStore::Get() const {
  absl::MutexLock lock(&mu_);
  return snapshot_;
}

void SnapshotStore::Set(std::shared_ptr<const v1::RouterSnapshot> snapshot) {
  {
    absl::MutexLock lock(&mu_);
    snapshot_ = std::move(snapshot);
    has_snapshot_.store(snapshot_ != nullptr, std::memory_order_release);
  }
  Invalidate();
}

void SnapshotStore::ApplyHealth(const v1::HealthEvent& event) {
  {
    absl::MutexLock lock(&mu_);
    if (snapshot_ != nullptr && event.has_health()) {
      auto copy = std::make_shared<v1::RouterSnapshot>(*snapshot_);
      bool found = false;
      for (v1::DeploymentHealth& h : *copy->mutable_health()) {
        if (h.deployment_id() == event.health().deployment_id()) {
          h = event.health();
          found = true;
          break;
        }
      }
      if (!found) *copy->add_health() = event.health();
      snapshot_ = std::move(copy);
    }
  }
  Invalidate();
}

RouterWatcher::RouterWatcher(std::shared_ptr<grpc::Channel> channel, SnapshotStore* store,
                             GatewayMetrics* metrics, RouterWatcherOptions options)
    : stub_(v1::Router::NewStub(std::move(channel))),
      store_(store),
      metrics_(metrics),
      options_(std::move(options)) {}

RouterWatcher::~RouterWatcher() { Stop(); }

void RouterWatcher::Start() {
  thread_ = std::thread([this] { Run(); });
}

void RouterWatcher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (context_ != nullptr) context_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

void RouterWatcher::Run() {
  std::mt19937_64 rng(std::random_device{}());
  std::chrono::milliseconds backoff = options_.initial_backoff;
  while (true) {
    grpc::ClientContext context;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      context_ = &context;
    }
    if (metrics_ != nullptr) metrics_->RecordWatchEvent("reconnect");
    v1::WatchRequest request;
    request.set_client(options_.client_name);
    std::unique_ptr<grpc::ClientReader<v1::WatchEvent>> reader = stub_->Watch(&context, request);
    v1::WatchEvent event;
    bool got_any = false;
    while (reader->Read(&event)) {
      got_any = true;
      switch (event.event_case()) {
        case v1::WatchEvent::kSnapshot: {
          const bool first = !store_->has_snapshot();
          store_->Set(
              std::make_shared<const v1::RouterSnapshot>(std::move(*event.mutable_snapshot())));
          if (metrics_ != nullptr) {
            metrics_->RecordWatchEvent("snapshot");
            metrics_->SetSnapshotHeld(true);
          }
          if (first) LogInfo("router catalog snapshot received", {});
          break;
        }
        case v1::WatchEvent::kHealth:
          store_->ApplyHealth(event.health());
          if (metrics_ != nullptr) metrics_->RecordWatchEvent("health");
          break;
        case v1::WatchEvent::kHeartbeat:
          if (metrics_ != nullptr) metrics_->RecordWatchEvent("heartbeat");
          break;
        default:
          // Unknown message kinds may carry changes this gateway cannot read: be safe.
          store_->Invalidate();
          break;
      }
    }
    const grpc::Status status = reader->Finish();
    {
      absl::MutexLock lock(&mu_);
      context_ = nullptr;
      if (stopping_) return;
    }
    // Health changes may have been missed while the stream was down.
    store_->Invalidate();
    if (got_any) backoff = options_.initial_backoff;
    LogWarn("router watch stream ended; reconnecting",
            {{"grpc_code", absl::StrCat(static_cast<int>(status.error_code()))},
             {"error", status.error_message()},
             {"backoff_ms", absl::StrCat(backoff.count())}});
    // Full jitter in [backoff/2, backoff], interruptible by Stop.
    std::uniform_int_distribution<int64_t> jitter(backoff.count() / 2, backoff.count());
    const absl::Duration wait = absl::Milliseconds(jitter(rng));
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), wait);
      if (stopping_) return;
    }
    backoff = std::min(options_.max_backoff, backoff * 2);
  }
}

absl::StatusOr<v1::RouteResponse> RouteFromSnapshot(const v1::RouterSnapshot& snapshot,
                                                    const v1::RouteRequest& request) {
  const v1::ModelInfo* model = nullptr;
  for (const v1::ModelInfo& m : snapshot.models()) {
    if (m.id() == request.model()) {
      model = &m;
      break;
    }
  }
  if (model == nullptr) {
    for (const v1::ModelInfo& m : snapshot.models()) {
      if (std::find(m.aliases().begin(), m.aliases().end(), request.model()) != m.aliases().end()) {
        model = &m;
        break;
      }
    }
  }
  if (model == nullptr) {
    return absl::NotFoundError(absl::StrCat("unknown model '", request.model(), "'"));
  }
  std::vector<std::string> required(request.required_capabilities().begin(),
                                    request.required_capabilities().end());
  if (request.stream()) required.push_back("stream");
  const __int128 needed =
      static_cast<__int128>(request.estimated_input_tokens()) + request.max_output_tokens();

  v1::RouteResponse response;
  response.set_model(model->id());
  response.set_policy("snapshot-priority");
  response.set_policy_path("router unavailable > snapshot priority");
  response.set_catalog_version(snapshot.catalog_version());
  std::vector<v1::Candidate> available;
  std::vector<v1::Candidate> unavailable;
  for (const std::string& id : model->deployment_ids()) {
    const v1::Deployment* d = nullptr;
    for (const v1::Deployment& candidate : snapshot.deployments()) {
      if (candidate.id() == id) {
        d = &candidate;
        break;
      }
    }
    if (d == nullptr) continue;
    const bool capable = std::all_of(required.begin(), required.end(), [&](const std::string& c) {
      return std::find(d->capabilities().begin(), d->capabilities().end(), c) !=
             d->capabilities().end();
    });
    if (!capable) continue;
    if (!request.allowed_regions().empty() &&
        std::find(request.allowed_regions().begin(), request.allowed_regions().end(),
                  d->region()) == request.allowed_regions().end()) {
      continue;
    }
    if (needed > 0 && d->context_window() > 0 && d->context_window() < needed) continue;
    bool healthy = true;
    for (const v1::DeploymentHealth& h : snapshot.health()) {
      if (h.deployment_id() == id) {
        healthy = h.available();
        break;
      }
    }
    v1::Candidate c;
    *c.mutable_deployment() = *d;
    c.set_weight(1);
    c.set_quality(-1);
    c.set_reason(healthy ? "snapshot priority (router unavailable)"
                         : "snapshot priority, unhealthy at last report (router unavailable)");
    (healthy ? available : unavailable).push_back(std::move(c));
  }
  if (available.empty() && unavailable.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("no deployment of model '", model->id(),
                                                      "' satisfies the request's constraints"));
  }
  for (v1::Candidate& c : available) *response.add_candidates() = std::move(c);
  for (v1::Candidate& c : unavailable) *response.add_candidates() = std::move(c);
  return response;
}

}  // namespace tollgate::gateway
