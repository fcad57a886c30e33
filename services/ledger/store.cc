#include "services/ledger/store.h"

#include <array>
#include <cmath>
#include <exception>
#include <limits>
#include <map>
#include <optional>
#include <pqxx/pqxx>
#include <pqxx/tablewriter>
#include <set>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/civil_time.h"
#include "services/common/logging.h"
#include "services/common/money.h"
#include "services/common/status.h"
#include "services/ledger/focus.h"
#include "services/ledger/migrations.h"
#include "services/ledger/reprice.h"
#include "services/ledger/spend_math.h"
#include "services/ledger/spend_query.h"
#include "services/ledger/usage_event.h"

namespace tollgate::ledger {
namespace {

// ---- Staging table: one COPY per batch, then one INSERT ... ON CONFLICT into usage_events. ----

// Each staging column appends its value's text to `out` (COPY escaping is applied afterwards).
void Bool(bool b, std::string& out) { out += b ? 't' : 'f'; }
void Int(int64_t v, std::string& out) { absl::StrAppend(&out, v); }
void Text(std::string_view v, std::string& out) { out.append(v.data(), v.size()); }

void TagsJson(const v1::Attribution& a, std::string& out) {
  if (a.tags().empty()) {
    out += "{}";
    return;
  }
  // Sorted keys: the proto map's order is unspecified (jsonb normalises anyway).
  std::map<std::string_view, std::string_view> tags(a.tags().begin(), a.tags().end());
  out += '{';
  bool first = true;
  for (const auto& [key, value] : tags) {
    if (!first) out += ',';
    first = false;
    out += '"';
    AppendJsonEscaped(out, key);
    out += "\":\"";
    AppendJsonEscaped(out, value);
    out += '"';
  }
  out += '}';
}

void AttemptsJson(const v1::UsageEvent& e, std::string& out) {
  out += '[';
  for (int i = 0; i < e.attempts_size(); ++i) {
    const v1::Attempt& a = e.attempts(i);
    if (i > 0) out += ',';
    out += "{\"deployment_id\":\"";
    AppendJsonEscaped(out, a.deployment_id());
    absl::StrAppend(&out, "\",\"http_status\":", a.http_status(), ",\"error\":\"");
    AppendJsonEscaped(out, a.error());
    absl::StrAppend(&out, "\",\"latency_us\":", a.latency_us(), "}");
  }
  out += ']';
}

struct StagingColumn {
  std::string_view name;  // staging column; the usage_events column of the same name
  std::string_view type;
  void (*append)(const v1::UsageEvent&, std::string& out);
};

// The single source of the column order for the staging table, the COPY and the INSERT.
constexpr StagingColumn kStagingColumns[] = {
    {"event_id", "text",
     [](const v1::UsageEvent& e, std::string& out) { Text(e.event_id(), out); }},
    {"request_id", "text",
     [](const v1::UsageEvent& e, std::string& out) { Text(e.request_id(), out); }},
    {"time_unix_us", "bigint",
     [](const v1::UsageEvent& e, std::string& out) { Int(e.time_unix_us(), out); }},
    {"team", "text",
     [](const v1::UsageEvent& e, std::string& out) { Text(e.attribution().team(), out); }},
    {"feature", "text",
     [](const v1::UsageEvent& e, std::string& out) { Text(e.attribution().feature(), out); }},
    {"customer", "text",
     [](const v1::UsageEvent& e, std::string& out) { Text(e.attribution().customer(), out); }},
    {"api_key_id", "text",
     [](const v1::UsageEvent& e, std::string& out) { Text(e.attribution().api_key_id(), out); }},
    {"environment", "text",
     [](const v1::UsageEvent& e, std::string& out) { Text(e.attribution().environment(), out); }},
    {"tags", "jsonb",
     [](const v1::UsageEvent& e, std::string& out) { TagsJson(e.attribution(), out); }},
    {"endpoint", "text",
     [](const v1::UsageEvent& e, std::string& out) { Text(e.endpoint(), out); }},
    {"requested_model", "text",
     [](const v1::UsageEvent& e, std::string& out) { Text(e.requested_model(), out); }},
    {"served_deployment", "text",
     [](const v1::UsageEvent& e, std::string& out) { Text(e.served_deployment(), out); }},
    {"provider", "text",
     [](const v1::UsageEvent& e, std::string& out) { Text(e.provider(), out); }},
    {"upstream_model", "text",
     [](const v1::UsageEvent& e, std::string& out) { Text(e.upstream_model(), out); }},
    {"region", "text", [](const v1::UsageEvent& e, std::string& out) { Text(e.region(), out); }},
    {"stream", "boolean", [](const v1::UsageEvent& e, std::string& out) { Bool(e.stream(), out); }},
    {"input_tokens", "bigint",
     [](const v1::UsageEvent& e, std::string& out) { Int(e.usage().input_tokens(), out); }},
    {"cached_input_tokens", "bigint",
     [](const v1::UsageEvent& e, std::string& out) { Int(e.usage().cached_input_tokens(), out); }},
    {"cache_write_5m_tokens", "bigint",
     [](const v1::UsageEvent& e, std::string& out) {
       Int(e.usage().cache_write_5m_tokens(), out);
     }},
    {"cache_write_1h_tokens", "bigint",
     [](const v1::UsageEvent& e, std::string& out) {
       Int(e.usage().cache_write_1h_tokens(), out);
     }},
    {"output_tokens", "bigint",
     [](const v1::UsageEvent& e, std::string& out) { Int(e.usage().output_tokens(), out); }},
    {"reasoning_tokens", "bigint",
     [](const v1::UsageEvent& e, std::string& out) { Int(e.usage().reasoning_tokens(), out); }},
    {"usage_estimated", "boolean",
     [](const v1::UsageEvent& e, std::string& out) { Bool(e.usage().estimated(), out); }},
    {"price_input_pico", "bigint",
     [](const v1::UsageEvent& e, std::string& out) { Int(e.prices().input_pico(), out); }},
    {"price_cached_input_pico", "bigint",
     [](const v1::UsageEvent& e, std::string& out) { Int(e.prices().cached_input_pico(), out); }},
    {"price_cache_write_5m_pico", "bigint",
     [](const v1::UsageEvent& e, std::string& out) { Int(e.prices().cache_write_5m_pico(), out); }},
    {"price_cache_write_1h_pico", "bigint",
     [](const v1::UsageEvent& e, std::string& out) { Int(e.prices().cache_write_1h_pico(), out); }},
    {"price_output_pico", "bigint",
     [](const v1::UsageEvent& e, std::string& out) { Int(e.prices().output_pico(), out); }},
    {"price_reasoning_pico", "bigint",
     [](const v1::UsageEvent& e, std::string& out) { Int(e.prices().reasoning_pico(), out); }},
    {"price_card_version", "text",
     [](const v1::UsageEvent& e, std::string& out) { Text(e.prices().price_card_version(), out); }},
    // Exact decimal text from the integer, never through a float.
    {"cost_usd", "numeric(38,12)",
     [](const v1::UsageEvent& e, std::string& out) { out += FormatPicoUsd(e.cost_pico()); }},
    {"latency_us", "bigint",
     [](const v1::UsageEvent& e, std::string& out) { Int(e.latency_us(), out); }},
    {"ttft_us", "bigint", [](const v1::UsageEvent& e, std::string& out) { Int(e.ttft_us(), out); }},
    {"http_status", "integer",
     [](const v1::UsageEvent& e, std::string& out) { Int(e.http_status(), out); }},
    {"error_code", "text",
     [](const v1::UsageEvent& e, std::string& out) { Text(e.error_code(), out); }},
    {"attempts", "jsonb", [](const v1::UsageEvent& e, std::string& out) { AttemptsJson(e, out); }},
};
constexpr size_t kStagingColumnCount = std::size(kStagingColumns);
// Appends `value` to a COPY text-format line: backslash, tab, newline and carriage return are
// escaped (no value is NULL).
void AppendCopyEscaped(std::string_view value, std::string& line) {
  size_t start = 0;
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c != '\\' && c != '\t' && c != '\n' && c != '\r') continue;
    line.append(value.data() + start, i - start);
    line += '\\';
    line += c == '\\' ? '\\' : c == '\t' ? 't' : c == '\n' ? 'n' : 'r';
    start = i + 1;
  }
  line.append(value.data() + start, value.size() - start);
}

// One staging row as a COPY text line (without its newline), built in `line`.
void StagingLine(const v1::UsageEvent& e, std::string& scratch, std::string& line) {
  line.clear();
  for (size_t i = 0; i < kStagingColumnCount; ++i) {
    if (i > 0) line += '\t';
    scratch.clear();
    kStagingColumns[i].append(e, scratch);
    AppendCopyEscaped(scratch, line);
  }
}

constexpr char kStagingTable[] = "tollgate_ingest_staging";

std::string CreateStagingSql() {
  std::vector<std::string> columns;
  for (const StagingColumn& c : kStagingColumns) {
    columns.push_back(absl::StrCat(std::string(c.name), " ", std::string(c.type)));
  }
  // A session-local table emptied at every commit: created once per connection, no catalog churn
  // per batch.
  return absl::StrCat("CREATE TEMP TABLE IF NOT EXISTS ", kStagingTable, " (",
                      absl::StrJoin(columns, ", "), ") ON COMMIT DELETE ROWS");
}

constexpr std::string_view kRollupTokenColumns[] = {
    "input_tokens",          "cached_input_tokens", "cache_write_5m_tokens",
    "cache_write_1h_tokens", "output_tokens",       "reasoning_tokens"};

// `result` is what the statement returns after the inserts (the text after SELECT, over the CTEs
// new_ids and ins).
std::string InsertFromStagingSql(std::string_view result) {
  std::vector<std::string> targets;
  std::vector<std::string> values;
  for (const StagingColumn& c : kStagingColumns) {
    if (c.name == "time_unix_us") {
      targets.push_back("ts");
      // Exact to the microsecond (to_timestamp() goes through a double).
      values.push_back("timestamptz 'epoch' + time_unix_us * interval '1 microsecond'");
    } else {
      targets.emplace_back(c.name);
      values.emplace_back(c.name);
    }
  }
  // Exactly once: an event is inserted only if its id is new to usage_event_ids (a concurrent
  // writer of the same id waits for the other transaction, then sees the conflict). The rollups are
  // fed from the rows this statement inserted, never from the staging table, so a replay adds
  // nothing; rollup keys are upserted in key order so concurrent writers lock them in one order.
  const std::string dims = absl::StrJoin(SpendDimensions(), ", ");
  std::string sums;
  for (std::string_view col : kRollupTokenColumns) {
    absl::StrAppend(&sums, ", sum(", std::string(col), ")");
  }
  std::string updates = "requests = r.requests + EXCLUDED.requests";
  for (std::string_view col : kRollupTokenColumns) {
    absl::StrAppend(&updates, ", ", std::string(col), " = r.", std::string(col), " + EXCLUDED.",
                    std::string(col));
  }
  absl::StrAppend(&updates, ", cost_usd = r.cost_usd + EXCLUDED.cost_usd");
  std::string token_cols;
  for (std::string_view col : kRollupTokenColumns)
    absl::StrAppend(&token_cols, ", ", std::string(col));
  return absl::StrCat(
      "WITH new_ids AS (INSERT INTO usage_event_ids (event_id, ts) SELECT event_id, "
      "timestamptz 'epoch' + time_unix_us * interval '1 microsecond' FROM ",
      kStagingTable, " ON CONFLICT (event_id) DO NOTHING RETURNING event_id), ",
      "ins AS (INSERT INTO usage_events (", absl::StrJoin(targets, ", "), ") SELECT ",
      absl::StrJoin(values, ", "), " FROM ", kStagingTable,
      " WHERE event_id IN (SELECT event_id FROM new_ids) RETURNING ts, ", dims, token_cols,
      ", cost_usd), ", "roll AS (INSERT INTO usage_rollups_hourly AS r (hour, ", dims, ", requests",
      token_cols, ", cost_usd) SELECT date_trunc('hour', ts, 'UTC'), ", dims, ", count(*)", sums,
      ", sum(cost_usd) FROM ins GROUP BY 1, ", dims, " ORDER BY 1, ", dims, " ON CONFLICT (hour, ",
      dims, ") DO UPDATE SET ", updates, " RETURNING 1), ",
      // The daily rollups likewise (migration 0006), after every hourly row, in key order.
      "roll_daily AS (INSERT INTO usage_rollups_daily AS r (day, ", dims, ", requests", token_cols,
      ", cost_usd) SELECT date_trunc('day', ts, 'UTC'), ", dims, ", count(*)", sums,
      ", sum(cost_usd) FROM ins GROUP BY 1, ", dims, " ORDER BY 1, ", dims, " ON CONFLICT (day, ",
      dims, ") DO UPDATE SET ", updates, " RETURNING 1) ", "SELECT ", std::string(result));
}

std::vector<std::string> StagingColumnNames() {
  std::vector<std::string> names;
  for (const StagingColumn& c : kStagingColumns) names.emplace_back(c.name);
  return names;
}

// ---- Errors. ----

// Maps a server error to the code that tells the caller what to do (see store.h). `connection_bad`
// is set for errors after which the session cannot be trusted.
absl::StatusCode CodeForSqlState(const std::string& state, bool& connection_bad) {
  auto is = [&](absl::string_view prefix) { return absl::StartsWith(state, prefix); };
  if (is("08") || is("57P") || state == "25006") {
    // Connection exceptions, administrator/crash shutdown, or a read-only (standby) server after
    // a failover: a new connection may reach a healthy primary.
    connection_bad = true;
    return absl::StatusCode::kUnavailable;
  }
  if (is("53")) return absl::StatusCode::kUnavailable;               // insufficient resources
  if (state == "57014") return absl::StatusCode::kDeadlineExceeded;  // statement_timeout
  if (is("40")) return absl::StatusCode::kAborted;  // serialization failure, deadlock
  if (state == "22003") return absl::StatusCode::kOutOfRange;
  if (is("22") || is("23")) return absl::StatusCode::kInvalidArgument;
  if (state == "42P01" || state == "42703") return absl::StatusCode::kFailedPrecondition;
  return absl::StatusCode::kInternal;
}

std::string FirstLine(const char* what) {
  std::string_view text(what);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  const size_t nl = text.find('\n');
  return std::string(nl == std::string_view::npos ? text : text.substr(0, nl));
}

std::string WithConnectTimeout(const std::string& url, absl::Duration timeout) {
  if (absl::StrContains(url, "connect_timeout")) return url;
  const int64_t seconds =
      std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(timeout, absl::Seconds(1))));
  if (absl::StartsWith(url, "postgresql://") || absl::StartsWith(url, "postgres://")) {
    return absl::StrCat(url, absl::StrContains(url, "?") ? "&" : "?", "connect_timeout=", seconds);
  }
  return absl::StrCat(url, url.empty() ? "" : " ", "connect_timeout=", seconds);
}

int64_t CeilMillis(absl::Duration d) {
  return std::max<int64_t>(1, absl::ToInt64Milliseconds(absl::Ceil(d, absl::Milliseconds(1))));
}

}  // namespace

struct PostgresUsageStore::Impl {
  explicit Impl(Options o) : options(std::move(o)) {}

  absl::Status EnsureConnected() {
    if (conn != nullptr && conn->is_open()) return absl::OkStatus();
    // Never let libpqxx reactivate a broken connection behind our back: session state (the
    // staging table, settings) would silently be gone. Start over instead.
    Drop();
    try {
      auto c = std::make_unique<pqxx::connection>(
          WithConnectTimeout(options.database_url, options.connect_timeout));
      const std::string timeout_ms = options.statement_timeout > absl::ZeroDuration()
                                         ? absl::StrCat(CeilMillis(options.statement_timeout))
                                         : "0";
      c->set_variable("statement_timeout", timeout_ms);
      c->set_variable("TimeZone", "'UTC'");
      // CREATE ... IF NOT EXISTS notices would go to stderr.
      c->set_variable("client_min_messages", "warning");
      c->set_variable("application_name", absl::StrCat("'", c->esc(options.application_name), "'"));
      conn = std::move(c);
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return absl::UnavailableError(
          absl::StrCat("cannot connect to PostgreSQL: ", FirstLine(e.what())));
    }
  }

  void Drop() {
    conn.reset();
    staging_backend_pid = 0;
  }

  // Runs `f(connection)` and turns every exception into a Status (see store.h).
  template <typename T, typename F>
  absl::StatusOr<T> Run(std::string_view op, F&& f) {
    TOLLGATE_RETURN_IF_ERROR(EnsureConnected());
    absl::Status status;
    try {
      return f(*conn);
    } catch (const pqxx::in_doubt_error& e) {
      // The commit may or may not have happened; callers retry idempotent work.
      Drop();
      status = absl::UnavailableError(
          absl::StrCat(std::string(op),
                       ": connection lost during commit (outcome unknown): ", FirstLine(e.what())));
    } catch (const pqxx::broken_connection& e) {
      Drop();
      status = absl::UnavailableError(
          absl::StrCat(std::string(op), ": connection to PostgreSQL lost: ", FirstLine(e.what())));
    } catch (const pqxx::sql_error& e) {
      bool connection_bad = false;
      const absl::StatusCode code = CodeForSqlState(e.sqlstate(), connection_bad);
      if (connection_bad) Drop();
      status = absl::Status(code, absl::StrCat(std::string(op), ": ", FirstLine(e.what()),
                                               " (SQLSTATE ", e.sqlstate(), ")"));
    } catch (const std::exception& e) {
      status = absl::InternalError(absl::StrCat(std::string(op), ": ", FirstLine(e.what())));
    }
    if (conn != nullptr && !conn->is_open()) Drop();
    return status;
  }

  Options options;
  std::unique_ptr<pqxx::connection> conn;
  // Backend that has the staging table (0: none). A new backend needs it created again.
  int staging_backend_pid = 0;
  // Month starts (Unix seconds, UTC) whose usage_events partition is known to exist.
  std::set<int64_t> known_partitions;
};

PostgresUsageStore::PostgresUsageStore(Options options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

PostgresUsageStore::~PostgresUsageStore() = default;

absl::Status PostgresUsageStore::Connect() { return impl_->EnsureConnected(); }

absl::Status PostgresUsageStore::Migrate() { return MigrateTo(std::numeric_limits<int>::max()); }

absl::Status PostgresUsageStore::MigrateTo(int max_version) {
  const std::vector<Migration>& migrations = EmbeddedMigrations();
  TOLLGATE_RETURN_IF_ERROR(ValidateMigrations(migrations));
  absl::StatusOr<int> applied =
      impl_->Run<int>("migrate", [&](pqxx::connection& c) -> absl::StatusOr<int> {
        pqxx::work txn(c);
        // Serialises replicas starting together; released at commit or rollback.
        txn.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLockKey);
        txn.exec(
            "CREATE TABLE IF NOT EXISTS tollgate_schema_migrations ("
            "version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())");
        std::map<int, std::string> done;
        for (const pqxx::row& row :
             txn.exec("SELECT version, name FROM tollgate_schema_migrations")) {
          done.emplace(row[0].as<int>(), row[1].as<std::string>());
        }
        int count = 0;
        for (const Migration& m : migrations) {
          if (m.version > max_version) break;
          auto it = done.find(m.version);
          if (it != done.end()) {
            if (it->second != m.name) {
              return absl::FailedPreconditionError(
                  absl::StrCat("migration ", m.version, " is recorded as \"", it->second,
                               "\" but this binary's is \"", std::string(m.name),
                               "\"; applied migrations must never change"));
            }
            done.erase(it);
            continue;
          }
          txn.exec(std::string(m.sql));
          txn.exec_params("INSERT INTO tollgate_schema_migrations (version, name) VALUES ($1, $2)",
                          m.version, std::string(m.name));
          LogInfo("applied migration", {{"version", absl::StrCat(m.version)}, {"name", m.name}});
          ++count;
        }
        if (!done.empty()) {
          // Migrations are forward-compatible by convention (additive), so an older binary may run
          // against a newer schema during a rolling upgrade.
          LogWarn(
              "database schema is newer than this binary",
              {{"latest_applied", absl::StrCat(done.rbegin()->first)},
               {"latest_known", absl::StrCat(migrations.empty() ? 0 : migrations.back().version)}});
        }
        txn.commit();
        return count;
      });
  if (!applied.ok()) return applied.status();
  return absl::OkStatus();
}

namespace {

absl::CivilMonth MonthOf(absl::Time t) {
  return absl::CivilMonth(absl::ToCivilSecond(t, absl::UTCTimeZone()));
}

int64_t MonthStartUnixS(absl::CivilMonth m) {
  return absl::ToUnixSeconds(absl::FromCivil(m, absl::UTCTimeZone()));
}

}  // namespace

absl::Status PostgresUsageStore::EnsurePartition(int64_t month_start_unix_s) {
  absl::StatusOr<int> done =
      impl_->Run<int>("create usage partition", [&](pqxx::connection& c) -> absl::StatusOr<int> {
        pqxx::work txn(c);
        txn.exec_params("SELECT tollgate_ensure_usage_partition(to_timestamp($1::bigint))",
                        month_start_unix_s);
        txn.commit();
        return 0;
      });
  if (!done.ok()) return done.status();
  impl_->known_partitions.insert(month_start_unix_s);
  return absl::OkStatus();
}

absl::Status PostgresUsageStore::EnsurePartitionsFor(
    absl::Span<const std::vector<v1::UsageEvent>> batches) {
  std::set<int64_t> months;
  for (const std::vector<v1::UsageEvent>& events : batches) {
    for (const v1::UsageEvent& e : events) {
      months.insert(MonthStartUnixS(MonthOf(absl::FromUnixMicros(e.time_unix_us()))));
    }
  }
  for (int64_t m : months) {
    if (impl_->known_partitions.count(m) == 0) TOLLGATE_RETURN_IF_ERROR(EnsurePartition(m));
  }
  return absl::OkStatus();
}

absl::StatusOr<PartitionMaintenance> PostgresUsageStore::MaintainPartitions(absl::Time now,
                                                                            int months_ahead,
                                                                            int retention_months) {
  if (months_ahead < 0 || retention_months < 0) {
    return absl::InvalidArgumentError("months_ahead and retention_months must be >= 0");
  }
  PartitionMaintenance result;
  const absl::CivilMonth current = MonthOf(now);
  for (int i = 0; i <= months_ahead; ++i) {
    const int64_t m = MonthStartUnixS(current + i);
    TOLLGATE_RETURN_IF_ERROR(EnsurePartition(m));
    result.ensured_month_starts.push_back(m);
  }
  if (retention_months > 0) {
    const int64_t cutoff = MonthStartUnixS(current - retention_months);
    absl::StatusOr<std::vector<std::string>> dropped = impl_->Run<std::vector<std::string>>(
        "drop usage partitions",
        [&](pqxx::connection& c) -> absl::StatusOr<std::vector<std::string>> {
          pqxx::work txn(c);
          std::vector<std::string> names;
          for (const pqxx::row& row : txn.exec_params(
                   "SELECT tollgate_drop_usage_partitions_before(to_timestamp($1::bigint))",
                   cutoff)) {
            names.push_back(row[0].as<std::string>());
          }
          txn.commit();
          return names;
        });
    if (!dropped.ok()) return dropped.status();
    result.dropped_partitions = *std::move(dropped);
    impl_->known_partitions.clear();
  }
  return result;
}

absl::StatusOr<InsertResult> UsageStore::InsertBatch(const std::vector<v1::UsageEvent>& events) {
  TOLLGATE_ASSIGN_OR_RETURN(std::vector<InsertResult> results,
                            InsertBatches(absl::MakeConstSpan(&events, 1)));
  return results.at(0);
}

absl::StatusOr<std::vector<InsertResult>> PostgresUsageStore::InsertBatches(
    absl::Span<const std::vector<v1::UsageEvent>> batches) {
  std::vector<InsertResult> results(batches.size());
  size_t total = 0;
  for (const std::vector<v1::UsageEvent>& batch : batches) {
    for (const v1::UsageEvent& e : batch) TOLLGATE_RETURN_IF_ERROR(ValidateUsageEvent(e));
    total += batch.size();
  }
  if (total == 0) return results;
  // A repeated id within the call counts as a duplicate, like a replay of a stored one; the first
  // occurrence is the one staged (and credited to its batch if it is new).
  struct Staged {
    const v1::UsageEvent* event;
    size_t batch;
  };
  std::vector<Staged> unique;
  unique.reserve(total);
  std::unordered_set<std::string_view> seen;
  seen.reserve(total);
  for (size_t b = 0; b < batches.size(); ++b) {
    for (const v1::UsageEvent& e : batches[b]) {
      if (seen.insert(e.event_id()).second) unique.push_back({&e, b});
    }
  }

  TOLLGATE_RETURN_IF_ERROR(EnsurePartitionsFor(batches));

  static const std::string kCreateStaging = CreateStagingSql();
  // One batch needs only the count of new rows; several need to know which events were new.
  static const std::string kInsertCount = InsertFromStagingSql("count(*)::bigint FROM ins");
  static const std::string kInsertIds = InsertFromStagingSql("event_id FROM new_ids");
  static const std::vector<std::string> kColumns = StagingColumnNames();
  const bool single = batches.size() == 1;

  absl::StatusOr<pqxx::result> inserted = impl_->Run<pqxx::result>(
      "insert usage batch", [&](pqxx::connection& c) -> absl::StatusOr<pqxx::result> {
        const int pid = c.backendpid();
        pqxx::work txn(c);
        if (impl_->staging_backend_pid != pid) txn.exec(kCreateStaging);
        {
      // COPY of lines built in reused buffers: pqxx 6.4's stream_to takes tuple rows only
      // (a string per field per event, converted and escaped again); its raw-line writer
      // is private, and the one public one is tablewriter's, deprecated in 6.x for its
      // own escaping, which is not used here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
          pqxx::tablewriter copy(txn, kStagingTable, kColumns.begin(), kColumns.end());
          std::string scratch;
          std::string line;
          for (const Staged& u : unique) {
            StagingLine(*u.event, scratch, line);
            copy.write_raw_line(line);
          }
          copy.complete();
#pragma GCC diagnostic pop
        }
        pqxx::result r = txn.exec(single ? kInsertCount : kInsertIds);
        txn.commit();
        // Only now: a rolled-back transaction would have taken the CREATE with it.
        impl_->staging_backend_pid = pid;
        return r;
      });
  if (!inserted.ok()) {
    // A partition may have been dropped by retention behind this connection's back: check again
    // on the retry.
    impl_->known_partitions.clear();
    return inserted.status();
  }
  if (single) {
    results[0].inserted = inserted->at(0).at(0).as<int64_t>();
  } else {
    std::unordered_set<std::string_view> new_ids;
    new_ids.reserve(inserted->size());
    for (const pqxx::row& r : *inserted) new_ids.emplace(r[0].c_str(), r[0].size());
    for (const Staged& u : unique) {
      if (new_ids.count(u.event->event_id()) != 0) ++results[u.batch].inserted;
    }
  }
  for (size_t b = 0; b < batches.size(); ++b) {
    results[b].duplicates = static_cast<int64_t>(batches[b].size()) - results[b].inserted;
  }
  return results;
}

absl::StatusOr<v1::SpendResponse> PostgresUsageStore::QuerySpend(const v1::SpendQuery& query,
                                                                 absl::Duration timeout) {
  return QuerySpendFrom(query, timeout, SpendSource::kAuto);
}

namespace {

// Runs one built spend query inside `txn` (rows page and total).
template <typename Txn>
v1::SpendResponse RunSpendSql(Txn& txn, const SpendSql& sql, const v1::SpendQuery& query) {
  const pqxx::result rows =
      txn.exec_params(sql.rows_sql, pqxx::prepare::make_dynamic_params(sql.rows_params));
  const pqxx::result total =
      txn.exec_params(sql.total_sql, pqxx::prepare::make_dynamic_params(sql.total_params));
  auto fill = [](const pqxx::row& r, int first, v1::SpendRow& out) {
    out.set_requests(r[first].as<int64_t>());
    v1::TokenUsage* t = out.mutable_tokens();
    t->set_input_tokens(r[first + 1].as<int64_t>());
    t->set_cached_input_tokens(r[first + 2].as<int64_t>());
    t->set_cache_write_5m_tokens(r[first + 3].as<int64_t>());
    t->set_cache_write_1h_tokens(r[first + 4].as<int64_t>());
    t->set_output_tokens(r[first + 5].as<int64_t>());
    t->set_reasoning_tokens(r[first + 6].as<int64_t>());
    out.set_cost_usd(r[first + 7].as<std::string>());
  };
  v1::SpendResponse response;
  *response.mutable_group_by() = query.group_by();
  int n = 0;
  for (const pqxx::row& r : rows) {
    if (sql.page_size > 0 && n == sql.page_size) {
      response.set_next_page_token(MakePageToken(sql.offset + sql.page_size));
      break;
    }
    ++n;
    v1::SpendRow* out = response.add_rows();
    int col = 0;
    for (; col < sql.group_columns; ++col) out->add_group_values(r[col].as<std::string>());
    if (sql.bucketed) out->set_bucket_start_unix_s(r[col++].as<int64_t>());
    fill(r, col, *out);
  }
  if (total.size() == 1) fill(total[0], 0, *response.mutable_total());
  return response;
}

}  // namespace

absl::StatusOr<v1::SpendResponse> PostgresUsageStore::QuerySpendFrom(const v1::SpendQuery& query,
                                                                     absl::Duration timeout,
                                                                     SpendSource source) {
  TOLLGATE_ASSIGN_OR_RETURN(SpendSql sql, BuildSpendSql(query, source));
  if (timeout <= absl::ZeroDuration()) {
    return absl::DeadlineExceededError("spend query: deadline already expired");
  }
  // The previous period [start - length, start), same shape, every row (to match any page).
  std::optional<SpendSql> previous_sql;
  v1::SpendQuery previous;
  int64_t shift = 0;
  if (query.compare_previous()) {
    if (query.start_unix_s() == 0) {
      return absl::InvalidArgumentError("compare_previous needs start_unix_s");
    }
    const int64_t end =
        query.end_unix_s() != 0 ? query.end_unix_s() : absl::ToUnixSeconds(absl::Now()) + 1;
    shift = end - query.start_unix_s();
    if (shift <= 0) return absl::InvalidArgumentError("compare_previous: empty period");
    previous = query;
    previous.set_start_unix_s(std::max<int64_t>(1, query.start_unix_s() - shift));
    previous.set_end_unix_s(query.start_unix_s());
    previous.set_limit(0);
    previous.set_page_size(0);
    previous.clear_page_token();
    previous.set_compare_previous(false);
    TOLLGATE_ASSIGN_OR_RETURN(SpendSql built, BuildSpendSql(previous, SpendSource::kAuto));
    previous_sql = std::move(built);
  }
  absl::StatusOr<v1::SpendResponse> response = impl_->Run<v1::SpendResponse>(
      "spend query", [&](pqxx::connection& c) -> absl::StatusOr<v1::SpendResponse> {
        // One snapshot for rows, total and the previous period, so they agree even while events
        // arrive.
        pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> txn(c);
        if (timeout != absl::InfiniteDuration()) {
          txn.exec_params("SELECT set_config('statement_timeout', $1, true)",
                          absl::StrCat(CeilMillis(timeout)));
        }
        v1::SpendResponse current = RunSpendSql(txn, sql, query);
        if (previous_sql.has_value()) {
          const v1::SpendResponse before = RunSpendSql(txn, *previous_sql, previous);
          TOLLGATE_RETURN_IF_ERROR(AddComparison(current, before, shift, sql.bucketed));
          current.set_previous_start_unix_s(previous.start_unix_s());
          current.set_previous_end_unix_s(previous.end_unix_s());
        }
        txn.commit();
        return current;
      });
  if (!response.ok()) return response.status();
  TOLLGATE_RETURN_IF_ERROR(AddDerivedColumns(*response));
  return response;
}

absl::StatusOr<v1::RepriceResponse> UsageStore::Reprice(const v1::RepriceRequest&, absl::Duration) {
  return absl::UnimplementedError("this usage store cannot reprice");
}

absl::StatusOr<v1::RepriceResponse> PostgresUsageStore::Reprice(const v1::RepriceRequest& request,
                                                                absl::Duration timeout) {
  TOLLGATE_ASSIGN_OR_RETURN(RepriceSql sql, BuildRepriceSql(request));
  if (timeout <= absl::ZeroDuration()) {
    return absl::DeadlineExceededError("reprice: deadline already expired");
  }
  const std::string dims = absl::StrJoin(SpendDimensions(), ", ");
  std::string dims_match;
  for (const std::string& d : SpendDimensions()) {
    absl::StrAppend(&dims_match, " AND r.", d, " = d.", d);
  }
  return impl_->Run<v1::RepriceResponse>(
      "reprice", [&](pqxx::connection& c) -> absl::StatusOr<v1::RepriceResponse> {
        pqxx::work txn(c);
        if (timeout != absl::InfiniteDuration()) {
          txn.exec_params("SELECT set_config('statement_timeout', $1, true)",
                          absl::StrCat(CeilMillis(timeout)));
        }
        txn.exec_params("SELECT pg_advisory_xact_lock($1)", kRepriceLockKey);
        txn.exec_params(
            absl::StrCat("CREATE TEMP TABLE tollgate_reprice ON COMMIT DROP AS ", sql.select_sql),
            pqxx::prepare::make_dynamic_params(sql.params));
        v1::RepriceResponse response;
        response.set_dry_run(request.dry_run());
        if (!request.dry_run()) {
          response.set_repricing_id(
              txn.exec("SELECT 'rp-' || txid_current()").at(0).at(0).as<std::string>());
          txn.exec_params(
              "INSERT INTO usage_corrections (repricing_id, event_id, event_ts, old_cost_usd, "
              "new_cost_usd, delta_usd, price_input_pico, price_cached_input_pico, "
              "price_cache_write_5m_pico, price_cache_write_1h_pico, price_output_pico, "
              "price_reasoning_pico, price_card_version, reason) "
              "SELECT $1, event_id, ts, old_cost, new_cost, new_cost - old_cost, pin, pcached, "
              "pcw5m, pcw1h, pout, preas, $2, $3 FROM tollgate_reprice WHERE new_cost <> old_cost "
              "ORDER BY ts, event_id",
              response.repricing_id(), request.price_card_version(), request.reason());
          const pqxx::result groups = txn.exec(absl::StrCat(
              "SELECT count(*) FROM (SELECT 1 FROM tollgate_reprice WHERE new_cost <> old_cost "
              "GROUP BY date_trunc('hour', ts, 'UTC'), ",
              dims, ") g"));
          // Rows in key order, like the ingest upsert, so the two never deadlock.
          const pqxx::result updated = txn.exec(absl::StrCat(
              "UPDATE usage_rollups_hourly r SET cost_usd = r.cost_usd + d.delta FROM ("
              "SELECT date_trunc('hour', ts, 'UTC') AS hour, ",
              dims,
              ", sum(new_cost - old_cost) AS delta FROM tollgate_reprice "
              "WHERE new_cost <> old_cost GROUP BY 1, ",
              dims, " ORDER BY 1, ", dims, ") d WHERE r.hour = d.hour", dims_match));
          if (static_cast<int64_t>(updated.affected_rows()) != groups.at(0).at(0).as<int64_t>()) {
            // Every stored event is in a rollup; a missing one means the rollups were tampered
            // with. Refuse rather than make spend disagree with the corrections.
            return absl::InternalError(
                "reprice: hourly rollups are missing rows for repriced events; nothing written");
          }
          // The daily rollups (migration 0006) by the same deltas, after the hourly ones, in key
          // order (the ingest statement's lock order).
          const pqxx::result day_groups = txn.exec(absl::StrCat(
              "SELECT count(*) FROM (SELECT 1 FROM tollgate_reprice WHERE new_cost <> old_cost "
              "GROUP BY date_trunc('day', ts, 'UTC'), ",
              dims, ") g"));
          const pqxx::result day_updated = txn.exec(
              absl::StrCat("UPDATE usage_rollups_daily r SET cost_usd = r.cost_usd + d.delta FROM ("
                           "SELECT date_trunc('day', ts, 'UTC') AS day, ",
                           dims,
                           ", sum(new_cost - old_cost) AS delta FROM tollgate_reprice "
                           "WHERE new_cost <> old_cost GROUP BY 1, ",
                           dims, " ORDER BY 1, ", dims, ") d WHERE r.day = d.day", dims_match));
          if (static_cast<int64_t>(day_updated.affected_rows()) !=
              day_groups.at(0).at(0).as<int64_t>()) {
            return absl::InternalError(
                "reprice: daily rollups are missing rows for repriced events; nothing written");
          }
        }
        const pqxx::result summary = txn.exec(
            "SELECT served_deployment, count(*), count(*) FILTER (WHERE new_cost <> old_cost), "
            "COALESCE(sum(old_cost), 0)::numeric(38,12)::text, "
            "COALESCE(sum(new_cost), 0)::numeric(38,12)::text, "
            "COALESCE(sum(new_cost - old_cost), 0)::numeric(38,12)::text "
            "FROM tollgate_reprice GROUP BY ROLLUP (served_deployment) "
            "ORDER BY served_deployment NULLS LAST");
        // Deployments without events in range still get a row.
        std::map<std::string, v1::RepriceDeploymentResult> by_deployment;
        for (const v1::DeploymentPrices& p : request.prices()) {
          v1::RepriceDeploymentResult& r = by_deployment[p.deployment()];
          r.set_deployment(p.deployment());
          r.set_old_cost_usd("0.000000000000");
          r.set_new_cost_usd("0.000000000000");
          r.set_delta_usd("0.000000000000");
        }
        response.set_old_cost_usd("0.000000000000");
        response.set_new_cost_usd("0.000000000000");
        response.set_delta_usd("0.000000000000");
        for (const pqxx::row& row : summary) {
          if (row[0].is_null()) {  // the ROLLUP grand total
            response.set_events(row[1].as<int64_t>());
            response.set_changed_events(row[2].as<int64_t>());
            response.set_old_cost_usd(row[3].as<std::string>());
            response.set_new_cost_usd(row[4].as<std::string>());
            response.set_delta_usd(row[5].as<std::string>());
            continue;
          }
          v1::RepriceDeploymentResult& r = by_deployment[row[0].as<std::string>()];
          r.set_events(row[1].as<int64_t>());
          r.set_changed_events(row[2].as<int64_t>());
          r.set_old_cost_usd(row[3].as<std::string>());
          r.set_new_cost_usd(row[4].as<std::string>());
          r.set_delta_usd(row[5].as<std::string>());
        }
        for (auto& [name, r] : by_deployment) *response.add_deployments() = std::move(r);
        if (request.dry_run()) {
          txn.abort();
        } else {
          txn.commit();
        }
        LogInfo("reprice", {{"repricing_id", response.repricing_id()},
                            {"dry_run", request.dry_run() ? "true" : "false"},
                            {"events", absl::StrCat(response.events())},
                            {"changed_events", absl::StrCat(response.changed_events())},
                            {"delta_usd", response.delta_usd()}});
        return response;
      });
}

absl::StatusOr<v1::FocusChunk> UsageStore::FocusRecords(const v1::ExportFocusRequest&, int64_t,
                                                        int64_t, absl::Duration) {
  return absl::UnimplementedError("this usage store cannot export FOCUS");
}

absl::StatusOr<v1::FocusChunk> PostgresUsageStore::FocusRecords(
    const v1::ExportFocusRequest& request, int64_t from_unix_s, int64_t to_unix_s,
    absl::Duration timeout) {
  if (from_unix_s < 0 || to_unix_s <= from_unix_s || to_unix_s > kMaxQueryUnixS) {
    return absl::InvalidArgumentError("focus export: bad time range");
  }
  std::vector<std::string> params = {absl::StrCat(from_unix_s), absl::StrCat(to_unix_s)};
  std::string where = "e.ts >= to_timestamp($1::bigint) AND e.ts < to_timestamp($2::bigint)";
  std::vector<std::pair<std::string, std::string>> filters(request.filters().begin(),
                                                           request.filters().end());
  std::sort(filters.begin(), filters.end());
  const std::vector<std::string>& dims = SpendDimensions();
  for (const auto& [dimension, value] : filters) {
    if (std::find(dims.begin(), dims.end(), dimension) == dims.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "focus export: filter \"", dimension, "\" is not a dimension (tags are not allowed)"));
    }
    params.push_back(value);
    absl::StrAppend(&where, " AND e.", dimension, " = $", params.size(), "::text");
  }
  const std::string dim_list = absl::StrJoin(dims, ", ");
  // The latest correction's prices replace the stored ones, so the records sum to the
  // (repriced) spend exactly.
  const std::string sql = absl::StrCat(
      "WITH eff AS (SELECT date_trunc('hour', e.ts, 'UTC') AS hour, ",
      [&] {
        std::string cols;
        for (const std::string& d : dims) absl::StrAppend(&cols, "e.", d, ", ");
        return cols;
      }(),
      "COALESCE(c.price_card_version, e.price_card_version) AS card, "
      "COALESCE(c.price_input_pico, e.price_input_pico) AS pin, "
      "COALESCE(c.price_cached_input_pico, e.price_cached_input_pico) AS pcached, "
      "COALESCE(c.price_cache_write_5m_pico, e.price_cache_write_5m_pico) AS pcw5m, "
      "COALESCE(c.price_cache_write_1h_pico, e.price_cache_write_1h_pico) AS pcw1h, "
      "COALESCE(c.price_output_pico, e.price_output_pico) AS pout, "
      "COALESCE(c.price_reasoning_pico, e.price_reasoning_pico) AS preas, "
      "e.input_tokens - e.cached_input_tokens - e.cache_write_5m_tokens - e.cache_write_1h_tokens "
      "AS t_in, e.cached_input_tokens AS t_cached, e.cache_write_5m_tokens AS t_cw5m, "
      "e.cache_write_1h_tokens AS t_cw1h, e.output_tokens - e.reasoning_tokens AS t_out, "
      "e.reasoning_tokens AS t_reas "
      "FROM usage_events e LEFT JOIN LATERAL (SELECT * FROM usage_corrections uc "
      "WHERE uc.event_id = e.event_id ORDER BY uc.correction_id DESC LIMIT 1) c ON true WHERE ",
      where, ") SELECT extract(epoch FROM hour)::bigint, ", dim_list,
      ", card, pin, pcached, pcw5m, pcw1h, pout, "
      "CASE WHEN preas <> 0 THEN preas ELSE pout END, "
      "sum(t_in)::bigint, sum(t_cached)::bigint, sum(t_cw5m)::bigint, sum(t_cw1h)::bigint, "
      "sum(t_out)::bigint, sum(t_reas)::bigint FROM eff GROUP BY hour, ",
      dim_list, ", card, pin, pcached, pcw5m, pcw1h, pout, preas ORDER BY ",
      [] {
        std::vector<std::string> ordinals;  // hour, the keys, card and the six prices
        for (int i = 1; i <= 20; ++i) ordinals.push_back(absl::StrCat(i));
        return absl::StrJoin(ordinals, ", ");
      }());
  return impl_->Run<v1::FocusChunk>(
      "focus export", [&](pqxx::connection& c) -> absl::StatusOr<v1::FocusChunk> {
        pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> txn(c);
        if (timeout != absl::InfiniteDuration()) {
          txn.exec_params("SELECT set_config('statement_timeout', $1, true)",
                          absl::StrCat(CeilMillis(timeout)));
        }
        const pqxx::result rows = txn.exec_params(sql, pqxx::prepare::make_dynamic_params(params));
        txn.commit();
        v1::FocusChunk chunk;
        for (const pqxx::row& r : rows) {
          FocusGroup g;
          int i = 0;
          g.hour_unix_s = r[i++].as<int64_t>();
          std::string* dim_fields[] = {
              &g.team,           &g.feature,         &g.customer,          &g.api_key_id,
              &g.environment,    &g.requested_model, &g.served_deployment, &g.provider,
              &g.upstream_model, &g.region,          &g.endpoint};
          for (std::string* f : dim_fields) *f = r[i++].as<std::string>();
          g.price_card_version = r[i++].as<std::string>();
          for (int64_t* p : {&g.price_input, &g.price_cached_input, &g.price_cache_write_5m,
                             &g.price_cache_write_1h, &g.price_output, &g.price_reasoning}) {
            *p = r[i++].as<int64_t>();
          }
          for (int64_t* t : {&g.input, &g.cached_input, &g.cache_write_5m, &g.cache_write_1h,
                             &g.output, &g.reasoning}) {
            *t = r[i++].as<int64_t>();
          }
          AppendFocusRecords(g, chunk);
        }
        return chunk;
      });
}

absl::StatusOr<v1::ListAnomaliesResponse> UsageStore::ListAnomalies(const v1::ListAnomaliesRequest&,
                                                                    absl::Duration) {
  return absl::UnimplementedError("this usage store has no anomalies");
}

absl::StatusOr<v1::ListAnomaliesResponse> PostgresUsageStore::ListAnomalies(
    const v1::ListAnomaliesRequest& request, absl::Duration timeout) {
  if (request.start_unix_s() < 0 || request.end_unix_s() < 0 || request.limit() < 0) {
    return absl::InvalidArgumentError("list anomalies: negative time or limit");
  }
  const int64_t end = request.end_unix_s() != 0 ? request.end_unix_s() : kMaxQueryUnixS;
  const int limit = request.limit() != 0 ? request.limit() : 1000;
  return impl_->Run<v1::ListAnomaliesResponse>(
      "list anomalies", [&](pqxx::connection& c) -> absl::StatusOr<v1::ListAnomaliesResponse> {
        pqxx::transaction<pqxx::read_committed, pqxx::read_only> txn(c);
        if (timeout != absl::InfiniteDuration()) {
          txn.exec_params("SELECT set_config('statement_timeout', $1, true)",
                          absl::StrCat(CeilMillis(timeout)));
        }
        const pqxx::result rows = txn.exec_params(
            "SELECT extract(epoch FROM hour)::bigint, dimension, value, expected_usd::text, "
            "actual_usd::text, baseline_weeks, top_contributors::text FROM usage_anomalies "
            "WHERE hour >= to_timestamp($1::bigint) AND hour < to_timestamp($2::bigint) "
            "ORDER BY hour DESC, dimension, value LIMIT $3",
            request.start_unix_s(), end, limit);
        txn.commit();
        v1::ListAnomaliesResponse response;
        for (const pqxx::row& r : rows) {
          v1::Anomaly* a = response.add_anomalies();
          a->set_hour_unix_s(r[0].as<int64_t>());
          a->set_dimension(r[1].as<std::string>());
          a->set_value(r[2].as<std::string>());
          a->set_expected_usd(r[3].as<std::string>());
          a->set_actual_usd(r[4].as<std::string>());
          a->set_baseline_weeks(r[5].as<int>());
          a->set_top_contributors_json(r[6].as<std::string>());
        }
        return response;
      });
}

absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> PostgresUsageStore::DetectAnomalies(
    int64_t hour_unix_s, const AnomalyOptions& options) {
  if (hour_unix_s % 3600 != 0 || options.baseline_weeks < 1) {
    return absl::InvalidArgumentError("detect anomalies: hour must be whole, weeks >= 1");
  }
  return impl_->Run<std::vector<std::pair<std::string, int64_t>>>(
      "detect anomalies",
      [&](pqxx::connection& c) -> absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> {
        pqxx::work txn(c);
        std::vector<std::pair<std::string, int64_t>> found;
        for (const char* d : {"team", "feature", "requested_model"}) {
          // Whitelisted column names only are spliced; every value is a parameter.
          const std::string sql = absl::StrCat(
              "WITH cur AS (SELECT ", d,
              " AS value, sum(cost_usd) AS actual FROM usage_rollups_hourly "
              "WHERE hour = to_timestamp($1::bigint) GROUP BY 1), "
              "base AS (SELECT ",
              d,
              " AS value, sum(cost_usd) / $2::int AS expected FROM usage_rollups_hourly "
              "WHERE hour IN (SELECT to_timestamp($1::bigint) - k * interval '7 days' "
              "FROM generate_series(1, $2::int) k) GROUP BY 1) "
              "INSERT INTO usage_anomalies (hour, dimension, value, expected_usd, actual_usd, "
              "baseline_weeks, top_contributors) SELECT to_timestamp($1::bigint), '",
              d,
              "', cur.value, round(COALESCE(base.expected, 0), 12), cur.actual, $2::int, "
              "(SELECT COALESCE(jsonb_agg(jsonb_build_object('team', x.team, 'feature', "
              "x.feature, 'requested_model', x.requested_model, 'served_deployment', "
              "x.served_deployment, 'cost_usd', x.cost::text) ORDER BY x.cost DESC), '[]') "
              "FROM (SELECT team, feature, requested_model, served_deployment, sum(cost_usd) "
              "AS cost FROM usage_rollups_hourly r WHERE r.hour = to_timestamp($1::bigint) "
              "AND r.",
              d,
              " = cur.value GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC LIMIT 3) x) "
              "FROM cur LEFT JOIN base USING (value) WHERE cur.actual >= $4::numeric "
              "AND cur.actual > COALESCE(base.expected, 0) * $3::numeric "
              "ON CONFLICT DO NOTHING");
          const pqxx::result r = txn.exec_params(sql, hour_unix_s, options.baseline_weeks,
                                                 options.ratio, options.min_usd);
          found.emplace_back(d, static_cast<int64_t>(r.affected_rows()));
        }
        txn.commit();
        return found;
      });
}

}  // namespace tollgate::ledger
