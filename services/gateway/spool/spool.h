#pragma once
// The gateway's crash-proof usage spool (DESIGN.md "Durability contract"): every usage event is
// appended to append-only segment files on local disk before it counts as recorded; the ledger
// sender reads it back in order and the spool deletes a segment only once the ledger has
// acknowledged every event in it.
//
//   auto spool = Spool::Open(options, &metrics);        // recovers what a previous run left
//   (*spool)->Append(std::move(event));                 // any thread; never touches the disk
//   (*spool)->Read(next_seq, 256, &records);            // the sender: durable records, in order
//   (*spool)->Acknowledge(acked_end);                   // every seq < acked_end is committed
//   (*spool)->Close();                                  // writes and syncs what was appended
//
// On disk (options.dir):
//   <base>.seg  20-digit zero-padded decimal `base`, the sequence number of its first record.
//               Records: u32 LE payload length | u32 LE CRC-32C over (length bytes, payload) |
//               payload = serialized v1::UsageEvent. A record's sequence number is its segment's
//               base plus its index. Only the newest segment is ever appended to; a full
//               segment is sealed (its final fdatasync, by the syncer) before any record of
//               its successor becomes readable.
//   ACKED       decimal "acked end": every sequence number below it was acknowledged by the
//               ledger. Replaced atomically (write ACKED.tmp, rename). Not fsync'd: losing an
//               update only means those events are sent again, and the ledger's insert is
//               idempotent on event_id.
//
// Durability point: Append serializes the event on the calling thread and write()s its record to
// the active segment at once, under a short mutex (a ~200-byte write() into the page cache: no
// thread hand-off, no wake-up, no waiting for a sync). When Append returns kWritten the event
// survives a crash of the process. A second thread, the syncer, group-commits: woken by new
// writes, it waits options.commit_delay for more, fdatasync()s everything written so far (then it
// survives a crash of the machine) and only then makes it visible to Read. The sender therefore
// never sends an event that a power loss could take back. With options.fsync = false there is no
// syncer and a write is visible at once. The chat handler appends before it answers, so an
// answered request survives a SIGKILL of the gateway (a machine crash can still lose the last
// group-commit window). Rolling to a new segment (every options.segment_bytes) never waits for
// the disk either: the append opens the successor and hands the full segment to the syncer,
// which syncs it, publishes its last records and seals it before anything of the successor.
//
// Recovery (Open): every segment is scanned and every record's length and CRC checked. The first
// bad record of the newest segment is a torn tail (a write cut short by a crash): the file is
// truncated there and everything before it is kept. A bad record in an older segment is logged
// as an error and the segment truncated there: corruption, or a machine crash between a roll and
// the full segment's final sync (records never read by the sender, as for a torn tail). Fully
// acknowledged segments are deleted; appends continue in a new segment.
//
// Size bound: options.max_bytes over all segment files. Past it, with FullPolicy::kDrop, Append
// drops the event (counted and logged, never silently); with FullPolicy::kReject, Admitting()
// turns false so new requests are refused (503 spool_full) while the events of requests already
// admitted are still written (the overshoot is bounded by the requests in flight).
//
// Thread-safety: Append, Admitting and the accessors from any thread. Read and Acknowledge from
// one consumer thread at a time (the ledger sender).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "services/gateway/spool/spool_metrics.h"
#include "tollgate/v1/ledger.pb.h"

namespace tollgate::gateway {

enum class SpoolFullPolicy { kReject, kDrop };

// Parses "reject" / "drop".
absl::StatusOr<SpoolFullPolicy> ParseSpoolFullPolicy(const std::string& text);

struct SpoolOptions {
  std::string dir;                             // created if missing
  uint64_t segment_bytes = 16 * 1024 * 1024;   // roll to a new segment past this size
  uint64_t max_bytes = 1024ull * 1024 * 1024;  // bound over all segment files
  SpoolFullPolicy full_policy = SpoolFullPolicy::kReject;
  std::chrono::microseconds commit_delay{200};  // group-commit collection window
  bool fsync = true;                            // false: durable against process crashes only
};

struct SpoolRecord {
  uint64_t seq = 0;
  v1::UsageEvent event;
};

class Spool {
 public:
  enum class AppendResult { kWritten, kDropped };

  // Recovers `options.dir` and starts the syncer thread. `metrics` may be null and must outlive
  // the spool. Fails when the directory cannot be created, read or locked by this process.
  static absl::StatusOr<std::unique_ptr<Spool>> Open(SpoolOptions options, SpoolMetrics* metrics);
  ~Spool();  // Close()

  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Writes `event`'s record to the active segment (one write(), on the calling thread, serialized
  // with other appends by a mutex). kWritten: it is in the file and survives a crash of the
  // process (a crash of the machine only after the next group commit). kDropped (counted,
  // logged): the spool is full under policy drop, closed, or the write failed.
  AppendResult Append(const v1::UsageEvent& event);

  // False while the spool is full and the policy is reject: new requests must be refused.
  bool Admitting() const;
  SpoolFullPolicy full_policy() const { return options_.full_policy; }

  // Appends up to `max` durable records with sequence numbers >= `from` (in order, without gaps
  // except where corruption was dropped) to `out`. Returns an error only for I/O failures.
  absl::Status Read(uint64_t from, size_t max, std::vector<SpoolRecord>* out);

  // Records that every sequence number < `acked_end` is acknowledged: persists the watermark and
  // deletes segments whose records are all acknowledged. Never moves the watermark back.
  absl::Status Acknowledge(uint64_t acked_end);

  // Called after each group commit (from the syncer thread; with fsync off, from the appending
  // thread), under the spool's lock: it must not block or call into the spool. The sender's
  // wake-up. After SetCommitCallback(nullptr)
  // returns, the previous callback is never called again.
  void SetCommitCallback(std::function<void()> callback);

  // Blocks until everything written so far is durable, or `timeout` passes. Returns whether it is.
  bool Flush(std::chrono::milliseconds timeout);

  // Stops accepting appends (waiting for any in progress), syncs what was written, joins the
  // syncer. Idempotent.
  void Close();

  // Introspection.
  uint64_t durable_end() const;  // one past the last durable record
  uint64_t acked_end() const;
  uint64_t bytes() const;
  size_t segments() const;
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  const std::string& dir() const { return options_.dir; }

 public:
  // What appends have written (not necessarily synced) in the active segment. Implementation
  // detail, public only for the .cc.
  struct Written {
    uint64_t base = 0;
    uint64_t records = 0;
    uint64_t bytes = 0;
    int fd = -1;
  };

 private:
  struct Segment {
    std::string path;
    uint64_t base = 0;
    uint64_t records = 0;  // durable records
    uint64_t bytes = 0;    // durable bytes
    bool sealed = false;
  };

  Spool(SpoolOptions options, SpoolMetrics* metrics);
  absl::Status Recover();
  absl::Status OpenActive(uint64_t base) ABSL_EXCLUSIVE_LOCKS_REQUIRED(append_mu_, mu_);
  void SyncerLoop();
  // Makes the first `records` records of segment `base` durable/readable (never moves back).
  void Publish(uint64_t base, uint64_t records, uint64_t bytes);
  // Opens the full active segment's successor and hands the full one to the syncer to seal.
  void Roll() ABSL_EXCLUSIVE_LOCKS_REQUIRED(append_mu_);
  void CountDropped(uint64_t n, const char* why);
  void PublishGauges() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status PersistAcked(uint64_t acked_end);

  const SpoolOptions options_;
  SpoolMetrics* const metrics_;

  std::atomic<bool> closing_{false};
  std::atomic<bool> closed_{false};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> total_bytes_{0};  // all segment files, written (not only durable) bytes
  std::atomic<uint64_t> appended_{0};     // events accepted by Append (written or dropped)
  std::thread syncer_;                    // options_.fsync only
  int lock_fd_ = -1;

  // The active segment's file and what was written to it but not yet synced. Lock order:
  // append_mu_, then sync_mu_, then mu_.
  absl::Mutex append_mu_ ABSL_ACQUIRED_BEFORE(sync_mu_);
  bool append_closed_ ABSL_GUARDED_BY(append_mu_) = false;
  int active_fd_ ABSL_GUARDED_BY(append_mu_) = -1;
  uint64_t active_base_ ABSL_GUARDED_BY(append_mu_) = 0;
  uint64_t written_records_ ABSL_GUARDED_BY(append_mu_) = 0;  // in the active segment
  uint64_t written_bytes_ ABSL_GUARDED_BY(append_mu_) = 0;    // in the active segment

  absl::Mutex sync_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  Written written_ ABSL_GUARDED_BY(sync_mu_);
  // Full segments (descriptor still open) waiting for the syncer's final fdatasync and seal.
  std::vector<Written> seals_ ABSL_GUARDED_BY(sync_mu_);
  bool appends_done_ ABSL_GUARDED_BY(sync_mu_) = false;

  mutable absl::Mutex mu_;
  std::map<uint64_t, Segment> segments_ ABSL_GUARDED_BY(mu_);  // by base
  uint64_t durable_end_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t acked_end_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t committed_events_ ABSL_GUARDED_BY(mu_) = 0;  // appended events now durable or dropped
  std::function<void()> commit_callback_ ABSL_GUARDED_BY(mu_);

  // Read cursor (consumer thread only).
  int read_fd_ = -1;
  uint64_t read_base_ = UINT64_MAX;
  uint64_t read_seq_ = 0;
  uint64_t read_offset_ = 0;
};

}  // namespace tollgate::gateway
