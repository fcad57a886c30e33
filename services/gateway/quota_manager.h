#pragma once
// Budgets and rate limits on the gateway's side of the lease protocol (quota.proto,
// docs/budgets.md).
//
//   QuotaManager quotas(MakeLedgerLeaseFn(channel, token), options, registry);
//   quotas.Start();                                     // the lease thread
//   quotas.SetQuotas(snapshot.quotas());                // on every WatchKeys snapshot
//   ...
//   QuotaDemand demand{.requests = 1, .tokens = 900, .cost_pico = 1'200'000};
//   std::optional<QuotaDecision> d = quotas.TryAdmit(who, demand);       // no waiting
//   if (!d) quotas.AdmitLater(who, demand, executor, handler);           // the lease thread
//   ...                                                                  // answers later
//   quotas.Settle(d->reservation, {.requests = 1, .tokens = 700, .cost_pico = 950'000});
//
// Only hard quotas are enforced here (soft ones only raise the ledger's alerts). For each hard
// quota that applies to a request the gateway holds a lease: a slice of the quota's current
// window that the ledger granted to this gateway. Admission reserves the request's worst case
// (requests: 1; tokens: estimated input + maximum output; USD: that at the most expensive
// candidate's price) from every applicable lease at once or from none. When a lease is short the
// request waits, off the I/O thread, for the lease thread to ask the ledger for more (at most
// Options::lease_wait); when the ledger answers that the window is spent the request is refused
// with the quota that refused it, so the handler can answer 429. Settlement replaces the
// reservation with the real amounts, which the next Lease call reports as used.
//
// The lease thread makes one Lease call per round for every lease that needs something: a
// waiter's need, a top-up when less than a quarter of a chunk is left, a report of used amounts
// (at most every Options::report_interval), a renewal before the lease lapses, or a release once
// a lease stayed idle for Options::idle_release or its window ended.
//
// When the ledger cannot be reached a request that needs more lease fails with kUnavailable
// (Options::allow_when_unavailable = false, the default: a hard budget stays hard) or is let
// through uncounted by any lease (true: availability first; counted in
// tollgate_gateway_quota_decisions_total{result="unenforced"}).
//
// Thread-safe. Requests to which no hard quota applies take no lock.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "boost/asio/any_io_executor.hpp"
#include "google/protobuf/repeated_ptr_field.h"
#include "grpcpp/channel.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "services/common/quota.h"
#include "tollgate/v1/quota.pb.h"

namespace tollgate::gateway {

// The amounts of one request in each quota unit.
struct QuotaDemand {
  int64_t requests = 0;
  int64_t tokens = 0;
  int64_t cost_pico = 0;
};

// The rate-limit state shown to clients in x-ratelimit-* headers (OpenAI's format), for the
// tightest REQUESTS and TOKENS per-minute quota that applies. limit 0: no such quota.
struct RateLimitView {
  int64_t limit = 0;
  int64_t remaining = 0;  // the ledger's unallocated remainder + this gateway's unused lease
  int64_t reset_ms = 0;   // until the window ends
};

struct QuotaReservation {
  struct Entry {
    std::string quota_id;
    int64_t window_start_unix_s = 0;
    v1::QuotaUnit unit = v1::QUOTA_UNIT_UNSPECIFIED;
    int64_t amount = 0;
  };
  std::vector<Entry> entries;
  bool settled = false;
};

struct QuotaDecision {
  enum class Kind { kAdmitted, kExhausted, kUnavailable };
  Kind kind = Kind::kAdmitted;
  // kAdmitted: what to settle (empty when no hard quota applies or the ledger was unreachable and
  // allow_when_unavailable let the request through).
  std::shared_ptr<QuotaReservation> reservation;
  // kExhausted: the quota that refused, its window's end and a client-safe message.
  v1::Quota refused_by;
  int64_t window_end_unix_s = 0;
  std::string message;
  RateLimitView requests;
  RateLimitView tokens;
};

using LeaseFn = std::function<absl::StatusOr<v1::LeaseResponse>(const v1::LeaseRequest&)>;

// A Quotas.Lease call over `channel` with "authorization: Bearer <token>" and a 2 s deadline.
LeaseFn MakeLedgerLeaseFn(std::shared_ptr<grpc::Channel> channel, std::string token);

class QuotaManager {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    std::string gateway_id;  // unique per process; generated when empty
    std::chrono::milliseconds lease_wait{1000};
    std::chrono::milliseconds report_interval{1000};
    std::chrono::milliseconds idle_release{10000};
    size_t max_waiters = 4096;  // more waiting requests are refused (kUnavailable)
    bool allow_when_unavailable = false;
    // For tests: the wall clock in Unix milliseconds (windows are UTC calendar windows).
    std::function<int64_t()> now_unix_ms;
  };

  // `lease` is called on the lease thread only. `registry` may be null (no metrics).
  QuotaManager(LeaseFn lease, Options options, std::shared_ptr<prometheus::Registry> registry);
  ~QuotaManager();
  QuotaManager(const QuotaManager&) = delete;
  QuotaManager& operator=(const QuotaManager&) = delete;

  void Start();
  // Releases every lease (one last Lease call) and joins the thread; pending waiters get
  // kUnavailable. Idempotent.
  void Stop();

  // The quotas of a WatchKeys snapshot (soft ones are ignored).
  void SetQuotas(const google::protobuf::RepeatedPtrField<v1::Quota>& quotas);
  // Whether any hard quota applies to `who` (lock-free).
  bool Applies(const QuotaSubject& who) const;

  // Decides now when it can: admitted from the leases held, refused because a lease's window is
  // known to be spent, or admitted with an empty reservation when no hard quota applies. nullopt:
  // a lease must grow first; call AdmitLater.
  std::optional<QuotaDecision> TryAdmit(const QuotaSubject& who, const QuotaDemand& demand);
  // Queues the request for the lease thread, which posts `done` to `executor` with the decision
  // once the leases allow it, the ledger refuses, or Options::lease_wait passed.
  void AdmitLater(const QuotaSubject& who, const QuotaDemand& demand,
                  boost::asio::any_io_executor executor, std::function<void(QuotaDecision)> done);

  // Replaces the reservation with the real amounts (idempotent per reservation).
  void Settle(QuotaReservation& reservation, const QuotaDemand& actual);

  // The highest used share, in percent, of the hard USD and token budgets (day, week, month)
  // that apply to `who`, as this gateway knows it from its leases: limit minus what the ledger
  // had left at its last grant minus this gateway's unused lease, over the limit. Other
  // replicas' unused leases count as used, so it errs high. 0 when none applies or no lease was
  // granted yet. Sent to the router (RouteRequest.budget_used_percent) for budget rules.
  int BudgetUsedPercent(const QuotaSubject& who) const;

  // Leases held (for tests and metrics).
  size_t leases() const;

 private:
  struct Index;
  struct Lease;
  struct Waiter;

  std::optional<QuotaDecision> TryAdmitLocked(const Index& index, const QuotaSubject& who,
                                              const QuotaDemand& demand, int64_t now_ms,
                                              bool register_need);
  Lease& LeaseFor(const v1::Quota& quota, int64_t now_ms);
  void Run();
  void Round();
  int64_t NowMs() const;

  LeaseFn lease_fn_;
  Options options_;
  std::atomic<std::shared_ptr<const Index>> index_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool kicked_ = false;
  bool ledger_down_ = false;
  // (quota id, window start) -> lease. Leases of ended windows stay until settled and released.
  std::map<std::pair<std::string, int64_t>, std::unique_ptr<Lease>> leases_;
  std::vector<std::unique_ptr<Waiter>> waiters_;
  std::thread thread_;

  prometheus::Family<prometheus::Counter>* decisions_ = nullptr;
  prometheus::Family<prometheus::Counter>* lease_calls_ = nullptr;
  prometheus::Gauge* waiters_gauge_ = nullptr;
  prometheus::Gauge* leases_gauge_ = nullptr;
  prometheus::Gauge* quotas_gauge_ = nullptr;
  prometheus::Family<prometheus::Counter>* overrun_ = nullptr;
};

// "1s", "6m0s", "20ms": OpenAI's x-ratelimit-reset-* format (a Go duration, rounded to ms).
std::string FormatResetDuration(int64_t ms);

}  // namespace tollgate::gateway
