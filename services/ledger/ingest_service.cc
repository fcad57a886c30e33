#include "services/ledger/ingest_service.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/call_once.h"
#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/types/span.h"
#include "services/common/grpc_status.h"
#include "services/common/logging.h"

namespace tollgate::ledger {
namespace {

class IngestReactor;

// A batch read from a stream; holds a reference on its reactor until the writer reports back.
struct WorkItem {
  IngestReactor* reactor = nullptr;
  uint64_t seq = 0;  // position in the stream's read order
  v1::IngestBatch batch;
};

enum class PushResult { kQueued, kParked, kClosed };

bool IsRetryable(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable || s.code() == absl::StatusCode::kAborted ||
         s.code() == absl::StatusCode::kDeadlineExceeded;
}

}  // namespace

struct IngestService::Shared {
  Shared(Options o, LedgerMetrics& m) : options(std::move(o)), metrics(m) {}

  // Queues `item`, or parks it when the queue is full (the writer that next makes room moves it
  // in and calls the reactor's OnAdmitted).
  PushResult Push(WorkItem item) ABSL_LOCKS_EXCLUDED(mu) {
    absl::MutexLock lock(&mu);
    if (closed) return PushResult::kClosed;
    if (queue.size() >= options.queue_capacity) {
      parked.push_back(std::move(item));
      return PushResult::kParked;
    }
    queue.push_back(std::move(item));
    metrics.ingest_queue_depth().Set(static_cast<double>(queue.size()));
    return PushResult::kQueued;
  }

  // Blocks for work, then moves the queued batches (the first, and more while they fit in
  // options.max_write_events) into `items`; false once closed and empty. Parked batches move into
  // the room made; their reactors are added to `admitted`, each with a reference the caller must
  // release after calling OnAdmitted.
  bool PopGroup(std::vector<WorkItem>& items, std::vector<IngestReactor*>& admitted)
      ABSL_LOCKS_EXCLUDED(mu);

  bool HasWorkOrClosed() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return !queue.empty() || closed;
  }

  void WriterLoop(UsageStore& store);
  // Writes `batches` (of `items`, in order) in one transaction, retrying transient failures while
  // any of their streams still wants the result.
  absl::StatusOr<std::vector<InsertResult>> Write(
      UsageStore& store, absl::Span<WorkItem* const> items,
      absl::Span<const std::vector<v1::UsageEvent>> batches);
  // Reports the outcome of `item` (whose events were `events`) to its stream and drops the
  // writer's reference on it.
  void Complete(WorkItem& item, const std::vector<v1::UsageEvent>& events,
                const absl::StatusOr<InsertResult>& result);

  const Options options;
  LedgerMetrics& metrics;
  absl::Notification abort;  // Stop(): no more writes or retries
  absl::once_flag stop_once;

  absl::Mutex mu;
  std::deque<WorkItem> queue ABSL_GUARDED_BY(mu);
  std::deque<WorkItem> parked ABSL_GUARDED_BY(mu);  // at most one per stream
  bool closed ABSL_GUARDED_BY(mu) = false;
  bool draining ABSL_GUARDED_BY(mu) = false;
  std::set<IngestReactor*> reactors ABSL_GUARDED_BY(mu);  // streams not yet OnDone

  std::vector<std::unique_ptr<UsageStore>> stores;
  std::vector<std::thread> writers;
};

namespace {

// One Ingest stream. Owns itself: deleted when gRPC is done with it (OnDone) and no writer holds
// a batch of it (reference count).
//
// Every gRPC operation (StartRead, StartWrite, Finish) is started from Poke() without holding mu_:
// gRPC may run the resulting reaction inline on the calling thread, and that reaction takes mu_.
// Poke() lets one thread at a time start operations, so an operation can never be started after
// Finish.
class IngestReactor final : public grpc::ServerBidiReactor<v1::IngestBatch, v1::IngestAck> {
 public:
  IngestReactor(IngestService::Shared* shared, std::string peer, bool refuse)
      : shared_(shared), peer_(std::move(peer)) {
    if (refuse) {
      error_ = grpc::Status(grpc::StatusCode::UNAVAILABLE, "ledger is shutting down; reconnect");
      abandoned_ = true;
    }
  }

  void Start() { Poke(); }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client half-closed (or went away: OnCancel says so)
      {
        absl::MutexLock lock(&mu_);
        reading_ = false;
        read_done_ = true;
      }
      Poke();
      return;
    }
    shared_->metrics.ingest_batch_size().Observe(read_buf_.events_size());
    WorkItem item;
    item.reactor = this;
    item.batch = std::move(read_buf_);
    read_buf_.Clear();
    {
      absl::MutexLock lock(&mu_);
      reading_ = false;
      item.seq = next_seq_++;
      ++inflight_;
      // Set before pushing: the writer that admits a parked batch clears it (OnAdmitted), possibly
      // before Push() returns here.
      parked_ = true;
    }
    Ref();
    const PushResult pushed = shared_->Push(std::move(item));
    bool release = false;
    {
      absl::MutexLock lock(&mu_);
      if (pushed == PushResult::kQueued) {
        parked_ = false;
      } else if (pushed == PushResult::kClosed) {
        parked_ = false;
        --inflight_;
        release = true;
        SetErrorLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "ledger is shutting down"));
      }
    }
    if (release) Unref();
    Poke();
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) SetErrorLocked(grpc::Status(grpc::StatusCode::CANCELLED, "ack write failed"));
    }
    Poke();
  }

  void OnCancel() override {
    {
      absl::MutexLock lock(&mu_);
      SetErrorLocked(grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled"));
    }
    Poke();
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&shared_->mu);
      shared_->reactors.erase(this);
    }
    shared_->metrics.ingest_streams().Decrement();
    Unref();
  }

  // The writer moved this stream's parked batch into the queue: reading may resume.
  void OnAdmitted() {
    {
      absl::MutexLock lock(&mu_);
      parked_ = false;
    }
    Poke();
  }

  // A writer finished batch `seq` (committed, or failed for good).
  void OnBatchDone(uint64_t seq, uint64_t batch_id, const absl::StatusOr<InsertResult>& result) {
    {
      absl::MutexLock lock(&mu_);
      --inflight_;
      if (result.ok()) {
        v1::IngestAck ack;
        ack.set_batch_id(batch_id);
        ack.set_inserted(static_cast<int32_t>(result->inserted));
        ack.set_duplicates(static_cast<int32_t>(result->duplicates));
        completed_.emplace(seq, std::move(ack));
        // Acks go out in read order; a batch committed early waits for its predecessors.
        for (auto it = completed_.begin(); it != completed_.end() && it->first == next_ack_seq_;
             it = completed_.erase(it)) {
          pending_acks_.push_back(std::move(it->second));
          ++next_ack_seq_;
        }
      } else {
        SetErrorLocked(ToGrpcStatus(result.status()));
      }
    }
    Poke();
  }

  void StartDrain() {
    {
      absl::MutexLock lock(&mu_);
      draining_ = true;
    }
    Poke();
  }

  // True once the stream has failed or been cancelled: its batches need not be written.
  bool abandoned() const { return abandoned_.load(std::memory_order_acquire); }
  const std::string& peer() const { return peer_; }

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

 private:
  enum class Action { kNone, kRead, kWrite, kFinish };

  void SetErrorLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (error_.has_value()) return;
    error_ = std::move(status);
    abandoned_.store(true, std::memory_order_release);
  }

  Action NextActionLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finish_called_) return Action::kNone;
    // After a failure the acks already due (batches read before the failed one) still go out,
    // unless the client is gone, so the sender need not resend those.
    const bool can_write =
        !error_.has_value() || error_->error_code() != grpc::StatusCode::CANCELLED;
    if (can_write && !writing_ && !pending_acks_.empty()) {
      writing_ = true;
      write_buf_ = std::move(pending_acks_.front());
      pending_acks_.pop_front();
      return Action::kWrite;
    }
    if (error_.has_value()) {
      if (writing_ || (can_write && !pending_acks_.empty())) return Action::kNone;
      finish_called_ = true;
      finish_status_ = *error_;
      return Action::kFinish;
    }
    const bool idle = inflight_ == 0 && pending_acks_.empty() && !parked_ && !writing_;
    if (idle && read_done_) {
      finish_called_ = true;
      finish_status_ = grpc::Status::OK;
      return Action::kFinish;
    }
    if (idle && draining_) {
      // A read may still be outstanding; Finish completes it with ok=false.
      finish_called_ = true;
      finish_status_ = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                    "ledger is shutting down; reconnect and resend unacknowledged "
                                    "batches");
      return Action::kFinish;
    }
    if (!reading_ && !read_done_ && !draining_ && !parked_) {
      reading_ = true;
      return Action::kRead;
    }
    return Action::kNone;
  }

  void Poke() {
    Ref();  // OnDone may run inline inside Finish below
    {
      absl::MutexLock lock(&mu_);
      if (running_) {
        Unref();  // cannot be the last reference: the running thread holds one
        return;
      }
      running_ = true;
    }
    for (;;) {
      Action action;
      grpc::Status status;
      bool drained = false;
      {
        absl::MutexLock lock(&mu_);
        action = NextActionLocked();
        if (action == Action::kNone) {
          running_ = false;
          break;
        }
        if (action == Action::kFinish) {
          status = finish_status_;
          drained = draining_ && !error_.has_value();
        }
      }
      switch (action) {
        case Action::kRead:
          StartRead(&read_buf_);
          break;
        case Action::kWrite:
          StartWrite(&write_buf_);
          break;
        case Action::kFinish:
          if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED && !drained) {
            LogWarn("ingest stream ended with an error",
                    {{"peer", peer_},
                     {"code", LedgerMetrics::ResultLabel(FromGrpcStatus(status))},
                     {"error", status.error_message()}});
          }
          Finish(status);
          break;
        case Action::kNone:
          break;
      }
    }
    Unref();
  }

  IngestService::Shared* const shared_;
  const std::string peer_;
  std::atomic<int> refs_{1};  // gRPC's, released in OnDone
  std::atomic<bool> abandoned_{false};

  v1::IngestBatch read_buf_;  // owned by the outstanding read
  v1::IngestAck write_buf_;   // owned by the outstanding write

  absl::Mutex mu_;
  bool running_ ABSL_GUARDED_BY(mu_) = false;  // a thread is in Poke()'s loop
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool read_done_ ABSL_GUARDED_BY(mu_) = false;
  bool parked_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> error_ ABSL_GUARDED_BY(mu_);
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_ack_seq_ ABSL_GUARDED_BY(mu_) = 0;
  int inflight_ ABSL_GUARDED_BY(mu_) = 0;  // read, not yet reported by a writer
  std::map<uint64_t, v1::IngestAck> completed_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::IngestAck> pending_acks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

bool IngestService::Shared::PopGroup(std::vector<WorkItem>& items,
                                     std::vector<IngestReactor*>& admitted) {
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(this, &Shared::HasWorkOrClosed));
  // Invariant: parked is non-empty only while the queue is full, so an empty queue means nothing
  // is parked either.
  if (queue.empty()) return false;
  size_t events = 0;
  do {
    events += static_cast<size_t>(queue.front().batch.events_size());
    items.push_back(std::move(queue.front()));
    queue.pop_front();
  } while (!queue.empty() && events + static_cast<size_t>(queue.front().batch.events_size()) <=
                                 options.max_write_events);
  while (!parked.empty() && queue.size() < options.queue_capacity) {
    IngestReactor* reactor = parked.front().reactor;
    // Taken under the lock: once the batch is in the queue another writer may finish it and drop
    // the reference it held before this writer calls OnAdmitted().
    reactor->Ref();
    admitted.push_back(reactor);
    queue.push_back(std::move(parked.front()));
    parked.pop_front();
  }
  metrics.ingest_queue_depth().Set(static_cast<double>(queue.size()));
  return true;
}

absl::StatusOr<std::vector<InsertResult>> IngestService::Shared::Write(
    UsageStore& store, absl::Span<WorkItem* const> items,
    absl::Span<const std::vector<v1::UsageEvent>> batches) {
  const absl::Time start = absl::Now();
  absl::Duration backoff = options.retry_initial_backoff;
  size_t events = 0;
  for (const std::vector<v1::UsageEvent>& b : batches) events += b.size();
  for (;;) {
    const absl::Time attempt_start = absl::Now();
    absl::StatusOr<std::vector<InsertResult>> result = store.InsertBatches(batches);
    metrics.db_write_seconds().Observe(absl::ToDoubleSeconds(absl::Now() - attempt_start));
    metrics.db_write_events().Observe(static_cast<double>(events));
    if (result.ok() || !IsRetryable(result.status())) return result;
    const bool wanted = std::any_of(items.begin(), items.end(), [](const WorkItem* item) {
      return !item->reactor->abandoned();
    });
    if (!wanted || abort.HasBeenNotified()) return result;
    if (absl::Now() + backoff - start > options.retry_budget) {
      return absl::UnavailableError(absl::StrCat("batch not committed after retrying for ",
                                                 absl::FormatDuration(absl::Now() - start), ": ",
                                                 std::string(result.status().message())));
    }
    LogWarn("batch write failed; retrying",
            {{"batch_id", absl::StrCat(items.front()->batch.batch_id())},
             {"batches", absl::StrCat(items.size())},
             {"error", std::string(result.status().message())},
             {"backoff", absl::FormatDuration(backoff)}});
    metrics.ingest_retries().Increment();
    if (abort.WaitForNotificationWithTimeout(backoff)) return result;
    backoff = std::min(backoff * 2, options.retry_max_backoff);
  }
}

void IngestService::Shared::Complete(WorkItem& item, const std::vector<v1::UsageEvent>& events,
                                     const absl::StatusOr<InsertResult>& result) {
  IngestReactor& reactor = *item.reactor;
  const uint64_t batch_id = item.batch.batch_id();
  if (result.ok()) {
    metrics.events_inserted().Increment(static_cast<double>(result->inserted));
    metrics.events_duplicate().Increment(static_cast<double>(result->duplicates));
    const int64_t now_us = absl::ToUnixMicros(absl::Now());
    for (const v1::UsageEvent& e : events) {
      metrics.ingest_lag_seconds().Observe(
          std::max<double>(0, static_cast<double>(now_us - e.time_unix_us()) / 1e6));
    }
  } else if (result.status().code() == absl::StatusCode::kInvalidArgument) {
    LogError("rejected an invalid usage batch",
             {{"batch_id", absl::StrCat(batch_id)},
              {"peer", reactor.peer()},
              {"error", std::string(result.status().message())}});
  }
  metrics.ingest_batches(result.status()).Increment();
  reactor.OnBatchDone(item.seq, batch_id, result);
  reactor.Unref();
}

void IngestService::Shared::WriterLoop(UsageStore& store) {
  std::vector<WorkItem> items;
  std::vector<IngestReactor*> admitted;
  std::vector<WorkItem*> live;
  std::vector<std::vector<v1::UsageEvent>> batches;
  const std::vector<v1::UsageEvent> no_events;
  for (;;) {
    items.clear();
    admitted.clear();
    if (!PopGroup(items, admitted)) return;
    for (IngestReactor* reactor : admitted) {
      reactor->OnAdmitted();
      reactor->Unref();
    }

    live.clear();
    batches.clear();
    for (WorkItem& item : items) {
      if (item.reactor->abandoned()) {
        // The stream already ended: the sender resends this batch on its next stream.
        Complete(item, no_events,
                 absl::CancelledError("stream ended before the batch was written"));
      } else if (abort.HasBeenNotified()) {
        Complete(item, no_events, absl::UnavailableError("ledger is shutting down"));
      } else {
        std::vector<v1::UsageEvent>& events = batches.emplace_back();
        events.reserve(item.batch.events_size());
        for (v1::UsageEvent& e : *item.batch.mutable_events()) events.push_back(std::move(e));
        live.push_back(&item);
      }
    }
    if (live.empty()) continue;

    absl::StatusOr<std::vector<InsertResult>> results = Write(store, live, batches);
    if (!results.ok() && results.status().code() == absl::StatusCode::kInvalidArgument &&
        live.size() > 1) {
      // One batch is bad: write them one at a time so that only its stream fails.
      for (size_t i = 0; i < live.size(); ++i) {
        if (live[i]->reactor->abandoned()) {  // e.g. an earlier batch of its stream was the bad one
          Complete(*live[i], no_events,
                   absl::CancelledError("stream ended before the batch was "
                                        "written"));
          continue;
        }
        absl::StatusOr<std::vector<InsertResult>> one =
            Write(store, absl::MakeConstSpan(&live[i], 1), absl::MakeConstSpan(&batches[i], 1));
        Complete(*live[i], batches[i],
                 one.ok() ? absl::StatusOr<InsertResult>(one->at(0)) : one.status());
      }
      continue;
    }
    for (size_t i = 0; i < live.size(); ++i) {
      Complete(*live[i], batches[i],
               results.ok() ? absl::StatusOr<InsertResult>(results->at(i)) : results.status());
    }
  }
}

namespace {
IngestService::Options Sanitized(IngestService::Options options) {
  options.queue_capacity = std::max<size_t>(1, options.queue_capacity);
  options.max_write_events = std::max<size_t>(1, options.max_write_events);
  return options;
}
}  // namespace

IngestService::IngestService(std::vector<std::unique_ptr<UsageStore>> stores, Options options,
                             LedgerMetrics& metrics)
    : shared_(std::make_unique<Shared>(Sanitized(std::move(options)), metrics)) {
  shared_->stores = std::move(stores);
  for (auto& store : shared_->stores) {
    shared_->writers.emplace_back(
        [shared = shared_.get(), s = store.get()] { shared->WriterLoop(*s); });
  }
}

IngestService::~IngestService() { Stop(); }

grpc::ServerBidiReactor<v1::IngestBatch, v1::IngestAck>* IngestService::Ingest(
    grpc::CallbackServerContext* context) {
  IngestReactor* reactor;
  {
    absl::MutexLock lock(&shared_->mu);
    reactor =
        new IngestReactor(shared_.get(), context->peer(), shared_->draining || shared_->closed);
    shared_->reactors.insert(reactor);
  }
  shared_->metrics.ingest_streams().Increment();
  reactor->Start();
  return reactor;
}

void IngestService::StartDrain() {
  std::vector<IngestReactor*> reactors;
  {
    absl::MutexLock lock(&shared_->mu);
    shared_->draining = true;
    // Referenced under the lock: OnDone unregisters under it before releasing gRPC's reference.
    for (IngestReactor* r : shared_->reactors) {
      r->Ref();
      reactors.push_back(r);
    }
  }
  for (IngestReactor* r : reactors) {
    r->StartDrain();
    r->Unref();
  }
}

void IngestService::Stop() {
  absl::call_once(shared_->stop_once, [this] {
    shared_->abort.Notify();
    {
      absl::MutexLock lock(&shared_->mu);
      shared_->closed = true;
    }
    for (std::thread& t : shared_->writers) t.join();
  });
}

}  // namespace tollgate::ledger
