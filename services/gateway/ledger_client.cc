#include "services/gateway/ledger_client.h"

#include <algorithm>
#include <bit>

#include "absl/strings/str_cat.h"
#include "services/common/logging.h"

namespace tollgate::gateway {

// One Ledger.Ingest stream. Created by the sender thread; deletes itself in OnDone. The fields
// below `ack_` are guarded by the owner's mu_. The reactor holds a hold (AddHold) from Begin
// until someone marks it dead, so OnDone cannot run while the sender may still start writes.
class LedgerClient::IngestCall : public grpc::ClientBidiReactor<v1::IngestBatch, v1::IngestAck> {
 public:
  explicit IngestCall(LedgerClient* owner) : owner_(owner) {}

  void Begin() {
    owner_->stub_->async()->Ingest(&context_, this);
    AddHold();
    StartRead(&ack_);
    StartCall();
  }

  void OnReadDone(bool ok) override { owner_->OnReadDone(this, ok); }
  void OnWriteDone(bool ok) override { owner_->OnWriteDone(this, ok); }
  void OnDone(const grpc::Status& status) override {
    owner_->OnCallDone(this, status);
    delete this;
  }

  LedgerClient* const owner_;
  grpc::ClientContext context_;
  v1::IngestAck ack_;

  bool dead = false;
  bool writing = false;
  uint64_t next_write_id = 0;  // smallest batch id not yet written on this stream
  std::shared_ptr<const v1::IngestBatch> in_write;
  size_t in_write_events = 0;
  bool got_ack = false;
  Clock::time_point last_progress;
};

LedgerClient::LedgerClient(LedgerClientOptions options, std::shared_ptr<grpc::Channel> channel,
                           GatewayMetrics* metrics)
    : options_(options),
      channel_(std::move(channel)),
      stub_(v1::Ledger::NewStub(channel_)),
      metrics_(metrics),
      queue_(std::max<size_t>(options.queue_capacity, 1)),
      backoff_(options.reconnect_initial_backoff),
      healthy_(true) {
  next_connect_ = Clock::now();
  if (options_.spool != nullptr) {
    // Resume after the last acknowledged event of the previous run.
    spool_next_ = options_.spool->acked_end();
    spool_acked_persisted_ = spool_next_;
    absl::MutexLock lock(&mu_);
    spool_published_end_ = spool_next_;
    spool_acked_end_ = spool_next_;
  }
}

void LedgerClient::Start() {
  if (sender_.joinable() || shut_down_) return;
  // Each group commit makes new records readable: wake the sender for them.
  if (options_.spool != nullptr) {
    // As for the memory queue: a group commit wakes the sender only when it sleeps with nothing
    // to batch; while it waits out a batch window it reads what was committed meanwhile when the
    // window ends (and then drains full batches back to back).
    options_.spool->SetCommitCallback([this] {
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (sender_idle_.load(std::memory_order_relaxed)) Wake();
    });
  }
  sender_ = std::thread([this] { SenderLoop(); });
}

void LedgerClient::CountRejected() {
  if (options_.spool_metrics != nullptr) options_.spool_metrics->AddRejected(1);
  const uint64_t before = rejected_.fetch_add(1, std::memory_order_relaxed);
  if (before == 0 || std::bit_width(before) != std::bit_width(before + 1)) {
    LogError("usage spool full: refusing requests with 503 spool_full",
             {{"rejected_total", absl::StrCat(before + 1)},
              {"spool_bytes", absl::StrCat(options_.spool->bytes())}});
  }
}

LedgerClient::~LedgerClient() { Shutdown(std::chrono::milliseconds(0)); }

bool LedgerClient::Enqueue(std::unique_ptr<v1::UsageEvent> event) {
  if (!accepting_.load(std::memory_order_acquire)) {
    CountDropped(1, "the gateway is shutting down");
    return false;
  }
  if (options_.spool != nullptr) {
    if (options_.spool->Append(*event) == Spool::AppendResult::kWritten) return true;
    // The spool counted and logged the drop; keep the ledger counter meaningful too.
    dropped_.fetch_add(1, std::memory_order_relaxed);
    if (metrics_ != nullptr) metrics_->AddLedgerEvents("dropped", 1);
    return false;
  }
  if (!queue_.TryPush(std::move(event))) {
    CountDropped(1, "the ledger queue is full");
    return false;
  }
  // Wake the sender only when it sleeps with nothing to batch, or a full batch is waiting: while
  // it waits out a batch window, waking it per event would cost a context switch per request.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (sender_idle_.load(std::memory_order_relaxed) || queue_.size() >= options_.batch_max_events) {
    Wake();
  }
  return true;
}

void LedgerClient::Wake() {
  if (!wake_pending_.exchange(true, std::memory_order_acq_rel)) wake_.release();
}

void LedgerClient::CountDropped(size_t n, const char* why) {
  if (n == 0) return;
  const uint64_t before = dropped_.fetch_add(n, std::memory_order_relaxed);
  if (metrics_ != nullptr) metrics_->AddLedgerEvents("dropped", static_cast<double>(n));
  // Log the first drop and then at powers of two, so a long outage cannot flood the log.
  const uint64_t after = before + n;
  if (before == 0 || (std::bit_width(before) != std::bit_width(after))) {
    LogError("usage events dropped", {{"reason", why},
                                      {"dropped_total", absl::StrCat(after)},
                                      {"queue_capacity", absl::StrCat(options_.queue_capacity)}});
  }
}

size_t LedgerClient::unacked_events() const {
  absl::MutexLock lock(&mu_);
  return unacked_events_;
}

uint64_t LedgerClient::acked_events() const {
  absl::MutexLock lock(&mu_);
  return acked_events_;
}

size_t LedgerClient::Shutdown(std::chrono::milliseconds timeout) {
  if (shut_down_) return 0;
  shut_down_ = true;
  accepting_.store(false, std::memory_order_release);
  flush_deadline_ = Clock::now() + timeout;
  // Everything appended so far becomes durable (and readable by the sender) first.
  if (options_.spool != nullptr) options_.spool->Flush(timeout);
  stopping_.store(true, std::memory_order_release);
  Wake();
  if (sender_.joinable()) sender_.join();

  if (options_.spool != nullptr) {
    options_.spool->SetCommitCallback(nullptr);
    AcknowledgeSpool();
    size_t unacked;
    {
      absl::MutexLock lock(&mu_);
      unacked_.clear();
      unacked_events_ = 0;
    }
    unacked = static_cast<size_t>(options_.spool->durable_end() - options_.spool->acked_end());
    if (unacked > 0) {
      LogWarn(
          "usage events not yet acknowledged by the ledger stay in the spool for the next start",
          {{"events", absl::StrCat(unacked)}, {"spool_dir", options_.spool->dir()}});
    }
    if (metrics_ != nullptr) {
      metrics_->SetLedgerQueueDepth(0);
      metrics_->SetLedgerUnackedEvents(0);
    }
    return unacked;
  }

  size_t lost = 0;
  while (queue_.TryPop()) ++lost;
  {
    absl::MutexLock lock(&mu_);
    lost += unacked_events_;
    unacked_.clear();
    unacked_events_ = 0;
  }
  if (lost > 0) {
    LogError("usage events not acknowledged by the ledger at shutdown",
             {{"events", absl::StrCat(lost)}});
    dropped_.fetch_add(lost, std::memory_order_relaxed);
    if (metrics_ != nullptr) metrics_->AddLedgerEvents("dropped", static_cast<double>(lost));
  }
  if (metrics_ != nullptr) {
    metrics_->SetLedgerQueueDepth(0);
    metrics_->SetLedgerUnackedEvents(0);
  }
  return lost;
}

void LedgerClient::SenderLoop() {
  std::vector<std::unique_ptr<v1::UsageEvent>> batch;
  batch.reserve(options_.batch_max_events);
  Clock::time_point batch_started;
  while (true) {
    const bool stopping = stopping_.load(std::memory_order_acquire);
    size_t room;
    {
      absl::MutexLock lock(&mu_);
      room = unacked_events_ >= options_.queue_capacity ? 0
                                                        : options_.queue_capacity - unacked_events_;
    }
    if (options_.spool != nullptr) {
      const bool was_empty = batch.empty();
      const size_t limit = std::min(options_.batch_max_events, room);
      if (batch.size() < limit && ReadSpool(batch, limit - batch.size()) > 0 && was_empty) {
        batch_started = Clock::now();
      }
    }
    while (options_.spool == nullptr && batch.size() < options_.batch_max_events &&
           batch.size() < room) {
      std::optional<std::unique_ptr<v1::UsageEvent>> event = queue_.TryPop();
      if (!event) break;
      if (batch.empty()) batch_started = Clock::now();
      batch.push_back(std::move(*event));
    }
    const Clock::time_point now = Clock::now();
    const bool full = batch.size() >= options_.batch_max_events;
    if (!batch.empty() && (full || stopping || now - batch_started >= options_.batch_delay)) {
      PublishBatch(batch);
    }
    Housekeeping(now, stopping);
    if (stopping) {
      bool all_acked;
      {
        absl::MutexLock lock(&mu_);
        all_acked = unacked_.empty();
      }
      const bool spool_drained =
          options_.spool == nullptr || spool_next_ >= options_.spool->durable_end();
      if ((batch.empty() && queue_.size() == 0 && all_acked && spool_drained) ||
          now >= flush_deadline_) {
        break;
      }
    }
    if (full) continue;  // more may be waiting right now
    std::chrono::nanoseconds wait = options_.batch_delay;
    if (!batch.empty()) {
      wait = std::max<std::chrono::nanoseconds>(std::chrono::nanoseconds(0),
                                                batch_started + options_.batch_delay - now);
    }
    if (stopping) wait = std::min<std::chrono::nanoseconds>(wait, std::chrono::milliseconds(5));
    if (batch.empty()) {
      sender_idle_.store(true, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      // An event pushed before the flag became visible would not wake us: look once more.
      const bool more = options_.spool != nullptr ? spool_next_ < options_.spool->durable_end()
                                                  : queue_.size() > 0;
      if (more && room > 0) {
        sender_idle_.store(false, std::memory_order_relaxed);
        continue;
      }
    }
    (void)wake_.try_acquire_for(wait);
    sender_idle_.store(false, std::memory_order_relaxed);
    wake_pending_.exchange(false, std::memory_order_acq_rel);
  }
  // Events still in `batch` were published above (stopping publishes at once).
  CloseStream();
}

void LedgerClient::PublishBatch(std::vector<std::unique_ptr<v1::UsageEvent>>& events) {
  auto batch = std::make_shared<v1::IngestBatch>();
  const uint64_t id = next_batch_id_++;
  batch->set_batch_id(id);
  batch->mutable_events()->Reserve(static_cast<int>(events.size()));
  for (auto& event : events) batch->mutable_events()->AddAllocated(event.release());
  const size_t n = events.size();
  events.clear();
  absl::MutexLock lock(&mu_);
  PendingBatch pending{std::move(batch), n};
  if (options_.spool != nullptr) {
    pending.spool_begin = batch_spool_begin_;
    pending.spool_end = spool_next_;
    pending.oldest_unix_us = batch_oldest_us_;
    spool_published_end_ = spool_next_;
  }
  unacked_.emplace(id, std::move(pending));
  unacked_events_ += n;
  if (call_ != nullptr) MaybeWriteLocked(call_);
}

void LedgerClient::Housekeeping(Clock::time_point now, bool stopping) {
  IngestCall* to_cancel = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (call_ == nullptr && now >= next_connect_ && (!stopping || !unacked_.empty())) {
      auto* call = new IngestCall(this);
      call->last_progress = now;
      call_ = call;
      ++live_calls_;
      call->Begin();
      MaybeWriteLocked(call);
    } else if (call_ != nullptr && !call_->dead && !unacked_.empty() &&
               unacked_.begin()->first < call_->next_write_id &&
               now - call_->last_progress > options_.ack_timeout) {
      LogWarn("no acknowledgement from the ledger in time; reconnecting",
              {{"ack_timeout_ms", absl::StrCat(options_.ack_timeout.count())},
               {"unacked_events", absl::StrCat(unacked_events_)}});
      if (MarkDeadLocked(call_)) to_cancel = call_;
    }
    if (metrics_ != nullptr) {
      metrics_->SetLedgerQueueDepth(static_cast<double>(queue_.size()));
      metrics_->SetLedgerUnackedEvents(static_cast<double>(unacked_events_));
    }
    if (options_.spool_metrics != nullptr) {
      double age = 0;
      if (!unacked_.empty()) {
        const int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count();
        age = std::max<double>(
            0, static_cast<double>(now_us - unacked_.begin()->second.oldest_unix_us) / 1e6);
      }
      options_.spool_metrics->SetOldestUnackedAge(age);
    }
  }
  if (options_.spool != nullptr) AcknowledgeSpool();
  if (to_cancel != nullptr) {
    to_cancel->context_.TryCancel();
    to_cancel->RemoveHold();
  }
}

void LedgerClient::CloseStream() {
  IngestCall* call = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (call_ != nullptr && MarkDeadLocked(call_)) call = call_;
  }
  if (call != nullptr) {
    call->context_.TryCancel();
    call->RemoveHold();
  }
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* live) { return *live == 0; }, &live_calls_));
}

bool LedgerClient::MarkDeadLocked(IngestCall* call) {
  if (call->dead) return false;
  call->dead = true;
  return true;
}

void LedgerClient::MaybeWriteLocked(IngestCall* call) {
  if (call->dead || call->writing) return;
  auto it = unacked_.lower_bound(call->next_write_id);
  if (it == unacked_.end()) return;
  // Nothing written is awaiting an ack: the ack clock starts with this write.
  if (unacked_.begin()->first >= call->next_write_id) call->last_progress = Clock::now();
  call->writing = true;
  call->in_write = it->second.batch;
  call->in_write_events = it->second.events;
  call->next_write_id = it->first + 1;
  call->StartWrite(call->in_write.get());
}

void LedgerClient::OnReadDone(IngestCall* call, bool ok) {
  bool release = false;
  {
    absl::MutexLock lock(&mu_);
    if (ok) {
      const uint64_t id = call->ack_.batch_id();
      auto it = unacked_.find(id);
      if (it != unacked_.end()) {
        const size_t n = it->second.events;
        unacked_events_ -= n;
        acked_events_ += n;
        unacked_.erase(it);
        if (metrics_ != nullptr) metrics_->AddLedgerEvents("acked", static_cast<double>(n));
        if (options_.spool != nullptr) {
          // The acknowledged prefix ends where the oldest batch still unacknowledged begins.
          spool_acked_end_ =
              unacked_.empty() ? spool_published_end_ : unacked_.begin()->second.spool_begin;
          if (options_.spool_metrics != nullptr) {
            options_.spool_metrics->AddAcked(static_cast<double>(n));
          }
        }
      }
      call->got_ack = true;
      call->last_progress = Clock::now();
      backoff_ = options_.reconnect_initial_backoff;
      if (!healthy_) {
        healthy_ = true;
        LogInfo("ledger stream connected", {{"unacked_events", absl::StrCat(unacked_events_)}});
      }
      if (!call->dead) call->StartRead(&call->ack_);
    } else {
      release = MarkDeadLocked(call);
    }
  }
  if (release) call->RemoveHold();
}

void LedgerClient::OnWriteDone(IngestCall* call, bool ok) {
  bool release = false;
  {
    absl::MutexLock lock(&mu_);
    call->writing = false;
    const size_t n = call->in_write_events;
    call->in_write.reset();
    call->in_write_events = 0;
    if (ok) {
      if (metrics_ != nullptr) metrics_->AddLedgerEvents("sent", static_cast<double>(n));
      if (options_.spool_metrics != nullptr) {
        options_.spool_metrics->AddSent(static_cast<double>(n));
      }
      MaybeWriteLocked(call);
    } else {
      release = MarkDeadLocked(call);
    }
  }
  if (release) call->RemoveHold();
}

void LedgerClient::OnCallDone(IngestCall* call, const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  if (call_ == call) call_ = nullptr;
  const Clock::time_point now = Clock::now();
  if (call->got_ack) backoff_ = options_.reconnect_initial_backoff;
  next_connect_ = now + backoff_;
  const bool stopping = stopping_.load(std::memory_order_acquire);
  if (!stopping) {
    const std::string code = absl::StrCat(static_cast<int>(status.error_code()));
    const std::string retry = absl::StrCat(backoff_.count());
    if (healthy_) {
      healthy_ = false;
      LogWarn("ledger stream closed; reconnecting and resending unacknowledged batches",
              {{"grpc_code", code},
               {"error", status.error_message()},
               {"retry_in_ms", retry},
               {"unacked_events", absl::StrCat(unacked_events_)}});
    } else {
      LogDebug("ledger stream attempt failed",
               {{"grpc_code", code}, {"error", status.error_message()}, {"retry_in_ms", retry}});
    }
  }
  if (!call->got_ack) backoff_ = std::min(backoff_ * 2, options_.reconnect_max_backoff);
  --live_calls_;
}

}  // namespace tollgate::gateway

namespace tollgate::gateway {

size_t LedgerClient::ReadSpool(std::vector<std::unique_ptr<v1::UsageEvent>>& batch, size_t limit) {
  std::vector<SpoolRecord> records;
  absl::Status status = options_.spool->Read(spool_next_, limit, &records);
  if (!status.ok()) {
    LogError("cannot read the usage spool; skipping the unreadable record",
             {{"seq", absl::StrCat(spool_next_)}, {"error", std::string(status.message())}});
    CountDropped(1, "unreadable spool record");
    ++spool_next_;  // never wedge the sender on one bad record
    return 0;
  }
  for (SpoolRecord& record : records) {
    if (batch.empty()) {
      batch_spool_begin_ = record.seq;
      batch_oldest_us_ = record.event.time_unix_us();
    }
    batch.push_back(std::make_unique<v1::UsageEvent>(std::move(record.event)));
    spool_next_ = record.seq + 1;
  }
  return records.size();
}

void LedgerClient::AcknowledgeSpool() {
  uint64_t acked;
  {
    absl::MutexLock lock(&mu_);
    acked = spool_acked_end_;
  }
  if (acked <= spool_acked_persisted_) return;
  absl::Status status = options_.spool->Acknowledge(acked);
  if (!status.ok()) {
    LogWarn("cannot record the spool's ack watermark", {{"error", std::string(status.message())}});
  }
  spool_acked_persisted_ = acked;
}

}  // namespace tollgate::gateway
