#pragma once
// Ledger.Ingest: gateways stream usage batches; each batch is acknowledged only after its events
// are committed to the store.
//
// Flow: one reactor per stream reads a batch and pushes it onto a bounded queue shared by all
// streams; a pool of writer threads (one UsageStore, i.e. one connection, each) pops the queued
// batches (up to Options::max_write_events; they may come from several streams), writes them in
// one transaction with UsageStore::InsertBatches and hands each batch's result back to its
// stream's reactor, which sends acks strictly in the order the batches were read. Reactors never
// block: when the queue is full a stream's batch is parked and the stream stops reading (HTTP/2
// flow control then pushes back on the gateway) until a writer makes room.
//
// Failures: a batch failing with kUnavailable / kAborted / kDeadlineExceeded is retried with
// exponential backoff for up to Options::retry_budget, then the stream ends with UNAVAILABLE.
// An invalid batch (kInvalidArgument, e.g. a cost that does not match its usage; the writer
// finds it by writing the batches of a failed transaction one at a time) ends its stream
// with INVALID_ARGUMENT naming the event: acks already due for batches read before it are sent
// first, nothing read after it is acknowledged (nor written, if not yet started). Unacked
// batches are never partially stored (one transaction per batch), so a sender resends every
// unacknowledged batch after reconnecting and the idempotent insert makes that safe.
//
// Lifetime: construct before building the grpc::Server, shut the server down (every stream's
// OnDone) before Stop() or destruction. Thread-safe.

#include <memory>
#include <vector>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "services/ledger/ledger_metrics.h"
#include "services/ledger/store.h"
#include "tollgate/v1/ledger.grpc.pb.h"

namespace tollgate::ledger {

class IngestService final : public v1::Ledger::CallbackService {
 public:
  struct Options {
    // Batches read but not yet taken by a writer, over all streams (at least 1).
    size_t queue_capacity = 64;
    // A writer takes every queued batch it finds, up to this many events (always at least one
    // batch), and commits them in one transaction: under load, fewer and larger transactions.
    size_t max_write_events = 10000;
    // Backoff between retries of a transiently failing batch write.
    absl::Duration retry_initial_backoff = absl::Milliseconds(100);
    absl::Duration retry_max_backoff = absl::Seconds(5);
    // Give up on a batch (ending its stream with UNAVAILABLE) once retrying it would exceed this.
    absl::Duration retry_budget = absl::Seconds(30);
  };

  // One writer thread per store; `stores` must not be empty. `metrics` must outlive the service.
  IngestService(std::vector<std::unique_ptr<UsageStore>> stores, Options options,
                LedgerMetrics& metrics);
  ~IngestService() override;  // Stop()s

  grpc::ServerBidiReactor<v1::IngestBatch, v1::IngestAck>* Ingest(
      grpc::CallbackServerContext* context) override;

  // Graceful stop, non-blocking: streams stop reading new batches; each ends with UNAVAILABLE
  // ("shutting down") once every batch it has read is committed and acknowledged; new streams are
  // refused with UNAVAILABLE. Follow with grpc::Server::Shutdown(deadline), which waits for that.
  void StartDrain();

  // Stops the writers: batches still queued are not written (their streams, if any, end with
  // UNAVAILABLE), a retrying writer gives up, and the threads are joined. Idempotent.
  void Stop();

  struct Shared;  // implementation detail, public only for the .cc's reactor

 private:
  std::unique_ptr<Shared> shared_;
};

}  // namespace tollgate::ledger
