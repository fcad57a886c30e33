#include "services/gateway/quota_manager.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>

#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"
#include "gtest/gtest.h"

namespace tollgate::gateway {
namespace {

namespace asio = boost::asio;

// The ledger's side reduced to what these tests need: one limit per quota shared by every
// caller, cumulative grants per gateway, `need` refused beyond the remainder. (The real
// algorithm and its tests live in services/ledger/quota_store; tests/integration/budget_test
// runs gateways against it.)
class ScriptedLedger {
 public:
  explicit ScriptedLedger(int64_t limit) : limit_(limit) {}

  LeaseFn Fn() {
    return [this](const v1::LeaseRequest& request) -> absl::StatusOr<v1::LeaseResponse> {
      std::lock_guard lock(mu_);
      ++calls_;
      last_ = request;
      if (down_) return absl::UnavailableError("ledger down");
      v1::LeaseResponse response;
      for (const v1::LeaseUpdate& update : request.updates()) {
        Slot& slot = slots_[request.gateway_id()];
        slot.used = std::max(slot.used, update.used());
        if (update.release()) slot.granted = slot.used;
        int64_t committed = 0;
        for (auto& [id, s] : slots_) committed += std::max(s.granted, s.used);
        int64_t remaining = std::max<int64_t>(0, limit_ - committed);
        v1::LeaseGrant* grant = response.add_grants();
        grant->set_quota_id(update.quota_id());
        grant->set_window_start_unix_s(update.window_start_unix_s());
        if (!update.release()) {
          if (update.need() > slot.granted && update.need() - slot.granted > remaining) {
            grant->set_exhausted(true);
          } else {
            const int64_t extra = std::min(
                std::max<int64_t>(0, std::max(update.want(), update.need()) - slot.granted),
                remaining);
            slot.granted += extra;
            remaining -= extra;
          }
        }
        grant->set_granted(slot.granted);
        grant->set_remaining(remaining);
        grant->set_limit_units(limit_);
        grant->set_expires_unix_ms(kNowMs + 30'000);
      }
      return response;
    };
  }
  void SetDown(bool down) {
    std::lock_guard lock(mu_);
    down_ = down;
  }
  int calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  v1::LeaseRequest last() {
    std::lock_guard lock(mu_);
    return last_;
  }
  int64_t used_by(const std::string& gateway) {
    std::lock_guard lock(mu_);
    return slots_[gateway].used;
  }

  static constexpr int64_t kNowMs = 1'795'000'000'000;  // a fixed wall clock

 private:
  struct Slot {
    int64_t granted = 0;
    int64_t used = 0;
  };
  std::mutex mu_;
  const int64_t limit_;
  bool down_ = false;
  int calls_ = 0;
  v1::LeaseRequest last_;
  std::map<std::string, Slot> slots_;
};

v1::Quota TeamQuota(v1::QuotaUnit unit, v1::QuotaPeriod period, int64_t limit, int64_t chunk) {
  v1::Quota q;
  q.set_id("q-00000001");
  q.set_scope(v1::QUOTA_SCOPE_TEAM);
  q.set_team("alpha");
  q.set_unit(unit);
  q.set_period(period);
  q.set_hard(true);
  q.set_limit_units(limit);
  q.set_lease_chunk(chunk);
  return q;
}

google::protobuf::RepeatedPtrField<v1::Quota> Quotas(std::initializer_list<v1::Quota> quotas) {
  google::protobuf::RepeatedPtrField<v1::Quota> out;
  for (const v1::Quota& q : quotas) *out.Add() = q;
  return out;
}

QuotaManager::Options TestOptions(std::string gateway_id) {
  QuotaManager::Options options;
  options.gateway_id = std::move(gateway_id);
  options.report_interval = std::chrono::milliseconds(20);
  options.lease_wait = std::chrono::milliseconds(2000);
  options.now_unix_ms = [] { return ScriptedLedger::kNowMs; };
  return options;
}

const QuotaSubject kAlpha{.team = "alpha", .key_id = "k1"};
const QuotaSubject kBeta{.team = "beta", .key_id = "k2"};

// Admits through the lease thread when needed; runs `io` until the decision arrives.
QuotaDecision Admit(QuotaManager& quotas, asio::io_context& io, const QuotaSubject& who,
                    const QuotaDemand& demand) {
  if (std::optional<QuotaDecision> now = quotas.TryAdmit(who, demand)) return *now;
  std::optional<QuotaDecision> later;
  quotas.AdmitLater(who, demand, io.get_executor(), [&](QuotaDecision d) { later = d; });
  io.restart();
  auto work = asio::make_work_guard(io);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!later && std::chrono::steady_clock::now() < deadline) {
    io.run_one_for(std::chrono::milliseconds(100));
  }
  if (!later) {
    ADD_FAILURE() << "no decision within 10 s";
    QuotaDecision none;
    none.kind = QuotaDecision::Kind::kUnavailable;
    return none;
  }
  return *later;
}

TEST(QuotaManager, NoHardQuotaMeansNoLeaseAndNoCall) {
  ScriptedLedger ledger(100);
  QuotaManager quotas(ledger.Fn(), TestOptions("gw-a"), nullptr);
  v1::Quota soft = TeamQuota(v1::QUOTA_UNIT_REQUESTS, v1::QUOTA_PERIOD_MINUTE, 10, 1);
  soft.set_hard(false);
  quotas.SetQuotas(Quotas({soft}));
  EXPECT_FALSE(quotas.Applies(kAlpha));
  std::optional<QuotaDecision> d = quotas.TryAdmit(kAlpha, {.requests = 1});
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->kind, QuotaDecision::Kind::kAdmitted);
  EXPECT_TRUE(d->reservation->entries.empty());
  EXPECT_EQ(quotas.leases(), 0u);
}

TEST(QuotaManager, WaitsForALeaseThenAdmitsFromIt) {
  ScriptedLedger ledger(10);
  QuotaManager quotas(ledger.Fn(), TestOptions("gw-a"), nullptr);
  quotas.SetQuotas(Quotas({TeamQuota(v1::QUOTA_UNIT_REQUESTS, v1::QUOTA_PERIOD_MINUTE, 10, 3)}));
  quotas.Start();
  asio::io_context io;
  EXPECT_TRUE(quotas.Applies(kAlpha));
  EXPECT_FALSE(quotas.Applies(kBeta));
  // No lease yet: the first request must wait for one.
  EXPECT_FALSE(quotas.TryAdmit(kAlpha, {.requests = 1}).has_value());
  QuotaDecision first = Admit(quotas, io, kAlpha, {.requests = 1});
  ASSERT_EQ(first.kind, QuotaDecision::Kind::kAdmitted);
  ASSERT_EQ(first.reservation->entries.size(), 1u);
  EXPECT_EQ(first.reservation->entries[0].amount, 1);
  // need 1 + chunk 3 = 4 granted: three more fit without another call.
  for (int i = 0; i < 3; ++i) {
    std::optional<QuotaDecision> d = quotas.TryAdmit(kAlpha, {.requests = 1});
    ASSERT_TRUE(d.has_value()) << i;
    EXPECT_EQ(d->kind, QuotaDecision::Kind::kAdmitted);
    EXPECT_EQ(d->requests.limit, 10);
  }
  quotas.Stop();
}

TEST(QuotaManager, RefusesOnceTheWindowIsSpentAcrossTwoGateways) {
  ScriptedLedger ledger(7);
  QuotaManager a(ledger.Fn(), TestOptions("gw-a"), nullptr);
  QuotaManager b(ledger.Fn(), TestOptions("gw-b"), nullptr);
  for (QuotaManager* m : {&a, &b}) {
    m->SetQuotas(Quotas({TeamQuota(v1::QUOTA_UNIT_REQUESTS, v1::QUOTA_PERIOD_MINUTE, 7, 2)}));
    m->Start();
  }
  asio::io_context io;
  int admitted = 0;
  int refused = 0;
  for (int i = 0; i < 20; ++i) {
    QuotaDecision d = Admit(i % 2 == 0 ? a : b, io, kAlpha, {.requests = 1});
    if (d.kind == QuotaDecision::Kind::kAdmitted) ++admitted;
    if (d.kind == QuotaDecision::Kind::kExhausted) {
      ++refused;
      EXPECT_EQ(d.refused_by.id(), "q-00000001");
      EXPECT_NE(d.message.find("Rate limit reached for team 'alpha'"), std::string::npos)
          << d.message;
    }
  }
  EXPECT_EQ(admitted, 7);  // exactly the limit, split across both gateways
  EXPECT_EQ(refused, 13);
  a.Stop();
  b.Stop();
}

TEST(QuotaManager, SettlementReportsRealUsageAndReleasesAtStop) {
  ScriptedLedger ledger(1'000'000);
  QuotaManager quotas(ledger.Fn(), TestOptions("gw-a"), nullptr);
  quotas.SetQuotas(Quotas({TeamQuota(v1::QUOTA_UNIT_TOKENS, v1::QUOTA_PERIOD_DAY, 1'000'000,
                                     50'000)}));
  quotas.Start();
  asio::io_context io;
  QuotaDecision d = Admit(quotas, io, kAlpha, {.requests = 1, .tokens = 4000});
  ASSERT_EQ(d.kind, QuotaDecision::Kind::kAdmitted);
  quotas.Settle(*d.reservation, {.requests = 1, .tokens = 1234});
  quotas.Settle(*d.reservation, {.requests = 1, .tokens = 1234});  // idempotent
  // The next report carries the real usage.
  for (int i = 0; i < 200 && ledger.used_by("gw-a") != 1234; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(ledger.used_by("gw-a"), 1234);
  quotas.Stop();
  const v1::LeaseRequest last = ledger.last();
  ASSERT_EQ(last.updates_size(), 1);
  EXPECT_TRUE(last.updates(0).release());
  EXPECT_EQ(last.updates(0).used(), 1234);
}

TEST(QuotaManager, BudgetUsedPercentComesFromTheLeases) {
  ScriptedLedger ledger(100);
  QuotaManager quotas(ledger.Fn(), TestOptions("gw-a"), nullptr);
  quotas.SetQuotas(Quotas({TeamQuota(v1::QUOTA_UNIT_USD, v1::QUOTA_PERIOD_DAY, 100, 10)}));
  quotas.Start();
  asio::io_context io;
  EXPECT_EQ(quotas.BudgetUsedPercent(kAlpha), 0);  // no lease yet: unknown
  QuotaDecision d = Admit(quotas, io, kAlpha, {.requests = 1, .cost_pico = 30});
  ASSERT_EQ(d.kind, QuotaDecision::Kind::kAdmitted);
  // Granted 40 (need 30 + chunk 10), the ledger has 60 left; settled 25 leaves 15 unused here:
  // used = 100 - 60 - 15 = 25%.
  quotas.Settle(*d.reservation, {.requests = 1, .cost_pico = 25});
  EXPECT_EQ(quotas.BudgetUsedPercent(kAlpha), 25);
  EXPECT_EQ(quotas.BudgetUsedPercent(kBeta), 0);
  quotas.Stop();
}

TEST(QuotaManager, OneRequestLargerThanTheWholeBudgetIsRefusedWithoutACall) {
  ScriptedLedger ledger(100);
  QuotaManager quotas(ledger.Fn(), TestOptions("gw-a"), nullptr);
  quotas.SetQuotas(Quotas({TeamQuota(v1::QUOTA_UNIT_USD, v1::QUOTA_PERIOD_MONTH, 100, 5)}));
  std::optional<QuotaDecision> d = quotas.TryAdmit(kAlpha, {.requests = 1, .cost_pico = 101});
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->kind, QuotaDecision::Kind::kExhausted);
  EXPECT_NE(d->message.find("exceeds the whole monthly budget"), std::string::npos) << d->message;
  EXPECT_EQ(ledger.calls(), 0);
}

TEST(QuotaManager, LedgerDownDeniesByDefaultAndAllowsWhenConfigured) {
  for (bool allow : {false, true}) {
    ScriptedLedger ledger(100);
    ledger.SetDown(true);
    QuotaManager::Options options = TestOptions("gw-a");
    options.allow_when_unavailable = allow;
    QuotaManager quotas(ledger.Fn(), options, nullptr);
    quotas.SetQuotas(Quotas({TeamQuota(v1::QUOTA_UNIT_REQUESTS, v1::QUOTA_PERIOD_DAY, 100, 5)}));
    quotas.Start();
    asio::io_context io;
    QuotaDecision d = Admit(quotas, io, kAlpha, {.requests = 1});
    if (allow) {
      EXPECT_EQ(d.kind, QuotaDecision::Kind::kAdmitted);
      EXPECT_TRUE(d.reservation->entries.empty());
    } else {
      EXPECT_EQ(d.kind, QuotaDecision::Kind::kUnavailable);
      EXPECT_NE(d.message.find("unavailable"), std::string::npos);
    }
    quotas.Stop();
  }
}

TEST(QuotaManager, BoundedWaitQueue) {
  ScriptedLedger ledger(100);
  QuotaManager::Options options = TestOptions("gw-a");
  options.max_waiters = 0;
  QuotaManager quotas(ledger.Fn(), options, nullptr);
  quotas.SetQuotas(Quotas({TeamQuota(v1::QUOTA_UNIT_REQUESTS, v1::QUOTA_PERIOD_DAY, 100, 5)}));
  asio::io_context io;
  QuotaDecision d = Admit(quotas, io, kAlpha, {.requests = 1});
  EXPECT_EQ(d.kind, QuotaDecision::Kind::kUnavailable);
  EXPECT_NE(d.message.find("Too many requests are waiting"), std::string::npos);
}

TEST(FormatResetDuration, GoDurations) {
  EXPECT_EQ(FormatResetDuration(20), "20ms");
  EXPECT_EQ(FormatResetDuration(1000), "1s");
  EXPECT_EQ(FormatResetDuration(1500), "1.5s");
  EXPECT_EQ(FormatResetDuration(360'000), "6m0s");
  EXPECT_EQ(FormatResetDuration(3'725'000), "1h2m5s");
  EXPECT_EQ(FormatResetDuration(-5), "0ms");
}

}  // namespace
}  // namespace tollgate::gateway
