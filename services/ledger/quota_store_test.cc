// QuotaStore against a real PostgreSQL (tests/testing/postgres.h): one server for the suite, a
// fresh database per test. The lease math of quota_store.h, base spend from usage events,
// key-derived quotas, windows, alerts and the WatchKeys snapshot.

#include "services/ledger/quota_store.h"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "services/common/quota.h"
#include "services/ledger/postgres_test_fixture.h"
#include "services/ledger/quota_service.h"
#include "services/ledger/store.h"
#include "services/ledger/tenancy_auth.h"
#include "services/ledger/tenancy_store.h"
#include "services/ledger/test_events.h"

namespace tollgate::ledger {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// 2025-01-15T00:00:00Z; the tests' "now" is 12:00:30 that day.
constexpr int64_t kDay = 1'736'899'200;
constexpr int64_t kNoon = kDay + 12 * 3600;
constexpr int64_t kUsPerS = 1'000'000;
const absl::Time kNow = absl::FromUnixSeconds(kNoon + 30);

absl::Status AllowAll(const std::string&) { return absl::OkStatus(); }

class QuotaStoreTest : public PostgresDatabaseTest {
 protected:
  void SetUp() override {
    CreateTestDatabase("quota_");
    PostgresUsageStore::Options usage_options;
    usage_options.database_url = pg_->url(db_);
    usage_ = std::make_unique<PostgresUsageStore>(usage_options);
    ASSERT_TRUE(usage_->Migrate().ok());
    QuotaStore::Options options;
    options.database.database_url = pg_->url(db_);
    store_ = std::make_unique<QuotaStore>(options);
    Sql("INSERT INTO teams (name, created_by) VALUES ('alpha', 't'), ('beta', 't')");
  }

  void AddKey(const std::string& id, const std::string& team, int64_t rpm, int64_t tpm) {
    Sql(absl::StrCat(
        "INSERT INTO virtual_keys (id, team, key_sha256, created_by, rpm, tpm) "
        "VALUES ('",
        id, "', '", team, "', decode(md5('", id, "'), 'hex'), 't', ", rpm, ", ", tpm, ")"));
  }

  v1::Quota Set(v1::QuotaScope scope, const std::string& team, const std::string& subject,
                v1::QuotaUnit unit, v1::QuotaPeriod period, const std::string& limit,
                bool hard = true, std::vector<int32_t> alerts = {}) {
    v1::Quota q;
    q.set_scope(scope);
    q.set_team(team);
    q.set_subject(subject);
    q.set_unit(unit);
    q.set_period(period);
    q.set_limit(limit);
    q.set_hard(hard);
    for (int32_t a : alerts) q.add_alert_percents(a);
    absl::StatusOr<int64_t> units = ValidateQuota(&q);
    EXPECT_TRUE(units.ok()) << units.status();
    absl::StatusOr<v1::Quota> set = store_->SetQuota(q, units.ok() ? *units : 1, "ops", AllowAll);
    EXPECT_TRUE(set.ok()) << set.status();
    return set.ok() ? *set : v1::Quota();
  }

  struct Update {
    int64_t used = 0, need = 0, want = 0;
    bool release = false;
    int64_t window = -1;  // -1: the current window at `now`
  };
  v1::LeaseGrant Lease(const v1::Quota& q, const std::string& gateway, Update u,
                       absl::Time now = kNow, LeaseOutcome* outcome = nullptr) {
    v1::LeaseRequest request;
    request.set_gateway_id(gateway);
    v1::LeaseUpdate* up = request.add_updates();
    up->set_quota_id(q.id());
    up->set_window_start_unix_s(
        u.window >= 0 ? u.window : WindowAt(q.period(), absl::ToUnixSeconds(now)).start_unix_s);
    up->set_used(u.used);
    up->set_need(u.need);
    up->set_want(u.want);
    up->set_release(u.release);
    std::vector<LeaseOutcome> outcomes;
    absl::StatusOr<v1::LeaseResponse> r = store_->Lease(request, now, &outcomes);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok() || r->grants_size() != 1) return v1::LeaseGrant();
    if (outcome != nullptr) *outcome = outcomes[0];
    return r->grants(0);
  }

  v1::QuotaState State(const v1::Quota& q, absl::Time now = kNow) {
    absl::StatusOr<std::vector<QuotaStatus>> s = store_->States({q}, now);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() && s->size() == 1 ? (*s)[0].state : v1::QuotaState();
  }

  std::unique_ptr<PostgresUsageStore> usage_;
  std::unique_ptr<QuotaStore> store_;
};


TEST_F(QuotaStoreTest, TwoGatewaysShareOneLimit) {
  const v1::Quota q =
      Set(v1::QUOTA_SCOPE_TEAM, "alpha", "", v1::QUOTA_UNIT_TOKENS, v1::QUOTA_PERIOD_MINUTE, "100");
  EXPECT_THAT(q.id(), ::testing::MatchesRegex("q-[0-9a-f]{8}"));
  EXPECT_EQ(q.limit_units(), 100);
  EXPECT_EQ(q.lease_chunk(), 5);

  v1::LeaseGrant a = Lease(q, "gw-a", {.need = 30, .want = 50});
  EXPECT_EQ(a.error(), "");
  EXPECT_FALSE(a.exhausted());
  EXPECT_EQ(a.granted(), 50);
  EXPECT_EQ(a.remaining(), 50);
  EXPECT_EQ(a.limit_units(), 100);
  EXPECT_EQ(a.window_start_unix_s(), kNoon);
  EXPECT_EQ(a.window_end_unix_s(), kNoon + 60);
  EXPECT_EQ(a.expires_unix_ms(), (kNoon + 30 + 30) * 1000);  // the 30 s lease term

  // gw-b wants 60 but only 50 are left: it gets what is left, never more.
  v1::LeaseGrant b = Lease(q, "gw-b", {.need = 40, .want = 60});
  EXPECT_EQ(b.granted(), 50);
  EXPECT_EQ(b.remaining(), 0);

  // gw-a needs 60 in total (10 more): nothing is left, so nothing is granted.
  LeaseOutcome outcome;
  a = Lease(q, "gw-a", {.used = 20, .need = 60, .want = 60}, kNow, &outcome);
  EXPECT_TRUE(a.exhausted());
  EXPECT_EQ(a.error(), "");
  EXPECT_EQ(a.granted(), 50);
  EXPECT_EQ(outcome.extra, 0);
  EXPECT_TRUE(outcome.exhausted);

  // Releasing shrinks gw-a's lease to what it used; gw-b can then take the rest.
  a = Lease(q, "gw-a", {.used = 20, .release = true});
  EXPECT_EQ(a.granted(), 20);
  EXPECT_EQ(a.remaining(), 30);
  b = Lease(q, "gw-b", {.used = 45, .need = 80, .want = 100}, kNow, &outcome);
  EXPECT_FALSE(b.exhausted());
  EXPECT_EQ(b.granted(), 80);
  EXPECT_EQ(b.remaining(), 0);
  EXPECT_EQ(outcome.extra, 30);
  EXPECT_EQ(outcome.unit, v1::QUOTA_UNIT_TOKENS);

  // A late report from gw-a raises what it used but leaves its lease released.
  a = Lease(q, "gw-a", {.used = 20});
  EXPECT_EQ(a.granted(), 20);
  // A minute window's lease ends at most 5 s after the window.
  b = Lease(q, "gw-b", {.used = 50}, kNow + absl::Seconds(20));
  EXPECT_EQ(b.expires_unix_ms(), (kNoon + 60 + 5) * 1000);

  const v1::QuotaState s = State(q);
  EXPECT_EQ(s.spent(), "");  // minute windows: leases only
  EXPECT_EQ(s.committed(), "100");
  EXPECT_EQ(s.remaining(), "0");
  EXPECT_EQ(s.used_percent(), 100);
  EXPECT_EQ(s.active_leases(), 1);  // gw-a released
}

TEST_F(QuotaStoreTest, CumulativeUsedMakesRetriesIdempotent) {
  const v1::Quota q =
      Set(v1::QUOTA_SCOPE_TEAM, "alpha", "", v1::QUOTA_UNIT_REQUESTS, v1::QUOTA_PERIOD_DAY, "100");
  LeaseOutcome outcome;
  v1::LeaseGrant g = Lease(q, "gw-a", {.used = 10, .need = 20, .want = 20}, kNow, &outcome);
  EXPECT_EQ(g.granted(), 20);
  EXPECT_EQ(outcome.extra, 20);
  // The same call again (a retry after a lost answer) changes nothing.
  g = Lease(q, "gw-a", {.used = 10, .need = 20, .want = 20}, kNow, &outcome);
  EXPECT_EQ(g.granted(), 20);
  EXPECT_EQ(g.remaining(), 80);
  EXPECT_EQ(outcome.extra, 0);
  // An older report arriving late cannot lower what was used.
  g = Lease(q, "gw-a", {.used = 5});
  EXPECT_EQ(Sql("SELECT used FROM quota_leases"), "10");
  // Used beyond the grant (an overrun) is committed too.
  g = Lease(q, "gw-a", {.used = 30});
  EXPECT_EQ(g.granted(), 20);
  EXPECT_EQ(g.remaining(), 70);
  EXPECT_EQ(State(q).committed(), "30");
}

TEST_F(QuotaStoreTest, ExpiredUnreleasedLeaseKeepsCounting) {
  const v1::Quota q =
      Set(v1::QUOTA_SCOPE_TEAM, "alpha", "", v1::QUOTA_UNIT_REQUESTS, v1::QUOTA_PERIOD_DAY, "100");
  v1::LeaseGrant a = Lease(q, "gw-a", {.need = 60, .want = 60});
  EXPECT_EQ(a.granted(), 60);
  EXPECT_EQ(a.expires_unix_ms(), (kNoon + 30 + 30) * 1000);
  EXPECT_EQ(State(q).active_leases(), 1);
  // gw-a vanished; a minute later its lease has lapsed but still holds its 60.
  const absl::Time later = kNow + absl::Minutes(1);
  EXPECT_EQ(State(q, later).active_leases(), 0);
  v1::LeaseGrant b = Lease(q, "gw-b", {.need = 50, .want = 50}, later);
  EXPECT_TRUE(b.exhausted());
  EXPECT_EQ(b.granted(), 0);
  EXPECT_EQ(b.remaining(), 40);
  b = Lease(q, "gw-b", {.need = 40, .want = 50}, later);
  EXPECT_FALSE(b.exhausted());
  EXPECT_EQ(b.granted(), 40);
  EXPECT_EQ(b.remaining(), 0);
}

TEST_F(QuotaStoreTest, DayBudgetStartsFromRecordedSpend) {
  // alpha spent 1000 input + 500 output tokens this morning (0.0075 USD), beta 2000 input; and
  // alpha spent more yesterday, which is outside the window.
  v1::UsageEvent e1 = MakeTestEvent("e1", "alpha", "search", 1000, 500, (kDay + 3600) * kUsPerS);
  v1::UsageEvent e2 = MakeTestEvent("e2", "beta", "search", 2000, 0, (kDay + 7200) * kUsPerS);
  v1::UsageEvent e3 = MakeTestEvent("e3", "alpha", "search", 9000, 0, (kDay - 60) * kUsPerS);
  ASSERT_EQ(e1.cost_pico(), 7'500'000'000);
  absl::StatusOr<InsertResult> ins = usage_->InsertBatch({e1, e2, e3});
  ASSERT_TRUE(ins.ok()) << ins.status();

  const v1::Quota usd =
      Set(v1::QUOTA_SCOPE_TEAM, "alpha", "", v1::QUOTA_UNIT_USD, v1::QUOTA_PERIOD_DAY, "0.01");
  v1::LeaseGrant g = Lease(usd, "gw-a", {.need = 1'000'000'000, .want = 1'000'000'000});
  EXPECT_EQ(g.error(), "");
  EXPECT_EQ(g.granted(), 1'000'000'000);
  EXPECT_EQ(g.remaining(), 10'000'000'000 - 7'500'000'000 - 1'000'000'000);
  // More than what is left after the base: refused.
  g = Lease(usd, "gw-a", {.need = 3'000'000'000, .want = 3'000'000'000});
  EXPECT_TRUE(g.exhausted());
  v1::QuotaState s = State(usd);
  EXPECT_EQ(s.spent(), "0.0075");
  EXPECT_EQ(s.committed(), "0.0085");
  EXPECT_EQ(s.remaining(), "0.0015");
  EXPECT_EQ(s.used_percent(), 85);

  const v1::Quota tokens =
      Set(v1::QUOTA_SCOPE_TEAM, "alpha", "", v1::QUOTA_UNIT_TOKENS, v1::QUOTA_PERIOD_DAY, "10000");
  g = Lease(tokens, "gw-a", {.need = 1, .want = 1});
  EXPECT_EQ(g.remaining(), 10000 - 1500 - 1);
  const v1::Quota org_requests =
      Set(v1::QUOTA_SCOPE_ORG, "", "", v1::QUOTA_UNIT_REQUESTS, v1::QUOTA_PERIOD_MONTH, "10");
  g = Lease(org_requests, "gw-a", {.need = 1, .want = 1});
  EXPECT_EQ(g.remaining(), 10 - 3 - 1);  // all three events are in January
  const v1::Quota feature = Set(v1::QUOTA_SCOPE_FEATURE, "beta", "search", v1::QUOTA_UNIT_TOKENS,
                                v1::QUOTA_PERIOD_WEEK, "5000");
  EXPECT_EQ(State(feature).spent(), "2000");
  const v1::Quota customer = Set(v1::QUOTA_SCOPE_CUSTOMER, "", "nobody", v1::QUOTA_UNIT_TOKENS,
                                 v1::QUOTA_PERIOD_DAY, "5000");
  EXPECT_EQ(State(customer).spent(), "0");
}

TEST_F(QuotaStoreTest, KeyLimitsAreDerivedFromActiveKeys) {
  AddKey("1a2b3c4d", "alpha", 3, 0);
  AddKey("0000beef", "beta", 0, 500);
  v1::Quota rpm;
  rpm.set_id("k-1a2b3c4d-rpm");
  rpm.set_period(v1::QUOTA_PERIOD_MINUTE);
  v1::LeaseGrant g = Lease(rpm, "gw-a", {.need = 1, .want = 3});
  EXPECT_EQ(g.error(), "");
  EXPECT_EQ(g.granted(), 3);
  EXPECT_EQ(g.limit_units(), 3);
  g = Lease(rpm, "gw-b", {.need = 1, .want = 1});
  EXPECT_TRUE(g.exhausted());

  absl::StatusOr<std::vector<v1::Quota>> listed = store_->ListQuotas("", false, true);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].id(), "k-0000beef-tpm");
  EXPECT_EQ((*listed)[0].unit(), v1::QUOTA_UNIT_TOKENS);
  EXPECT_EQ((*listed)[0].team(), "beta");
  EXPECT_EQ((*listed)[1].id(), "k-1a2b3c4d-rpm");
  EXPECT_EQ((*listed)[1].scope(), v1::QUOTA_SCOPE_KEY);
  EXPECT_EQ((*listed)[1].subject(), "1a2b3c4d");
  EXPECT_TRUE((*listed)[1].hard());
  EXPECT_EQ((*listed)[1].limit(), "3");
  EXPECT_EQ((*listed)[1].lease_chunk(), 1);
  EXPECT_EQ(store_->ListQuotas("alpha", false, false)->size(), 0u);

  // A revoked key's limits are gone.
  Sql("UPDATE virtual_keys SET revoked_at = now(), revoked_by = 't' WHERE id = '1a2b3c4d'");
  g = Lease(rpm, "gw-a", {.need = 4, .want = 4});
  EXPECT_EQ(g.error(), "unknown quota");
  EXPECT_TRUE(g.exhausted());
}

TEST_F(QuotaStoreTest, SnapshotCarriesQuotas) {
  AddKey("1a2b3c4d", "alpha", 60, 1000);
  const v1::Quota q = Set(v1::QUOTA_SCOPE_TEAM, "alpha", "", v1::QUOTA_UNIT_USD,
                          v1::QUOTA_PERIOD_MONTH, "250", false, {50, 80});
  TenancyStore::Options options;
  options.database_url = pg_->url(db_);
  TenancyStore tenancy(options);
  absl::StatusOr<v1::KeySetSnapshot> snap = tenancy.ActiveKeys();
  ASSERT_TRUE(snap.ok()) << snap.status();
  ASSERT_EQ(snap->keys_size(), 1);
  ASSERT_EQ(snap->quotas_size(), 3);
  EXPECT_EQ(snap->quotas(0).id(), "k-1a2b3c4d-rpm");
  EXPECT_EQ(snap->quotas(1).id(), "k-1a2b3c4d-tpm");
  EXPECT_EQ(snap->quotas(1).limit_units(), 1000);
  EXPECT_EQ(snap->quotas(2).id(), q.id());
  EXPECT_EQ(snap->quotas(2).limit_units(), 250'000'000'000'000);
  EXPECT_EQ(snap->quotas(2).lease_chunk(), 12'500'000'000'000);
  EXPECT_FALSE(snap->quotas(2).hard());
  EXPECT_THAT(snap->quotas(2).alert_percents(), ElementsAre(50, 80));

  // A change to a quota changes the snapshot (the poll compares serialised snapshots).
  std::string before;
  snap->SerializeToString(&before);
  Set(v1::QUOTA_SCOPE_TEAM, "alpha", "", v1::QUOTA_UNIT_USD, v1::QUOTA_PERIOD_MONTH, "300");
  std::string after;
  tenancy.ActiveKeys()->SerializeToString(&after);
  EXPECT_NE(before, after);
}

TEST_F(QuotaStoreTest, OnlyTheCurrentWindowIsGranted) {
  const v1::Quota q = Set(v1::QUOTA_SCOPE_TEAM, "alpha", "", v1::QUOTA_UNIT_REQUESTS,
                          v1::QUOTA_PERIOD_MINUTE, "10");
  v1::LeaseGrant g = Lease(q, "gw-a", {.need = 2, .want = 4, .window = kNoon - 60});
  EXPECT_THAT(g.error(), HasSubstr("window"));
  EXPECT_EQ(g.granted(), 0);
  EXPECT_FALSE(g.exhausted());
  EXPECT_EQ(g.window_start_unix_s(), kNoon);  // the current one, for the gateway to recompute
  EXPECT_EQ(Sql("SELECT count(*) FROM quota_leases"), "0");

  g = Lease(q, "gw-a", {.need = 2, .want = 4});
  EXPECT_EQ(g.granted(), 4);
  // One second into the next minute, the ended window still takes gw-a's final report...
  const absl::Time next = absl::FromUnixSeconds(kNoon + 60) + absl::Seconds(1);
  g = Lease(q, "gw-a", {.used = 3, .need = 9, .want = 9, .release = true, .window = kNoon}, next);
  EXPECT_EQ(g.error(), "");
  EXPECT_EQ(g.granted(), 3);
  EXPECT_EQ(Sql("SELECT granted, used, released FROM quota_leases"), "3|3|t");
  // ...but never grants in it.
  g = Lease(q, "gw-a", {.used = 3, .need = 9, .want = 9, .window = kNoon}, next);
  EXPECT_EQ(g.granted(), 3);
  EXPECT_FALSE(g.exhausted());
  // Three seconds in, it is refused like any other window.
  g = Lease(q, "gw-a", {.used = 4, .window = kNoon}, next + absl::Seconds(2));
  EXPECT_THAT(g.error(), HasSubstr("window"));
  EXPECT_EQ(Sql("SELECT used FROM quota_leases"), "3");
}

TEST_F(QuotaStoreTest, UnknownQuotaIsExhausted) {
  v1::Quota gone;
  gone.set_id("q-00000000");
  gone.set_period(v1::QUOTA_PERIOD_DAY);
  v1::LeaseGrant g = Lease(gone, "gw-a", {.need = 1, .want = 1});
  EXPECT_EQ(g.error(), "unknown quota");
  EXPECT_TRUE(g.exhausted());
}

TEST_F(QuotaStoreTest, SetReplacesByNaturalKeyAndAudits) {
  AddKey("1a2b3c4d", "alpha", 0, 0);
  const v1::Quota a =
      Set(v1::QUOTA_SCOPE_TEAM, "alpha", "", v1::QUOTA_UNIT_USD, v1::QUOTA_PERIOD_DAY, "10");
  const v1::Quota b =
      Set(v1::QUOTA_SCOPE_TEAM, "alpha", "", v1::QUOTA_UNIT_USD, v1::QUOTA_PERIOD_DAY, "20.50");
  EXPECT_EQ(a.id(), b.id());
  EXPECT_EQ(b.limit(), "20.5");
  EXPECT_EQ(b.updated_by(), "ops");
  EXPECT_EQ(Sql("SELECT count(*) FROM quotas"), "1");
  EXPECT_EQ(Sql("SELECT action || ' ' || target || ' ' || coalesce(before->>'limit', '-') || ' ' "
                "|| coalesce(after->>'limit', '-') FROM control_plane_audit ORDER BY id"),
            absl::StrCat("quota.set ", a.id(), " - 10\nquota.set ", a.id(), " 10 20.5"));

  // Unknown team, a key of another team, an unknown id.
  v1::Quota bad;
  bad.set_scope(v1::QUOTA_SCOPE_TEAM);
  bad.set_team("gamma");
  bad.set_unit(v1::QUOTA_UNIT_USD);
  bad.set_period(v1::QUOTA_PERIOD_DAY);
  absl::StatusOr<v1::Quota> r = store_->SetQuota(bad, 1, "ops", AllowAll);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("team: team 'gamma' does not exist"));
  bad.set_scope(v1::QUOTA_SCOPE_KEY);
  bad.set_team("beta");
  bad.set_subject("1a2b3c4d");
  r = store_->SetQuota(bad, 1, "ops", AllowAll);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("belongs to team 'alpha'"));
  bad.set_team("alpha");
  bad.set_id("q-0000ffff");
  r = store_->SetQuota(bad, 1, "ops", AllowAll);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);

  // The authoriser sees the replaced quota's team, inside the transaction.
  std::string seen;
  r = store_->SetQuota(a, 5, "lead", [&seen](const std::string& team) {
    seen = team;
    return absl::PermissionDeniedError("no");
  });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(seen, "alpha");

  absl::StatusOr<v1::Quota> del = store_->DeleteQuota(a.id(), "ops", AllowAll);
  ASSERT_TRUE(del.ok()) << del.status();
  EXPECT_EQ(del->limit(), "20.5");
  EXPECT_EQ(Sql("SELECT count(*) FROM quotas"), "0");
  EXPECT_EQ(Sql("SELECT action FROM control_plane_audit ORDER BY id DESC LIMIT 1"), "quota.delete");
  EXPECT_EQ(store_->DeleteQuota(a.id(), "ops", AllowAll).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->DeleteQuota("k-1a2b3c4d-rpm", "ops", AllowAll).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(QuotaStoreTest, AlertsFireOncePerWindow) {
  v1::UsageEvent e = MakeTestEvent("e1", "alpha", "search", 0, 600, (kDay + 3600) * kUsPerS);
  ASSERT_TRUE(usage_->InsertBatch({e}).ok());
  const v1::Quota q = Set(v1::QUOTA_SCOPE_TEAM, "alpha", "", v1::QUOTA_UNIT_TOKENS,
                          v1::QUOTA_PERIOD_DAY, "1000", false, {50, 80, 100});
  v1::QuotaState s = State(q);
  EXPECT_EQ(s.used_percent(), 60);
  absl::StatusOr<std::vector<int32_t>> fired = store_->FireAlerts(s);
  ASSERT_TRUE(fired.ok()) << fired.status();
  EXPECT_THAT(*fired, ElementsAre(50));
  // Another replica with the same (stale) state fires nothing.
  EXPECT_THAT(*store_->FireAlerts(s), ElementsAre());
  s = State(q);
  EXPECT_THAT(s.alerts_fired(), ElementsAre(50));

  ASSERT_TRUE(
      usage_->InsertBatch({MakeTestEvent("e2", "alpha", "search", 0, 450, (kDay + 7200) * kUsPerS)})
          .ok());
  s = State(q);
  EXPECT_EQ(s.used_percent(), 105);
  EXPECT_EQ(s.remaining(), "0");
  EXPECT_THAT(*store_->FireAlerts(s), ElementsAre(80, 100));
  // The next day is a new window.
  s = State(q, kNow + absl::Hours(24));
  EXPECT_EQ(s.used_percent(), 0);
  EXPECT_THAT(s.alerts_fired(), ElementsAre());

  // Ended windows are deleted (with their leases).
  Lease(q, "gw-a", {.need = 1, .want = 1});
  absl::StatusOr<int64_t> gone = store_->DeleteWindowsBefore(kNow + absl::Hours(24));
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_EQ(*gone, 1);
  EXPECT_EQ(Sql("SELECT count(*) FROM quota_leases"), "0");
}

// The Quotas service over gRPC: authorisation, validation, the lease worker, the state pass
// (gauges) and the change hook.
TEST_F(QuotaStoreTest, ServiceOverGrpc) {
  auto hash = [](const std::string& t) { return HexEncode(Sha256(t)); };
  absl::StatusOr<AdminTokens> tokens = AdminTokens::Parse(
      absl::StrCat("tokens:\n  - {name: ops, role: admin, sha256: ", hash("admin"),
                   "}\n  - {name: lead, role: team-admin, team: alpha, sha256: ", hash("lead"),
                   "}\n  - {name: view, role: viewer, team: alpha, sha256: ", hash("view"),
                   "}\n  - {name: gw, role: gateway, sha256: ", hash("gw"), "}\n"),
      "t.yaml");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  prometheus::Registry registry;
  absl::StatusOr<std::unique_ptr<QuotaMetrics>> metrics = QuotaMetrics::Create(registry);
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  QuotaStore::Options store_options;
  store_options.database.database_url = pg_->url(db_);
  std::atomic<int> changes{0};
  QuotaService::Options options;
  options.state_interval = std::chrono::milliseconds(20);
  options.on_change = [&changes] { ++changes; };
  QuotaService service(std::make_unique<QuotaStore>(store_options),
                       std::make_unique<QuotaStore>(store_options), &*tokens, metrics->get(),
                       options);
  service.Start();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = v1::Quotas::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));

  auto set = [&](const std::string& token, const v1::Quota& q, v1::Quota* out = nullptr) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + token);
    v1::SetQuotaRequest req;
    *req.mutable_quota() = q;
    v1::Quota resp;
    grpc::Status st = stub->SetQuota(&ctx, req, &resp);
    if (out != nullptr) *out = resp;
    return st.error_code();
  };
  auto list = [&](const std::string& token, v1::ListQuotasResponse* out) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + token);
    v1::ListQuotasRequest req;
    req.set_include_key_limits(true);
    return stub->ListQuotas(&ctx, req, out).error_code();
  };
  v1::Quota q;
  q.set_scope(v1::QUOTA_SCOPE_TEAM);
  q.set_team("alpha");
  q.set_unit(v1::QUOTA_UNIT_REQUESTS);
  q.set_period(v1::QUOTA_PERIOD_DAY);
  q.set_limit("100");
  q.set_hard(true);
  q.add_alert_percents(1);
  v1::Quota created;
  EXPECT_EQ(set("lead", q, &created), grpc::StatusCode::OK);
  EXPECT_EQ(changes.load(), 1);
  v1::Quota other = q;
  other.set_team("beta");
  EXPECT_EQ(set("lead", other), grpc::StatusCode::PERMISSION_DENIED);
  v1::Quota org = q;
  org.set_scope(v1::QUOTA_SCOPE_ORG);
  org.clear_team();
  EXPECT_EQ(set("lead", org), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(set("view", q), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(set("gw", q), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(set("nope", q), grpc::StatusCode::UNAUTHENTICATED);
  v1::Quota bad = q;
  bad.clear_unit();
  EXPECT_EQ(set("admin", bad), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(set("admin", org), grpc::StatusCode::OK);
  EXPECT_EQ(changes.load(), 2);

  v1::ListQuotasResponse listed;
  EXPECT_EQ(list("view", &listed), grpc::StatusCode::OK);
  ASSERT_EQ(listed.quotas_size(), 1);  // alpha's only: not the org-wide one
  EXPECT_EQ(listed.quotas(0).quota().id(), created.id());
  EXPECT_EQ(listed.quotas(0).spent(), "0");
  EXPECT_EQ(listed.quotas(0).remaining(), "100");
  listed.Clear();
  EXPECT_EQ(list("admin", &listed), grpc::StatusCode::OK);
  ASSERT_EQ(listed.quotas_size(), 2);
  EXPECT_EQ(listed.quotas(0).quota().scope(), v1::QUOTA_SCOPE_ORG);  // team "" sorts first
  EXPECT_EQ(list("gw", &listed), grpc::StatusCode::PERMISSION_DENIED);

  auto lease = [&](const std::string& token, v1::LeaseResponse* out) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + token);
    v1::LeaseRequest req;
    req.set_gateway_id("gw-1");
    v1::LeaseUpdate* u = req.add_updates();
    u->set_quota_id(created.id());
    u->set_window_start_unix_s(
        WindowAt(v1::QUOTA_PERIOD_DAY, absl::ToUnixSeconds(absl::Now())).start_unix_s);
    u->set_need(5);
    u->set_want(10);
    return stub->Lease(&ctx, req, out).error_code();
  };
  v1::LeaseResponse leased;
  EXPECT_EQ(lease("admin", &leased), grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_EQ(lease("gw", &leased), grpc::StatusCode::OK);
  ASSERT_EQ(leased.grants_size(), 1);
  EXPECT_EQ(leased.grants(0).granted(), 10);
  EXPECT_EQ(leased.grants(0).remaining(), 90);

  // The state pass (every 20 ms) publishes the gauges and fires the 1% alert (10 of 100
  // committed). Wait for it with a deadline.
  auto metric_value = [&](const std::string& name) -> double {
    for (const prometheus::MetricFamily& f : registry.Collect()) {
      if (f.name != name) continue;
      for (const prometheus::ClientMetric& m : f.metric) {
        for (const prometheus::ClientMetric::Label& l : m.label) {
          if (l.value == created.id())
            return name == "tollgate_ledger_budget_alerts_total" ? m.counter.value : m.gauge.value;
        }
      }
    }
    return -1;
  };
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (metric_value("tollgate_ledger_budget_alerts_total") < 1 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(metric_value("tollgate_ledger_budget_alerts_total"), 1);
  EXPECT_EQ(metric_value("tollgate_ledger_budget_limit"), 100);
  EXPECT_DOUBLE_EQ(metric_value("tollgate_ledger_budget_used_ratio"), 0.1);
  EXPECT_EQ(metric_value("tollgate_ledger_budget_remaining"), 90);

  // Deleting the quota removes its gauges.
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer view");
    v1::DeleteQuotaRequest req;
    req.set_id(created.id());
    v1::Quota gone;
    EXPECT_EQ(stub->DeleteQuota(&ctx, req, &gone).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer lead");
    v1::DeleteQuotaRequest req;
    req.set_id(created.id());
    v1::Quota gone;
    EXPECT_EQ(stub->DeleteQuota(&ctx, req, &gone).error_code(), grpc::StatusCode::OK);
    EXPECT_EQ(gone.id(), created.id());
  }
  while (metric_value("tollgate_ledger_budget_limit") >= 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(metric_value("tollgate_ledger_budget_limit"), -1);
  EXPECT_EQ(changes.load(), 3);

  service.Stop();
  server->Shutdown();
}

}  // namespace
}  // namespace tollgate::ledger
