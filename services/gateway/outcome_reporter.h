#pragma once
// Reports every upstream attempt's outcome to the router (Router.ReportOutcomes), batched and
// asynchronously, so the router's health view (EWMAs, circuits, cooldowns, RPM/TPM) follows what
// the gateway sees.
//
//   OutcomeReporter reporter(channel, &metrics, options);
//   reporter.Start();
//   reporter.Report(std::move(outcome));   // any thread; never blocks; drops when full
//   reporter.Stop();                       // sends what is queued (bounded by the RPC deadline)
//
// I/O threads hand outcomes over through a lock-free bounded queue (TryPush); a dedicated thread
// batches them (up to batch_size, or every batch_delay) and sends them with a deadline. A failed
// RPC drops its batch (counted): health reports are advisory and newer ones follow.
//
// Thread-safe. Report may be called from any thread between construction and destruction.

#include <chrono>
#include <cstddef>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/channel.h"
#include "services/gateway/bounded_queue.h"
#include "tollgate/v1/router.grpc.pb.h"

namespace tollgate::gateway {

class GatewayMetrics;

struct OutcomeReporterOptions {
  size_t queue_capacity = 10000;
  size_t batch_size = 256;
  std::chrono::milliseconds batch_delay{50};
  std::chrono::milliseconds rpc_timeout{1000};
};

class OutcomeReporter {
 public:
  // `metrics` may be null.
  OutcomeReporter(std::shared_ptr<grpc::Channel> channel, GatewayMetrics* metrics,
                  OutcomeReporterOptions options = {});
  ~OutcomeReporter();
  OutcomeReporter(const OutcomeReporter&) = delete;
  OutcomeReporter& operator=(const OutcomeReporter&) = delete;

  void Start();
  // Flushes the queue once and joins the thread. Idempotent.
  void Stop();

  // Queues `outcome`; false (counted as dropped) when the queue is full.
  bool Report(v1::Outcome outcome);

  size_t depth() const { return queue_.size(); }

 private:
  void Run();
  // Sends everything queued, in batches. Returns the number of outcomes taken.
  size_t Drain();

  std::unique_ptr<v1::Router::Stub> stub_;
  GatewayMetrics* const metrics_;
  const OutcomeReporterOptions options_;
  BoundedQueue<v1::Outcome> queue_;
  std::thread thread_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tollgate::gateway
