#pragma once
// Fan-out of catalog snapshots and health changes to Watch streams (router.proto WatchEvent).
//
//   WatchHub hub(&store, &health, clock, metrics);
//   // store listener: hub.PublishSnapshot(); health listener: hub.PublishHealth(events);
//   reactor = hub.Open(context, request);      // from the Watch handlers
//   ...
//   hub.CloseAll();                             // before shutting the servers down
//
// Every stream starts with a snapshot (catalog, models, deployments, health, classifier), then
// gets every later snapshot and health event in order, and a heartbeat each time the owner
// calls Heartbeat() (periodically) unless events are already waiting to be written. Writes are
// asynchronous (gRPC callback API): a slow reader's backlog grows up to `max_backlog` events,
// then is replaced by one fresh snapshot, so a stuck gateway never holds memory or the router.
//
// Thread-safety: all methods are thread-safe and never block on the network. The hub must
// outlive every stream it opened: shut the servers down (after CloseAll()) before destroying it.
// `store`, `health` (may be null), `clock` and `metrics` (may be null) must outlive the hub.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "services/router/clock.h"
#include "services/router/health.h"
#include "tollgate/v1/router.pb.h"

namespace tollgate::router {

class CatalogStore;
class RouterMetrics;

// The queue of events waiting to be written on one stream, bounded: a Push() that finds
// `max` events waiting drops them and queues one fresh snapshot instead. Not thread-safe.
class WatchBacklog {
 public:
  using Event = std::shared_ptr<const v1::WatchEvent>;

  explicit WatchBacklog(size_t max) : max_(max < 1 ? 1 : max) {}

  // Returns true when the backlog was replaced by `snapshot()`.
  bool Push(Event event, const std::function<Event()>& snapshot);
  // The oldest event, or null when empty.
  Event Pop();
  bool empty() const { return queue_.empty(); }
  size_t size() const { return queue_.size(); }
  void Clear() { queue_.clear(); }

 private:
  const size_t max_;
  std::deque<Event> queue_;
};

class WatchHub {
 public:
  WatchHub(const CatalogStore* store, const HealthTracker* health, const Clock* clock,
           RouterMetrics* metrics, size_t max_backlog = 1024);
  ~WatchHub();
  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;

  // Starts a stream for a Watch call. After CloseAll(), the stream ends at once (UNAVAILABLE).
  grpc::ServerWriteReactor<v1::WatchEvent>* Open(grpc::CallbackServerContext* context,
                                                 const v1::WatchRequest* request);

  // Sends a fresh snapshot (after a catalog change) to every stream.
  void PublishSnapshot();
  // Sends each health event to every stream.
  void PublishHealth(const std::vector<v1::HealthEvent>& events);
  // Sends a heartbeat to every stream that has nothing queued.
  void Heartbeat();
  // Ends every stream (UNAVAILABLE "router shutting down") and refuses new ones.
  void CloseAll();

  size_t streams() const;
  // A snapshot event of the current catalog and health (sequence 0).
  std::shared_ptr<const v1::WatchEvent> SnapshotEvent() const;

 private:
  class Stream;
  void Remove(Stream* stream);
  void Broadcast(const std::shared_ptr<const v1::WatchEvent>& event, bool only_idle);

  const CatalogStore* const store_;
  const HealthTracker* const health_;
  const Clock* const clock_;
  RouterMetrics* const metrics_;
  const size_t max_backlog_;

  mutable absl::Mutex mu_;
  absl::flat_hash_set<Stream*> streams_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::CondVar drained_;
};

// Fills `snapshot` from `catalog` and `health` (null: every deployment reported healthy).
void FillRouterSnapshot(const Catalog& catalog, const HealthSnapshot* health, absl::Time now,
                        v1::RouterSnapshot* snapshot);

// The health of `catalog.deployments()[index]` as seen at `now`; without a view, healthy.
void FillDeploymentHealth(const Catalog& catalog, size_t index, const HealthSnapshot* health,
                          absl::Time now, v1::DeploymentHealth* out);

}  // namespace tollgate::router
