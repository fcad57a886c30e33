#include "services/ledger/store.h"

#include <array>
#include <cmath>
#include <exception>
#include <map>
#include <pqxx/pqxx>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/common/logging.h"
#include "services/common/money.h"
#include "services/common/status.h"
#include "services/ledger/migrations.h"
#include "services/ledger/spend_query.h"
#include "services/ledger/usage_event.h"

namespace tollgate::ledger {
namespace {

// ---- Staging table: one COPY per batch, then one INSERT ... ON CONFLICT into usage_events. ----

std::string Bool(bool b) { return b ? "t" : "f"; }
std::string Int(int64_t v) { return absl::StrCat(v); }

std::string TagsJson(const v1::Attribution& a) {
  // Sorted keys: the proto map's order is unspecified (jsonb normalises anyway).
  std::map<std::string_view, std::string_view> tags(a.tags().begin(), a.tags().end());
  std::string out = "{";
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
  return out;
}

std::string AttemptsJson(const v1::UsageEvent& e) {
  std::string out = "[";
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
  return out;
}

struct StagingColumn {
  std::string_view name;  // staging column; the usage_events column of the same name
  std::string_view type;
  std::string (*value)(const v1::UsageEvent&);
};

// The single source of the column order for the staging table, the COPY and the INSERT.
constexpr StagingColumn kStagingColumns[] = {
    {"event_id", "text", [](const v1::UsageEvent& e) { return e.event_id(); }},
    {"request_id", "text", [](const v1::UsageEvent& e) { return e.request_id(); }},
    {"time_unix_us", "bigint", [](const v1::UsageEvent& e) { return Int(e.time_unix_us()); }},
    {"team", "text", [](const v1::UsageEvent& e) { return e.attribution().team(); }},
    {"feature", "text", [](const v1::UsageEvent& e) { return e.attribution().feature(); }},
    {"customer", "text", [](const v1::UsageEvent& e) { return e.attribution().customer(); }},
    {"api_key_id", "text", [](const v1::UsageEvent& e) { return e.attribution().api_key_id(); }},
    {"environment", "text", [](const v1::UsageEvent& e) { return e.attribution().environment(); }},
    {"tags", "jsonb", [](const v1::UsageEvent& e) { return TagsJson(e.attribution()); }},
    {"endpoint", "text", [](const v1::UsageEvent& e) { return e.endpoint(); }},
    {"requested_model", "text", [](const v1::UsageEvent& e) { return e.requested_model(); }},
    {"served_deployment", "text", [](const v1::UsageEvent& e) { return e.served_deployment(); }},
    {"provider", "text", [](const v1::UsageEvent& e) { return e.provider(); }},
    {"upstream_model", "text", [](const v1::UsageEvent& e) { return e.upstream_model(); }},
    {"region", "text", [](const v1::UsageEvent& e) { return e.region(); }},
    {"stream", "boolean", [](const v1::UsageEvent& e) { return Bool(e.stream()); }},
    {"input_tokens", "bigint",
     [](const v1::UsageEvent& e) { return Int(e.usage().input_tokens()); }},
    {"cached_input_tokens", "bigint",
     [](const v1::UsageEvent& e) { return Int(e.usage().cached_input_tokens()); }},
    {"cache_write_5m_tokens", "bigint",
     [](const v1::UsageEvent& e) { return Int(e.usage().cache_write_5m_tokens()); }},
    {"cache_write_1h_tokens", "bigint",
     [](const v1::UsageEvent& e) { return Int(e.usage().cache_write_1h_tokens()); }},
    {"output_tokens", "bigint",
     [](const v1::UsageEvent& e) { return Int(e.usage().output_tokens()); }},
    {"reasoning_tokens", "bigint",
     [](const v1::UsageEvent& e) { return Int(e.usage().reasoning_tokens()); }},
    {"usage_estimated", "boolean",
     [](const v1::UsageEvent& e) { return Bool(e.usage().estimated()); }},
    {"price_input_pico", "bigint",
     [](const v1::UsageEvent& e) { return Int(e.prices().input_pico()); }},
    {"price_cached_input_pico", "bigint",
     [](const v1::UsageEvent& e) { return Int(e.prices().cached_input_pico()); }},
    {"price_cache_write_5m_pico", "bigint",
     [](const v1::UsageEvent& e) { return Int(e.prices().cache_write_5m_pico()); }},
    {"price_cache_write_1h_pico", "bigint",
     [](const v1::UsageEvent& e) { return Int(e.prices().cache_write_1h_pico()); }},
    {"price_output_pico", "bigint",
     [](const v1::UsageEvent& e) { return Int(e.prices().output_pico()); }},
    {"price_reasoning_pico", "bigint",
     [](const v1::UsageEvent& e) { return Int(e.prices().reasoning_pico()); }},
    {"price_card_version", "text",
     [](const v1::UsageEvent& e) { return e.prices().price_card_version(); }},
    // Exact decimal text from the integer, never through a float.
    {"cost_usd", "numeric(38,12)",
     [](const v1::UsageEvent& e) { return FormatPicoUsd(e.cost_pico()); }},
    {"latency_us", "bigint", [](const v1::UsageEvent& e) { return Int(e.latency_us()); }},
    {"ttft_us", "bigint", [](const v1::UsageEvent& e) { return Int(e.ttft_us()); }},
    {"http_status", "integer", [](const v1::UsageEvent& e) { return Int(e.http_status()); }},
    {"error_code", "text", [](const v1::UsageEvent& e) { return e.error_code(); }},
    {"attempts", "jsonb", [](const v1::UsageEvent& e) { return AttemptsJson(e); }},
};
constexpr size_t kStagingColumnCount = std::size(kStagingColumns);
// pqxx 6.4's stream_to writes tuple-like rows; std::array<std::string, N> is one.
using StagingRow = std::array<std::string, kStagingColumnCount>;

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

std::string InsertFromStagingSql() {
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
  return absl::StrCat("INSERT INTO usage_events (", absl::StrJoin(targets, ", "), ") SELECT ",
                      absl::StrJoin(values, ", "), " FROM ", kStagingTable,
                      " ON CONFLICT (event_id) DO NOTHING");
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
};

PostgresUsageStore::PostgresUsageStore(Options options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

PostgresUsageStore::~PostgresUsageStore() = default;

absl::Status PostgresUsageStore::Connect() { return impl_->EnsureConnected(); }

absl::Status PostgresUsageStore::Migrate() {
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

absl::StatusOr<InsertResult> PostgresUsageStore::InsertBatch(
    const std::vector<v1::UsageEvent>& events) {
  if (events.empty()) return InsertResult{};
  for (const v1::UsageEvent& e : events) TOLLGATE_RETURN_IF_ERROR(ValidateUsageEvent(e));
  // A repeated id within the batch counts as a duplicate, like a replay of a stored one.
  std::vector<const v1::UsageEvent*> unique;
  unique.reserve(events.size());
  std::unordered_set<std::string_view> seen;
  for (const v1::UsageEvent& e : events) {
    if (seen.insert(e.event_id()).second) unique.push_back(&e);
  }

  static const std::string kCreateStaging = CreateStagingSql();
  static const std::string kInsert = InsertFromStagingSql();
  static const std::vector<std::string> kColumns = StagingColumnNames();

  absl::StatusOr<int64_t> inserted = impl_->Run<int64_t>(
      "insert usage batch", [&](pqxx::connection& c) -> absl::StatusOr<int64_t> {
        const int pid = c.backendpid();
        pqxx::work txn(c);
        if (impl_->staging_backend_pid != pid) txn.exec(kCreateStaging);
        {
          pqxx::stream_to copy(txn, kStagingTable, kColumns);
          StagingRow row;
          for (const v1::UsageEvent* e : unique) {
            for (size_t i = 0; i < kStagingColumnCount; ++i) row[i] = kStagingColumns[i].value(*e);
            copy << row;
          }
          copy.complete();
        }
        const pqxx::result r = txn.exec(kInsert);
        const auto rows = static_cast<int64_t>(r.affected_rows());
        txn.commit();
        // Only now: a rolled-back transaction would have taken the CREATE with it.
        impl_->staging_backend_pid = pid;
        return rows;
      });
  if (!inserted.ok()) return inserted.status();
  InsertResult result;
  result.inserted = *inserted;
  result.duplicates = static_cast<int64_t>(events.size()) - *inserted;
  return result;
}

absl::StatusOr<v1::SpendResponse> PostgresUsageStore::QuerySpend(const v1::SpendQuery& query,
                                                                 absl::Duration timeout) {
  TOLLGATE_ASSIGN_OR_RETURN(SpendSql sql, BuildSpendSql(query));
  if (timeout <= absl::ZeroDuration()) {
    return absl::DeadlineExceededError("spend query: deadline already expired");
  }
  return impl_->Run<v1::SpendResponse>(
      "spend query", [&](pqxx::connection& c) -> absl::StatusOr<v1::SpendResponse> {
        // One snapshot for rows and total, so they agree even while events arrive.
        pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> txn(c);
        if (timeout != absl::InfiniteDuration()) {
          txn.exec_params("SELECT set_config('statement_timeout', $1, true)",
                          absl::StrCat(CeilMillis(timeout)));
        }
        const pqxx::result rows =
            txn.exec_params(sql.rows_sql, pqxx::prepare::make_dynamic_params(sql.rows_params));
        const pqxx::result total =
            txn.exec_params(sql.total_sql, pqxx::prepare::make_dynamic_params(sql.total_params));
        txn.commit();

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
        for (const pqxx::row& r : rows) {
          v1::SpendRow* out = response.add_rows();
          int col = 0;
          for (; col < sql.group_columns; ++col) out->add_group_values(r[col].as<std::string>());
          if (sql.bucketed) out->set_bucket_start_unix_s(r[col++].as<int64_t>());
          fill(r, col, *out);
        }
        if (total.size() != 1) return absl::InternalError("spend query: total returned no row");
        fill(total[0], 0, *response.mutable_total());
        return response;
      });
}

}  // namespace tollgate::ledger
