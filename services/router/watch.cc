#include "services/router/watch.h"

#include <string>
#include <utility>

#include "services/common/logging.h"
#include "services/router/router_metrics.h"
#include "services/router/router_service.h"

namespace tollgate::router {

void FillDeploymentHealth(const Catalog& catalog, size_t index, const HealthSnapshot* health,
                          absl::Time now, v1::DeploymentHealth* out) {
  const v1::Deployment& d = catalog.deployments()[index];
  const DeploymentHealthView* view =
      health == nullptr ? nullptr : health->Find(catalog.version(), index, d.id());
  if (view != nullptr) {
    view->ToProto(now, out);
    return;
  }
  out->set_deployment_id(d.id());
  out->set_circuit(v1::CIRCUIT_CLOSED);
  out->set_rpm_limit(d.limits().rpm());
  out->set_tpm_limit(d.limits().tpm());
  out->set_available(true);
}

void FillRouterSnapshot(const Catalog& catalog, const HealthSnapshot* health, absl::Time now,
                        v1::RouterSnapshot* snapshot) {
  snapshot->set_catalog_version(catalog.version());
  for (size_t i = 0; i < catalog.deployments().size(); ++i) {
    *snapshot->add_deployments() = catalog.deployments()[i];
    FillDeploymentHealth(catalog, i, health, now, snapshot->add_health());
  }
  for (const CatalogModel& model : catalog.models()) {
    ToModelInfo(catalog, model, snapshot->add_models());
  }
  *snapshot->mutable_classifier() = ClassifierConfigToProto(catalog.classifier());
}

bool WatchBacklog::Push(Event event, const std::function<Event()>& snapshot) {
  if (queue_.size() < max_) {
    queue_.push_back(std::move(event));
    return false;
  }
  // Too far behind: a snapshot says everything the dropped events said, and more.
  queue_.clear();
  queue_.push_back(snapshot());
  return true;
}

WatchBacklog::Event WatchBacklog::Pop() {
  if (queue_.empty()) return nullptr;
  Event event = std::move(queue_.front());
  queue_.pop_front();
  return event;
}

// One Watch call. Owns itself: deleted in OnDone, after the hub forgot it.
class WatchHub::Stream final : public grpc::ServerWriteReactor<v1::WatchEvent> {
 public:
  Stream(WatchHub* hub, std::string peer)
      : hub_(hub), peer_(std::move(peer)), queue_(hub->max_backlog_) {}

  // Queues `event`; starts writing when idle. Called with the hub's lock held.
  void Enqueue(const std::shared_ptr<const v1::WatchEvent>& event, bool only_idle) {
    absl::MutexLock lock(&mu_);
    if (finishing_) return;
    if (only_idle && !queue_.empty()) return;
    if (queue_.Push(event, [this] { return hub_->SnapshotEvent(); })) {
      if (hub_->metrics_ != nullptr) hub_->metrics_->watch_resyncs().Increment();
      LogWarn("watch stream too slow; its backlog was replaced by a snapshot", {{"peer", peer_}});
    }
    WriteNextLocked();
  }

  // Ends the stream once the write in flight (if any) completed.
  void Close(grpc::Status status) {
    absl::MutexLock lock(&mu_);
    if (finishing_) return;
    finishing_ = true;
    queue_.Clear();
    close_status_ = std::move(status);
    if (!writing_) Finish(close_status_);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok && !finishing_) {
      // The client went away or the call is being cancelled.
      finishing_ = true;
      queue_.Clear();
      close_status_ = grpc::Status(grpc::StatusCode::UNAVAILABLE, "watch stream broken");
    }
    if (finishing_) {
      // Close() left the Finish to the write that was in flight.
      Finish(close_status_);
      return;
    }
    WriteNextLocked();
  }

  void OnCancel() override { Close(grpc::Status::CANCELLED); }

  void OnDone() override {
    hub_->Remove(this);
    delete this;
  }

 private:
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || queue_.empty()) return;
    current_ = *queue_.Pop();
    current_.set_sequence(++sequence_);
    writing_ = true;
    StartWrite(&current_);
  }

  WatchHub* const hub_;
  const std::string peer_;
  absl::Mutex mu_;
  WatchBacklog queue_ ABSL_GUARDED_BY(mu_);
  v1::WatchEvent current_ ABSL_GUARDED_BY(mu_);  // being written
  int64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status close_status_ ABSL_GUARDED_BY(mu_);
};

WatchHub::WatchHub(const CatalogStore* store, const HealthTracker* health, const Clock* clock,
                   RouterMetrics* metrics, size_t max_backlog)
    : store_(store),
      health_(health),
      clock_(clock),
      metrics_(metrics),
      max_backlog_(max_backlog < 1 ? 1 : max_backlog) {}

WatchHub::~WatchHub() {
  CloseAll();
  // Streams finish asynchronously; they must be gone before the hub is.
  absl::MutexLock lock(&mu_);
  while (!streams_.empty()) drained_.Wait(&mu_);
}

std::shared_ptr<const v1::WatchEvent> WatchHub::SnapshotEvent() const {
  auto event = std::make_shared<v1::WatchEvent>();
  const absl::Time now = clock_->Now();
  event->set_time_unix_ms(absl::ToUnixMillis(now));
  const std::shared_ptr<const HealthSnapshot> health =
      health_ == nullptr ? nullptr : health_->Get();
  FillRouterSnapshot(*store_->catalog(), health.get(), now, event->mutable_snapshot());
  return event;
}

grpc::ServerWriteReactor<v1::WatchEvent>* WatchHub::Open(grpc::CallbackServerContext* context,
                                                         const v1::WatchRequest* request) {
  auto* stream = new Stream(this, context->peer());
  absl::MutexLock lock(&mu_);
  if (closed_) {
    stream->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "router shutting down"));
    streams_.insert(stream);  // OnDone removes it
    return stream;
  }
  streams_.insert(stream);
  if (metrics_ != nullptr) metrics_->watch_streams().Set(static_cast<double>(streams_.size()));
  LogInfo("watch stream opened", {{"peer", context->peer()}, {"client", request->client()}});
  stream->Enqueue(SnapshotEvent(), /*only_idle=*/false);
  return stream;
}

void WatchHub::Remove(Stream* stream) {
  absl::MutexLock lock(&mu_);
  streams_.erase(stream);
  if (metrics_ != nullptr) metrics_->watch_streams().Set(static_cast<double>(streams_.size()));
  if (streams_.empty()) drained_.SignalAll();
}

void WatchHub::Broadcast(const std::shared_ptr<const v1::WatchEvent>& event, bool only_idle) {
  absl::MutexLock lock(&mu_);
  if (closed_) return;
  for (Stream* stream : streams_) stream->Enqueue(event, only_idle);
}

void WatchHub::PublishSnapshot() { Broadcast(SnapshotEvent(), /*only_idle=*/false); }

void WatchHub::PublishHealth(const std::vector<v1::HealthEvent>& events) {
  const int64_t now_ms = absl::ToUnixMillis(clock_->Now());
  for (const v1::HealthEvent& health : events) {
    auto event = std::make_shared<v1::WatchEvent>();
    event->set_time_unix_ms(now_ms);
    *event->mutable_health() = health;
    Broadcast(event, /*only_idle=*/false);
  }
}

void WatchHub::Heartbeat() {
  auto event = std::make_shared<v1::WatchEvent>();
  event->set_time_unix_ms(absl::ToUnixMillis(clock_->Now()));
  event->mutable_heartbeat();
  Broadcast(event, /*only_idle=*/true);
}

void WatchHub::CloseAll() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  for (Stream* stream : streams_) {
    stream->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "router shutting down"));
  }
}

size_t WatchHub::streams() const {
  absl::MutexLock lock(&mu_);
  return streams_.size();
}

}  // namespace tollgate::router
