// Ledger benchmark (issue 4 item 9; not a test): ingest throughput into PostgreSQL, and
// spend-query latency over a month of generated events. Driven by tools/bench/ledger/run.sh,
// which starts a throw-away PostgreSQL.
//
// Ingest runs one of two ways:
//   --via=service (default): the Ledger.Ingest service as the ledger runs it (IngestService, its
//     writer threads and their coalesced transactions) behind a gRPC server on loopback TCP, fed
//     by --streams client streams (gateways), each keeping --window batches of --batch events in
//     flight as the gateway's sender does; events/s counts acknowledged (committed) events.
//   --via=store: PostgresUsageStore::InsertBatch called directly by --writers threads with
//     batches of --batch events (the database path alone: COPY into staging, the exactly-once
//     insert, the rollup upserts).
//
//   ledger_bench --database_url=postgresql://... [--via=service] [--ingest_events=400000]
//                [--writers=4] [--batch=2000] [--query_events=10000000] [--query_runs=20]

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <pqxx/pqxx>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "prometheus/registry.h"
#include "services/common/money.h"
#include "services/common/request_id.h"
#include "services/ledger/ingest_service.h"
#include "services/ledger/ledger_metrics.h"
#include "services/ledger/store.h"

ABSL_FLAG(std::string, database_url, "", "PostgreSQL URL (a database the benchmark may fill).");
ABSL_FLAG(int64_t, ingest_events, 400000, "Events inserted in the ingest phase.");
ABSL_FLAG(std::string, via, "service",
          "Ingest path: service (Ledger.Ingest over gRPC) or store (InsertBatch calls).");
ABSL_FLAG(int, writers, 4, "Concurrent writers (one connection each) in the ingest phase.");
ABSL_FLAG(int, batch, 2000,
          "Events per batch: per IngestBatch message (service; the gateway's --ledger_batch_size "
          "default) or per InsertBatch call (store).");
ABSL_FLAG(int, streams, 4, "Client streams (gateways) of the service ingest.");
ABSL_FLAG(int, window, 16, "Batches each stream keeps in flight, unacknowledged (service).");
ABSL_FLAG(int, max_write_events, 10000, "The ledger's --max_write_events (service).");
ABSL_FLAG(int, queue_capacity, 64, "The ledger's --queue_capacity (service).");
ABSL_FLAG(int64_t, query_events, 10000000, "Events generated with SQL for the query phase.");
ABSL_FLAG(int, query_runs, 20, "Timed runs of the spend query.");
ABSL_FLAG(std::string, event_ids, "ordered",
          "Event ids of the ingest phase: ordered (the gateway's time-ordered request ids) or "
          "random (128 random bits, the gateway's ids before time ordering; for comparison).");

namespace tollgate::ledger {
namespace {

// Event i of the ingest phase: times increase with i (`spacing_us` apart, the whole run spread
// over one day), as they do in production, so the time-ordered ids grow too.
v1::UsageEvent MakeEvent(int64_t i, int64_t base_us, int64_t spacing_us) {
  v1::UsageEvent e;
  e.set_request_id(absl::StrCat("req-", i));
  e.set_time_unix_us(base_us + i * spacing_us);
  // Ids as the gateway makes them (time-ordered, random tail), so the exactly-once index sees the
  // production key distribution; or fully random, as they were before.
  static const bool random_ids = absl::GetFlag(FLAGS_event_ids) == "random";
  thread_local absl::BitGen bitgen;
  e.set_event_id(random_ids ? NewRequestId(absl::Uniform<int64_t>(bitgen, 0, int64_t{1} << 48))
                            : NewRequestId(e.time_unix_us() / 1000));
  v1::Attribution* a = e.mutable_attribution();
  a->set_team(absl::StrCat("team-", i % 20));
  a->set_feature(absl::StrCat("feature-", i % 10));
  a->set_api_key_id(absl::StrCat("key-", i % 50));
  a->set_environment("prod");
  e.set_endpoint("/v1/chat/completions");
  e.set_requested_model("gpt-4o");
  e.set_served_deployment(i % 2 ? "openai-gpt-4o" : "azure-gpt-4o");
  e.set_provider(i % 2 ? "openai" : "azure");
  e.set_upstream_model("gpt-4o-2024-08-06");
  e.set_region("us");
  e.mutable_usage()->set_input_tokens(500 + i % 3000);
  e.mutable_usage()->set_cached_input_tokens(i % 400);
  e.mutable_usage()->set_output_tokens(50 + i % 700);
  e.mutable_prices()->set_input_pico(2'500'000);
  e.mutable_prices()->set_cached_input_pico(1'250'000);
  e.mutable_prices()->set_output_pico(10'000'000);
  e.mutable_prices()->set_price_card_version("bench");
  e.set_cost_pico(*PriceUsage(e.usage(), e.prices()));
  e.set_latency_us(800'000);
  e.set_http_status(200);
  return e;
}

// Events [0, total) through Ledger.Ingest: an IngestService with `writers` stores behind a gRPC
// server on loopback, `streams` client streams on their own connections. Returns false on any
// failure (printed), or when the acks do not account for every event exactly once.
bool IngestViaService(const PostgresUsageStore::Options& options, int64_t total, int writers,
                      int batch, int64_t base_us, int64_t spacing_us) {
  prometheus::Registry registry;
  absl::StatusOr<std::unique_ptr<LedgerMetrics>> metrics = LedgerMetrics::Create(registry);
  if (!metrics.ok()) {
    std::fprintf(stderr, "metrics: %s\n", metrics.status().ToString().c_str());
    return false;
  }
  std::vector<std::unique_ptr<UsageStore>> stores;
  for (int w = 0; w < writers; ++w) stores.push_back(std::make_unique<PostgresUsageStore>(options));
  IngestService::Options ingest_options;
  ingest_options.max_write_events = static_cast<size_t>(absl::GetFlag(FLAGS_max_write_events));
  ingest_options.queue_capacity = static_cast<size_t>(absl::GetFlag(FLAGS_queue_capacity));
  IngestService service(std::move(stores), ingest_options, **metrics);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(16 << 20);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "ledger_bench: cannot start the gRPC server\n");
    return false;
  }

  const int streams = std::max(1, absl::GetFlag(FLAGS_streams));
  const int window = std::max(1, absl::GetFlag(FLAGS_window));
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> inserted{0};
  std::atomic<int64_t> duplicates{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> clients;
  const absl::Time start = absl::Now();
  for (int s = 0; s < streams; ++s) {
    clients.emplace_back([&, s] {
      grpc::ChannelArguments args;
      args.SetInt("tollgate.bench_stream", s);  // a connection of its own, like one gateway each
      std::unique_ptr<v1::Ledger::Stub> stub = v1::Ledger::NewStub(grpc::CreateCustomChannel(
          absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials(), args));
      grpc::ClientContext ctx;
      std::unique_ptr<grpc::ClientReaderWriter<v1::IngestBatch, v1::IngestAck>> stream =
          stub->Ingest(&ctx);
      std::counting_semaphore<> room(window);
      std::atomic<int64_t> sent{0};
      std::atomic<bool> ended{false};
      std::thread reader([&] {
        v1::IngestAck ack;
        while (stream->Read(&ack)) {
          inserted += ack.inserted();
          duplicates += ack.duplicates();
          sent.fetch_sub(1);
          room.release();
        }
        ended = true;
        room.release(window);  // a writer waiting for room sees the end
      });
      v1::IngestBatch message;
      uint64_t batch_id = 0;
      for (;;) {
        const int64_t first = next.fetch_add(batch);
        if (first >= total) break;
        const int64_t n = std::min<int64_t>(batch, total - first);
        message.set_batch_id(++batch_id);
        if (message.events_size() != n) {
          message.clear_events();
          for (int64_t i = first; i < first + n; ++i) {
            *message.add_events() = MakeEvent(i, base_us, spacing_us);
          }
        } else {
          // The load generator stands in for gateways on other hosts: it reuses its messages
          // and renews only what makes each event new (id, request id, time), so that the
          // machine's cores go to the ledger and PostgreSQL.
          for (int64_t j = 0; j < n; ++j) {
            v1::UsageEvent& e = *message.mutable_events(static_cast<int>(j));
            const int64_t i = first + j;
            e.set_time_unix_us(base_us + i * spacing_us);
            e.set_event_id(NewRequestId(e.time_unix_us() / 1000));
            e.set_request_id(absl::StrCat("req-", i));
          }
        }
        room.acquire();
        if (ended) break;
        sent.fetch_add(1);
        if (!stream->Write(message)) break;
      }
      stream->WritesDone();
      reader.join();
      const grpc::Status status = stream->Finish();
      if (!status.ok() || sent.load() != 0) {
        std::fprintf(stderr, "stream %d: %s (%lld batches unacknowledged)\n", s,
                     status.error_message().c_str(), static_cast<long long>(sent.load()));
        failed = true;
      }
    });
  }
  for (std::thread& t : clients) t.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  service.Stop();
  if (failed) return false;
  if (inserted.load() != total || duplicates.load() != 0) {
    std::fprintf(stderr, "acks account for %lld inserted and %lld duplicates, not %lld new\n",
                 static_cast<long long>(inserted.load()), static_cast<long long>(duplicates.load()),
                 static_cast<long long>(total));
    return false;
  }
  const prometheus::ClientMetric::Histogram writes =
      (*metrics)->db_write_events().Collect().histogram;
  std::printf(
      "ingest via Ledger.Ingest (gRPC, loopback): %lld events, %d streams x %d batches of %d in "
      "flight, %d writers: %.2f s = %.0f events/s (%llu transactions, %.0f events each on "
      "average)\n",
      static_cast<long long>(total), streams, window, batch, writers, seconds, total / seconds,
      static_cast<unsigned long long>(writes.sample_count),
      writes.sample_count == 0 ? 0.0 : writes.sample_sum / writes.sample_count);
  return true;
}

int Run() {
  const std::string url = absl::GetFlag(FLAGS_database_url);
  if (url.empty()) {
    std::fprintf(stderr, "ledger_bench: --database_url is required\n");
    return 2;
  }
  if (absl::GetFlag(FLAGS_query_runs) < 1 || absl::GetFlag(FLAGS_writers) < 1 ||
      absl::GetFlag(FLAGS_batch) < 1 || absl::GetFlag(FLAGS_ingest_events) < 0) {
    std::fprintf(stderr,
                 "ledger_bench: --query_runs, --writers and --batch must be at least 1, "
                 "--ingest_events at least 0\n");
    return 2;
  }
  PostgresUsageStore::Options options;
  options.database_url = url;
  options.statement_timeout = absl::ZeroDuration();
  {
    PostgresUsageStore store(options);
    if (absl::Status s = store.Migrate(); !s.ok()) {
      std::fprintf(stderr, "migrate: %s\n", s.ToString().c_str());
      return 1;
    }
  }

  // ---- Ingest: events/s through the exactly-once insert (with rollups). ----
  const int64_t total = absl::GetFlag(FLAGS_ingest_events);
  const int writers = absl::GetFlag(FLAGS_writers);
  const int batch = absl::GetFlag(FLAGS_batch);
  const int64_t base_us = int64_t{1'735'689'600} * 1'000'000;  // 2025-01-01
  const int64_t spacing_us =
      std::max<int64_t>(1, int64_t{86'400'000'000} / std::max<int64_t>(1, total));
  const std::string via = absl::GetFlag(FLAGS_via);
  if (via == "service") {
    if (!IngestViaService(options, total, writers, batch, base_us, spacing_us)) return 1;
  } else if (via == "store") {
    std::atomic<int64_t> next{0};
    std::atomic<bool> failed{false};
    std::vector<std::thread> threads;
    const absl::Time start = absl::Now();
    for (int w = 0; w < writers; ++w) {
      threads.emplace_back([&] {
        PostgresUsageStore store(options);
        std::vector<v1::UsageEvent> events;
        for (;;) {
          const int64_t first = next.fetch_add(batch);
          if (first >= total) return;
          events.clear();
          for (int64_t i = first; i < std::min(total, first + batch); ++i) {
            events.push_back(MakeEvent(i, base_us, spacing_us));
          }
          absl::StatusOr<InsertResult> r = store.InsertBatch(events);
          if (!r.ok()) {
            std::fprintf(stderr, "insert: %s\n", r.status().ToString().c_str());
            failed = true;
            return;
          }
        }
      });
    }
    for (std::thread& t : threads) t.join();
    if (failed) return 1;
    const double ingest_s = absl::ToDoubleSeconds(absl::Now() - start);
    std::printf(
        "ingest via InsertBatch: %lld events, %d writers, batch %d: %.2f s = %.0f events/s\n",
        static_cast<long long>(total), writers, batch, ingest_s, total / ingest_s);
  } else {
    std::fprintf(stderr, "ledger_bench: --via must be service or store\n");
    return 2;
  }

  // ---- Query: a month of generated events (2024-03-01 .. 2024-03-31). ----
  const int64_t n = absl::GetFlag(FLAGS_query_events);
  const int64_t month_start = 1'709'251'200;  // 2024-03-01T00:00:00Z
  const int64_t days = 30;
  try {
    pqxx::connection c(url);
    c.set_variable("statement_timeout", "0");
    c.set_variable("TimeZone", "'UTC'");
    const absl::Time gen_start = absl::Now();
    {
      pqxx::work txn(c);
      txn.exec_params("SELECT tollgate_ensure_usage_partition(to_timestamp($1::bigint))",
                      month_start);
      txn.commit();
    }
    // Costs satisfy usage_events_cost_reproducible: (input - cached) * 2.5e6 + cached * 1.25e6 +
    // output * 1e7 pico-dollars. Spread evenly over 30 days; 20 teams x 10 features x 2
    // deployments x 50 keys.
    pqxx::work txn(c);
    txn.exec_params(
        "WITH g AS (SELECT i, to_timestamp($2::bigint) + (i % ($3::bigint * 86400)) * "
        "interval '1 second' AS ts, 500 + i % 3000 AS input, i % 400 AS cached, 50 + i % 700 "
        "AS output FROM generate_series(1, $1::bigint) i), "
        "ids AS (INSERT INTO usage_event_ids (event_id, ts) SELECT 'gen-' || i, ts FROM g) "
        "INSERT INTO usage_events (event_id, ts, team, feature, api_key_id, environment, "
        "endpoint, requested_model, served_deployment, provider, upstream_model, region, "
        "input_tokens, cached_input_tokens, output_tokens, price_input_pico, "
        "price_cached_input_pico, price_output_pico, price_card_version, cost_usd, http_status) "
        "SELECT 'gen-' || i, ts, 'team-' || (i % 20), 'feature-' || (i % 10), 'key-' || (i % 50), "
        "'prod', '/v1/chat/completions', 'gpt-4o', "
        "CASE WHEN i % 2 = 1 THEN 'openai-gpt-4o' ELSE 'azure-gpt-4o' END, "
        "CASE WHEN i % 2 = 1 THEN 'openai' ELSE 'azure' END, 'gpt-4o-2024-08-06', 'us', "
        "input, cached, output, 2500000, 1250000, 10000000, 'bench', "
        "((input - cached)::numeric * 2500000 + cached::numeric * 1250000 + "
        "output::numeric * 10000000) * 0.000000000001, 200 FROM g",
        n, month_start, days);
    txn.exec_params(
        "INSERT INTO usage_rollups_hourly SELECT date_trunc('hour', ts, 'UTC'), team, feature, "
        "customer, api_key_id, environment, requested_model, served_deployment, provider, "
        "upstream_model, region, endpoint, count(*), sum(input_tokens), sum(cached_input_tokens), "
        "sum(cache_write_5m_tokens), sum(cache_write_1h_tokens), sum(output_tokens), "
        "sum(reasoning_tokens), sum(cost_usd) FROM usage_events WHERE ts >= to_timestamp($1) "
        "AND ts < to_timestamp($2) GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12",
        month_start, month_start + days * 86400);
    // The daily rollups (migration 0006), as the ledger maintains them.
    txn.exec_params(
        "INSERT INTO usage_rollups_daily SELECT date_trunc('day', hour, 'UTC'), team, feature, "
        "customer, api_key_id, environment, requested_model, served_deployment, provider, "
        "upstream_model, region, endpoint, sum(requests), sum(input_tokens), "
        "sum(cached_input_tokens), sum(cache_write_5m_tokens), sum(cache_write_1h_tokens), "
        "sum(output_tokens), sum(reasoning_tokens), sum(cost_usd) FROM usage_rollups_hourly "
        "WHERE hour >= to_timestamp($1) AND hour < to_timestamp($2) "
        "GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12",
        month_start, month_start + days * 86400);
    txn.commit();
    pqxx::nontransaction(c).exec(
        "ANALYZE usage_events; ANALYZE usage_rollups_hourly; ANALYZE usage_rollups_daily");
    const pqxx::row counts = pqxx::nontransaction(c).exec1(
        "SELECT (SELECT count(*) FROM usage_events), (SELECT count(*) FROM "
        "usage_rollups_hourly), (SELECT count(*) FROM usage_rollups_daily)");
    std::printf(
        "generated: %lld events over %lld days in %.1f s (table now %s events, %s "
        "hourly and %s daily rollup rows)\n",
        static_cast<long long>(n), static_cast<long long>(days),
        absl::ToDoubleSeconds(absl::Now() - gen_start), counts[0].c_str(), counts[1].c_str(),
        counts[2].c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "generate: %s\n", e.what());
    return 1;
  }

  PostgresUsageStore store(options);
  v1::SpendQuery q;
  q.add_group_by("team");
  q.add_group_by("feature");
  q.set_start_unix_s(month_start);
  q.set_end_unix_s(month_start + days * 86400);
  auto time_query = [&](SpendSource source, int runs, const char* label) -> int {
    std::vector<double> ms;
    v1::SpendResponse last;
    for (int i = 0; i < runs; ++i) {
      const absl::Time t0 = absl::Now();
      absl::StatusOr<v1::SpendResponse> r = store.QuerySpendFrom(q, absl::Minutes(10), source);
      ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
      if (!r.ok()) {
        std::fprintf(stderr, "query: %s\n", r.status().ToString().c_str());
        return 1;
      }
      last = *r;
    }
    std::sort(ms.begin(), ms.end());
    std::printf(
        "spend query (%s, 30 days, group by team,feature -> %d rows, %lld requests, "
        "%s USD): runs %d, p50 %.1f ms, p95 %.1f ms, max %.1f ms\n",
        label, last.rows_size(), static_cast<long long>(last.total().requests()),
        last.total().cost_usd().c_str(), runs, ms[ms.size() / 2],
        ms[std::min(ms.size() - 1, ms.size() * 95 / 100)], ms.back());
    return 0;
  };
  if (time_query(SpendSource::kAuto, absl::GetFlag(FLAGS_query_runs), "auto: daily rollups") != 0) {
    return 1;
  }
  if (time_query(SpendSource::kRollups, absl::GetFlag(FLAGS_query_runs), "hourly rollups") != 0) {
    return 1;
  }
  // "--since 30d"-style bounds (not on whole hours): daily rollups for the whole days, hourly
  // rollups for the hours around them, raw events at the two partial-hour edges.
  q.set_start_unix_s(month_start + 1800);
  q.set_end_unix_s(month_start + days * 86400 - 1800);
  if (time_query(SpendSource::kAuto, absl::GetFlag(FLAGS_query_runs),
                 "auto: unaligned bounds, daily + hourly rollups + raw edges") != 0) {
    return 1;
  }
  q.set_start_unix_s(month_start);
  q.set_end_unix_s(month_start + days * 86400);
  if (time_query(SpendSource::kEvents, 1, "raw events, for comparison") != 0) return 1;
  return 0;
}

}  // namespace
}  // namespace tollgate::ledger

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return tollgate::ledger::Run();
}
