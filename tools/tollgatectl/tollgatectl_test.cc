#include <map>
#include <string>

#include "boost/json/parse.hpp"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/tollgatectl/ctl_lib.h"

namespace tollgate::tools::ctl {
namespace {

namespace json = boost::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1'714'564'800);  // 2024-05-01T12:00:00Z

GetEnv Env(std::map<std::string, std::string> vars = {}) {
  return [vars](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

absl::StatusOr<Command> Parse(std::vector<std::string> args,
                              std::map<std::string, std::string> env = {}) {
  return ParseCommandLine(args, Env(std::move(env)), kNow);
}

// ---- durations and times ----------------------------------------------------------------------

TEST(ParseDurationTest, Units) {
  EXPECT_EQ(*ParseDuration("30m"), absl::Minutes(30));
  EXPECT_EQ(*ParseDuration("24h"), absl::Hours(24));
  EXPECT_EQ(*ParseDuration("7d"), absl::Hours(168));
  EXPECT_EQ(*ParseDuration("2w"), absl::Hours(336));
  EXPECT_EQ(*ParseDuration("1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseDuration("500ms"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseDuration("10s"), absl::Seconds(10));
}

TEST(ParseDurationTest, Errors) {
  for (const char* bad : {"", "10", "h", "-5m", "5 m", "3y", "1.5h", "99999999999h"}) {
    EXPECT_EQ(ParseDuration(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ParseTimeSpecTest, RelativeAbsoluteAndDates) {
  EXPECT_EQ(*ParseTimeSpec("24h", kNow), 1'714'564'800 - 86'400);
  EXPECT_EQ(*ParseTimeSpec("now", kNow), 1'714'564'800);
  EXPECT_EQ(*ParseTimeSpec("2024-05-01T00:00:00Z", kNow), 1'714'521'600);
  EXPECT_EQ(*ParseTimeSpec("2024-05-01T02:00:00+02:00", kNow), 1'714'521'600);
  EXPECT_EQ(*ParseTimeSpec("2024-05-01", kNow), 1'714'521'600);
  EXPECT_FALSE(ParseTimeSpec("yesterday", kNow).ok());
  EXPECT_FALSE(ParseTimeSpec("2024-13-01", kNow).ok());
}

// ---- group-by and filters ---------------------------------------------------------------------

TEST(ParseGroupByTest, TagDimensionsAreForwarded) {
  auto dims = ParseGroupBy({"team,tag:env"});
  ASSERT_TRUE(dims.ok()) << dims.status();
  EXPECT_EQ(*dims, (std::vector<std::string>{"team", "tag:env"}));
  EXPECT_FALSE(ParseGroupBy({"tag:"}).ok());
}

TEST(ParseGroupByTest, CommaListsAndRepeats) {
  auto dims = ParseGroupBy({"team, feature", "provider"});
  ASSERT_TRUE(dims.ok());
  EXPECT_THAT(*dims, ElementsAre("team", "feature", "provider"));
  EXPECT_TRUE(ParseGroupBy({}).ok());
  EXPECT_THAT(std::string(ParseGroupBy({"team,teem"}).status().message()),
              HasSubstr("unknown dimension 'teem'"));
  EXPECT_FALSE(ParseGroupBy({"team,team"}).ok());
  EXPECT_FALSE(ParseGroupBy({"team,"}).ok());
}

TEST(ParseFilterTest, DimensionEqualsValue) {
  auto f = ParseFilter("team=search=x");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->first, "team");
  EXPECT_EQ(f->second, "search=x");
  EXPECT_FALSE(ParseFilter("team").ok());
  EXPECT_FALSE(ParseFilter("colour=red").ok());
}

// ---- command line -----------------------------------------------------------------------------

TEST(ParseCommandLineTest, SpendWithEveryFlag) {
  auto cmd =
      Parse({"--ledger_admin=10.0.0.1:7004", "spend", "--group-by", "team,feature", "--since=7d",
             "--until", "2024-05-01T12:00:00Z", "--bucket=day", "--filter", "team=search",
             "--filter=provider=openai", "--limit=5", "--format=csv", "--timeout=2s"});
  ASSERT_TRUE(cmd.ok()) << cmd.status();
  EXPECT_EQ(cmd->kind, Command::Kind::kSpend);
  EXPECT_EQ(cmd->global.ledger_admin, "10.0.0.1:7004");
  EXPECT_EQ(cmd->global.router_admin, kDefaultRouterAdmin);
  EXPECT_EQ(cmd->global.timeout, absl::Seconds(2));
  EXPECT_EQ(cmd->format, Format::kCsv);
  const v1::SpendQuery& q = cmd->spend_query;
  EXPECT_THAT(q.group_by(), ElementsAre("team", "feature"));
  EXPECT_EQ(q.start_unix_s(), 1'714'564'800 - 7 * 86'400);
  EXPECT_EQ(q.end_unix_s(), 1'714'564'800);
  EXPECT_EQ(q.bucket(), v1::BUCKET_DAY);
  EXPECT_EQ(q.filters().at("team"), "search");
  EXPECT_EQ(q.filters().at("provider"), "openai");
  EXPECT_EQ(q.limit(), 5);
}

TEST(ParseCommandLineTest, EnvironmentDefaultsAndFlagOverride) {
  auto cmd =
      Parse({"catalog"}, {{"TOLLGATE_ROUTER_ADMIN", "r:1"}, {"TOLLGATE_LEDGER_ADMIN", "l:2"}});
  ASSERT_TRUE(cmd.ok());
  EXPECT_EQ(cmd->kind, Command::Kind::kCatalog);
  EXPECT_EQ(cmd->global.router_admin, "r:1");
  EXPECT_EQ(cmd->global.ledger_admin, "l:2");
  EXPECT_EQ(cmd->global.timeout, absl::Seconds(10));
  cmd = Parse({"catalog", "--router-admin", "r:9"}, {{"TOLLGATE_ROUTER_ADMIN", "r:1"}});
  ASSERT_TRUE(cmd.ok());
  EXPECT_EQ(cmd->global.router_admin, "r:9");
  EXPECT_EQ(Parse({"spend"})->spend_query.start_unix_s(), 0);
}

TEST(ParseCommandLineTest, Help) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"help"}, {"--help"}, {"-h"}, {"help", "spend"}, {"spend", "--help"}}) {
    auto cmd = Parse(args);
    ASSERT_TRUE(cmd.ok()) << args[0];
    EXPECT_EQ(cmd->kind, Command::Kind::kHelp);
  }
  EXPECT_EQ(Parse({"spend", "-h"})->help_topic, "spend");
  EXPECT_EQ(Parse({"help", "catalog"})->help_topic, "catalog");
  EXPECT_THAT(Usage("spend"), HasSubstr("--group-by"));
  EXPECT_THAT(Usage(""), HasSubstr("Commands:"));
}

TEST(ParseCommandLineTest, UsageErrors) {
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"spnd"},
      {"spend", "--colour=red"},
      {"catalog", "--group-by=team"},
      {"catalog", "--format=csv"},
      {"spend", "--bucket=year"},
      {"spend", "--limit=-1"},
      {"spend", "--since"},
      {"spend", "--since=1d", "--until=2d"},
      {"spend", "extra"},
      {"spend", "--timeout=0s"},
      {"help", "nothing"},
  };
  for (const auto& args : bad) {
    EXPECT_EQ(Parse(args).status().code(), absl::StatusCode::kInvalidArgument)
        << (args.empty() ? "(none)" : args.back());
  }
}

// ---- rendering --------------------------------------------------------------------------------

v1::SpendResponse SampleSpend() {
  v1::SpendResponse r;
  r.add_group_by("team");
  r.add_group_by("feature");
  auto add = [&](v1::SpendRow* row, std::vector<std::string> values, int64_t requests,
                 int64_t input, int64_t cached, int64_t w5, int64_t w1, int64_t output,
                 int64_t reasoning, std::string cost) {
    for (auto& v : values) row->add_group_values(v);
    row->set_requests(requests);
    row->mutable_tokens()->set_input_tokens(input);
    row->mutable_tokens()->set_cached_input_tokens(cached);
    row->mutable_tokens()->set_cache_write_5m_tokens(w5);
    row->mutable_tokens()->set_cache_write_1h_tokens(w1);
    row->mutable_tokens()->set_output_tokens(output);
    row->mutable_tokens()->set_reasoning_tokens(reasoning);
    row->set_cost_usd(std::move(cost));
    row->set_bucket_start_unix_s(1'714'521'600);
  };
  add(r.add_rows(), {"search", "chat, v2"}, 12, 1000, 200, 10, 5, 500, 40, "0.012345678901");
  add(r.add_rows(), {"ads", ""}, 3, 90, 0, 0, 0, 30, 0, "0.000000000001");
  add(r.mutable_total(), {}, 15, 1090, 200, 10, 5, 530, 40, "0.012345678902");
  return r;
}

TEST(RenderSpendTest, TableIsAlignedWithTotal) {
  const std::string table = RenderSpendTable(SampleSpend(), v1::BUCKET_NONE);
  EXPECT_EQ(table,
            "team    feature   requests  input  cached_input  cache_write  output  reasoning"
            "        cost_usd\n"
            "--------------------------------------------------------------------------------"
            "---------------\n"
            "search  chat, v2        12   1000           200           15     500         40"
            "  0.012345678901\n"
            "ads     (none)           3     90             0            0      30          0"
            "  0.000000000001\n"
            "--------------------------------------------------------------------------------"
            "---------------\n"
            "TOTAL                   15   1090           200           15     530         40"
            "  0.012345678902\n");
}

TEST(RenderSpendTest, TableWithBucketAndNoDimensions) {
  v1::SpendResponse r = SampleSpend();
  r.clear_group_by();
  const std::string day = RenderSpendTable(r, v1::BUCKET_DAY);
  EXPECT_THAT(day, HasSubstr("bucket"));
  EXPECT_THAT(day, HasSubstr("2024-05-01  "));
  EXPECT_THAT(day, HasSubstr("TOTAL"));
  EXPECT_THAT(RenderSpendTable(r, v1::BUCKET_HOUR), HasSubstr("2024-05-01T00:00:00Z"));
  const std::string plain = RenderSpendTable(r, v1::BUCKET_NONE);
  EXPECT_THAT(plain, HasSubstr("TOTAL"));
  EXPECT_THAT(plain, HasSubstr("0.012345678902"));
}

TEST(RenderSpendTest, CsvQuotesPerRfc4180) {
  EXPECT_EQ(RenderSpendCsv(SampleSpend(), v1::BUCKET_NONE),
            "team,feature,requests,input,cached_input,cache_write,output,reasoning,cost_usd\r\n"
            "search,\"chat, v2\",12,1000,200,15,500,40,0.012345678901\r\n"
            "ads,,3,90,0,0,30,0,0.000000000001\r\n");
  EXPECT_EQ(CsvField("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(CsvField("a\nb"), "\"a\nb\"");
  EXPECT_EQ(CsvField("plain"), "plain");
}

TEST(RenderSpendTest, JsonKeepsCostAsString) {
  const json::value v = json::parse(RenderSpendJson(SampleSpend(), v1::BUCKET_HOUR));
  EXPECT_EQ(v.at("group_by"), json::parse(R"(["team","feature"])"));
  EXPECT_EQ(v.at("bucket"), "hour");
  const json::object& row = v.at("rows").at(0).as_object();
  EXPECT_EQ(row.at("bucket_start"), "2024-05-01T00:00:00Z");
  EXPECT_EQ(row.at("bucket_start_unix_s"), 1'714'521'600);
  EXPECT_EQ(row.at("team"), "search");
  EXPECT_EQ(row.at("feature"), "chat, v2");
  EXPECT_EQ(row.at("requests"), 12);
  EXPECT_EQ(row.at("cache_write"), 15);
  EXPECT_EQ(row.at("cache_write_5m"), 10);
  EXPECT_EQ(row.at("reasoning"), 40);
  EXPECT_EQ(row.at("cost_usd"), "0.012345678901");
  const json::object& total = v.at("total").as_object();
  EXPECT_FALSE(total.contains("team"));
  EXPECT_EQ(total.at("requests"), 15);
  EXPECT_EQ(total.at("cost_usd"), "0.012345678902");
}

v1::ListCatalogResponse SampleCatalog() {
  v1::ListCatalogResponse r;
  r.set_catalog_version("abc123");
  auto* p = r.add_providers();
  p->set_name("mock");
  p->set_dialect("openai");
  p->set_base_url("http://127.0.0.1:9090/v1");
  auto* m = r.add_models();
  m->set_id("gpt-4o-mini");
  m->set_owned_by("openai");
  m->add_aliases("mini");
  m->add_aliases("fast");
  m->add_deployment_ids("mock-gpt-4o-mini");
  m->add_deployment_ids("dead-gpt-4o-mini");
  auto* d = r.add_deployments();
  d->set_id("mock-gpt-4o-mini");
  d->set_provider("mock");
  d->set_upstream_model("gpt-4o-mini");
  d->set_region("local");
  d->mutable_prices()->set_input_pico(150'000);
  d->mutable_prices()->set_cached_input_pico(75'000);
  d->mutable_prices()->set_output_pico(600'000);
  return r;
}

TEST(RenderCatalogTest, Table) {
  const std::string table = RenderCatalogTable(SampleCatalog());
  EXPECT_THAT(table, HasSubstr("catalog_version: abc123"));
  EXPECT_THAT(table, HasSubstr("mini,fast"));
  EXPECT_THAT(table, HasSubstr("mock-gpt-4o-mini > dead-gpt-4o-mini"));
  EXPECT_THAT(table, HasSubstr("0.15"));
  EXPECT_THAT(table, HasSubstr("0.075"));
  EXPECT_THAT(table, HasSubstr("=output"));
}

TEST(RenderCatalogTest, Json) {
  const json::value v = json::parse(RenderCatalogJson(SampleCatalog()));
  EXPECT_EQ(v.at("models").at(0).at("deployments"),
            json::parse(R"(["mock-gpt-4o-mini","dead-gpt-4o-mini"])"));
  const json::value& prices = v.at("deployments").at(0).at("prices_usd_per_million_tokens");
  EXPECT_EQ(prices.at("input"), "0.15");
  EXPECT_EQ(prices.at("cached_input"), "0.075");
  EXPECT_EQ(prices.at("output"), "0.6");
}

TEST(RpcErrorLineTest, OneLine) {
  EXPECT_EQ(RpcErrorLine("ledger", "127.0.0.1:7004", 14, "failed to connect\nto all addresses"),
            "tollgatectl: ledger at 127.0.0.1:7004: UNAVAILABLE: failed to connect to all "
            "addresses");
}

TEST(SpendApiFlagsTest, ParsesNewSpendFlags) {
  auto cmd = Parse({"spend", "--since=7d", "--bucket=week", "--compare", "--top=5", "--page-size=2",
                    "--page-token=o2", "--group-by=tag:project"});
  ASSERT_TRUE(cmd.ok()) << cmd.status();
  EXPECT_EQ(cmd->spend_query.bucket(), v1::BUCKET_WEEK);
  EXPECT_TRUE(cmd->spend_query.compare_previous());
  EXPECT_EQ(cmd->spend_query.limit(), 5);
  EXPECT_EQ(cmd->spend_query.page_size(), 2);
  EXPECT_EQ(cmd->spend_query.page_token(), "o2");
  EXPECT_EQ(Parse({"spend", "--bucket=month"})->spend_query.bucket(), v1::BUCKET_MONTH);
  EXPECT_EQ(Parse({"spend", "--compare"}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Parse({"spend", "--since=1d", "--page-size=-1"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SpendApiFlagsTest, RendersDerivedAndComparisonColumns) {
  v1::SpendResponse r;
  r.add_group_by("team");
  v1::SpendRow* row = r.add_rows();
  row->add_group_values("search");
  row->set_requests(2);
  row->set_cost_usd("0.300000000000");
  row->set_cost_per_request_usd("0.150000000000");
  row->set_cost_per_1k_tokens_usd("0.010000000000");
  row->set_share_of_total("1.000000");
  row->set_previous_cost_usd("0.200000000000");
  row->set_change_usd("0.100000000000");
  row->set_change_ratio("0.500000");
  *r.mutable_total() = *row;
  r.mutable_total()->clear_group_values();
  r.set_previous_start_unix_s(100);
  r.set_previous_end_unix_s(200);
  r.set_next_page_token("o1");
  const std::string json = RenderSpendJson(r, v1::BUCKET_NONE);
  // Old keys stay; new ones are added.
  for (const char* key :
       {"\"team\":\"search\"", "\"requests\":2", "\"cost_usd\":\"0.300000000000\"",
        "\"cost_per_request_usd\":\"0.150000000000\"",
        "\"cost_per_1k_tokens_usd\":\"0.010000000000\"", "\"share_of_total\":\"1.000000\"",
        "\"previous_cost_usd\":\"0.200000000000\"", "\"change_usd\":\"0.100000000000\"",
        "\"change_ratio\":\"0.500000\"", "\"next_page_token\":\"o1\""}) {
    EXPECT_NE(json.find(key), std::string::npos) << key << " in " << json;
  }
  const std::string csv = RenderSpendCsv(r, v1::BUCKET_NONE);
  EXPECT_EQ(csv.substr(0, csv.find('\r')),
            "team,requests,input,cached_input,cache_write,output,reasoning,cost_usd,"
            "per_1k_tokens,per_request,share,previous_cost_usd,change_usd,change");
  EXPECT_NE(RenderSpendTable(r, v1::BUCKET_NONE).find("more rows: --page-token=o1"),
            std::string::npos);
}

}  // namespace
}  // namespace tollgate::tools::ctl
