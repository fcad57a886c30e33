#pragma once
// The router's catalog as last pushed on its Watch stream, and routing from it when the router
// itself cannot answer.
//
//   SnapshotStore store;
//   RouterWatcher watcher(channel, &store, &metrics, options);   // background thread
//   watcher.Start();
//   ...
//   std::shared_ptr<const v1::RouterSnapshot> snap = store.Get();   // null until the first one
//   absl::StatusOr<v1::RouteResponse> r = RouteFromSnapshot(*snap, route_request);
//   ...
//   watcher.Stop();
//
// SnapshotStore also keeps the decision-cache generation: every non-heartbeat Watch event (a
// snapshot or a health change) increments it, which invalidates every cached Route answer at
// once (see route_cache.h).
//
// Thread-safety: SnapshotStore is thread-safe (Get copies a shared_ptr under a short lock; the
// generation is an atomic). RouterWatcher runs its own thread; Start/Stop from one owner thread.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "tollgate/v1/router.grpc.pb.h"

namespace tollgate::gateway {

class GatewayMetrics;

class SnapshotStore {
 public:
  // The latest snapshot, or null when none was received yet.
  std::shared_ptr<const v1::RouterSnapshot> Get() const;
  bool has_snapshot() const { return has_snapshot_.load(std::memory_order_acquire); }

  // Replaces the snapshot and invalidates cached decisions.
  void Set(std::shared_ptr<const v1::RouterSnapshot> snapshot);
  // Applies a health change to the current snapshot (copy on write) and invalidates cached
  // decisions.
  void ApplyHealth(const v1::HealthEvent& event);

  // Decision-cache generation: cached answers are valid only while it is unchanged.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  const std::atomic<uint64_t>* generation_counter() const { return &generation_; }
  void Invalidate() { generation_.fetch_add(1, std::memory_order_acq_rel); }

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const v1::RouterSnapshot> snapshot_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> has_snapshot_{false};
  std::atomic<uint64_t> generation_{1};
};

struct RouterWatcherOptions {
  std::string client_name = "tollgate-gateway";
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
};

// Keeps a Router.Watch stream open on `channel` (reconnecting with jittered exponential backoff)
// and feeds `store`. A stream that ends or fails also invalidates the decision cache (health
// changes may have been missed). `metrics` may be null.
class RouterWatcher {
 public:
  RouterWatcher(std::shared_ptr<grpc::Channel> channel, SnapshotStore* store,
                GatewayMetrics* metrics, RouterWatcherOptions options = {});
  ~RouterWatcher();
  RouterWatcher(const RouterWatcher&) = delete;
  RouterWatcher& operator=(const RouterWatcher&) = delete;

  void Start();
  // Cancels the stream and joins the thread. Idempotent.
  void Stop();

 private:
  void Run();

  std::unique_ptr<v1::Router::Stub> stub_;
  SnapshotStore* const store_;
  GatewayMetrics* const metrics_;
  const RouterWatcherOptions options_;
  std::thread thread_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// A priority-order decision from `snapshot` for `request`, as the router's `priority` policy
// would make it without health scores: the model (by id or alias) and its deployments in their
// listed order, keeping only those with every required capability ("stream" added for streaming
// requests) and a context window that fits estimated input + max output; deployments the
// snapshot reports unavailable (circuit open, cooling down) go last. Errors: kNotFound (unknown
// model), kFailedPrecondition (no deployment fits). Pure; thread-safe.
absl::StatusOr<v1::RouteResponse> RouteFromSnapshot(const v1::RouterSnapshot& snapshot,
                                                    const v1::RouteRequest& request);

}  // namespace tollgate::gateway
