// The ledger's control plane through the running binaries (issue 4 items 3, 4, 5 and 7): real
// traffic through the gateway for several teams, features, customers and models, then
// tollgatectl `spend` (groups, buckets, top-N, previous-period comparison, CSV/JSON, the daily
// rollup path), `reprice` (dry run and real), `export focus` and `anomalies` against the running
// tollgate-ledger. Every figure is checked against SQL over usage_events (and usage_corrections)
// or against the usage the client saw, exactly (decimal strings, 12 fractional digits).

#include <boost/json.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/http_client.h"
#include "tests/testing/suite.h"

namespace tollgate::testing {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

bool WaitFor(const std::function<bool()>& condition, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

std::string Rfc3339(int64_t unix_s) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(unix_s), absl::UTCTimeZone());
}
std::string Date(int64_t unix_s) {
  return absl::FormatTime("%Y-%m-%d", absl::FromUnixSeconds(unix_s), absl::UTCTimeZone());
}
// SQL time literal for a Unix second.
std::string Ts(int64_t unix_s) { return absl::StrCat("to_timestamp(", unix_s, ")"); }

// Exact decimal (up to 12 fractional digits) -> pico-dollars.
__int128 Pico(const std::string& text) {
  std::string s = text;
  bool negative = !s.empty() && s[0] == '-';
  if (negative) s = s.substr(1);
  const size_t dot = s.find('.');
  std::string whole = dot == std::string::npos ? s : s.substr(0, dot);
  std::string frac = dot == std::string::npos ? "" : s.substr(dot + 1);
  EXPECT_LE(frac.size(), 12u) << text;
  frac.resize(12, '0');
  __int128 v = 0;
  for (char c : whole + frac) {
    EXPECT_TRUE(c >= '0' && c <= '9') << "not a decimal: " << text;
    v = v * 10 + (c - '0');
  }
  return negative ? -v : v;
}
std::string PicoText(__int128 v) {
  const bool negative = v < 0;
  if (negative) v = -v;
  // Fixed 13+ digits, most significant first, built right to left.
  char buf[64];
  int pos = sizeof(buf);
  int digits = 0;
  do {
    buf[--pos] = static_cast<char>('0' + static_cast<int>(v % 10));
    v /= 10;
    ++digits;
  } while (v > 0 || digits < 13);
  const std::string all(buf + pos, sizeof(buf) - pos);
  return absl::StrCat(negative ? "-" : "", all.substr(0, all.size() - 12), ".",
                      all.substr(all.size() - 12));
}

// RFC 4180 (CRLF records, quoted fields with "" escapes).
std::vector<std::vector<std::string>> ParseCsv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
      continue;
    }
    if (c == '"') {
      quoted = true;
      any = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
      any = true;
    } else if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      row.push_back(std::move(field));
      field.clear();
      rows.push_back(std::move(row));
      row.clear();
      any = false;
      ++i;
    } else {
      field += c;
      any = true;
    }
  }
  if (any) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
  }
  return rows;
}

// SQL rows as '|'-separated fields.
std::vector<std::vector<std::string>> SqlRows(Suite& s, const std::string& sql) {
  absl::StatusOr<std::string> out = s.Sql(sql);
  EXPECT_TRUE(out.ok()) << out.status() << "\n" << sql;
  std::vector<std::vector<std::string>> rows;
  if (!out.ok()) return rows;
  for (absl::string_view line : absl::StrSplit(*out, '\n', absl::SkipEmpty())) {
    rows.push_back(absl::StrSplit(line, '|'));
  }
  return rows;
}
std::string SqlValue(Suite& s, const std::string& sql) {
  absl::StatusOr<std::string> out = s.Sql(sql);
  EXPECT_TRUE(out.ok()) << out.status() << "\n" << sql;
  if (!out.ok()) return "";
  std::string v = *out;
  while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.pop_back();
  return v;
}

json::value CtlJson(Suite& s, const std::vector<std::string>& args) {
  CommandResult r = s.Ctl(args);
  EXPECT_EQ(r.exit_code, 0) << absl::StrJoin(args, " ") << "\n" << r.output;
  json::error_code ec;
  json::value v = json::parse(r.output, ec);
  EXPECT_FALSE(ec) << "not JSON: " << r.output;
  return v;
}
std::string Str(const json::value& v, const char* key) {
  const json::value* f = v.as_object().if_contains(key);
  if (f == nullptr) return "<missing>";
  if (f->is_string()) return std::string(f->as_string());
  return json::serialize(*f);
}

// Effective cost (stored + corrections) per event, summed: the SQL the API must agree with.
constexpr char kEffective[] =
    "(e.cost_usd + COALESCE((SELECT sum(delta_usd) FROM usage_corrections c "
    "WHERE c.event_id = e.event_id), 0))";

class LedgerAdminTest : public ::testing::Test {
 protected:
  struct Sent {
    int64_t prompt = 0, completion = 0;
  };

  void SetUp() override {
    auto suite = Suite::Start();
    ASSERT_TRUE(suite.ok()) << suite.status();
    suite_ = std::move(*suite);
    hour_ = absl::ToUnixSeconds(absl::Now()) / 3600 * 3600;
    // Queries cover [hour - 3h, hour + 2h): the seeded spike (hour - 2h) and today's traffic,
    // whichever hour the traffic lands in.
    since_ = hour_ - 3 * 3600;
    until_ = hour_ + 2 * 3600;
    SeedSpike();
    SendTraffic();
  }

  Suite& s() { return *suite_; }
  std::string Range() const { return absl::StrCat("ts >= ", Ts(since_), " AND ts < ", Ts(until_)); }

  // A spend spike for team "spike-team" at hour - 2h over a small same-hour-of-week baseline (4
  // previous weeks), written the way the ledger writes events: usage_events, usage_event_ids and
  // both rollup levels in one transaction, so every query path agrees with SQL over the events.
  void SeedSpike() {
    const int64_t spike = hour_ - 2 * 3600;
    std::vector<std::string> values;
    // Spike: 10 events x 100,000 input tokens at $2.50/M = 0.25 USD each = 2.5 USD.
    for (int i = 0; i < 10; ++i) {
      values.push_back(absl::StrCat("('spike-", i, "', ", Ts(spike + 60 * i), ", 100000)"));
    }
    // Baseline: one event of 10,000 input tokens (0.025 USD) in each of the previous 4 weeks.
    for (int k = 1; k <= 4; ++k) {
      values.push_back(
          absl::StrCat("('base-", k, "', ", Ts(spike - k * 7 * 86400 + 120), ", 10000)"));
    }
    const std::string sql = absl::StrCat(
        "BEGIN;"
        "CREATE TEMP TABLE seed (event_id text, ts timestamptz, input bigint);"
        "INSERT INTO seed VALUES ",
        absl::StrJoin(values, ", "),
        ";"
        "SELECT tollgate_ensure_usage_partition(ts) FROM seed;"
        "INSERT INTO usage_event_ids SELECT event_id, ts FROM seed;"
        "INSERT INTO usage_events (event_id, request_id, ts, team, feature, customer, api_key_id, "
        "environment, endpoint, requested_model, served_deployment, provider, upstream_model, "
        "region, input_tokens, price_input_pico, price_output_pico, price_card_version, "
        "cost_usd, http_status) SELECT event_id, event_id, ts, 'spike-team', 'spike-feature', "
        "'spike-customer', 'spike-key', 'prod', '/v1/chat/completions', 'spike-model', "
        "'spike-deployment', 'mock', 'spike-model', 'local', input, 2500000, 10000000, 'seed', "
        "input * 2500000 / 1000000000000.0, 200 FROM seed;"
        "INSERT INTO usage_rollups_hourly SELECT date_trunc('hour', ts, 'UTC'), team, feature, "
        "customer, api_key_id, environment, requested_model, served_deployment, provider, "
        "upstream_model, region, endpoint, count(*), sum(input_tokens), "
        "sum(cached_input_tokens), sum(cache_write_5m_tokens), sum(cache_write_1h_tokens), "
        "sum(output_tokens), sum(reasoning_tokens), sum(cost_usd) FROM usage_events "
        "WHERE team = 'spike-team' GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12;"
        "INSERT INTO usage_rollups_daily SELECT date_trunc('day', ts, 'UTC'), team, feature, "
        "customer, api_key_id, environment, requested_model, served_deployment, provider, "
        "upstream_model, region, endpoint, count(*), sum(input_tokens), "
        "sum(cached_input_tokens), sum(cache_write_5m_tokens), sum(cache_write_1h_tokens), "
        "sum(output_tokens), sum(reasoning_tokens), sum(cost_usd) FROM usage_events "
        "WHERE team = 'spike-team' GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12;"
        "COMMIT;");
    absl::StatusOr<std::string> out = s().Sql(sql);
    ASSERT_TRUE(out.ok()) << out.status();
  }

  // Chat requests for 2 teams (keys) x 3 features x 3 customers x 2 models.
  void SendTraffic() {
    const std::vector<std::string> features = {"search", "chat", "summarize"};
    const std::vector<std::string> customers = {"acme", "globex", "initech"};
    int n = 0;
    for (const char* key : {Suite::kAlphaKey, Suite::kBetaKey}) {
      for (const std::string& model : {std::string("gpt-4o-mini"), std::string("gpt-4o")}) {
        for (int i = 0; i < 9; ++i) {
          const std::string& feature = features[i % 3];
          const std::string& customer = customers[(i / 3 + n) % 3];
          json::object body{
              {"model", model},
              {"messages", json::array{json::object{
                               {"role", "user"},
                               {"content", absl::StrCat("ledger admin ", n, " ",
                                                        std::string((n * 37) % 200, 'x'))}}}}};
          ++n;
          auto r =
              HttpCall(s().gateway_port(), "POST", "/v1/chat/completions", json::serialize(body),
                       {{"authorization", std::string("Bearer ") + key},
                        {"x-tollgate-feature", feature},
                        {"x-tollgate-customer", customer}});
          ASSERT_TRUE(r.ok()) << r.status();
          ASSERT_EQ(r->status, 200) << r->body;
          json::value v = json::parse(r->body);
          const json::object& usage = v.at("usage").as_object();
          Sent sent;
          sent.prompt = usage.at("prompt_tokens").to_number<int64_t>();
          sent.completion = usage.at("completion_tokens").to_number<int64_t>();
          sent_[r->header("x-tollgate-request-id")] = sent;
        }
      }
    }
    // The gateway acknowledges before the ledger commits: wait for every row.
    ASSERT_TRUE(WaitFor(
        [&] {
          return SqlValue(s(), "SELECT count(*) FROM usage_events WHERE team <> 'spike-team'") ==
                 absl::StrCat(sent_.size());
        },
        std::chrono::seconds(60)))
        << s().Logs();
  }

  std::unique_ptr<Suite> suite_;
  int64_t hour_ = 0, since_ = 0, until_ = 0;
  std::map<std::string, Sent> sent_;
};

TEST_F(LedgerAdminTest, SpendRepriceFocusAndAnomaliesAgreeWithTheEventsExactly) {
  // ---- The rows are what the clients saw. ----
  {
    int64_t prompt = 0, completion = 0;
    for (const auto& [id, t] : sent_) {
      EXPECT_EQ(SqlValue(s(), absl::StrCat("SELECT input_tokens || '|' || output_tokens FROM "
                                           "usage_events WHERE request_id = '",
                                           id, "'")),
                absl::StrCat(t.prompt, "|", t.completion))
          << id;
      prompt += t.prompt;
      completion += t.completion;
    }
    EXPECT_EQ(SqlValue(s(),
                       "SELECT sum(input_tokens) || '|' || sum(output_tokens) FROM "
                       "usage_events WHERE team <> 'spike-team'"),
              absl::StrCat(prompt, "|", completion));
  }
  const std::string since = Rfc3339(since_), until = Rfc3339(until_);

  // ---- spend: group by team, feature (hourly rollups), JSON. ----
  auto check_grouped = [&](const json::value& v, const std::vector<std::string>& dims,
                           const std::string& where, const std::string& label) {
    const std::string cols = absl::StrJoin(dims, ", ");
    const auto expected =
        SqlRows(s(), absl::StrCat("SELECT ", cols,
                                  ", count(*), sum(input_tokens), sum(output_tokens), "
                                  "sum(",
                                  kEffective, ")::numeric(38,12) FROM usage_events e WHERE ", where,
                                  " GROUP BY ", cols));
    std::map<std::string, std::vector<std::string>> by_key;
    for (const auto& row : expected) {
      std::vector<std::string> key(row.begin(), row.begin() + dims.size());
      by_key[absl::StrJoin(key, "|")] = {row.begin() + dims.size(), row.end()};
    }
    const json::array& rows = v.at("rows").as_array();
    ASSERT_EQ(rows.size(), by_key.size()) << label << ": " << json::serialize(v);
    for (const json::value& row : rows) {
      std::vector<std::string> key;
      for (const std::string& d : dims) key.push_back(Str(row, d.c_str()));
      auto it = by_key.find(absl::StrJoin(key, "|"));
      ASSERT_NE(it, by_key.end()) << label << ": unexpected row " << json::serialize(row);
      EXPECT_EQ(Str(row, "requests"), it->second[0]) << label;
      EXPECT_EQ(Str(row, "input"), it->second[1]) << label;
      EXPECT_EQ(Str(row, "output"), it->second[2]) << label;
      EXPECT_EQ(Str(row, "cost_usd"), it->second[3]) << label;
    }
    const auto total = SqlRows(
        s(), absl::StrCat("SELECT count(*), sum(input_tokens), sum(output_tokens), sum(",
                          kEffective, ")::numeric(38,12) FROM usage_events e WHERE ", where));
    ASSERT_EQ(total.size(), 1u);
    const json::value& t = v.at("total");
    EXPECT_EQ(Str(t, "requests"), total[0][0]) << label;
    EXPECT_EQ(Str(t, "input"), total[0][1]) << label;
    EXPECT_EQ(Str(t, "output"), total[0][2]) << label;
    EXPECT_EQ(Str(t, "cost_usd"), total[0][3]) << label;
  };
  auto spend = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "spend");
    return CtlJson(s(), args);
  };
  check_grouped(
      spend({"--group-by", "team,feature", "--since", since, "--until", until, "--format", "json"}),
      {"team", "feature"}, Range(), "team,feature");
  check_grouped(spend({"--group-by", "customer,requested_model", "--since", since, "--until", until,
                       "--format", "json"}),
                {"customer", "requested_model"}, Range(), "customer,model");

  // ---- spend with bounds not on whole hours (hourly rollups inside, raw events at the edges):
  // the spike hour is cut in half by the start. ----
  {
    const int64_t lo = since_ + 3600 + 150, hi = until_ - 60;
    check_grouped(spend({"--group-by", "team,requested_model", "--since", Rfc3339(lo), "--until",
                         Rfc3339(hi), "--format", "json"}),
                  {"team", "requested_model"}, absl::StrCat("ts >= ", Ts(lo), " AND ts < ", Ts(hi)),
                  "unaligned");
  }

  // ---- spend over whole UTC days (the daily rollups, migration 0006). ----
  const int64_t day = hour_ / 86400 * 86400;
  const std::string day_range =
      absl::StrCat("ts >= ", Ts(day - 86400), " AND ts < ", Ts(day + 86400));
  check_grouped(spend({"--group-by", "team,customer", "--since", Date(day - 86400), "--until",
                       Date(day + 86400), "--format", "json"}),
                {"team", "customer"}, day_range, "daily team,customer");

  // ---- spend: hour buckets (and day buckets from the daily rollups). ----
  for (const auto& [bucket, lo, hi] :
       {std::tuple<std::string, int64_t, int64_t>{"hour", since_, until_},
        std::tuple<std::string, int64_t, int64_t>{"day", day - 86400, day + 86400}}) {
    const json::value v = spend({"--group-by", "team", "--bucket", bucket, "--since", Rfc3339(lo),
                                 "--until", Rfc3339(hi), "--format", "json"});
    const auto expected =
        SqlRows(s(), absl::StrCat("SELECT team, extract(epoch FROM date_trunc('", bucket,
                                  "', ts, 'UTC'))::bigint, count(*), sum(", kEffective,
                                  ")::numeric(38,12) FROM usage_events e WHERE ts >= ", Ts(lo),
                                  " AND ts < ", Ts(hi), " GROUP BY 1, 2"));
    std::map<std::string, std::string> want;
    for (const auto& r : expected) want[r[0] + "@" + r[1]] = r[2] + " " + r[3];
    std::map<std::string, std::string> got;
    for (const json::value& r : v.at("rows").as_array()) {
      got[Str(r, "team") + "@" + Str(r, "bucket_start_unix_s")] =
          Str(r, "requests") + " " + Str(r, "cost_usd");
    }
    EXPECT_EQ(got, want) << bucket;
  }

  // ---- spend: top-N (limit) keeps the highest-cost rows; the total covers everything. ----
  {
    const json::value v = spend({"--group-by", "team,feature,requested_model", "--top", "2",
                                 "--since", since, "--until", until, "--format", "json"});
    const auto expected =
        SqlRows(s(), absl::StrCat("SELECT team, feature, requested_model, sum(", kEffective,
                                  ")::numeric(38,12) FROM usage_events e WHERE ", Range(),
                                  " GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2, 3 LIMIT 2"));
    const json::array& rows = v.at("rows").as_array();
    ASSERT_EQ(rows.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_EQ(Str(rows[i], "team"), expected[i][0]);
      EXPECT_EQ(Str(rows[i], "feature"), expected[i][1]);
      EXPECT_EQ(Str(rows[i], "requested_model"), expected[i][2]);
      EXPECT_EQ(Str(rows[i], "cost_usd"), expected[i][3]);
    }
    EXPECT_EQ(Str(v.at("total"), "cost_usd"),
              SqlValue(s(), absl::StrCat("SELECT sum(", kEffective,
                                         ")::numeric(38,12) FROM usage_events e WHERE ", Range())));
  }

  // ---- spend: comparison with the previous period (it holds the spike). ----
  {
    const int64_t lo = hour_ - 3600, hi = hour_ + 2 * 3600, prev = lo - (hi - lo);
    const json::value v = spend({"--group-by", "team", "--compare", "--since", Rfc3339(lo),
                                 "--until", Rfc3339(hi), "--format", "json"});
    EXPECT_EQ(Str(v, "previous_start_unix_s"), absl::StrCat(prev));
    EXPECT_EQ(Str(v, "previous_end_unix_s"), absl::StrCat(lo));
    auto team_cost = [&](const std::string& team, int64_t a, int64_t b) {
      return SqlValue(s(), absl::StrCat("SELECT COALESCE(sum(", kEffective,
                                        "), 0)::numeric(38,12) FROM usage_events e WHERE ts >= ",
                                        Ts(a), " AND ts < ", Ts(b), " AND team = '", team, "'"));
    };
    ASSERT_FALSE(v.at("rows").as_array().empty());
    for (const json::value& r : v.at("rows").as_array()) {
      const std::string team = Str(r, "team");
      const std::string now_cost = team_cost(team, lo, hi);
      const std::string before = team_cost(team, prev, lo);
      EXPECT_EQ(Str(r, "cost_usd"), now_cost) << team;
      EXPECT_EQ(Str(r, "previous_cost_usd"), before) << team;
      EXPECT_EQ(Str(r, "change_usd"), PicoText(Pico(now_cost) - Pico(before))) << team;
    }
    // The spike is in the previous period only.
    EXPECT_EQ(team_cost("spike-team", prev, lo), "2.500000000000");
  }

  // ---- spend: CSV output. ----
  {
    CommandResult r = s().Ctl(
        {"spend", "--group-by", "team", "--since", since, "--until", until, "--format", "csv"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto csv = ParseCsv(r.output);
    ASSERT_GE(csv.size(), 2u) << r.output;
    const std::vector<std::string>& header = csv[0];
    auto col = [&](const std::string& name) {
      auto it = std::find(header.begin(), header.end(), name);
      EXPECT_NE(it, header.end()) << name << " in " << absl::StrJoin(header, ",");
      return static_cast<size_t>(it - header.begin());
    };
    const size_t team = col("team"), cost = col("cost_usd"), requests = col("requests");
    std::map<std::string, std::string> got;
    for (size_t i = 1; i < csv.size(); ++i) {
      ASSERT_EQ(csv[i].size(), header.size()) << r.output;
      got[csv[i][team]] = csv[i][requests] + " " + csv[i][cost];
    }
    std::map<std::string, std::string> want;
    for (const auto& row : SqlRows(s(), absl::StrCat("SELECT team, count(*), sum(", kEffective,
                                                     ")::numeric(38,12) FROM usage_events e WHERE ",
                                                     Range(), " GROUP BY 1"))) {
      want[row[0]] = row[1] + " " + row[2];
    }
    EXPECT_EQ(got, want);
  }

  // ---- reprice: dry run, then real. ----
  const std::string history_sql =
      "SELECT count(*) || '|' || sum(cost_usd) || '|' || md5(string_agg(event_id || ':' || "
      "cost_usd || ':' || price_input_pico || ':' || price_output_pico, ',' ORDER BY event_id)) "
      "FROM usage_events";
  const std::string history = SqlValue(s(), history_sql);
  const std::string dep = "served_deployment = 'mock-gpt-4o-mini'";
  // New prices: input $0.30/M (300,000 pico/token), output $1.20/M; cached keeps its price.
  const std::string new_cost_sql = absl::StrCat(
      "SELECT count(*) || '|' || count(*) FILTER (WHERE n <> cost_usd) || '|' || "
      "sum(cost_usd)::numeric(38,12) || '|' || sum(n)::numeric(38,12) || '|' || "
      "sum(n - cost_usd)::numeric(38,12) FROM (SELECT cost_usd, ((input_tokens - "
      "cached_input_tokens - cache_write_5m_tokens - cache_write_1h_tokens)::numeric * 300000 "
      "+ cached_input_tokens::numeric * price_cached_input_pico + cache_write_5m_tokens::numeric "
      "* price_cache_write_5m_pico + cache_write_1h_tokens::numeric * price_cache_write_1h_pico "
      "+ (output_tokens - reasoning_tokens)::numeric * 1200000 + reasoning_tokens::numeric * "
      "CASE WHEN price_reasoning_pico <> 0 THEN price_reasoning_pico ELSE 1200000 END) "
      "/ 1000000000000 AS n FROM usage_events WHERE ",
      Range(), " AND ", dep, ") x");
  const std::vector<std::string> expected_reprice =
      absl::StrSplit(SqlValue(s(), new_cost_sql), '|');
  ASSERT_EQ(expected_reprice.size(), 5u);
  ASSERT_NE(expected_reprice[0], "0");
  ASSERT_NE(expected_reprice[4], "0.000000000000");
  auto check_reprice = [&](const json::value& v, bool dry_run) {
    EXPECT_EQ(Str(v, "dry_run"), dry_run ? "true" : "false");
    EXPECT_EQ(Str(v, "events"), expected_reprice[0]);
    EXPECT_EQ(Str(v, "changed_events"), expected_reprice[1]);
    EXPECT_EQ(Str(v, "old_cost_usd"), expected_reprice[2]);
    EXPECT_EQ(Str(v, "new_cost_usd"), expected_reprice[3]);
    EXPECT_EQ(Str(v, "delta_usd"), expected_reprice[4]);
    const json::array& deps = v.at("deployments").as_array();
    ASSERT_EQ(deps.size(), 1u);
    EXPECT_EQ(Str(deps[0], "deployment"), "mock-gpt-4o-mini");
    EXPECT_EQ(Str(deps[0], "delta_usd"), expected_reprice[4]);
  };
  const std::vector<std::string> reprice_args = {
      "reprice",          "--since",  since,  "--until",  until,  "--deployment",
      "mock-gpt-4o-mini", "--input",  "0.30", "--output", "1.20", "--reason",
      "integration test", "--format", "json"};
  const std::string spend_before =
      Str(spend({"--since", since, "--until", until, "--format", "json"}).at("total"), "cost_usd");
  {
    std::vector<std::string> args = reprice_args;
    args.push_back("--dry-run");
    check_reprice(CtlJson(s(), args), true);
    EXPECT_EQ(SqlValue(s(), "SELECT count(*) FROM usage_corrections"), "0");
  }
  check_reprice(CtlJson(s(), reprice_args), false);
  // Correction records carry the difference; history is untouched.
  EXPECT_EQ(SqlValue(s(),
                     "SELECT count(*) || '|' || sum(delta_usd)::numeric(38,12) FROM "
                     "usage_corrections"),
            expected_reprice[1] + "|" + expected_reprice[4]);
  EXPECT_EQ(SqlValue(s(),
                     "SELECT count(DISTINCT repricing_id) || '|' || "
                     "min(price_input_pico) || '|' || min(price_output_pico) || '|' || "
                     "min(reason) FROM usage_corrections"),
            "1|300000|1200000|integration test");
  EXPECT_EQ(SqlValue(s(), history_sql), history);
  // Spend now returns the repriced cost, on every path.
  const std::string spend_after =
      Str(spend({"--since", since, "--until", until, "--format", "json"}).at("total"), "cost_usd");
  EXPECT_EQ(spend_after, PicoText(Pico(spend_before) + Pico(expected_reprice[4])));
  EXPECT_EQ(spend_after, SqlValue(s(), absl::StrCat("SELECT sum(", kEffective,
                                                    ")::numeric(38,12) FROM usage_events e "
                                                    "WHERE ",
                                                    Range())));
  check_grouped(spend({"--group-by", "team,served_deployment", "--since", Date(day - 86400),
                       "--until", Date(day + 86400), "--format", "json"}),
                {"team", "served_deployment"}, day_range, "daily after reprice");
  check_grouped(spend({"--group-by", "team,served_deployment", "--since", since, "--until", until,
                       "--format", "json"}),
                {"team", "served_deployment"}, Range(), "hourly after reprice");

  // ---- export focus: parses, FOCUS columns, BilledCost sums to the ledger to the digit. ----
  {
    CommandResult r = s().Ctl({"export", "focus", "--since", since, "--until", until});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto csv = ParseCsv(r.output);
    ASSERT_GE(csv.size(), 2u) << r.output;
    const std::vector<std::string>& header = csv[0];
    std::map<std::string, size_t> col;
    for (size_t i = 0; i < header.size(); ++i) col[header[i]] = i;
    for (const char* required : {"BilledCost",
                                 "EffectiveCost",
                                 "ListCost",
                                 "BillingCurrency",
                                 "ChargePeriodStart",
                                 "ChargePeriodEnd",
                                 "ChargeCategory",
                                 "ConsumedQuantity",
                                 "ConsumedUnit",
                                 "PricingQuantity",
                                 "PricingUnit",
                                 "ListUnitPrice",
                                 "SkuId",
                                 "SkuMeter",
                                 "ServiceCategory",
                                 "ServiceName",
                                 "ProviderName",
                                 "RegionId",
                                 "ResourceId",
                                 "Tags"}) {
      EXPECT_EQ(col.count(required), 1u) << "missing FOCUS column " << required;
    }
    __int128 billed = 0, effective = 0;
    std::map<std::string, __int128> by_team;
    std::set<std::string> resources;
    for (size_t i = 1; i < csv.size(); ++i) {
      const auto& row = csv[i];
      ASSERT_EQ(row.size(), header.size()) << "row " << i;
      billed += Pico(row[col["BilledCost"]]);
      effective += Pico(row[col["EffectiveCost"]]);
      EXPECT_EQ(row[col["BillingCurrency"]], "USD");
      EXPECT_EQ(row[col["ChargeCategory"]], "Usage");
      EXPECT_EQ(row[col["ServiceCategory"]], "AI and Machine Learning");
      EXPECT_EQ(row[col["ConsumedUnit"]], "Tokens");
      json::error_code ec;
      json::value tags = json::parse(row[col["Tags"]], ec);
      ASSERT_FALSE(ec) << row[col["Tags"]];
      by_team[Str(tags, "team")] += Pico(row[col["BilledCost"]]);
      resources.insert(row[col["ResourceId"]]);
    }
    const std::string total =
        SqlValue(s(), absl::StrCat("SELECT sum(", kEffective,
                                   ")::numeric(38,12) FROM usage_events e WHERE ", Range()));
    EXPECT_EQ(PicoText(billed), total);
    EXPECT_EQ(PicoText(effective), total);
    for (const auto& row : SqlRows(s(), absl::StrCat("SELECT team, sum(", kEffective,
                                                     ")::numeric(38,12) FROM usage_events e WHERE ",
                                                     Range(), " GROUP BY 1"))) {
      EXPECT_EQ(PicoText(by_team[row[0]]), row[1]) << row[0];
    }
    EXPECT_EQ(resources,
              (std::set<std::string>{"mock-gpt-4o-mini", "mock-gpt-4o", "spike-deployment"}));
  }

  // ---- anomalies: the ledger checks the last 24 completed hours at start. ----
  s().StopLedger();
  ASSERT_TRUE(s().StartLedger().ok()) << s().Logs();
  json::value anomalies;
  const std::string spike_hour = absl::StrCat(hour_ - 2 * 3600);
  ASSERT_TRUE(WaitFor(
      [&] {
        CommandResult r =
            s().Ctl({"anomalies", "--since", Rfc3339(hour_ - 6 * 3600), "--format", "json"});
        if (r.exit_code != 0) return false;
        json::error_code ec;
        anomalies = json::parse(r.output, ec);
        return !ec && anomalies.at("anomalies").as_array().size() >= 3;
      },
      std::chrono::seconds(60)))
      << json::serialize(anomalies) << s().Logs();
  std::map<std::string, json::value> found;
  for (const json::value& a : anomalies.at("anomalies").as_array()) {
    found[Str(a, "dimension") + "=" + Str(a, "value")] = a;
  }
  for (const char* key :
       {"team=spike-team", "feature=spike-feature", "requested_model=spike-model"}) {
    ASSERT_EQ(found.count(key), 1u) << key << " in " << json::serialize(anomalies);
    const json::value& a = found[key];
    EXPECT_EQ(Str(a, "hour_unix_s"), spike_hour);
    // 4 baseline weeks of 0.025 USD: mean 0.025; the hour: 10 x 0.25 USD.
    EXPECT_EQ(Str(a, "expected_usd"), "0.025000000000");
    EXPECT_EQ(Str(a, "actual_usd"), "2.500000000000");
    EXPECT_EQ(Str(a, "baseline_weeks"), "4");
    const json::array& top = a.at("top_contributors").as_array();
    ASSERT_FALSE(top.empty());
    EXPECT_EQ(Str(top[0], "team"), "spike-team");
    EXPECT_EQ(Str(top[0], "cost_usd"), "2.500000000000");
  }
  // The regular traffic (alpha, beta) is no anomaly: its hour is not complete, or it has no
  // spike over its baseline of zero below the minimum amount.
  EXPECT_EQ(found.count("team=alpha"), 0u);
}

}  // namespace
}  // namespace tollgate::testing
