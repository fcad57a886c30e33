// Durability under SIGKILL (DESIGN.md "Durability contract", issue 4 item 8): steady traffic from
// a load loop while the gateway, the ledger and PostgreSQL are killed and restarted in turn,
// several times each (PostgreSQL six times over the two tests);
// afterwards the ledger must hold exactly one row per request the gateway answered with 200, with
// the tokens the client saw, and (for phases without a gateway kill) the tokens the mock served.

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/testing/http_client.h"
#include "tests/testing/suite.h"

namespace tollgate::testing {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

struct Served {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  Clock::time_point received;  // when the client had the whole response
};

// Sends chat requests from a few threads until stopped, remembering every 200 by request id.
class LoadLoop {
 public:
  LoadLoop(int port, int threads) : port_(port) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this, i] { Run(i); });
  }
  ~LoadLoop() { Stop(); }

  void Stop() {
    stop_.store(true);
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  size_t ok_count() {
    std::lock_guard<std::mutex> lock(mu_);
    return served_.size();
  }
  std::map<std::string, Served> served() {
    std::lock_guard<std::mutex> lock(mu_);
    return served_;
  }
  int64_t failures() const { return failures_.load(); }

 private:
  void Run(int thread) {
    int n = 0;
    while (!stop_.load()) {
      json::object body{{"model", "gpt-4o-mini"},
                        {"messages", json::array{json::object{
                                         {"role", "user"},
                                         {"content", absl::StrCat("durability ", thread, " ", n++,
                                                                  std::string(n % 7 * 5, 'w'))}}}}};
      auto r = HttpCall(port_, "POST", "/v1/chat/completions", json::serialize(body),
                        {{"authorization", std::string("Bearer ") + Suite::kAlphaKey}}, 5000);
      if (!r.ok() || r->status != 200) {
        failures_.fetch_add(1);
        // The gateway is down (being restarted): back off a little instead of spinning.
        if (!r.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      Served s;
      s.received = Clock::now();
      json::error_code ec;
      json::value v = json::parse(r->body, ec);
      if (ec || !v.is_object() || !v.as_object().contains("usage")) {
        ADD_FAILURE() << "200 without usage: " << r->body;
        continue;
      }
      const json::object& usage = v.as_object().at("usage").as_object();
      s.prompt_tokens = usage.at("prompt_tokens").to_number<int64_t>();
      s.completion_tokens = usage.at("completion_tokens").to_number<int64_t>();
      const std::string id = r->header("x-tollgate-request-id");
      std::lock_guard<std::mutex> lock(mu_);
      EXPECT_FALSE(id.empty());
      EXPECT_TRUE(served_.emplace(id, s).second) << "request id reused: " << id;
    }
  }

  const int port_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> failures_{0};
  std::mutex mu_;
  std::map<std::string, Served> served_;
  std::vector<std::thread> threads_;
};

bool WaitFor(const std::function<bool()>& condition, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

struct MockTokens {
  int64_t prompt = 0, completion = 0;
};

MockTokens MockStats(Suite& suite) {
  MockTokens t;
  auto r = HttpCall(suite.mock_port(), "GET", "/_mock/stats");
  EXPECT_TRUE(r.ok() && r->status == 200);
  if (!r.ok()) return t;
  json::value v = json::parse(r->body);
  t.prompt = v.at("prompt_tokens").to_number<int64_t>();
  t.completion = v.at("completion_tokens").to_number<int64_t>();
  return t;
}

struct LedgerRow {
  int count = 0;
  int64_t input = 0, output = 0;
};

// Every usage row, by request id.
absl::StatusOr<std::map<std::string, LedgerRow>> LedgerRows(Suite& suite) {
  auto out = suite.Sql("SELECT request_id, input_tokens, output_tokens FROM usage_events");
  if (!out.ok()) return out.status();
  std::map<std::string, LedgerRow> rows;
  for (absl::string_view line : absl::StrSplit(*out, '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, '|');
    if (f.size() != 3) continue;
    LedgerRow& row = rows[f[0]];
    ++row.count;
    int64_t v = 0;
    if (absl::SimpleAtoi(f[1], &v)) row.input += v;
    if (absl::SimpleAtoi(f[2], &v)) row.output += v;
  }
  return rows;
}

// Waits until every answered request has its row; then checks exactly-once and the tokens.
// `served` holds only 200s the client received in full. The gateway writes a request's usage
// event to its spool before it answers (docs/accounting.md "Delivery"), so every one of them must
// have exactly one row, even across gateway SIGKILLs. (A request whose response was cut off by a
// kill may or may not have a row; it is not in `served`.)
void CheckLedger(Suite& suite, const std::map<std::string, Served>& served) {
  std::map<std::string, LedgerRow> rows;
  size_t missing = served.size();
  WaitFor(
      [&] {
        auto r = LedgerRows(suite);
        if (!r.ok()) return false;
        rows = std::move(*r);
        missing = 0;
        for (const auto& [id, unused] : served) missing += rows.count(id) == 0 ? 1 : 0;
        return missing == 0;
      },
      std::chrono::seconds(90));
  if (missing > 0) {
    std::string examples;
    int shown = 0;
    for (const auto& [id, unused] : served) {
      if (rows.count(id) == 0 && shown++ < 10) absl::StrAppend(&examples, id, " ");
    }
    // Every gateway run's log lines other than per-request ones, for the diagnosis.
    std::string logs;
    for (int run = 0; run < 10; ++run) {
      const std::string path = suite.dir() + (run == 0 ? std::string("/gateway.log")
                                                       : absl::StrCat("/gateway.", run, ".log"));
      std::ifstream in(path);
      if (!in) break;
      absl::StrAppend(&logs, "== ", path, "\n");
      for (std::string line; std::getline(in, line);) {
        if (line.find("\"msg\":\"request\"") == std::string::npos)
          absl::StrAppend(&logs, line, "\n");
      }
    }
    ADD_FAILURE() << missing << " of " << served.size()
                  << " requests answered 200 have no ledger row, e.g. " << examples << "\n"
                  << logs << suite.Logs();
  }
  int64_t duplicates = 0;
  for (const auto& [id, row] : rows) duplicates += row.count - 1;
  EXPECT_EQ(duplicates, 0) << "rows recorded twice";
  int64_t mismatched = 0;
  for (const auto& [id, s] : served) {
    auto it = rows.find(id);
    if (it == rows.end()) continue;
    if (it->second.input != s.prompt_tokens || it->second.output != s.completion_tokens) {
      ++mismatched;
    }
  }
  EXPECT_EQ(mismatched, 0) << "rows whose tokens differ from the response";
}

SuiteOptions Options() {
  SuiteOptions options;
  // Reconnect to a restarted ledger quickly.
  options.gateway_flags = {"--ledger_batch_delay_ms=5"};
  return options;
}

TEST(Durability, KillingTheLedgerAndPostgresLosesAndDoublesNothing) {
  auto suite = Suite::Start(Options());
  ASSERT_TRUE(suite.ok()) << suite.status();
  Suite& s = **suite;
  const MockTokens mock_before = MockStats(s);
  std::map<std::string, Served> served;
  {
    LoadLoop load(s.gateway_port(), 4);
    auto wait_for_more = [&](size_t more) {
      const size_t before = load.ok_count();
      return WaitFor([&] { return load.ok_count() >= before + more; }, std::chrono::seconds(60));
    };
    // Three rounds, each: SIGKILL the ledger (restart), then SIGKILL PostgreSQL (crash recovery
    // on restart), with traffic flowing all along. Round 1 also kills PostgreSQL while the ledger
    // is down, so the restarted ledger first meets a recovering database.
    for (int round = 0; round < 3; ++round) {
      ASSERT_TRUE(wait_for_more(150)) << "round " << round << "\n" << s.Logs();
      s.KillLedger();
      // Requests keep flowing while the ledger is down: the spool holds their usage.
      ASSERT_TRUE(wait_for_more(150)) << s.Logs();
      if (round == 1) {
        absl::Status pg = s.postgres().KillAndRestart();
        ASSERT_TRUE(pg.ok()) << pg;
      }
      ASSERT_TRUE(s.StartLedger().ok()) << s.Logs();
      ASSERT_TRUE(wait_for_more(150)) << s.Logs();
      absl::Status pg = s.postgres().KillAndRestart();
      ASSERT_TRUE(pg.ok()) << pg;
      ASSERT_TRUE(wait_for_more(150)) << s.Logs();
    }
    load.Stop();
    served = load.served();
  }
  ASSERT_GE(served.size(), 1800u);
  CheckLedger(s, served);
  // No gateway was killed, so every request the mock served was answered and recorded.
  const MockTokens mock_after = MockStats(s);
  int64_t prompt = 0, completion = 0;
  for (const auto& [id, t] : served) {
    prompt += t.prompt_tokens;
    completion += t.completion_tokens;
  }
  EXPECT_EQ(mock_after.prompt - mock_before.prompt, prompt);
  EXPECT_EQ(mock_after.completion - mock_before.completion, completion);
  auto totals = s.Sql("SELECT sum(input_tokens), sum(output_tokens) FROM usage_events");
  ASSERT_TRUE(totals.ok());
  EXPECT_EQ(*totals, absl::StrCat(mock_after.prompt - mock_before.prompt, "|",
                                  mock_after.completion - mock_before.completion));
}

TEST(Durability, KillingTheGatewayAndPostgresLosesAndDoublesNothingItAnswered) {
  auto suite = Suite::Start(Options());
  ASSERT_TRUE(suite.ok()) << suite.status();
  Suite& s = **suite;
  std::map<std::string, Served> served;
  {
    LoadLoop load(s.gateway_port(), 4);
    for (int round = 0; round < 3; ++round) {
      size_t before = load.ok_count();
      ASSERT_TRUE(
          WaitFor([&] { return load.ok_count() >= before + 200; }, std::chrono::seconds(60)))
          << s.Logs();
      if (round == 1) s.KillLedger();  // also leave unacknowledged events in the spool
      s.KillGateway();
      if (round != 1) {
        // PostgreSQL crashes while the gateway is down (its spool holds unsent events).
        absl::Status pg = s.postgres().KillAndRestart();
        ASSERT_TRUE(pg.ok()) << pg;
      }
      if (round == 1) {
        ASSERT_TRUE(s.StartLedger().ok()) << s.Logs();
      }
      ASSERT_TRUE(s.StartGateway().ok()) << s.Logs();
    }
    size_t before = load.ok_count();
    ASSERT_TRUE(WaitFor([&] { return load.ok_count() >= before + 200; }, std::chrono::seconds(60)));
    load.Stop();
    served = load.served();
  }
  CheckLedger(s, served);
}

}  // namespace
}  // namespace tollgate::testing
