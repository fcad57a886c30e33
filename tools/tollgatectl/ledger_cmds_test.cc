// Parsing, rendering and running tollgatectl's ledger commands (against a fake LedgerAdmin).

#include "tools/tollgatectl/ledger_cmds.h"

#include <memory>
#include <mutex>
#include <optional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "tollgate/v1/ledger.grpc.pb.h"

namespace tollgate::tools::ctl {
namespace {

using ::testing::HasSubstr;

const GetEnv kNoEnv = [](const char*) -> std::optional<std::string> { return std::nullopt; };
const absl::Time kNow = absl::FromUnixSeconds(1'736'942'400);  // 2025-01-15T12:00:00Z

TEST(LedgerCommandsTest, RecognisesItsCommands) {
  EXPECT_TRUE(IsLedgerCommand({"reprice", "--since", "7d"}));
  EXPECT_TRUE(IsLedgerCommand({"--ledger_admin", "h:1", "reprice"}));
  EXPECT_TRUE(IsLedgerCommand({"help", "reprice"}));
  EXPECT_TRUE(IsLedgerCommand({"export", "focus", "--since", "1d"}));
  EXPECT_FALSE(IsLedgerCommand({"spend", "--since", "7d"}));
  EXPECT_FALSE(IsLedgerCommand({"help"}));
}

TEST(LedgerCommandsTest, ParsesReprice) {
  absl::StatusOr<LedgerCommand> cmd = ParseLedgerCommand({"reprice",
                                                          "--since",
                                                          "2025-01-01",
                                                          "--until=2025-01-10",
                                                          "--deployment",
                                                          "openai-gpt-4o",
                                                          "--input",
                                                          "2.5",
                                                          "--output=10",
                                                          "--cached-input",
                                                          "1.25",
                                                          "--filter",
                                                          "team=search",
                                                          "--dry-run",
                                                          "--reason",
                                                          "typo in card",
                                                          "--price-card-version",
                                                          "v2",
                                                          "--format",
                                                          "json",
                                                          "--ledger_admin",
                                                          "ledger:7004"},
                                                         kNoEnv, kNow);
  ASSERT_TRUE(cmd.ok()) << cmd.status();
  EXPECT_EQ(cmd->kind, LedgerCommand::Kind::kReprice);
  EXPECT_EQ(cmd->format, Format::kJson);
  EXPECT_EQ(cmd->global.ledger_admin, "ledger:7004");
  const v1::RepriceRequest& r = cmd->reprice;
  EXPECT_EQ(r.start_unix_s(), 1'735'689'600);
  EXPECT_EQ(r.end_unix_s(), 1'736'467'200);
  EXPECT_TRUE(r.dry_run());
  EXPECT_EQ(r.reason(), "typo in card");
  EXPECT_EQ(r.price_card_version(), "v2");
  EXPECT_EQ(r.filters().at("team"), "search");
  ASSERT_EQ(r.prices_size(), 1);
  EXPECT_EQ(r.prices(0).deployment(), "openai-gpt-4o");
  EXPECT_EQ(r.prices(0).input_usd_per_m(), "2.5");
  EXPECT_EQ(r.prices(0).output_usd_per_m(), "10");
  EXPECT_EQ(r.prices(0).cached_input_usd_per_m(), "1.25");
  EXPECT_TRUE(r.prices(0).reasoning_usd_per_m().empty());  // keeps the stored price
}

TEST(LedgerCommandsTest, RejectsBadReprice) {
  auto code = [](std::vector<std::string> args) {
    return ParseLedgerCommand(args, kNoEnv, kNow).status().code();
  };
  const auto kBad = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(code({"reprice", "--deployment", "d", "--input", "1"}), kBad);   // no --since
  EXPECT_EQ(code({"reprice", "--since", "7d", "--input", "1"}), kBad);       // no deployment
  EXPECT_EQ(code({"reprice", "--since", "7d", "--deployment", "d"}), kBad);  // no price
  EXPECT_EQ(code({"reprice", "--since", "7d", "--deployment", "d", "--input", "-1"}), kBad);
  EXPECT_EQ(code({"reprice", "--since", "7d", "--deployment", "d", "--input", "1e3"}), kBad);
  EXPECT_EQ(code({"reprice", "--since", "7d", "--deployment", "d", "--input", "1", "--bogus", "x"}),
            kBad);
  EXPECT_TRUE(
      ParseLedgerCommand({"reprice", "--since", "7d", "--deployment", "d", "--input", "0.000001"},
                         kNoEnv, kNow)
          .ok());
}

class FakeLedgerAdmin final : public v1::LedgerAdmin::Service {
 public:
  grpc::Status Reprice(grpc::ServerContext*, const v1::RepriceRequest* request,
                       v1::RepriceResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    last_ = *request;
    response->set_dry_run(request->dry_run());
    response->set_events(3);
    response->set_changed_events(2);
    response->set_old_cost_usd("0.300000000000");
    response->set_new_cost_usd("0.100000000001");
    response->set_delta_usd("-0.199999999999");
    v1::RepriceDeploymentResult* d = response->add_deployments();
    d->set_deployment(request->prices(0).deployment());
    d->set_events(3);
    d->set_changed_events(2);
    d->set_old_cost_usd("0.300000000000");
    d->set_new_cost_usd("0.100000000001");
    d->set_delta_usd("-0.199999999999");
    return grpc::Status::OK;
  }
  grpc::Status ExportFocus(grpc::ServerContext*, const v1::ExportFocusRequest* request,
                           grpc::ServerWriter<v1::FocusChunk>* writer) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_focus_ = *request;
    }
    v1::FocusChunk first;
    first.add_columns("BilledCost");
    first.add_columns("Tags");
    v1::FocusRecord* r = first.add_records();
    r->add_values("0.000000000001");
    r->add_values("{\"team\":\"a,b\"}");
    writer->Write(first);
    v1::FocusChunk second;
    second.add_records()->add_values("2.000000000000");
    second.mutable_records(0)->add_values("{}");
    writer->Write(second);
    return grpc::Status::OK;
  }
  v1::ExportFocusRequest last_focus() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_focus_;
  }
  v1::RepriceRequest last() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_;
  }

 private:
  std::mutex mu_;
  v1::RepriceRequest last_;
  v1::ExportFocusRequest last_focus_;
};

TEST(LedgerCommandsTest, RunsRepriceAgainstTheLedger) {
  FakeLedgerAdmin fake;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&fake);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  const std::string admin = absl::StrCat("--ledger_admin=127.0.0.1:", port);

  std::ostringstream out, err;
  EXPECT_EQ(RunLedgerCommand({"reprice", admin, "--since", "1d", "--deployment", "dep", "--input",
                              "3", "--dry-run"},
                             kNoEnv, out, err),
            0)
      << err.str();
  EXPECT_TRUE(fake.last().dry_run());
  EXPECT_EQ(fake.last().prices(0).input_usd_per_m(), "3");
  EXPECT_THAT(out.str(), HasSubstr("dep"));
  EXPECT_THAT(out.str(), HasSubstr("-0.199999999999"));
  EXPECT_THAT(out.str(), HasSubstr("TOTAL"));
  EXPECT_THAT(out.str(), HasSubstr("dry run: nothing written"));

  std::ostringstream json, err2;
  EXPECT_EQ(RunLedgerCommand({"reprice", admin, "--since", "1d", "--deployment", "dep", "--output",
                              "3", "--format", "json"},
                             kNoEnv, json, err2),
            0);
  EXPECT_THAT(json.str(), HasSubstr("\"delta_usd\":\"-0.199999999999\""));
  EXPECT_THAT(json.str(), HasSubstr("\"changed_events\":2"));

  std::ostringstream csv, err3;
  EXPECT_EQ(RunLedgerCommand({"export", "focus", admin, "--since", "2025-01-01", "--until",
                              "2025-01-03", "--filter", "team=a"},
                             kNoEnv, csv, err3),
            0)
      << err3.str();
  EXPECT_EQ(csv.str(),
            "BilledCost,Tags\r\n0.000000000001,\"{\"\"team\"\":\"\"a,b\"\"}\"\r\n"
            "2.000000000000,{}\r\n");
  EXPECT_EQ(fake.last_focus().start_unix_s(), 1'735'689'600);
  EXPECT_EQ(fake.last_focus().end_unix_s(), 1'735'862'400);
  EXPECT_EQ(fake.last_focus().filters().at("team"), "a");
  std::ostringstream bad_out, bad_err;
  EXPECT_EQ(RunLedgerCommand({"export", "focus"}, kNoEnv, bad_out, bad_err), 2);
  EXPECT_THAT(bad_err.str(), HasSubstr("--since"));
  EXPECT_EQ(RunLedgerCommand({"export", "csv", "--since", "1d"}, kNoEnv, bad_out, bad_err), 2);

  std::ostringstream usage_out, usage_err;
  EXPECT_EQ(RunLedgerCommand({"reprice", "--since", "1d"}, kNoEnv, usage_out, usage_err), 2);
  EXPECT_THAT(usage_err.str(), HasSubstr("--deployment"));
  server->Shutdown();
}

TEST(ReconcileTest, ParsesTheDocumentedInvoiceCsv) {
  absl::StatusOr<std::vector<InvoiceLine>> lines = ParseInvoiceCsv(
      "date,model,input_tokens,cached_input_tokens,output_tokens,cost_usd\r\n"
      "2025-01-15,gpt-4o,1000,200,50,0.0030\r\n"
      "2025-01-15,gpt-4o,1,0,0,0.000000000001\n"
      "2025-01-16,\"gpt,odd\",5,0,5,1\n");
  ASSERT_TRUE(lines.ok()) << lines.status();
  ASSERT_EQ(lines->size(), 2u);
  EXPECT_EQ((*lines)[0].model, "gpt-4o");
  EXPECT_EQ((*lines)[0].input_tokens, 1001);  // same day and model summed
  EXPECT_EQ((*lines)[0].cost_pico, 3'000'000'001);
  EXPECT_EQ((*lines)[1].model, "gpt,odd");
  EXPECT_FALSE(ParseInvoiceCsv("day,model\n").ok());
  EXPECT_FALSE(ParseInvoiceCsv("date,model,input_tokens,cached_input_tokens,output_tokens,"
                               "cost_usd\n2025-13-01,m,1,0,0,1\n")
                   .ok());
  EXPECT_FALSE(ParseInvoiceCsv("date,model,input_tokens,cached_input_tokens,output_tokens,"
                               "cost_usd\n2025-01-01,m,x,0,0,1\n")
                   .ok());
}

TEST(ReconcileTest, ListsEveryDifferenceByDayAndModel) {
  std::vector<InvoiceLine> invoice = {{"2025-01-15", "gpt-4o", 1000, 200, 50, 3'000'000'000},
                                      {"2025-01-15", "gpt-4o-mini", 10, 0, 1, 1},
                                      {"2025-01-16", "gpt-4o", 7, 0, 7, 70}};
  v1::SpendResponse ledger;
  auto add = [&](int64_t day, const std::string& model, int64_t in, int64_t cached, int64_t out,
                 const std::string& cost) {
    v1::SpendRow* r = ledger.add_rows();
    r->add_group_values(model);
    r->set_bucket_start_unix_s(day);
    r->mutable_tokens()->set_input_tokens(in);
    r->mutable_tokens()->set_cached_input_tokens(cached);
    r->mutable_tokens()->set_output_tokens(out);
    r->set_cost_usd(cost);
  };
  add(1'736'899'200, "gpt-4o", 1000, 200, 50, "0.003000000000");  // agrees
  add(1'736'899'200, "gpt-4o-mini", 10, 0, 1, "0.000000000002");  // cost differs
  add(1'737'072'000, "claude", 1, 0, 1, "0.000000000001");        // ledger only (01-17)
  EXPECT_EQ(ReconcileDifferences(invoice, ledger),
            std::vector<std::string>(
                {"2025-01-15 gpt-4o-mini cost_usd invoice=0.000000000001 "
                 "ledger=0.000000000002 diff=0.000000000001",
                 "2025-01-16 gpt-4o cost_usd invoice=0.000000000070 ledger=0.000000000000 "
                 "diff=-0.000000000070",
                 "2025-01-16 gpt-4o input_tokens invoice=7 ledger=0 diff=-7",
                 "2025-01-16 gpt-4o output_tokens invoice=7 ledger=0 diff=-7",
                 "2025-01-17 claude cost_usd invoice=0.000000000000 ledger=0.000000000001 "
                 "diff=0.000000000001",
                 "2025-01-17 claude input_tokens invoice=0 ledger=1 diff=1",
                 "2025-01-17 claude output_tokens invoice=0 ledger=1 diff=1"}));
  EXPECT_TRUE(ReconcileDifferences({invoice[0]},
                                   [&] {
                                     v1::SpendResponse r;
                                     *r.add_rows() = ledger.rows(0);
                                     return r;
                                   }())
                  .empty());
}

TEST(AnomaliesCommandTest, ParsesAndRenders) {
  absl::StatusOr<LedgerCommand> cmd = ParseLedgerCommand(
      {"anomalies", "--since", "2025-01-01", "--limit", "5", "--format", "json"}, kNoEnv, kNow);
  ASSERT_TRUE(cmd.ok()) << cmd.status();
  EXPECT_EQ(cmd->kind, LedgerCommand::Kind::kAnomalies);
  EXPECT_EQ(cmd->anomalies.start_unix_s(), 1'735'689'600);
  EXPECT_EQ(cmd->anomalies.limit(), 5);
  EXPECT_FALSE(ParseLedgerCommand({"anomalies", "--limit", "x"}, kNoEnv, kNow).ok());

  v1::ListAnomaliesResponse r;
  v1::Anomaly* a = r.add_anomalies();
  a->set_hour_unix_s(1'736'935'200);
  a->set_dimension("team");
  a->set_value("search");
  a->set_expected_usd("0.250000000000");
  a->set_actual_usd("2.000000000000");
  a->set_baseline_weeks(4);
  a->set_top_contributors_json("[{\"team\": \"search\", \"cost_usd\": \"2.000000000000\"}]");
  const std::string json = RenderAnomalies(r, Format::kJson);
  EXPECT_THAT(json, HasSubstr("\"hour\":\"2025-01-15T10:00:00Z\""));
  EXPECT_THAT(json, HasSubstr("\"top_contributors\":[{\"team\":\"search\""));
  const std::string table = RenderAnomalies(r, Format::kTable);
  EXPECT_THAT(table, HasSubstr("2.000000000000"));
  EXPECT_EQ(RenderAnomalies(v1::ListAnomaliesResponse(), Format::kTable), "no anomalies\n");
}

}  // namespace
}  // namespace tollgate::tools::ctl
