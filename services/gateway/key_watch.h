#pragma once
// Virtual keys pushed by the ledger: keeps a TenancyAdmin.WatchKeys stream open and swaps each
// snapshot it receives into KeyStore (auth.h) as the ledger key set.
//
//   KeyWatcher watcher(MakeChannel(ledger_admin), &keys, token, {});
//   watcher.Start();                                  // background thread
//   watcher.WaitForFirstSnapshot(absl::Seconds(5));   // optional, at start-up
//   ...
//   watcher.Stop();
//
// The stream authenticates with "authorization: Bearer <token>" (a ledger token with role
// gateway). It reconnects with jittered exponential backoff after any failure, and cancels a
// stream that stayed silent (no snapshot, no heartbeat) for Options::stale_after, since a
// half-open connection would otherwise keep revoked keys alive unnoticed. While disconnected the
// last snapshot stays in force (fail static): keys created meanwhile are unknown, keys revoked
// meanwhile still work until the stream is back.
//
// Never runs on, or blocks, an I/O thread: one reader thread and one watchdog thread. Start/Stop
// from one owner thread; WaitForFirstSnapshot and snapshots() from any.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "services/gateway/auth.h"
#include "tollgate/v1/tenancy.grpc.pb.h"

namespace tollgate::gateway {

class KeyWatcher {
 public:
  struct Options {
    std::string client_name = "tollgate-gateway";
    std::chrono::milliseconds initial_backoff{100};
    std::chrono::milliseconds max_backoff{2000};
    // A stream with no message for this long is cancelled and reopened (ledger heartbeats
    // arrive every --key_heartbeat_ms, 1 s by default).
    std::chrono::milliseconds stale_after{5000};
    // Called on the reader thread with every snapshot after its keys were swapped in (the
    // quotas it carries go to QuotaManager::SetQuotas). May be empty.
    std::function<void(const v1::KeySetSnapshot&)> on_snapshot;
    // Metrics (docs/metrics.md), when set: tollgate_gateway_key_watch_events_total{kind},
    // tollgate_gateway_virtual_keys, tollgate_gateway_key_watch_last_message_timestamp_seconds.
    std::shared_ptr<prometheus::Registry> registry;
  };

  // `keys` must outlive the watcher. `token` is the plaintext control-plane token.
  KeyWatcher(std::shared_ptr<grpc::Channel> channel, KeyStore* keys, std::string token,
             Options options);
  ~KeyWatcher();
  KeyWatcher(const KeyWatcher&) = delete;
  KeyWatcher& operator=(const KeyWatcher&) = delete;

  void Start();
  // Cancels the stream and joins the threads. Idempotent.
  void Stop();

  // True once a snapshot arrived (waits up to `timeout`).
  bool WaitForFirstSnapshot(absl::Duration timeout);
  // Snapshots applied so far.
  int64_t snapshots() const { return snapshots_.load(std::memory_order_acquire); }

 private:
  void Run();
  void Watchdog();

  std::unique_ptr<v1::TenancyAdmin::Stub> stub_;
  KeyStore* const keys_;
  const std::string token_;
  const Options options_;
  std::thread reader_;
  std::thread watchdog_;
  std::atomic<int64_t> snapshots_{0};
  void Count(const char* kind);
  void Touch();
  prometheus::Family<prometheus::Counter>* events_ = nullptr;
  prometheus::Gauge* keys_gauge_ = nullptr;
  prometheus::Gauge* last_message_gauge_ = nullptr;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool has_snapshot_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Time last_message_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tollgate::gateway
