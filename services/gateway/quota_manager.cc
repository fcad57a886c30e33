#include "services/gateway/quota_manager.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "boost/asio/post.hpp"
#include "grpcpp/client_context.h"
#include "services/common/grpc_status.h"
#include "services/common/logging.h"
#include "tollgate/v1/quota.grpc.pb.h"

namespace tollgate::gateway {
namespace {

using Clock = QuotaManager::Clock;

int64_t AmountFor(v1::QuotaUnit unit, const QuotaDemand& demand) {
  switch (unit) {
    case v1::QUOTA_UNIT_USD: return demand.cost_pico;
    case v1::QUOTA_UNIT_TOKENS: return demand.tokens;
    case v1::QUOTA_UNIT_REQUESTS: return demand.requests;
    default: return 0;
  }
}

std::string RandomGatewayId() {
  std::random_device device;
  return absl::StrFormat("gw-%08x%08x", device(), device());
}

// What a client is told when a quota refuses: which kind of limit, and until when.
std::string RefusalMessage(const v1::Quota& quota, int64_t amount) {
  const std::string scope =
      quota.scope() == v1::QUOTA_SCOPE_ORG
          ? std::string("the organisation")
          : absl::StrCat(std::string(ScopeName(quota.scope())), " '",
                         quota.subject().empty() ? quota.team() : quota.subject(), "'");
  const std::string limit = FormatQuotaUnits(quota.unit(), quota.limit_units());
  if (quota.period() == v1::QUOTA_PERIOD_MINUTE) {
    return absl::StrCat("Rate limit reached for ", scope, " on ",
                        quota.unit() == v1::QUOTA_UNIT_REQUESTS ? "requests" : "tokens",
                        " per min: limit ", limit, ", requested ", amount,
                        ". Please try again after the reset.");
  }
  if (amount > quota.limit_units()) {
    return absl::StrCat("This request's worst case (", FormatQuotaUnits(quota.unit(), amount), " ",
                        std::string(UnitName(quota.unit())), ") exceeds the whole ",
                        std::string(PeriodName(quota.period())), "ly budget of ", scope, " (",
                        limit, "). Lower max_tokens or ask for a larger budget.");
  }
  return absl::StrCat("The ", std::string(PeriodName(quota.period())), "ly ",
                      quota.unit() == v1::QUOTA_UNIT_USD ? "USD" : "token", " budget of ", scope,
                      " (", limit, ") is spent for this period.");
}

}  // namespace

std::string FormatResetDuration(int64_t ms) {
  if (ms < 0) ms = 0;
  if (ms < 1000) return absl::StrCat(ms, "ms");
  const int64_t s = ms / 1000;
  const int64_t frac = ms % 1000;
  std::string seconds = frac == 0 ? absl::StrCat(s % 60) : absl::StrFormat("%d.%03d", s % 60, frac);
  while (frac != 0 && seconds.back() == '0') seconds.pop_back();
  if (s < 60) return absl::StrCat(seconds, "s");
  const int64_t m = s / 60;
  if (m < 60) return absl::StrCat(m, "m", seconds, "s");
  return absl::StrCat(m / 60, "h", m % 60, "m", seconds, "s");
}

LeaseFn MakeLedgerLeaseFn(std::shared_ptr<grpc::Channel> channel, std::string token) {
  auto stub = std::shared_ptr<v1::Quotas::Stub>(v1::Quotas::NewStub(std::move(channel)));
  const std::string authorization = absl::StrCat("Bearer ", token);
  return [stub, authorization](const v1::LeaseRequest& request)
             -> absl::StatusOr<v1::LeaseResponse> {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    context.AddMetadata("authorization", authorization);
    v1::LeaseResponse response;
    grpc::Status status = stub->Lease(&context, request, &response);
    if (!status.ok()) return FromGrpcStatus(status);
    return response;
  };
}

// The hard quotas of the last snapshot, indexed by what they match on.
struct QuotaManager::Index {
  std::vector<v1::Quota> quotas;
  std::vector<int> org;
  absl::flat_hash_map<std::string, std::vector<int>> by_team;
  absl::flat_hash_map<std::string, std::vector<int>> by_key;
  absl::flat_hash_map<std::string, std::vector<int>> by_feature;
  absl::flat_hash_map<std::string, std::vector<int>> by_customer;

  template <typename Fn>
  void ForEach(const QuotaSubject& who, Fn&& fn) const {
    auto visit = [&](const absl::flat_hash_map<std::string, std::vector<int>>& map,
                     std::string_view value) {
      if (value.empty()) return;
      auto it = map.find(absl::string_view(value.data(), value.size()));
      if (it == map.end()) return;
      for (int i : it->second) {
        if (QuotaApplies(quotas[static_cast<size_t>(i)], who)) fn(quotas[static_cast<size_t>(i)]);
      }
    };
    for (int i : org) fn(quotas[static_cast<size_t>(i)]);
    visit(by_team, who.team);
    visit(by_key, who.key_id);
    visit(by_feature, who.feature);
    visit(by_customer, who.customer);
  }
  bool Empty(const QuotaSubject& who) const {
    bool any = false;
    ForEach(who, [&](const v1::Quota&) { any = true; });
    return !any;
  }
  bool Has(const std::string& id) const {
    return std::any_of(quotas.begin(), quotas.end(),
                       [&](const v1::Quota& q) { return q.id() == id; });
  }
};

struct QuotaManager::Lease {
  v1::Quota quota;
  QuotaWindow window;
  int64_t granted = 0;
  int64_t used = 0;
  int64_t reserved = 0;
  int64_t reported_used = 0;
  int64_t need = 0;              // the granted total waiting requests need
  int64_t ledger_remaining = -1;  // unknown until the first grant
  Clock::time_point exhausted_until{};
  Clock::time_point last_used{};
  Clock::time_point last_report{};
  Clock::time_point expires{};
  Clock::duration life{};
  bool in_ledger = false;  // the ledger knows this lease (a Lease call succeeded)

  int64_t available() const { return granted - used - reserved; }
};

struct QuotaManager::Waiter {
  std::string team, key_id, feature, customer;
  QuotaDemand demand;
  boost::asio::any_io_executor executor;
  std::function<void(QuotaDecision)> done;
  Clock::time_point deadline;

  QuotaSubject who() const { return {team, key_id, feature, customer}; }
};

QuotaManager::QuotaManager(LeaseFn lease, Options options,
                           std::shared_ptr<prometheus::Registry> registry)
    : lease_fn_(std::move(lease)), options_(std::move(options)) {
  if (options_.gateway_id.empty()) options_.gateway_id = RandomGatewayId();
  index_.store(std::make_shared<const Index>());
  if (registry != nullptr) {
    decisions_ = &prometheus::BuildCounter()
                      .Name("tollgate_gateway_quota_decisions_total")
                      .Help("Admission decisions on requests under a hard quota, by result: "
                            "admitted, exhausted (429), unavailable (the ledger could not grant "
                            "in time: 503), unenforced (let through while the ledger was down)")
                      .Register(*registry);
    lease_calls_ = &prometheus::BuildCounter()
                        .Name("tollgate_gateway_quota_lease_calls_total")
                        .Help("Quotas.Lease calls to the ledger, by result (ok, error)")
                        .Register(*registry);
    overrun_ = &prometheus::BuildCounter()
                    .Name("tollgate_gateway_quota_overrun_units_total")
                    .Help("Settled amounts beyond their reservation, in lease units (requests, "
                          "tokens, pico-dollars), by unit: the source of a hard quota's overrun")
                    .Register(*registry);
    for (v1::QuotaUnit unit : {v1::QUOTA_UNIT_USD, v1::QUOTA_UNIT_TOKENS, v1::QUOTA_UNIT_REQUESTS}) {
      overrun_->Add({{"unit", std::string(UnitName(unit))}});  // exported as 0 from the start
    }
    auto& gauges = prometheus::BuildGauge()
                       .Name("tollgate_gateway_quota_state")
                       .Help("Quota admission state: quotas (hard quotas of the last snapshot), "
                             "waiters (requests waiting for a lease; bounded by "
                             "--quota_max_waiters), leases (held)")
                       .Register(*registry);
    waiters_gauge_ = &gauges.Add({{"state", "waiters"}});
    leases_gauge_ = &gauges.Add({{"state", "leases"}});
    quotas_gauge_ = &gauges.Add({{"state", "quotas"}});
  }
}

QuotaManager::~QuotaManager() { Stop(); }

int64_t QuotaManager::NowMs() const {
  return options_.now_unix_ms ? options_.now_unix_ms() : absl::ToUnixMillis(absl::Now());
}

void QuotaManager::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Run(); });
}

void QuotaManager::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Give back what this gateway holds, so other replicas can use it at once.
  v1::LeaseRequest request;
  std::vector<std::unique_ptr<Waiter>> waiters;
  {
    std::lock_guard lock(mu_);
    request.set_gateway_id(options_.gateway_id);
    for (auto& [key, lease] : leases_) {
      if (!lease->in_ledger) continue;
      v1::LeaseUpdate* update = request.add_updates();
      update->set_quota_id(key.first);
      update->set_window_start_unix_s(key.second);
      update->set_used(lease->used + lease->reserved);
      update->set_release(true);
    }
    leases_.clear();
    waiters.swap(waiters_);
  }
  for (auto& waiter : waiters) {
    QuotaDecision decision;
    decision.kind = QuotaDecision::Kind::kUnavailable;
    decision.message = "The gateway is shutting down.";
    boost::asio::post(waiter->executor,
                      [done = std::move(waiter->done), decision] { done(decision); });
  }
  if (request.updates_size() > 0 && lease_fn_) {
    absl::StatusOr<v1::LeaseResponse> ignored = lease_fn_(request);
    if (!ignored.ok()) {
      LogWarn("quota leases not released at shutdown (they lapse at their term)",
              {{"error", std::string(ignored.status().message())}});
    }
  }
}

void QuotaManager::SetQuotas(const google::protobuf::RepeatedPtrField<v1::Quota>& quotas) {
  auto index = std::make_shared<Index>();
  for (const v1::Quota& quota : quotas) {
    if (!quota.hard() || quota.limit_units() <= 0) continue;
    if (quota.period() == v1::QUOTA_PERIOD_UNSPECIFIED) continue;
    const int i = static_cast<int>(index->quotas.size());
    index->quotas.push_back(quota);
    switch (quota.scope()) {
      case v1::QUOTA_SCOPE_ORG: index->org.push_back(i); break;
      case v1::QUOTA_SCOPE_TEAM: index->by_team[quota.team()].push_back(i); break;
      case v1::QUOTA_SCOPE_KEY: index->by_key[quota.subject()].push_back(i); break;
      case v1::QUOTA_SCOPE_FEATURE: index->by_feature[quota.subject()].push_back(i); break;
      case v1::QUOTA_SCOPE_CUSTOMER: index->by_customer[quota.subject()].push_back(i); break;
      default: index->quotas.pop_back(); break;
    }
  }
  {
    std::lock_guard lock(mu_);
    for (auto& [key, lease] : leases_) {
      for (const v1::Quota& quota : index->quotas) {
        if (quota.id() == key.first) lease->quota = quota;
      }
    }
  }
  if (quotas_gauge_ != nullptr) quotas_gauge_->Set(static_cast<double>(index->quotas.size()));
  index_.store(std::move(index));
}

bool QuotaManager::Applies(const QuotaSubject& who) const {
  return !index_.load()->Empty(who);
}

int QuotaManager::BudgetUsedPercent(const QuotaSubject& who) const {
  std::shared_ptr<const Index> index = index_.load();
  int percent = 0;
  std::lock_guard lock(mu_);
  const int64_t now_s = NowMs() / 1000;
  index->ForEach(who, [&](const v1::Quota& quota) {
    if (quota.period() == v1::QUOTA_PERIOD_MINUTE || quota.unit() == v1::QUOTA_UNIT_REQUESTS) {
      return;
    }
    auto it = leases_.find({quota.id(), WindowAt(quota.period(), now_s).start_unix_s});
    if (it == leases_.end() || it->second->ledger_remaining < 0) return;
    const Lease& lease = *it->second;
    const __int128 limit = lease.quota.limit_units();
    if (limit <= 0) return;
    const __int128 left = lease.ledger_remaining + std::max<int64_t>(0, lease.available());
    const __int128 used = std::max<__int128>(0, limit - left);
    percent = std::max(percent, static_cast<int>(std::min<__int128>(used * 100 / limit, 1000)));
  });
  return percent;
}

size_t QuotaManager::leases() const {
  std::lock_guard lock(mu_);
  return leases_.size();
}

QuotaManager::Lease& QuotaManager::LeaseFor(const v1::Quota& quota, int64_t now_ms) {
  const QuotaWindow window = WindowAt(quota.period(), now_ms / 1000);
  std::unique_ptr<Lease>& slot = leases_[{quota.id(), window.start_unix_s}];
  if (slot == nullptr) {
    slot = std::make_unique<Lease>();
    slot->quota = quota;
    slot->window = window;
    slot->last_used = Clock::now();
  }
  return *slot;
}

std::optional<QuotaDecision> QuotaManager::TryAdmitLocked(const Index& index,
                                                          const QuotaSubject& who,
                                                          const QuotaDemand& demand,
                                                          int64_t now_ms, bool register_need) {
  struct Pick {
    Lease* lease;
    int64_t amount;
  };
  std::vector<Pick> picks;
  index.ForEach(who, [&](const v1::Quota& quota) {
    picks.push_back({&LeaseFor(quota, now_ms), AmountFor(quota.unit(), demand)});
  });
  QuotaDecision decision;
  const Clock::time_point now = Clock::now();
  bool short_of_lease = false;
  for (const Pick& pick : picks) {
    if (pick.amount <= pick.lease->available()) continue;
    if (pick.lease->exhausted_until > now || pick.amount > pick.lease->quota.limit_units()) {
      decision.kind = QuotaDecision::Kind::kExhausted;
      decision.refused_by = pick.lease->quota;
      decision.window_end_unix_s = pick.lease->window.end_unix_s;
      decision.message = RefusalMessage(pick.lease->quota, pick.amount);
      return decision;
    }
    short_of_lease = true;
  }
  if (short_of_lease) {
    if (register_need) {
      for (const Pick& pick : picks) {
        if (pick.amount > pick.lease->available()) {
          pick.lease->need =
              std::max(pick.lease->need, pick.lease->used + pick.lease->reserved + pick.amount);
        }
      }
    }
    return std::nullopt;
  }
  auto reservation = std::make_shared<QuotaReservation>();
  for (const Pick& pick : picks) {
    Lease& lease = *pick.lease;
    lease.reserved += pick.amount;
    lease.last_used = now;
    reservation->entries.push_back(
        {lease.quota.id(), lease.window.start_unix_s, lease.quota.unit(), pick.amount});
    if (lease.quota.period() != v1::QUOTA_PERIOD_MINUTE) continue;
    RateLimitView* view = lease.quota.unit() == v1::QUOTA_UNIT_REQUESTS ? &decision.requests
                          : lease.quota.unit() == v1::QUOTA_UNIT_TOKENS ? &decision.tokens
                                                                        : nullptr;
    if (view == nullptr || (view->limit != 0 && view->limit <= lease.quota.limit_units())) continue;
    view->limit = lease.quota.limit_units();
    view->remaining = std::max<int64_t>(0, std::max<int64_t>(0, lease.ledger_remaining) +
                                               lease.available());
    view->reset_ms = std::max<int64_t>(0, lease.window.end_unix_s * 1000 - now_ms);
  }
  decision.reservation = std::move(reservation);
  return decision;
}

std::optional<QuotaDecision> QuotaManager::TryAdmit(const QuotaSubject& who,
                                                    const QuotaDemand& demand) {
  std::shared_ptr<const Index> index = index_.load();
  if (index->Empty(who)) {
    QuotaDecision decision;
    decision.reservation = std::make_shared<QuotaReservation>();
    return decision;
  }
  std::optional<QuotaDecision> decision;
  {
    std::lock_guard lock(mu_);
    decision = TryAdmitLocked(*index, who, demand, NowMs(), /*register_need=*/false);
  }
  if (decision && decisions_ != nullptr) {
    decisions_
        ->Add({{"result", decision->kind == QuotaDecision::Kind::kAdmitted ? "admitted"
                                                                             : "exhausted"}})
        .Increment();
  }
  return decision;
}

void QuotaManager::AdmitLater(const QuotaSubject& who, const QuotaDemand& demand,
                              boost::asio::any_io_executor executor,
                              std::function<void(QuotaDecision)> done) {
  auto waiter = std::make_unique<Waiter>();
  waiter->team = std::string(who.team);
  waiter->key_id = std::string(who.key_id);
  waiter->feature = std::string(who.feature);
  waiter->customer = std::string(who.customer);
  waiter->demand = demand;
  waiter->executor = std::move(executor);
  waiter->done = std::move(done);
  waiter->deadline = Clock::now() + options_.lease_wait;
  {
    std::unique_lock lock(mu_);
    if (!stopping_ && waiters_.size() < options_.max_waiters) {
      std::shared_ptr<const Index> index = index_.load();
      // Register the need now, so the lease thread asks for it in its next round.
      std::optional<QuotaDecision> decided =
          TryAdmitLocked(*index, waiter->who(), demand, NowMs(), /*register_need=*/true);
      if (!decided) {
        waiters_.push_back(std::move(waiter));
        if (waiters_gauge_ != nullptr) waiters_gauge_->Set(static_cast<double>(waiters_.size()));
        kicked_ = true;
        lock.unlock();
        wake_.notify_one();
        return;
      }
      lock.unlock();
      if (decisions_ != nullptr) {
        decisions_
            ->Add({{"result", decided->kind == QuotaDecision::Kind::kAdmitted ? "admitted"
                                                                                : "exhausted"}})
            .Increment();
      }
      boost::asio::post(waiter->executor,
                        [done = std::move(waiter->done), d = std::move(*decided)]() mutable {
                          done(std::move(d));
                        });
      return;
    }
  }
  QuotaDecision decision;
  decision.kind = QuotaDecision::Kind::kUnavailable;
  decision.message = "Too many requests are waiting for budget; retry shortly.";
  if (decisions_ != nullptr) decisions_->Add({{"result", "unavailable"}}).Increment();
  boost::asio::post(waiter->executor,
                    [done = std::move(waiter->done), decision] { done(decision); });
}

void QuotaManager::Settle(QuotaReservation& reservation, const QuotaDemand& actual) {
  if (reservation.settled) return;
  reservation.settled = true;
  if (reservation.entries.empty()) return;
  std::lock_guard lock(mu_);
  const Clock::time_point now = Clock::now();
  for (const QuotaReservation::Entry& entry : reservation.entries) {
    auto it = leases_.find({entry.quota_id, entry.window_start_unix_s});
    if (it == leases_.end()) continue;  // released at Stop
    Lease& lease = *it->second;
    const int64_t real = AmountFor(entry.unit, actual);
    lease.reserved -= entry.amount;
    lease.used += real;
    lease.last_used = now;
    if (real > entry.amount && overrun_ != nullptr) {
      overrun_->Add({{"unit", std::string(UnitName(entry.unit))}})
          .Increment(static_cast<double>(real - entry.amount));
    }
  }
}

void QuotaManager::Run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    const auto pause = waiters_.empty()
                           ? std::chrono::duration_cast<Clock::duration>(options_.report_interval) / 2
                           : std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds(20));
    wake_.wait_for(lock, pause, [this] { return stopping_ || kicked_; });
    if (stopping_) break;
    kicked_ = false;
    lock.unlock();
    Round();
    lock.lock();
  }
}

void QuotaManager::Round() {
  v1::LeaseRequest request;
  request.set_gateway_id(options_.gateway_id);
  std::vector<std::pair<std::string, int64_t>> keys;  // the lease of each update
  std::shared_ptr<const Index> index = index_.load();
  {
    std::lock_guard lock(mu_);
    const Clock::time_point now = Clock::now();
    const int64_t now_ms = NowMs();
    for (auto it = leases_.begin(); it != leases_.end();) {
      Lease& lease = *it->second;
      const bool ended = now_ms >= lease.window.end_unix_s * 1000;
      const bool orphan = !index->Has(it->first.first);
      const bool idle = now - lease.last_used >= options_.idle_release;
      const bool release = lease.reserved == 0 && lease.need == 0 && (ended || orphan || idle);
      if (release && !lease.in_ledger) {
        it = leases_.erase(it);
        continue;
      }
      const int64_t chunk = std::max<int64_t>(1, lease.quota.lease_chunk());
      const bool wants_more = lease.need > lease.granted && lease.exhausted_until <= now;
      const bool top_up = !ended && !orphan && !idle && lease.in_ledger &&
                          lease.exhausted_until <= now && lease.available() < chunk / 4 &&
                          lease.ledger_remaining != 0;
      const bool report = lease.used != lease.reported_used &&
                          now - lease.last_report >= options_.report_interval;
      const bool renew = lease.in_ledger && !ended && lease.expires - now < lease.life / 3;
      if (release || wants_more || top_up || report || renew) {
        v1::LeaseUpdate* update = request.add_updates();
        update->set_quota_id(it->first.first);
        update->set_window_start_unix_s(it->first.second);
        update->set_used(lease.used);
        if (release) {
          update->set_release(true);
        } else if (!ended && !orphan) {
          if (wants_more) update->set_need(lease.need);
          const int64_t base = std::max(lease.need, lease.used + lease.reserved);
          if (wants_more || top_up) update->set_want(base + chunk);
        }
        keys.push_back(it->first);
      }
      ++it;
    }
  }

  absl::StatusOr<v1::LeaseResponse> response =
      request.updates_size() > 0 ? lease_fn_(request) : absl::StatusOr<v1::LeaseResponse>();
  const bool called = request.updates_size() > 0;
  if (called && lease_calls_ != nullptr) {
    lease_calls_->Add({{"result", response.ok() ? "ok" : "error"}}).Increment();
  }
  if (called && !response.ok()) {
    LogWarn("quota lease call failed",
            {{"error", std::string(response.status().message())},
             {"grpc_code", absl::StatusCodeToString(response.status().code())}});
  }

  std::vector<std::pair<std::unique_ptr<Waiter>, QuotaDecision>> decided;
  {
    std::lock_guard lock(mu_);
    const Clock::time_point now = Clock::now();
    if (called) ledger_down_ = !response.ok();
    if (called && response.ok()) {
      const int64_t now_ms = NowMs();
      for (int i = 0; i < response->grants_size() && i < static_cast<int>(keys.size()); ++i) {
        const v1::LeaseGrant& grant = response->grants(i);
        const v1::LeaseUpdate& update = request.updates(i);
        auto it = leases_.find(keys[static_cast<size_t>(i)]);
        if (it == leases_.end()) continue;
        Lease& lease = *it->second;
        if (update.release()) {
          // Released: forget it unless a request reserved from it meanwhile.
          if (lease.reserved == 0 && lease.need == 0) {
            leases_.erase(it);
            continue;
          }
          lease.granted = lease.used;
          lease.in_ledger = false;
          continue;
        }
        lease.reported_used = std::max(lease.reported_used, update.used());
        lease.last_report = now;
        if (!grant.error().empty()) {
          LogWarn("quota lease refused", {{"quota", grant.quota_id()}, {"error", grant.error()}});
          lease.exhausted_until = now + std::chrono::seconds(1);
          lease.need = 0;
          continue;
        }
        lease.in_ledger = true;
        lease.granted = grant.granted();
        lease.ledger_remaining = grant.remaining();
        if (grant.limit_units() > 0) lease.quota.set_limit_units(grant.limit_units());
        const int64_t life_ms = std::max<int64_t>(0, grant.expires_unix_ms() - now_ms);
        lease.life = std::chrono::milliseconds(life_ms);
        lease.expires = now + lease.life;
        if (grant.exhausted()) lease.exhausted_until = now + std::chrono::seconds(1);
        lease.need = 0;  // waiters re-register what they still need
      }
    }
    // Decide what can be decided: admitted, refused, or out of time.
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      Waiter& waiter = **it;
      std::optional<QuotaDecision> decision =
          TryAdmitLocked(*index, waiter.who(), waiter.demand, NowMs(), /*register_need=*/true);
      if (!decision && (ledger_down_ || now >= waiter.deadline)) {
        decision.emplace();
        if (ledger_down_ && options_.allow_when_unavailable) {
          decision->reservation = std::make_shared<QuotaReservation>();
          decision->message = "unenforced";
        } else {
          decision->kind = QuotaDecision::Kind::kUnavailable;
          decision->message = ledger_down_
                                  ? "The budget service is unavailable; retry shortly."
                                  : "Budget could not be granted in time; retry shortly.";
        }
      }
      if (decision) {
        decided.emplace_back(std::move(*it), std::move(*decision));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
    if (!waiters_.empty() && called) kicked_ = true;  // another round for what is still short
    if (waiters_gauge_ != nullptr) waiters_gauge_->Set(static_cast<double>(waiters_.size()));
    if (leases_gauge_ != nullptr) leases_gauge_->Set(static_cast<double>(leases_.size()));
  }
  for (auto& [waiter, decision] : decided) {
    if (decisions_ != nullptr) {
      const char* result = decision.kind == QuotaDecision::Kind::kExhausted     ? "exhausted"
                           : decision.kind == QuotaDecision::Kind::kUnavailable ? "unavailable"
                           : decision.message == "unenforced"                   ? "unenforced"
                                                                                : "admitted";
      decisions_->Add({{"result", result}}).Increment();
    }
    boost::asio::post(waiter->executor,
                      [done = std::move(waiter->done), d = std::move(decision)]() mutable {
                        done(std::move(d));
                      });
  }
}

}  // namespace tollgate::gateway
