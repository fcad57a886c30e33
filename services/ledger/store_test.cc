// PostgresUsageStore against a real PostgreSQL (tests/testing/postgres.h): one server for the
// suite, a fresh database per test.

#include "services/ledger/store.h"

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/money.h"
#include "services/ledger/focus.h"
#include "services/ledger/migrations.h"
#include "services/ledger/postgres_test_fixture.h"
#include "services/ledger/spend_math.h"
#include "services/ledger/spend_query.h"
#include "services/ledger/test_events.h"

namespace tollgate::ledger {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// 2025-01-15T00:00:00Z
constexpr int64_t kDay = 1'736'899'200;
constexpr int64_t kUsPerS = 1'000'000;

class PostgresUsageStoreTest : public PostgresDatabaseTest {
 protected:
  void SetUp() override {
    CreateTestDatabase("ledger_");
    store_ = NewStore();
    ASSERT_TRUE(store_->Migrate().ok());
  }

  std::unique_ptr<PostgresUsageStore> NewStore() {
    PostgresUsageStore::Options options;
    options.database_url = pg_->url(db_);
    return std::make_unique<PostgresUsageStore>(options);
  }

  v1::SpendResponse Spend(const v1::SpendQuery& query) {
    absl::StatusOr<v1::SpendResponse> r = store_->QuerySpend(query, absl::Seconds(10));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : v1::SpendResponse();
  }

  // Events whose costs sum exactly: 0.1 + 0.2 USD (a binary float would give 0.30000000000000004)
  // for search/answer, 1 pico-dollar for search/rerank, 0.000305 USD for ads/answer.
  void InsertPricedEvents() {
    v1::UsageEvent a = MakeTestEvent("a", "search", "answer", 0, 0, (kDay + 10 * 3600) * kUsPerS);
    a.mutable_usage()->set_output_tokens(10'000);
    a.mutable_prices()->set_output_pico(10'000'000);  // 10 USD/M: 0.1 USD
    Reprice(a);
    v1::UsageEvent b = MakeTestEvent("b", "search", "answer", 0, 0, (kDay + 86400 - 1) * kUsPerS);
    b.mutable_usage()->set_input_tokens(80'000);
    b.mutable_prices()->set_input_pico(2'500'000);  // 2.5 USD/M: 0.2 USD
    Reprice(b);
    v1::UsageEvent c = MakeTestEvent("c", "search", "rerank", 0, 0, (kDay + 86400) * kUsPerS);
    c.mutable_usage()->set_input_tokens(1);
    c.mutable_prices()->set_input_pico(1);  // 0.000001 USD/M: 1 pico-dollar
    Reprice(c);
    v1::UsageEvent d = MakeTestEvent("d", "ads", "answer", 122, 0, (kDay + 3600) * kUsPerS);
    (*d.mutable_attribution()->mutable_tags())["project"] = "apollo";
    ASSERT_EQ(a.cost_pico(), 100'000'000'000);
    ASSERT_EQ(b.cost_pico(), 200'000'000'000);
    ASSERT_EQ(c.cost_pico(), 1);
    ASSERT_EQ(d.cost_pico(), 305'000'000);
    absl::StatusOr<InsertResult> r = store_->InsertBatch({a, b, c, d});
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->inserted, 4);
  }

  std::unique_ptr<PostgresUsageStore> store_;
};

TEST_F(PostgresUsageStoreTest, MigrateTwiceIsANoOp) {
  std::vector<std::string> expected;
  for (const Migration& m : EmbeddedMigrations()) {
    expected.push_back(absl::StrCat(m.version, ":", std::string(m.name)));
  }
  const std::string applied =
      Sql("SELECT version || ':' || name FROM tollgate_schema_migrations ORDER BY version");
  EXPECT_EQ(applied, absl::StrJoin(expected, "\n"));
  EXPECT_TRUE(absl::StartsWith(
      applied, "1:usage_events\n2:partitions_and_rollups\n3:usage_corrections\n4:usage_anomalies"))
      << applied;
  EXPECT_THAT(applied, ::testing::HasSubstr(":daily_rollups_lean_indexes"));
  ASSERT_TRUE(store_->Migrate().ok());
  ASSERT_TRUE(NewStore()->Migrate().ok());
  EXPECT_EQ(Sql("SELECT count(*) FROM tollgate_schema_migrations"),
            absl::StrCat(EmbeddedMigrations().size()));
}

TEST_F(PostgresUsageStoreTest, ConcurrentReplicasMigrateAFreshDatabaseOnce) {
  const std::string fresh = db_ + "_fresh";
  ASSERT_TRUE(pg_->CreateDatabase(fresh).ok());
  std::vector<absl::Status> results(4);
  std::vector<std::thread> replicas;
  for (size_t i = 0; i < results.size(); ++i) {
    replicas.emplace_back([&, i] {
      PostgresUsageStore::Options options;
      options.database_url = pg_->url(fresh);
      results[i] = PostgresUsageStore(options).Migrate();
    });
  }
  for (std::thread& t : replicas) t.join();
  for (const absl::Status& s : results) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(*pg_->Query("SELECT count(*) FROM tollgate_schema_migrations", fresh),
            absl::StrCat(EmbeddedMigrations().size()));
}

TEST_F(PostgresUsageStoreTest, ChangedAppliedMigrationIsRefused) {
  Sql("UPDATE tollgate_schema_migrations SET name = 'renamed' WHERE version = 1");
  const absl::Status s = store_->Migrate();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("renamed"));
}

TEST_F(PostgresUsageStoreTest, InsertIsIdempotentOnEventId) {
  const std::vector<v1::UsageEvent> batch = {MakeTestEvent("e1", "t", "f", 1000, 500),
                                             MakeTestEvent("e2", "t", "f", 10, 5),
                                             MakeTestEvent("e3", "t", "g", 1, 1)};
  absl::StatusOr<InsertResult> first = store_->InsertBatch(batch);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->inserted, 3);
  EXPECT_EQ(first->duplicates, 0);

  absl::StatusOr<InsertResult> replay = store_->InsertBatch(batch);
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->inserted, 0);
  EXPECT_EQ(replay->duplicates, 3);

  // Repeats inside one batch count as duplicates too.
  absl::StatusOr<InsertResult> mixed = store_->InsertBatch(
      {MakeTestEvent("e4", "t", "f", 1, 1), MakeTestEvent("e4", "t", "f", 1, 1), batch[0]});
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  EXPECT_EQ(mixed->inserted, 1);
  EXPECT_EQ(mixed->duplicates, 2);
  EXPECT_EQ(Sql("SELECT count(*) FROM usage_events"), "4");

  absl::StatusOr<InsertResult> empty = store_->InsertBatch({});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->inserted + empty->duplicates, 0);
}

TEST_F(PostgresUsageStoreTest, InsertBatchesCommitsTogetherAndCountsPerBatch) {
  ASSERT_TRUE(store_->InsertBatch({MakeTestEvent("old", "t", "f", 7, 3)}).ok());
  const std::vector<std::vector<v1::UsageEvent>> batches = {
      {MakeTestEvent("a", "t", "f", 10, 5), MakeTestEvent("b", "t", "f", 20, 5)},
      {},
      // "b" was first staged by batch 0, "old" is stored already, "c" repeats within the batch.
      {MakeTestEvent("b", "t", "f", 20, 5), MakeTestEvent("old", "t", "f", 7, 3),
       MakeTestEvent("c", "t", "g", 1, 1), MakeTestEvent("c", "t", "g", 1, 1)},
      {MakeTestEvent("d", "u", "f", 3, 2)},
  };
  absl::StatusOr<std::vector<InsertResult>> results = store_->InsertBatches(batches);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 4u);
  EXPECT_EQ((*results)[0].inserted, 2);
  EXPECT_EQ((*results)[0].duplicates, 0);
  EXPECT_EQ((*results)[1].inserted + (*results)[1].duplicates, 0);
  EXPECT_EQ((*results)[2].inserted, 1);
  EXPECT_EQ((*results)[2].duplicates, 3);
  EXPECT_EQ((*results)[3].inserted, 1);
  EXPECT_EQ((*results)[3].duplicates, 0);
  EXPECT_EQ(Sql("SELECT count(*) FROM usage_events"), "5");
  // The rollups saw each new event once.
  EXPECT_EQ(Sql("SELECT sum(requests) FROM usage_rollups_hourly"), "5");
  EXPECT_EQ(Sql("SELECT sum(input_tokens) FROM usage_rollups_hourly"), "41");

  // One bad event anywhere rejects the whole call: nothing of the other batches is stored.
  v1::UsageEvent bad = MakeTestEvent("bad", "t", "f", 1000, 500);
  bad.set_cost_pico(bad.cost_pico() + 1);
  absl::StatusOr<std::vector<InsertResult>> rejected =
      store_->InsertBatches({{MakeTestEvent("e", "t", "f", 1, 1)}, {bad}});
  EXPECT_EQ(rejected.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Sql("SELECT count(*) FROM usage_events"), "5");
}

TEST_F(PostgresUsageStoreTest, StoresEveryFieldExactly) {
  v1::UsageEvent e = MakeTestEvent("full", "search", "answer", 1000, 500, 1'736'942'400'123'456);
  e.mutable_attribution()->set_customer("acme\t\"co\"\\\n");
  (*e.mutable_attribution()->mutable_tags())["env"] = "prod";
  (*e.mutable_attribution()->mutable_tags())["quote"] = "a\"b\\c\r";
  e.mutable_usage()->set_cached_input_tokens(200);
  e.mutable_usage()->set_cache_write_5m_tokens(100);
  e.mutable_usage()->set_reasoning_tokens(50);
  e.mutable_usage()->set_estimated(true);
  e.mutable_prices()->set_cache_write_5m_pico(3'125'000);
  e.mutable_prices()->set_reasoning_pico(12'000'000);
  Reprice(e);
  e.set_stream(true);
  e.set_ttft_us(250);
  e.set_error_code("");
  v1::Attempt* attempt = e.add_attempts();
  attempt->set_deployment_id("azure-gpt-4o");
  attempt->set_http_status(429);
  attempt->set_error("rate limited");
  attempt->set_latency_us(900);
  ASSERT_TRUE(store_->InsertBatch({e}).ok());

  EXPECT_EQ(
      Sql("SELECT ts = '2025-01-15T12:00:00.123456Z'::timestamptz, cost_usd::text, "
          "customer, tags->>'env', tags->>'quote', attempts->0->>'deployment_id', "
          "(attempts->0->>'http_status')::int, input_tokens, cached_input_tokens, "
          "cache_write_5m_tokens, reasoning_tokens, usage_estimated, stream, ttft_us, "
          "price_reasoning_pico, price_card_version, request_id "
          "FROM usage_events WHERE event_id = 'full'"),
      absl::StrCat("t|", "0.007412500000", "|acme\t\"co\"\\\n|prod|a\"b\\c\r|azure-gpt-4o|429|",
                   "1000|200|100|50|t|t|250|12000000|test-1|req-full"));
  // (700 * 2.5 + 200 * 1.25 + 100 * 3.125) + (450 * 10 + 50 * 12) USD/M = 7412.5 USD/M * 1e-6.
  EXPECT_EQ(e.cost_pico(), 7'412'500'000);
}

TEST_F(PostgresUsageStoreTest, CostMismatchRejectsTheWholeBatch) {
  v1::UsageEvent bad = MakeTestEvent("bad-one", "t", "f", 1000, 500);
  bad.set_cost_pico(bad.cost_pico() - 1);
  absl::StatusOr<InsertResult> r =
      store_->InsertBatch({MakeTestEvent("good", "t", "f", 1, 1), bad});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("bad-one"));
  EXPECT_EQ(Sql("SELECT count(*) FROM usage_events"), "0");
}

TEST_F(PostgresUsageStoreTest, DatabaseEnforcesReproducibleCost) {
  // Defence in depth beyond the store's own check: a row whose cost does not re-price is refused.
  const absl::StatusOr<std::string> out = pg_->Query(
      "INSERT INTO usage_events (event_id, ts, input_tokens, price_input_pico, cost_usd) "
      "VALUES ('x', now(), 10, 1000000, 0.000010000001)",
      db_);
  EXPECT_FALSE(out.ok());
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("usage_events_cost_reproducible"));
}

TEST_F(PostgresUsageStoreTest, SpendByTeamAndFeatureSumsExactly) {
  InsertPricedEvents();
  v1::SpendQuery q;
  q.add_group_by("team");
  q.add_group_by("feature");
  const v1::SpendResponse r = Spend(q);
  EXPECT_THAT(r.group_by(), ElementsAre("team", "feature"));
  ASSERT_EQ(r.rows_size(), 3);
  EXPECT_THAT(r.rows(0).group_values(), ElementsAre("search", "answer"));
  EXPECT_EQ(r.rows(0).cost_usd(), "0.300000000000");
  EXPECT_EQ(r.rows(0).requests(), 2);
  EXPECT_EQ(r.rows(0).tokens().input_tokens(), 80'000);
  EXPECT_EQ(r.rows(0).tokens().output_tokens(), 10'000);
  EXPECT_THAT(r.rows(1).group_values(), ElementsAre("ads", "answer"));
  EXPECT_EQ(r.rows(1).cost_usd(), "0.000305000000");
  EXPECT_THAT(r.rows(2).group_values(), ElementsAre("search", "rerank"));
  EXPECT_EQ(r.rows(2).cost_usd(), "0.000000000001");
  EXPECT_EQ(r.total().requests(), 4);
  EXPECT_EQ(r.total().cost_usd(), "0.300305000001");
  EXPECT_EQ(r.total().tokens().input_tokens(), 80'000 + 1 + 122);
}

TEST_F(PostgresUsageStoreTest, SpendBucketsByUtcDay) {
  InsertPricedEvents();
  v1::SpendQuery q;
  q.add_group_by("team");
  q.set_bucket(v1::BUCKET_DAY);
  const v1::SpendResponse r = Spend(q);
  ASSERT_EQ(r.rows_size(), 3);
  // search on day 1 (10:00 and 23:59:59), ads on day 1, search on day 2 (00:00:00).
  EXPECT_THAT(r.rows(0).group_values(), ElementsAre("search"));
  EXPECT_EQ(r.rows(0).bucket_start_unix_s(), kDay);
  EXPECT_EQ(r.rows(0).requests(), 2);
  EXPECT_EQ(r.rows(0).cost_usd(), "0.300000000000");
  EXPECT_THAT(r.rows(1).group_values(), ElementsAre("ads"));
  EXPECT_EQ(r.rows(1).bucket_start_unix_s(), kDay);
  EXPECT_THAT(r.rows(2).group_values(), ElementsAre("search"));
  EXPECT_EQ(r.rows(2).bucket_start_unix_s(), kDay + 86400);
  EXPECT_EQ(r.rows(2).cost_usd(), "0.000000000001");

  q.set_bucket(v1::BUCKET_HOUR);
  q.clear_group_by();
  const v1::SpendResponse hourly = Spend(q);
  ASSERT_EQ(hourly.rows_size(), 4);
  EXPECT_EQ(hourly.rows(0).bucket_start_unix_s(), kDay + 86400 - 3600);  // b: 0.2 USD
}

TEST_F(PostgresUsageStoreTest, SpendFiltersAndTimeRange) {
  InsertPricedEvents();
  v1::SpendQuery q;
  q.add_group_by("feature");
  (*q.mutable_filters())["team"] = "search";
  v1::SpendResponse r = Spend(q);
  ASSERT_EQ(r.rows_size(), 2);
  EXPECT_EQ(r.total().requests(), 3);
  EXPECT_EQ(r.total().cost_usd(), "0.300000000001");

  // [start, end): the event at exactly end (c, at kDay + 86400) is excluded; at start included.
  q.set_start_unix_s(kDay + 10 * 3600);
  q.set_end_unix_s(kDay + 86400);
  r = Spend(q);
  ASSERT_EQ(r.rows_size(), 1);
  EXPECT_EQ(r.rows(0).requests(), 2);
  EXPECT_EQ(r.total().cost_usd(), "0.300000000000");

  // Tags: filter and group.
  v1::SpendQuery tags;
  tags.add_group_by("tag:project");
  r = Spend(tags);
  ASSERT_EQ(r.rows_size(), 2);
  EXPECT_THAT(r.rows(0).group_values(), ElementsAre(""));
  EXPECT_THAT(r.rows(1).group_values(), ElementsAre("apollo"));
  (*tags.mutable_filters())["tag:project"] = "apollo";
  r = Spend(tags);
  ASSERT_EQ(r.rows_size(), 1);
  EXPECT_EQ(r.total().cost_usd(), "0.000305000000");

  // A value that would be SQL if spliced in matches nothing and breaks nothing.
  v1::SpendQuery hostile;
  (*hostile.mutable_filters())["team"] = "x' OR '1'='1";
  r = Spend(hostile);
  EXPECT_EQ(r.rows_size(), 0);
  EXPECT_EQ(r.total().requests(), 0);
  EXPECT_EQ(r.total().cost_usd(), "0.000000000000");
}

TEST_F(PostgresUsageStoreTest, SpendLimitKeepsTheTotalOverAllEvents) {
  InsertPricedEvents();
  v1::SpendQuery q;
  q.add_group_by("feature");
  q.add_group_by("team");
  q.set_limit(1);
  const v1::SpendResponse r = Spend(q);
  ASSERT_EQ(r.rows_size(), 1);
  EXPECT_EQ(r.rows(0).cost_usd(), "0.300000000000");
  EXPECT_EQ(r.total().requests(), 4);
  EXPECT_EQ(r.total().cost_usd(), "0.300305000001");
}

TEST_F(PostgresUsageStoreTest, SpendRejectsInvalidDimension) {
  v1::SpendQuery q;
  q.add_group_by("cost_usd");
  absl::StatusOr<v1::SpendResponse> r = store_->QuerySpend(q, absl::Seconds(10));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("team, feature, customer"));
}

TEST_F(PostgresUsageStoreTest, ReconnectsAfterTheConnectionBreaks) {
  ASSERT_TRUE(store_->InsertBatch({MakeTestEvent("before", "t", "f", 1, 1)}).ok());
  Sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
      "WHERE application_name = 'tollgate-ledger'");
  absl::StatusOr<InsertResult> broken =
      store_->InsertBatch({MakeTestEvent("after", "t", "f", 1, 1)});
  if (!broken.ok()) {
    EXPECT_EQ(broken.status().code(), absl::StatusCode::kUnavailable) << broken.status();
    broken = store_->InsertBatch({MakeTestEvent("after", "t", "f", 1, 1)});
  }
  ASSERT_TRUE(broken.ok()) << broken.status();
  EXPECT_EQ(broken->inserted, 1);
  EXPECT_EQ(Sql("SELECT count(*) FROM usage_events"), "2");
}

TEST_F(PostgresUsageStoreTest, UnreachableDatabaseIsUnavailable) {
  PostgresUsageStore::Options options;
  options.database_url = "postgresql://postgres@127.0.0.1:1/postgres";
  options.connect_timeout = absl::Seconds(2);
  PostgresUsageStore store(options);
  EXPECT_EQ(store.Connect().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.InsertBatch({MakeTestEvent("x", "t", "f", 1, 1)}).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.QuerySpend(v1::SpendQuery(), absl::Seconds(1)).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(PostgresUsageStoreTest, SurvivesAPostgresCrash) {
  ASSERT_TRUE(store_->InsertBatch({MakeTestEvent("before", "t", "f", 1, 1)}).ok());
  ASSERT_TRUE(pg_->KillAndRestart().ok());
  absl::StatusOr<InsertResult> r;
  // The first call after the crash may find the old connection dead (kUnavailable); one of the
  // next few opens a new one.
  for (int attempt = 0; attempt < 3; ++attempt) {
    r = store_->InsertBatch({MakeTestEvent("after", "t", "f", 1, 1)});
    if (r.ok()) break;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  }
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Sql("SELECT count(*) FROM usage_events"), "2");
}

// ---- Schema for scale: partitions, exactly-once keys, hourly rollups. ----

// Every rollup sum equals the same sum over the raw events (one row of text).
constexpr char kRollupVsEvents[] =
    "SELECT (SELECT count(*) || '/' || COALESCE(sum(input_tokens), 0) || '/' || "
    "COALESCE(sum(output_tokens), 0) || '/' || COALESCE(sum(cost_usd), 0) FROM usage_events) || "
    "' ' || (SELECT COALESCE(sum(requests), 0) || '/' || COALESCE(sum(input_tokens), 0) || '/' || "
    "COALESCE(sum(output_tokens), 0) || '/' || COALESCE(sum(cost_usd), 0) "
    "FROM usage_rollups_hourly)";

std::string BothHalvesEqual(const std::string& line) {
  const size_t space = line.find(' ');
  if (space == std::string::npos) return "malformed: " + line;
  return line.substr(0, space) == line.substr(space + 1) ? "equal" : "differ: " + line;
}

TEST_F(PostgresUsageStoreTest, UpgradesA0001DatabaseInPlaceKeepingItsRows) {
  const std::string old_db = db_ + "_v1";
  ASSERT_TRUE(pg_->CreateDatabase(old_db).ok());
  PostgresUsageStore::Options options;
  options.database_url = pg_->url(old_db);
  PostgresUsageStore store(options);
  ASSERT_TRUE(store.MigrateTo(1).ok());
  // Rows as a 0001 ledger wrote them, in two months: 1000 input tokens at 2.5 USD/M each.
  ASSERT_TRUE(pg_->Query("INSERT INTO usage_events (event_id, ts, team, feature, input_tokens, "
                         "price_input_pico, cost_usd) SELECT 'old' || i, "
                         "timestamptz '2024-12-31 23:30:00+00' + i * interval '20 minutes', "
                         "'t' || (i % 3), 'f', 1000, 2500000, 0.0025 "
                         "FROM generate_series(1, 10) i",
                         old_db)
                  .ok());
  ASSERT_TRUE(store.Migrate().ok());
  auto q = [&](const std::string& sql) { return *pg_->Query(sql, old_db); };
  EXPECT_EQ(q("SELECT count(*) FROM usage_events"), "10");
  EXPECT_EQ(q("SELECT count(*) FROM usage_event_ids"), "10");
  EXPECT_EQ(q("SELECT relkind FROM pg_class WHERE relname = 'usage_events'"), "p");
  EXPECT_EQ(q("SELECT count(*) FROM usage_events_p202412"), "1");
  EXPECT_EQ(q("SELECT count(*) FROM usage_events_p202501"), "9");
  EXPECT_EQ(q("SELECT to_regclass('usage_events_v1') IS NULL"), "t");
  EXPECT_EQ(BothHalvesEqual(q(kRollupVsEvents)), "equal");
  EXPECT_EQ(q("SELECT sum(cost_usd) FROM usage_rollups_hourly"), "0.025000000000");

  // A replay of an old event after the upgrade is still a duplicate.
  v1::UsageEvent replay = MakeTestEvent("old1", "t1", "f", 1000, 0);
  replay.set_time_unix_us((1'735'687'800 + 20 * 60) * kUsPerS);  // 2024-12-31T23:50Z
  replay.mutable_prices()->set_cached_input_pico(0);
  replay.mutable_prices()->set_output_pico(0);
  Reprice(replay);
  absl::StatusOr<InsertResult> r = store.InsertBatch({replay});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->inserted, 0);
  EXPECT_EQ(r->duplicates, 1);
  EXPECT_EQ(BothHalvesEqual(q(kRollupVsEvents)), "equal");
}

TEST_F(PostgresUsageStoreTest, CreatesPartitionsAheadAndOnDemand) {
  const absl::Time now = absl::FromUnixSeconds(kDay);  // 2025-01-15
  absl::StatusOr<PartitionMaintenance> m = store_->MaintainPartitions(now, 3, 0);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_THAT(m->ensured_month_starts,
              ElementsAre(1'735'689'600, 1'738'368'000, 1'740'787'200, 1'743'465'600));
  EXPECT_TRUE(m->dropped_partitions.empty());
  EXPECT_EQ(
      Sql("SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_inherits i "
          "JOIN pg_class c ON c.oid = i.inhrelid "
          "WHERE i.inhparent = 'usage_events'::regclass AND c.relname LIKE 'usage_events_p2025%'"),
      "usage_events_p202501,usage_events_p202502,usage_events_p202503,usage_events_p202504");
  // Running it again (another replica) changes nothing.
  ASSERT_TRUE(NewStore()->MaintainPartitions(now, 3, 0).ok());

  // An event years outside the prepared range gets its partition on demand.
  absl::StatusOr<InsertResult> r = store_->InsertBatch(
      {MakeTestEvent("far", "t", "f", 1, 1, int64_t{1'893'456'000} * kUsPerS)});  // 2030-01-01
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->inserted, 1);
  EXPECT_EQ(Sql("SELECT count(*) FROM usage_events_p203001"), "1");
}

TEST_F(PostgresUsageStoreTest, RetentionDropsWholeOldPartitions) {
  const int64_t oct_2024 = 1'727'740'800;  // 2024-10-01
  ASSERT_TRUE(store_
                  ->InsertBatch({MakeTestEvent("oct", "t", "f", 10, 1, (oct_2024 + 60) * kUsPerS),
                                 MakeTestEvent("nov", "t", "f", 10, 1,
                                               (oct_2024 + 31 * 86400 + 60) * kUsPerS),
                                 MakeTestEvent("jan", "t", "f", 10, 1, kDay * kUsPerS)})
                  .ok());
  // Keep two whole months before January 2025: November and December stay, October goes.
  absl::StatusOr<PartitionMaintenance> m =
      store_->MaintainPartitions(absl::FromUnixSeconds(kDay), 1, 2);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_THAT(m->dropped_partitions, ElementsAre("usage_events_p202410"));
  EXPECT_EQ(Sql("SELECT string_agg(event_id, ',' ORDER BY event_id) FROM usage_events"), "jan,nov");
  EXPECT_EQ(Sql("SELECT string_agg(event_id, ',' ORDER BY event_id) FROM usage_event_ids"),
            "jan,nov");
  EXPECT_EQ(Sql("SELECT to_regclass('usage_events_p202410') IS NULL"), "t");
  // Rollups are the long-term record and survive retention.
  EXPECT_EQ(Sql("SELECT sum(requests) FROM usage_rollups_hourly"), "3");
  // 0 keeps everything.
  m = store_->MaintainPartitions(absl::FromUnixSeconds(kDay), 1, 0);
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->dropped_partitions.empty());
  // The ingest path recreates a dropped partition if a late event needs it.
  ASSERT_TRUE(
      store_->InsertBatch({MakeTestEvent("late", "t", "f", 1, 1, (oct_2024 + 99) * kUsPerS)}).ok());
  EXPECT_EQ(Sql("SELECT count(*) FROM usage_events_p202410"), "1");
}

TEST_F(PostgresUsageStoreTest, ReplaysDoNotDoubleRollups) {
  std::vector<v1::UsageEvent> batch;
  for (int i = 0; i < 20; ++i) {
    batch.push_back(MakeTestEvent(absl::StrCat("e", i), i % 2 ? "a" : "b", "f", 100 + i, 7 * i,
                                  (kDay + i * 600) * kUsPerS));
  }
  ASSERT_EQ(store_->InsertBatch(batch)->inserted, 20);
  const std::string before = Sql(kRollupVsEvents);
  EXPECT_EQ(BothHalvesEqual(before), "equal");
  for (int replay = 0; replay < 3; ++replay) {
    absl::StatusOr<InsertResult> r = store_->InsertBatch(batch);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->duplicates, 20);
  }
  // Concurrent writers replaying the same events with some new ones in between.
  std::vector<std::thread> writers;
  for (int w = 0; w < 3; ++w) {
    writers.emplace_back([&, w] {
      auto store = NewStore();
      std::vector<v1::UsageEvent> mixed = batch;
      mixed.push_back(MakeTestEvent("shared", "a", "f", 5, 5, kDay * kUsPerS));
      mixed.push_back(MakeTestEvent(absl::StrCat("own", w), "a", "f", 5, 5, kDay * kUsPerS));
      absl::StatusOr<InsertResult> r;
      for (int attempt = 0; attempt < 5; ++attempt) {  // deadlock/serialization: retry
        r = store->InsertBatch(mixed);
        if (r.ok() || r.status().code() != absl::StatusCode::kAborted) break;
      }
      EXPECT_TRUE(r.ok()) << r.status();
    });
  }
  for (std::thread& t : writers) t.join();
  EXPECT_EQ(Sql("SELECT count(*) FROM usage_events"), "24");
  EXPECT_EQ(Sql("SELECT sum(requests) FROM usage_rollups_hourly"), "24");
  EXPECT_EQ(BothHalvesEqual(Sql(kRollupVsEvents)), "equal");
}

// Property: with random prices and token counts, the sum of the per-event costs (computed in
// process from integers) equals the rollups, the rollup-backed query and the raw-event query, to
// the digit, for every group and bucket.
TEST_F(PostgresUsageStoreTest, ExactSumPropertyEventsRollupsAndQueriesAgree) {
  std::mt19937_64 rng(20251122);
  auto uniform = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  const std::vector<std::string> teams = {"search", "ads", "infra", ""};
  const std::vector<std::string> features = {"answer", "rerank", "summarize"};
  std::map<std::pair<std::string, std::string>, __int128> expected;
  __int128 total = 0;
  std::vector<v1::UsageEvent> batch;
  for (int i = 0; i < 3000; ++i) {
    const std::string& team = teams[uniform(0, teams.size() - 1)];
    const std::string& feature = features[uniform(0, features.size() - 1)];
    // Spread over 40 days, crossing a month boundary, at microsecond resolution.
    const int64_t t = kDay * kUsPerS + uniform(0, int64_t{40} * 86400 * kUsPerS);
    v1::UsageEvent e = MakeTestEvent(absl::StrCat("p", i), team, feature, 0, 0, t);
    v1::TokenUsage* u = e.mutable_usage();
    u->set_input_tokens(uniform(0, 2'000'000));
    u->set_cached_input_tokens(uniform(0, u->input_tokens() / 2));
    u->set_cache_write_5m_tokens(uniform(0, u->input_tokens() / 4));
    u->set_output_tokens(uniform(0, 100'000));
    u->set_reasoning_tokens(uniform(0, u->output_tokens()));
    v1::UnitPrices* p = e.mutable_prices();
    p->set_input_pico(uniform(0, 20'000'000));
    p->set_cached_input_pico(uniform(0, 5'000'000));
    p->set_cache_write_5m_pico(uniform(0, 25'000'000));
    p->set_output_pico(uniform(1, 80'000'000));
    p->set_reasoning_pico(uniform(0, 1) ? 0 : uniform(1, 80'000'000));
    e.mutable_attribution()->mutable_tags()->insert({"project", uniform(0, 1) ? "x" : "y"});
    Reprice(e);
    expected[{team, feature}] += e.cost_pico();
    total += e.cost_pico();
    batch.push_back(e);
  }
  for (size_t i = 0; i < batch.size(); i += 500) {
    std::vector<v1::UsageEvent> part(batch.begin() + i,
                                     batch.begin() + std::min(batch.size(), i + 500));
    ASSERT_TRUE(store_->InsertBatch(part).ok());
    ASSERT_TRUE(store_->InsertBatch(part).ok());  // replays change nothing
  }
  EXPECT_EQ(Sql("SELECT sum(cost_usd) FROM usage_rollups_hourly"), FormatPicoUsd(total));
  EXPECT_EQ(BothHalvesEqual(Sql(kRollupVsEvents)), "equal");
  // The daily rollups (migration 0006) are the hourly ones summed per UTC day, exactly.
  EXPECT_EQ(Sql("SELECT count(*) FROM (SELECT date_trunc('day', hour, 'UTC') AS day, team, "
                "feature, customer, api_key_id, environment, requested_model, served_deployment, "
                "provider, upstream_model, region, endpoint, sum(requests) AS requests, "
                "sum(input_tokens) AS input_tokens, sum(cached_input_tokens) AS "
                "cached_input_tokens, sum(cache_write_5m_tokens) AS cache_write_5m_tokens, "
                "sum(cache_write_1h_tokens) AS cache_write_1h_tokens, sum(output_tokens) AS "
                "output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_usd) AS "
                "cost_usd FROM usage_rollups_hourly GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 "
                "EXCEPT SELECT * FROM usage_rollups_daily) d"),
            "0");
  EXPECT_EQ(Sql("SELECT count(DISTINCT (date_trunc('day', hour, 'UTC'), team, feature, customer, "
                "api_key_id, environment, requested_model, served_deployment, provider, "
                "upstream_model, region, endpoint)) FROM usage_rollups_hourly"),
            Sql("SELECT count(*) FROM usage_rollups_daily"));

  v1::SpendQuery q;
  q.add_group_by("team");
  q.add_group_by("feature");
  q.set_start_unix_s(kDay);
  q.set_end_unix_s(kDay + 41 * 86400);
  absl::StatusOr<v1::SpendResponse> rollups =
      store_->QuerySpendFrom(q, absl::Seconds(10), SpendSource::kRollups);
  absl::StatusOr<v1::SpendResponse> events =
      store_->QuerySpendFrom(q, absl::Seconds(10), SpendSource::kEvents);
  ASSERT_TRUE(rollups.ok()) << rollups.status();
  ASSERT_TRUE(events.ok()) << events.status();
  EXPECT_EQ(rollups->total().cost_usd(), FormatPicoUsd(total));
  EXPECT_EQ(rollups->SerializeAsString(), events->SerializeAsString());
  ASSERT_EQ(rollups->rows_size(), static_cast<int>(expected.size()));
  for (const v1::SpendRow& row : rollups->rows()) {
    EXPECT_EQ(row.cost_usd(), FormatPicoUsd(expected[{row.group_values(0), row.group_values(1)}]));
  }
  // Random hour-aligned sub-ranges, buckets and filters: both paths agree.
  for (int trial = 0; trial < 30; ++trial) {
    v1::SpendQuery r;
    const int64_t start = kDay + uniform(0, 40 * 24) * 3600;
    r.set_start_unix_s(start);
    r.set_end_unix_s(start + uniform(1, 20 * 24) * 3600);
    r.set_bucket(static_cast<v1::Bucket>(uniform(0, 2)));
    if (uniform(0, 1)) r.add_group_by("team");
    if (uniform(0, 1)) (*r.mutable_filters())["feature"] = features[uniform(0, 2)];
    absl::StatusOr<v1::SpendResponse> a =
        store_->QuerySpendFrom(r, absl::Seconds(10), SpendSource::kRollups);
    absl::StatusOr<v1::SpendResponse> b =
        store_->QuerySpendFrom(r, absl::Seconds(10), SpendSource::kEvents);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->SerializeAsString(), b->SerializeAsString()) << r.DebugString();
  }
  // Random day-aligned ranges (day, week and month buckets): the daily rollups, which kAuto
  // picks, agree with the raw events too.
  for (int trial = 0; trial < 20; ++trial) {
    v1::SpendQuery r;
    const int64_t start = kDay / 86400 * 86400 + uniform(0, 40) * 86400;
    r.set_start_unix_s(start);
    r.set_end_unix_s(start + uniform(1, 20) * 86400);
    r.set_bucket(static_cast<v1::Bucket>(trial % 2 == 0 ? 0 : uniform(2, 4)));
    if (uniform(0, 1)) r.add_group_by("team");
    if (uniform(0, 1)) r.add_group_by("feature");
    if (uniform(0, 1)) (*r.mutable_filters())["team"] = teams[uniform(0, 3)];
    if (uniform(0, 1)) r.set_compare_previous(true);
    ASSERT_TRUE(CanUseDailyRollups(r));
    absl::StatusOr<v1::SpendResponse> a =
        store_->QuerySpendFrom(r, absl::Seconds(10), SpendSource::kDailyRollups);
    absl::StatusOr<v1::SpendResponse> b =
        store_->QuerySpendFrom(r, absl::Seconds(10), SpendSource::kEvents);
    absl::StatusOr<v1::SpendResponse> c = store_->QuerySpend(r, absl::Seconds(10));
    ASSERT_TRUE(a.ok() && b.ok() && c.ok()) << a.status() << b.status() << c.status();
    EXPECT_EQ(a->SerializeAsString(), b->SerializeAsString()) << r.DebugString();
    EXPECT_EQ(c->SerializeAsString(), b->SerializeAsString()) << r.DebugString();
  }
  // Random ranges not on whole hours ("--since 30d"): kAuto reads the daily rollups for whole
  // days inside, hourly rollups for whole hours around them and raw events at the edges, and
  // agrees with the raw events exactly.
  for (int trial = 0; trial < 20; ++trial) {
    v1::SpendQuery r;
    const int64_t start = kDay + uniform(0, int64_t{40} * 86400);
    r.set_start_unix_s(start);
    r.set_end_unix_s(trial % 5 == 0 ? 0 : start + uniform(1, int64_t{20} * 86400));
    r.set_bucket(static_cast<v1::Bucket>(uniform(0, 4)));
    if (uniform(0, 1)) r.add_group_by("team");
    if (uniform(0, 1)) r.add_group_by("feature");
    if (uniform(0, 1)) (*r.mutable_filters())["feature"] = features[uniform(0, 2)];
    if (uniform(0, 1)) r.set_compare_previous(true);
    if (uniform(0, 1)) r.set_limit(uniform(1, 5));
    absl::StatusOr<SpendSql> built = BuildSpendSql(r);
    ASSERT_TRUE(built.ok()) << built.status();
    if (start % 3600 != 0 || r.end_unix_s() % 3600 != 0) {
      EXPECT_FALSE(built->from_rollups);
      EXPECT_EQ(built->split_edges,
                r.end_unix_s() == 0 || (start + 3599) / 3600 < r.end_unix_s() / 3600)
          << r.DebugString();
    }
    absl::StatusOr<v1::SpendResponse> a = store_->QuerySpend(r, absl::Seconds(10));
    absl::StatusOr<v1::SpendResponse> b =
        store_->QuerySpendFrom(r, absl::Seconds(10), SpendSource::kEvents);
    ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
    EXPECT_EQ(a->SerializeAsString(), b->SerializeAsString()) << r.DebugString();
  }
}

// ---- Repricing. ----

class RepriceTest : public PostgresUsageStoreTest {
 protected:
  // 200 events over 3 days on two deployments with random tokens; returns them.
  std::vector<v1::UsageEvent> InsertRandomEvents() {
    std::mt19937_64 rng(7);
    auto uniform = [&](int64_t lo, int64_t hi) {
      return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
    };
    std::vector<v1::UsageEvent> events;
    for (int i = 0; i < 200; ++i) {
      v1::UsageEvent e =
          MakeTestEvent(absl::StrCat("r", i), i % 3 ? "search" : "ads", "f", uniform(0, 500'000),
                        uniform(0, 50'000), (kDay + uniform(0, 3 * 86400 - 1)) * kUsPerS);
      e.mutable_usage()->set_cached_input_tokens(uniform(0, e.usage().input_tokens()));
      e.mutable_usage()->set_reasoning_tokens(uniform(0, e.usage().output_tokens()));
      if (i % 2) e.set_served_deployment("azure-gpt-4o");
      Reprice(e);
      events.push_back(e);
    }
    EXPECT_EQ(store_->InsertBatch(events)->inserted, 200);
    return events;
  }

  v1::RepriceResponse Run(const v1::RepriceRequest& request) {
    absl::StatusOr<v1::RepriceResponse> r = store_->Reprice(request, absl::Seconds(30));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : v1::RepriceResponse();
  }

  // Total spend through both query paths, which must agree.
  std::string TotalSpend(int64_t start, int64_t end) {
    v1::SpendQuery q;
    q.set_start_unix_s(start);
    q.set_end_unix_s(end);
    q.add_group_by("served_deployment");
    absl::StatusOr<v1::SpendResponse> a =
        store_->QuerySpendFrom(q, absl::Seconds(10), SpendSource::kRollups);
    absl::StatusOr<v1::SpendResponse> b =
        store_->QuerySpendFrom(q, absl::Seconds(10), SpendSource::kEvents);
    EXPECT_TRUE(a.ok() && b.ok());
    if (!a.ok() || !b.ok()) return "";
    EXPECT_EQ(a->SerializeAsString(), b->SerializeAsString());
    return a->total().cost_usd();
  }
};

TEST_F(RepriceTest, WritesCorrectionsAndSpendEqualsTheRepricedCostExactly) {
  const std::vector<v1::UsageEvent> events = InsertRandomEvents();
  // Reprice day 2 only, deployment openai-gpt-4o: input 3 USD/M, output 12.000001 USD/M, cached
  // input unchanged (stored 1.25).
  const int64_t start = kDay + 86400, end = kDay + 2 * 86400;
  __int128 old_total = 0, new_total = 0, old_in_range = 0, new_in_range = 0;
  int64_t changed = 0, in_range = 0;
  for (v1::UsageEvent e : events) {
    old_total += e.cost_pico();
    const int64_t s = e.time_unix_us() / kUsPerS;
    if (e.served_deployment() == "openai-gpt-4o" && s >= start && s < end) {
      const int64_t before = e.cost_pico();
      e.mutable_prices()->set_input_pico(3'000'000);
      e.mutable_prices()->set_output_pico(12'000'001);
      Reprice(e);
      ++in_range;
      old_in_range += before;
      new_in_range += e.cost_pico();
      if (e.cost_pico() != before) ++changed;
    }
    new_total += e.cost_pico();
  }
  ASSERT_GT(in_range, 10);

  v1::RepriceRequest request;
  request.set_start_unix_s(start);
  request.set_end_unix_s(end);
  v1::DeploymentPrices* p = request.add_prices();
  p->set_deployment("openai-gpt-4o");
  p->set_input_usd_per_m("3");
  p->set_output_usd_per_m("12.000001");
  request.set_price_card_version("test-2");
  request.set_reason("input price was wrong");
  request.set_dry_run(true);

  const v1::RepriceResponse dry = Run(request);
  EXPECT_TRUE(dry.dry_run());
  EXPECT_EQ(dry.events(), in_range);
  EXPECT_EQ(dry.changed_events(), changed);
  EXPECT_EQ(dry.old_cost_usd(), FormatPicoUsd(old_in_range));
  EXPECT_EQ(dry.new_cost_usd(), FormatPicoUsd(new_in_range));
  EXPECT_EQ(dry.delta_usd(), FormatPicoUsd(new_in_range - old_in_range));
  EXPECT_EQ(Sql("SELECT count(*) FROM usage_corrections"), "0");
  EXPECT_EQ(TotalSpend(kDay, kDay + 3 * 86400), FormatPicoUsd(old_total));

  request.set_dry_run(false);
  const v1::RepriceResponse done = Run(request);
  EXPECT_FALSE(done.repricing_id().empty());
  EXPECT_EQ(done.delta_usd(), dry.delta_usd());
  ASSERT_EQ(done.deployments_size(), 1);
  EXPECT_EQ(done.deployments(0).deployment(), "openai-gpt-4o");
  EXPECT_EQ(done.deployments(0).delta_usd(), dry.delta_usd());
  EXPECT_EQ(Sql("SELECT count(*) FROM usage_corrections"), absl::StrCat(changed));
  EXPECT_EQ(Sql("SELECT DISTINCT price_card_version || '/' || reason || '/' || price_input_pico "
                "|| '/' || price_cached_input_pico FROM usage_corrections"),
            "test-2/input price was wrong/3000000/1250000");
  // History is untouched; spend (both paths) is the repriced cost to the digit.
  EXPECT_EQ(Sql("SELECT sum(cost_usd) FROM usage_events"), FormatPicoUsd(old_total));
  EXPECT_EQ(TotalSpend(kDay, kDay + 3 * 86400), FormatPicoUsd(new_total));
  EXPECT_EQ(Sql("SELECT sum(cost_usd) FROM usage_rollups_hourly"), FormatPicoUsd(new_total));

  // Repricing again with the same card changes nothing; back to the original card undoes it.
  EXPECT_EQ(Run(request).changed_events(), 0);
  p->set_input_usd_per_m("2.5");
  p->set_output_usd_per_m("10");
  const v1::RepriceResponse undo = Run(request);
  EXPECT_EQ(undo.old_cost_usd(), FormatPicoUsd(new_in_range));
  EXPECT_EQ(undo.delta_usd(), FormatPicoUsd(old_in_range - new_in_range));
  EXPECT_EQ(TotalSpend(kDay, kDay + 3 * 86400), FormatPicoUsd(old_total));
  // A replay after a reprice neither doubles the event nor loses its correction.
  ASSERT_EQ(store_->InsertBatch(events)->duplicates, 200);
  EXPECT_EQ(TotalSpend(kDay, kDay + 3 * 86400), FormatPicoUsd(old_total));
}

TEST_F(RepriceTest, RejectsBadRequests) {
  v1::RepriceRequest none;
  EXPECT_EQ(store_->Reprice(none, absl::Seconds(5)).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::RepriceRequest bad_price;
  bad_price.add_prices()->set_deployment("d");
  bad_price.mutable_prices(0)->set_input_usd_per_m("1.5e3");
  EXPECT_EQ(store_->Reprice(bad_price, absl::Seconds(5)).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::RepriceRequest tag_filter;
  tag_filter.add_prices()->set_deployment("d");
  (*tag_filter.mutable_filters())["tag:x"] = "y";
  EXPECT_EQ(store_->Reprice(tag_filter, absl::Seconds(5)).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::RepriceRequest twice;
  twice.add_prices()->set_deployment("d");
  twice.add_prices()->set_deployment("d");
  EXPECT_EQ(store_->Reprice(twice, absl::Seconds(5)).status().code(),
            absl::StatusCode::kInvalidArgument);
  // An unknown deployment is not an error: nothing matches.
  v1::RepriceRequest unknown;
  unknown.add_prices()->set_deployment("nope");
  unknown.mutable_prices(0)->set_input_usd_per_m("1");
  const v1::RepriceResponse r = Run(unknown);
  EXPECT_EQ(r.events(), 0);
  ASSERT_EQ(r.deployments_size(), 1);
  EXPECT_EQ(r.deployments(0).delta_usd(), "0.000000000000");
}

// ---- Spend API: pages, week/month buckets, derived columns, previous period. ----

TEST_F(PostgresUsageStoreTest, SpendPagesBucketsAndComparesWithThePreviousPeriod) {
  std::vector<v1::UsageEvent> events;
  const std::vector<std::string> teams = {"a", "b", "c", "d", "e"};
  for (int i = 0; i < 200; ++i) {
    // 2025-01-15 .. 2025-02-12 (4 weeks), teams with different volumes.
    v1::UsageEvent e = MakeTestEvent(absl::StrCat("s", i), teams[i % 5], "f", 1000 * (i % 5 + 1),
                                     10 * i, (kDay + i * 12'096) * kUsPerS);
    const std::string project = i % 2 ? "x" : "y";
    e.mutable_attribution()->mutable_tags()->insert({"project", project});
    events.push_back(e);
  }
  ASSERT_EQ(store_->InsertBatch(events)->inserted, 200);

  v1::SpendQuery all;
  all.add_group_by("team");
  all.add_group_by("tag:project");
  all.set_start_unix_s(kDay);
  all.set_end_unix_s(kDay + 28 * 86400);
  const v1::SpendResponse whole = Spend(all);
  ASSERT_EQ(whole.rows_size(), 10);
  EXPECT_TRUE(whole.next_page_token().empty());
  // Pages of 3 concatenate to the unpaged answer, with the same total on each page.
  v1::SpendQuery paged = all;
  paged.set_page_size(3);
  std::vector<std::string> seen;
  int pages = 0;
  for (;;) {
    const v1::SpendResponse page = Spend(paged);
    ++pages;
    EXPECT_EQ(page.total().cost_usd(), whole.total().cost_usd());
    for (const v1::SpendRow& r : page.rows()) seen.push_back(r.SerializeAsString());
    if (page.next_page_token().empty()) break;
    paged.set_page_token(page.next_page_token());
    ASSERT_LT(pages, 10);
  }
  EXPECT_EQ(pages, 4);
  ASSERT_EQ(seen.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(seen[i], whole.rows(i).SerializeAsString());
  // Top-N with pages: never more than N rows in all.
  paged.clear_page_token();
  paged.set_limit(4);
  const v1::SpendResponse first = Spend(paged);
  EXPECT_EQ(first.rows_size(), 3);
  paged.set_page_token(first.next_page_token());
  const v1::SpendResponse second = Spend(paged);
  EXPECT_EQ(second.rows_size(), 1);
  EXPECT_TRUE(second.next_page_token().empty());
  paged.set_page_token("garbage");
  EXPECT_EQ(store_->QuerySpend(paged, absl::Seconds(5)).status().code(),
            absl::StatusCode::kInvalidArgument);

  // Derived columns are exact decimal strings.
  for (const v1::SpendRow& r : whole.rows()) {
    EXPECT_EQ(r.cost_per_request_usd().size(), r.cost_per_request_usd().find('.') + 13);
    EXPECT_EQ(r.share_of_total().size(), r.share_of_total().find('.') + 7);
  }
  EXPECT_EQ(whole.total().share_of_total(), "1.000000");

  // Week and month buckets: the sums over the buckets equal the total.
  for (v1::Bucket b : {v1::BUCKET_WEEK, v1::BUCKET_MONTH}) {
    v1::SpendQuery q;
    q.set_bucket(b);
    q.set_start_unix_s(kDay);
    q.set_end_unix_s(kDay + 28 * 86400);
    const v1::SpendResponse r = Spend(q);
    __int128 sum = 0;
    for (const v1::SpendRow& row : r.rows()) sum += *ParseDecimalPico(row.cost_usd());
    EXPECT_EQ(FormatPicoUsd(sum), r.total().cost_usd());
    if (b == v1::BUCKET_MONTH) {
      ASSERT_EQ(r.rows_size(), 2);  // January and February
      std::vector<int64_t> starts = {r.rows(0).bucket_start_unix_s(),
                                     r.rows(1).bucket_start_unix_s()};
      std::sort(starts.begin(), starts.end());
      EXPECT_THAT(starts, ElementsAre(1'735'689'600, 1'738'368'000));
    } else {
      for (const v1::SpendRow& row : r.rows()) {
        // Mondays 00:00 UTC (1970-01-05 was a Monday).
        EXPECT_EQ((row.bucket_start_unix_s() - 345'600) % (7 * 86400), 0);
      }
    }
  }

  // Second fortnight compared with the first: previous figures equal a direct query.
  v1::SpendQuery late;
  late.add_group_by("team");
  late.set_start_unix_s(kDay + 14 * 86400);
  late.set_end_unix_s(kDay + 28 * 86400);
  late.set_compare_previous(true);
  const v1::SpendResponse compared = Spend(late);
  EXPECT_EQ(compared.previous_start_unix_s(), kDay);
  EXPECT_EQ(compared.previous_end_unix_s(), kDay + 14 * 86400);
  v1::SpendQuery early;
  early.add_group_by("team");
  early.set_start_unix_s(kDay);
  early.set_end_unix_s(kDay + 14 * 86400);
  const v1::SpendResponse direct = Spend(early);
  EXPECT_EQ(compared.total().previous_cost_usd(), direct.total().cost_usd());
  ASSERT_EQ(compared.rows_size(), 5);
  for (const v1::SpendRow& row : compared.rows()) {
    for (const v1::SpendRow& d : direct.rows()) {
      if (d.group_values(0) != row.group_values(0)) continue;
      EXPECT_EQ(row.previous_cost_usd(), d.cost_usd());
      EXPECT_EQ(row.previous_requests(), d.requests());
      EXPECT_EQ(*ParseDecimalPico(row.change_usd()),
                *ParseDecimalPico(row.cost_usd()) - *ParseDecimalPico(d.cost_usd()));
    }
  }
  v1::SpendQuery no_start;
  no_start.set_compare_previous(true);
  EXPECT_EQ(store_->QuerySpend(no_start, absl::Seconds(5)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- FOCUS export: the column rules. ----

TEST_F(RepriceTest, FocusRecordsFollowTheColumnRulesAndSumToSpend) {
  std::vector<v1::UsageEvent> events = InsertRandomEvents();
  // Cache writes on a few events too (their own meters).
  std::vector<v1::UsageEvent> more;
  for (int i = 0; i < 5; ++i) {
    v1::UsageEvent e = MakeTestEvent(absl::StrCat("cw", i), "infra", "g", 10'000, 100,
                                     (kDay + 3600 * i + 5) * kUsPerS);
    e.mutable_usage()->set_cache_write_5m_tokens(3'000);
    e.mutable_usage()->set_cache_write_1h_tokens(1'000);
    e.mutable_prices()->set_cache_write_5m_pico(3'125'000);
    e.mutable_prices()->set_cache_write_1h_pico(5'000'000);
    e.mutable_prices()->set_reasoning_pico(0);
    Reprice(e);
    more.push_back(e);
  }
  ASSERT_EQ(store_->InsertBatch(more)->inserted, 5);
  // A reprice: the export must use the corrected prices.
  v1::RepriceRequest reprice;
  reprice.set_start_unix_s(kDay);
  reprice.set_end_unix_s(kDay + 86400);
  v1::DeploymentPrices* p = reprice.add_prices();
  p->set_deployment("azure-gpt-4o");
  p->set_output_usd_per_m("7.123457");
  Run(reprice);

  const std::vector<std::string>& columns = FocusColumns();
  auto col = [&](const std::string& name) {
    return static_cast<int>(std::find(columns.begin(), columns.end(), name) - columns.begin());
  };
  v1::ExportFocusRequest request;
  __int128 billed = 0;
  std::set<std::string> keys;
  int records = 0;
  for (int64_t day = kDay; day < kDay + 3 * 86400; day += 86400) {
    absl::StatusOr<v1::FocusChunk> chunk =
        store_->FocusRecords(request, day, day + 86400, absl::Seconds(10));
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    for (const v1::FocusRecord& r : chunk->records()) {
      ++records;
      ASSERT_EQ(r.values_size(), static_cast<int>(columns.size()));
      auto v = [&](const std::string& name) { return r.values(col(name)); };
      EXPECT_EQ(v("BillingCurrency"), "USD");
      EXPECT_EQ(v("ChargeCategory"), "Usage");
      EXPECT_EQ(v("ServiceCategory"), "AI and Machine Learning");
      EXPECT_EQ(v("ConsumedUnit"), "Tokens");
      EXPECT_EQ(v("PricingUnit"), "1M Tokens");
      EXPECT_EQ(v("BilledCost"), v("EffectiveCost"));
      EXPECT_EQ(v("BilledCost"), v("ListCost"));
      // ListCost = ListUnitPrice x PricingQuantity, exactly (6 + 6 decimals = 12).
      const __int128 unit = *ParseDecimalPico(v("ListUnitPrice")) / 1'000'000;
      const __int128 qty = *ParseDecimalPico(v("PricingQuantity")) / 1'000'000;
      EXPECT_EQ(*ParseDecimalPico(v("ListCost")), unit * qty);
      EXPECT_EQ(qty, std::stoll(v("ConsumedQuantity")));
      EXPECT_GT(qty, 0);
      // Hourly grain, ISO 8601 UTC.
      const std::string start = v("ChargePeriodStart"), end = v("ChargePeriodEnd");
      absl::Time ts, te;
      std::string error;
      ASSERT_TRUE(absl::ParseTime("%Y-%m-%dT%H:%M:%SZ", start, &ts, &error)) << start;
      ASSERT_TRUE(absl::ParseTime("%Y-%m-%dT%H:%M:%SZ", end, &te, &error)) << end;
      EXPECT_EQ(te - ts, absl::Hours(1));
      EXPECT_EQ(absl::ToUnixSeconds(ts) % 3600, 0);
      EXPECT_GE(absl::ToUnixSeconds(ts), day);
      EXPECT_LT(absl::ToUnixSeconds(ts), day + 86400);
      EXPECT_THAT(std::vector<std::string>({"input", "cached_input", "cache_write_5m",
                                            "cache_write_1h", "output", "reasoning"}),
                  ::testing::Contains(v("SkuMeter")));
      EXPECT_EQ(v("ResourceId"), v("x_UpstreamModel") == "" ? "" : v("ResourceId"));
      EXPECT_FALSE(v("ResourceId").empty());
      EXPECT_EQ(v("ProviderName"), "openai");
      EXPECT_EQ(v("RegionId"), "us");
      EXPECT_EQ(v("Tags"), absl::StrCat("{\"customer\":\"\",\"feature\":\"", v("x_Feature"),
                                        "\",\"team\":\"", v("x_Team"), "\"}"));
      // One record per hour x key x price x meter.
      EXPECT_TRUE(keys.insert(absl::StrCat(start, "|", v("x_Team"), "|", v("x_Feature"), "|",
                                           v("ResourceId"), "|", v("SkuPriceId"), "|",
                                           v("ListUnitPrice"), "|", v("SkuMeter")))
                      .second);
      billed += *ParseDecimalPico(v("BilledCost"));
    }
  }
  EXPECT_GT(records, 400);
  // The costs sum to spend (after the reprice) to the digit.
  EXPECT_EQ(FormatPicoUsd(billed), TotalSpend(kDay, kDay + 3 * 86400));
  EXPECT_NE(Sql("SELECT count(*) FROM usage_corrections"), "0");
}

// ---- Anomalies: synthetic series with an injected spike. ----

TEST_F(PostgresUsageStoreTest, DetectsAnInjectedSpikeAgainstTheSameHourOfWeek) {
  // Four weeks of the same hour (Wednesdays 10:00 UTC): teams a and b spend ~0.25 USD each
  // (100k input tokens at 2.5 USD/M); other hours are busier (seasonality: must not count).
  const int64_t hour = kDay + 4 * 7 * 86400 + 10 * 3600;
  std::vector<v1::UsageEvent> events;
  int id = 0;
  for (int week = 1; week <= 4; ++week) {
    for (const char* team : {"a", "b"}) {
      events.push_back(MakeTestEvent(absl::StrCat("w", id++), team, "chat", 100'000, 0,
                                     (hour - week * 7 * 86400 + 60) * kUsPerS));
    }
    // A busy neighbouring hour in the baseline weeks.
    events.push_back(MakeTestEvent(absl::StrCat("w", id++), "a", "chat", 5'000'000, 0,
                                   (hour - week * 7 * 86400 + 3600 + 60) * kUsPerS));
  }
  // The hour under test: a spikes 8x (2 USD), b stays normal.
  for (int i = 0; i < 8; ++i) {
    events.push_back(
        MakeTestEvent(absl::StrCat("s", i), "a", "chat", 100'000, 0, (hour + 60 + i) * kUsPerS));
  }
  events.push_back(MakeTestEvent("normal", "b", "chat", 100'000, 0, (hour + 120) * kUsPerS));
  ASSERT_TRUE(store_->InsertBatch(events).ok());

  AnomalyOptions options;
  options.ratio = "3";
  options.min_usd = "1";
  auto found = store_->DetectAnomalies(hour, options);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_THAT(*found, ElementsAre(std::pair<std::string, int64_t>{"team", 1},
                                  std::pair<std::string, int64_t>{"feature", 1},
                                  std::pair<std::string, int64_t>{"requested_model", 1}));
  // Re-running is idempotent.
  auto again = store_->DetectAnomalies(hour, options);
  ASSERT_TRUE(again.ok());
  for (const auto& [d, n] : *again) EXPECT_EQ(n, 0) << d;
  // The neighbouring busy hour is not an anomaly for its own baseline hour either.
  auto next = store_->DetectAnomalies(hour + 3600, options);
  ASSERT_TRUE(next.ok());
  for (const auto& [d, n] : *next) EXPECT_EQ(n, 0) << d;

  v1::ListAnomaliesRequest request;
  absl::StatusOr<v1::ListAnomaliesResponse> list = store_->ListAnomalies(request, absl::Seconds(5));
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->anomalies_size(), 3);
  const v1::Anomaly* team = nullptr;
  for (const v1::Anomaly& a : list->anomalies()) {
    if (a.dimension() == "team") team = &a;
  }
  ASSERT_NE(team, nullptr);
  EXPECT_EQ(team->value(), "a");
  EXPECT_EQ(team->hour_unix_s(), hour);
  EXPECT_EQ(team->actual_usd(), "2.000000000000");
  EXPECT_EQ(team->expected_usd(), "0.250000000000");
  EXPECT_EQ(team->baseline_weeks(), 4);
  EXPECT_THAT(team->top_contributors_json(), HasSubstr("\"team\": \"a\""));
  EXPECT_THAT(team->top_contributors_json(), HasSubstr("\"cost_usd\": \"2.000000000000\""));
}

}  // namespace
}  // namespace tollgate::ledger
