#pragma once
// Streams usage events to the ledger (Ledger.Ingest) with at-least-once delivery; the ledger's
// idempotent insert (on event_id) turns that into exactly-once rows.
//
//   LedgerClient ledger(options, grpc::CreateChannel(...), &metrics);
//   ledger.Start();
//   ledger.Enqueue(std::move(event));   // from any thread; never blocks
//   ...
//   ledger.Shutdown(std::chrono::seconds(5));  // flush with a bounded wait
//
// Design:
//   * I/O threads hand events over through a bounded lock-free queue (options.queue_capacity).
//     When it is full the event is dropped, counted in tollgate_gateway_ledger_events_total
//     {result="dropped"} and logged: a slow or absent ledger never slows a request.
//   * One dedicated sender thread batches events (up to options.batch_max_events, or whatever
//     arrived within options.batch_delay of the batch's first event), numbers the batches, and
//     keeps every batch in an in-flight list until the ledger acknowledges it (IngestAck carries
//     the batch id; the ledger acks only after committing).
//   * The stream is a gRPC ClientBidiReactor; its reactions only update the in-flight list.
//     When the stream fails (or no ack arrives within options.ack_timeout) the sender reconnects
//     with capped exponential backoff and resends every unacknowledged batch, oldest first.
//   * The in-flight list is bounded by queue_capacity events too: past that the sender stops
//     draining the queue, which then fills and drops. Memory is bounded by about twice the
//     capacity.
//
// Thread-safe. Enqueue may be called from any thread until Shutdown.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <semaphore>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/channel.h"
#include "services/gateway/bounded_queue.h"
#include "services/gateway/gateway_metrics.h"
#include "tollgate/v1/ledger.grpc.pb.h"

namespace tollgate::gateway {

struct LedgerClientOptions {
  size_t queue_capacity = 100000;
  size_t batch_max_events = 256;
  std::chrono::milliseconds batch_delay{20};
  std::chrono::milliseconds reconnect_initial_backoff{100};
  std::chrono::milliseconds reconnect_max_backoff{5000};
  std::chrono::milliseconds ack_timeout{30000};
};

class LedgerClient {
 public:
  // `metrics` may be null (tests) and must outlive the client. Nothing is sent before Start.
  LedgerClient(LedgerClientOptions options, std::shared_ptr<grpc::Channel> channel,
               GatewayMetrics* metrics);
  // Shuts down with no flush wait if Shutdown was not called.
  ~LedgerClient();

  LedgerClient(const LedgerClient&) = delete;
  LedgerClient& operator=(const LedgerClient&) = delete;

  // Starts the sender thread (connects to the ledger). Call once.
  void Start();

  // Queues `event` for the ledger. Returns false when it was dropped (queue full or shut down).
  bool Enqueue(std::unique_ptr<v1::UsageEvent> event);

  // Stops accepting events, sends everything queued and waits up to `timeout` for the ledger to
  // acknowledge it all, then closes the stream and joins the sender. Returns the number of events
  // that were not acknowledged (they are counted as dropped). Idempotent.
  size_t Shutdown(std::chrono::milliseconds timeout);

  // Introspection, for metrics and tests.
  size_t queue_depth() const { return queue_.size(); }
  size_t unacked_events() const;
  uint64_t acked_events() const;
  uint64_t dropped_events() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  class IngestCall;
  using Clock = std::chrono::steady_clock;

  struct PendingBatch {
    std::shared_ptr<const v1::IngestBatch> batch;
    size_t events = 0;
  };

  void SenderLoop();
  void PublishBatch(std::vector<std::unique_ptr<v1::UsageEvent>>& events);
  void Housekeeping(Clock::time_point now, bool stopping);
  void CloseStream();
  void Wake();
  void CountDropped(size_t n, const char* why);

  // Reactions of the current call (run on gRPC threads).
  void OnReadDone(IngestCall* call, bool ok);
  void OnWriteDone(IngestCall* call, bool ok);
  void OnCallDone(IngestCall* call, const grpc::Status& status);

  void MaybeWriteLocked(IngestCall* call) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Marks `call` broken; returns true when the caller must release the call's hold (outside mu_).
  bool MarkDeadLocked(IngestCall* call) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const LedgerClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Ledger::Stub> stub_;
  GatewayMetrics* const metrics_;

  BoundedQueue<std::unique_ptr<v1::UsageEvent>> queue_;
  std::counting_semaphore<> wake_{0};
  std::atomic<bool> wake_pending_{false};
  std::atomic<bool> sender_idle_{false};  // the sender sleeps with an empty batch
  std::atomic<bool> stopping_{false};
  std::atomic<bool> accepting_{true};
  std::atomic<uint64_t> dropped_{0};
  Clock::time_point flush_deadline_;  // written before stopping_ is set
  uint64_t next_batch_id_ = 1;        // sender thread only

  mutable absl::Mutex mu_;
  // Batches handed to the stream (or waiting for it) and not yet acknowledged, by batch id.
  std::map<uint64_t, PendingBatch> unacked_ ABSL_GUARDED_BY(mu_);
  size_t unacked_events_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t acked_events_ ABSL_GUARDED_BY(mu_) = 0;
  IngestCall* call_ ABSL_GUARDED_BY(mu_) = nullptr;  // the live stream, if any
  int live_calls_ ABSL_GUARDED_BY(mu_) = 0;          // calls whose OnDone has not run
  Clock::time_point next_connect_ ABSL_GUARDED_BY(mu_);
  std::chrono::milliseconds backoff_ ABSL_GUARDED_BY(mu_);
  bool healthy_ ABSL_GUARDED_BY(mu_) = false;  // the last stream received an ack

  std::thread sender_;
  bool shut_down_ = false;  // Shutdown ran (caller thread only)
};

}  // namespace tollgate::gateway
