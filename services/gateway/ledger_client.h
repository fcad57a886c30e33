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
// With a spool (LedgerClientOptions::spool, the gateway's normal mode; DESIGN.md "Durability
// contract"), Enqueue writes the event to the spool (on the calling thread) instead of the memory
// queue, and the sender reads batches back from the spool's durable records in sequence order (in
// the in-flight list they are bounded by queue_capacity events as before; the backlog stays on
// disk). When the oldest unacknowledged batch is acknowledged, the sender moves the spool's ack
// watermark (Spool::Acknowledge), which deletes segments the ledger has fully committed. Shutdown
// then loses nothing: what the ledger did not acknowledge in time stays in the spool and is sent by
// the next process on the same spool directory.
//
// Thread-safe. Enqueue may be called from any thread until Shutdown.

#include <chrono>
#include <cstdint>
#include <functional>
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
#include "services/gateway/spool/spool.h"
#include "tollgate/v1/ledger.grpc.pb.h"

namespace tollgate::gateway {

struct LedgerClientOptions {
  size_t queue_capacity = 100000;
  size_t batch_max_events = 256;
  std::chrono::milliseconds batch_delay{20};
  std::chrono::milliseconds reconnect_initial_backoff{100};
  std::chrono::milliseconds reconnect_max_backoff{5000};
  std::chrono::milliseconds ack_timeout{30000};
  // Optional durable spool (not owned; must outlive the client and be closed after Shutdown).
  Spool* spool = nullptr;
  SpoolMetrics* spool_metrics = nullptr;  // may be null
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

  // Records `event` for the ledger. Returns false when it was dropped (counted, logged: queue or
  // spool full, shut down). With a spool, true means the event is in the spool's file
  // (Spool::Append: it survives a crash of the process; a crash of the machine can still lose the
  // last group-commit window). Never waits for the ledger.
  bool Enqueue(std::unique_ptr<v1::UsageEvent> event);

  // Stops accepting events, sends everything queued and waits up to `timeout` for the ledger to
  // acknowledge it all, then closes the stream and joins the sender. Returns the number of events
  // that were not acknowledged: without a spool they are lost (counted as dropped); with one they
  // stay durable in the spool for the next start. Idempotent.
  size_t Shutdown(std::chrono::milliseconds timeout);

  // False while the spool is full under policy reject: new requests must get 503 spool_full.
  bool Admitting() const { return options_.spool == nullptr || options_.spool->Admitting(); }
  // Counts a request refused because the spool is full (metric; logged at powers of two).
  void CountRejected();

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
    uint64_t spool_begin = 0;    // spool: the batch's first sequence number
    uint64_t spool_end = 0;      // spool: one past the batch's last sequence number
    int64_t oldest_unix_us = 0;  // spool: time of the batch's first event
  };

  void SenderLoop();
  void PublishBatch(std::vector<std::unique_ptr<v1::UsageEvent>>& events);
  // Spool mode: reads durable records into `batch`; returns how many were added.
  size_t ReadSpool(std::vector<std::unique_ptr<v1::UsageEvent>>& batch, size_t limit);
  void AcknowledgeSpool();
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
  std::atomic<uint64_t> rejected_{0};
  Clock::time_point flush_deadline_;    // written before stopping_ is set
  uint64_t next_batch_id_ = 1;          // sender thread only
  uint64_t spool_next_ = 0;             // sender thread only: next spool sequence number to read
  uint64_t batch_spool_begin_ = 0;      // sender thread only: first seq of the batch being built
  int64_t batch_oldest_us_ = 0;         // sender thread only
  uint64_t spool_acked_persisted_ = 0;  // sender thread only

  mutable absl::Mutex mu_;
  // Batches handed to the stream (or waiting for it) and not yet acknowledged, by batch id.
  std::map<uint64_t, PendingBatch> unacked_ ABSL_GUARDED_BY(mu_);
  size_t unacked_events_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t acked_events_ ABSL_GUARDED_BY(mu_) = 0;
  // Spool: one past the last sequence number handed to a batch, and the acknowledged prefix.
  uint64_t spool_published_end_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t spool_acked_end_ ABSL_GUARDED_BY(mu_) = 0;
  IngestCall* call_ ABSL_GUARDED_BY(mu_) = nullptr;  // the live stream, if any
  int live_calls_ ABSL_GUARDED_BY(mu_) = 0;          // calls whose OnDone has not run
  Clock::time_point next_connect_ ABSL_GUARDED_BY(mu_);
  std::chrono::milliseconds backoff_ ABSL_GUARDED_BY(mu_);
  bool healthy_ ABSL_GUARDED_BY(mu_) = false;  // the last stream received an ack

  std::thread sender_;
  bool shut_down_ = false;  // Shutdown ran (caller thread only)
};

}  // namespace tollgate::gateway
