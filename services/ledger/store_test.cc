// PostgresUsageStore against a real PostgreSQL (tests/testing/postgres.h): one server for the
// suite, a fresh database per test.

#include "services/ledger/store.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/ledger/test_events.h"
#include "tests/testing/postgres.h"

namespace tollgate::ledger {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// 2025-01-15T00:00:00Z
constexpr int64_t kDay = 1'736'899'200;
constexpr int64_t kUsPerS = 1'000'000;

class PostgresUsageStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto pg = testing::PostgresServer::Start();
    ASSERT_TRUE(pg.ok()) << pg.status();
    pg_ = pg->release();
  }
  static void TearDownTestSuite() {
    delete pg_;
    pg_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(pg_, nullptr);
    db_ = absl::StrCat("ledger_", ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_TRUE(pg_->CreateDatabase(db_).ok());
    store_ = NewStore();
    ASSERT_TRUE(store_->Migrate().ok());
  }

  std::unique_ptr<PostgresUsageStore> NewStore() {
    PostgresUsageStore::Options options;
    options.database_url = pg_->url(db_);
    return std::make_unique<PostgresUsageStore>(options);
  }

  std::string Sql(const std::string& sql) {
    absl::StatusOr<std::string> out = pg_->Query(sql, db_);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : "";
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

  static testing::PostgresServer* pg_;
  std::string db_;
  std::unique_ptr<PostgresUsageStore> store_;
};

testing::PostgresServer* PostgresUsageStoreTest::pg_ = nullptr;

TEST_F(PostgresUsageStoreTest, MigrateTwiceIsANoOp) {
  EXPECT_EQ(Sql("SELECT version || ':' || name FROM tollgate_schema_migrations ORDER BY version"),
            "1:usage_events");
  ASSERT_TRUE(store_->Migrate().ok());
  ASSERT_TRUE(NewStore()->Migrate().ok());
  EXPECT_EQ(Sql("SELECT count(*) FROM tollgate_schema_migrations"), "1");
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
  EXPECT_EQ(*pg_->Query("SELECT count(*) FROM tollgate_schema_migrations", fresh), "1");
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

TEST_F(PostgresUsageStoreTest, StoresEveryFieldExactly) {
  v1::UsageEvent e = MakeTestEvent("full", "search", "answer", 1000, 500, 1'736'942'400'123'456);
  e.mutable_attribution()->set_customer("acme\t\"co\"\\\n");
  (*e.mutable_attribution()->mutable_tags())["env"] = "prod";
  (*e.mutable_attribution()->mutable_tags())["quote"] = "a\"b";
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

  EXPECT_EQ(Sql("SELECT ts = '2025-01-15T12:00:00.123456Z'::timestamptz, cost_usd::text, "
                "customer, tags->>'env', tags->>'quote', attempts->0->>'deployment_id', "
                "(attempts->0->>'http_status')::int, input_tokens, cached_input_tokens, "
                "cache_write_5m_tokens, reasoning_tokens, usage_estimated, stream, ttft_us, "
                "price_reasoning_pico, price_card_version, request_id "
                "FROM usage_events WHERE event_id = 'full'"),
            absl::StrCat("t|", "0.007412500000", "|acme\t\"co\"\\\n|prod|a\"b|azure-gpt-4o|429|",
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

}  // namespace
}  // namespace tollgate::ledger
