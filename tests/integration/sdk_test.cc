// Issue 3 "Done when": the official OpenAI and Anthropic client libraries (Node, from npm;
// tests/sdk) drive non-stream, stream and tool-calling conversations through the real gateway to
// every dialect of the mock provider (OpenAI, Anthropic, Gemini, Azure OpenAI), and every call
// lands in the ledger with the token counts the client saw and the cost those tokens imply at the
// deployment's prices, to the digit.

#include <boost/json.hpp>
#include <chrono>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/common/money.h"
#include "tests/testing/suite.h"
#include "tests/testing/suite_environment.h"

namespace tollgate::testing {
namespace {

namespace json = boost::json;

Suite* g_suite = nullptr;

const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new SuiteEnvironment(&g_suite));

// A model of the suite's catalog (tests/testing/suite.cc) and the prices of its deployment, USD
// per million tokens, as the catalog states them.
struct Dialect {
  const char* name;
  const char* model;
  const char* input;
  const char* cached;
  const char* write_5m;
  const char* write_1h;
  const char* output;
  // Mock directives that make this dialect report every token type it has.
  const char* directives;
};

const Dialect kDialects[] = {
    {"openai", "gpt-4o-mini", "0.15", "0.075", "0.15", "0.15", "0.60", "cached=6"},
    {"anthropic", "claude-sonnet-4", "3.00", "0.30", "3.75", "6.00", "15.00",
     "cached=6 cache_write_5m=4 cache_write_1h=2"},
    {"gemini", "gemini-2.5-flash", "0.30", "0.03", "0.30", "0.30", "2.50", "cached=6 reasoning=3"},
    {"azure_openai", "azure-gpt-4o", "2.50", "1.25", "2.50", "2.50", "10.00", "cached=6"},
};

std::string PrintDialect(const ::testing::TestParamInfo<Dialect>& info) {
  return info.param.name;
}

v1::UnitPrices PricesOf(const Dialect& d) {
  v1::UnitPrices p;
  p.set_input_pico(*ParseUsdPerMillionTokens(d.input));
  p.set_cached_input_pico(*ParseUsdPerMillionTokens(d.cached));
  p.set_cache_write_5m_pico(*ParseUsdPerMillionTokens(d.write_5m));
  p.set_cache_write_1h_pico(*ParseUsdPerMillionTokens(d.write_1h));
  p.set_output_pico(*ParseUsdPerMillionTokens(d.output));
  return p;
}

// The last line of a script's output: its JSON summary.
json::value Summary(const CommandResult& r) {
  std::string output = r.output;
  while (!output.empty() && output.back() == '\n') output.pop_back();
  return json::parse(output.substr(output.rfind('\n') + 1));
}

int64_t Int(const json::value& v, std::string_view key) {
  const json::value* field = v.as_object().if_contains(key);
  return field == nullptr || field->is_null() ? 0 : field->to_number<int64_t>();
}

// Waits for the ledger row of `request_id` and compares it with `usage` (normalised) priced at
// `prices`.
void ExpectRecorded(const std::string& request_id, const v1::TokenUsage& usage,
                    const v1::UnitPrices& prices, const std::string& what) {
  const std::string want = absl::StrCat(
      "alpha|sdk|", usage.input_tokens(), "|", usage.cached_input_tokens(), "|",
      usage.cache_write_5m_tokens(), "|", usage.cache_write_1h_tokens(), "|",
      usage.output_tokens(), "|", usage.reasoning_tokens(), "|",
      FormatPicoUsd(*PriceUsage(usage, prices)));
  std::string got;
  for (int i = 0; i < 400 && got != want; ++i) {
    auto row = g_suite->Sql(absl::StrCat(
        "SELECT team, feature, input_tokens, cached_input_tokens, cache_write_5m_tokens,"
        " cache_write_1h_tokens, output_tokens, reasoning_tokens, cost_usd"
        " FROM usage_events WHERE request_id = '",
        request_id, "'"));
    got = row.ok() ? *row : std::string(row.status().message());
    if (got != want) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(got, want) << what << " (request " << request_id << ")";
}

class SdkTest : public ::testing::TestWithParam<Dialect> {};

TEST_P(SdkTest, OpenAiClientDrivesEveryDialectAndEveryCallIsRecordedExactly) {
  ASSERT_NE(g_suite, nullptr);
  const Dialect& d = GetParam();
  CommandResult r = RunCommand(
      {"node", TOLLGATE_SOURCE_DIR "/tests/sdk/openai_sdk.mjs"},
      {{"OPENAI_BASE_URL", absl::StrCat("http://127.0.0.1:", g_suite->gateway_port(), "/v1")},
       {"OPENAI_API_KEY", Suite::kAlphaKey},
       {"TOLLGATE_MODEL", d.model}});
  ASSERT_EQ(r.exit_code, 0) << r.output << g_suite->Logs();
  const json::value out = Summary(r);
  for (const char* call : {"nonstream", "stream", "stream_usage"}) {
    const json::value& c = out.at(call);
    const json::value& u = c.at("usage");
    // OpenAI shape: prompt_tokens include cached and cache-write tokens.
    v1::TokenUsage usage;
    usage.set_input_tokens(Int(u, "prompt_tokens"));
    usage.set_output_tokens(Int(u, "completion_tokens"));
    if (const json::value* details = u.as_object().if_contains("prompt_tokens_details");
        details != nullptr && details->is_object()) {
      usage.set_cached_input_tokens(Int(*details, "cached_tokens"));
    }
    if (const json::value* details = u.as_object().if_contains("completion_tokens_details");
        details != nullptr && details->is_object()) {
      usage.set_reasoning_tokens(Int(*details, "reasoning_tokens"));
    }
    ASSERT_GT(usage.output_tokens(), 0) << call;
    ExpectRecorded(std::string(c.at("request_id").as_string()), usage, PricesOf(d),
                   absl::StrCat(d.name, " ", call));
  }
}

TEST_P(SdkTest, AnthropicClientDrivesEveryDialectAndEveryCallIsRecordedExactly) {
  ASSERT_NE(g_suite, nullptr);
  const Dialect& d = GetParam();
  CommandResult r = RunCommand(
      {"node", TOLLGATE_SOURCE_DIR "/tests/sdk/anthropic_sdk.mjs"},
      {{"ANTHROPIC_BASE_URL", absl::StrCat("http://127.0.0.1:", g_suite->gateway_port())},
       {"ANTHROPIC_API_KEY", Suite::kAlphaKey},
       {"TOLLGATE_MODEL", d.model},
       {"TOLLGATE_MOCK_DIRECTIVES", d.directives}});
  ASSERT_EQ(r.exit_code, 0) << r.output << g_suite->Logs();
  const json::value out = Summary(r);
  bool saw_cache_tokens = false;
  auto check = [&](const json::value& c, const std::string& what) {
    const json::value& u = c.at("usage");
    // Anthropic shape: input_tokens exclude cache reads and writes.
    v1::TokenUsage usage;
    const int64_t read = Int(u, "cache_read_input_tokens");
    const json::value& creation = u.at("cache_creation");
    const int64_t write_5m = Int(creation, "ephemeral_5m_input_tokens");
    const int64_t write_1h = Int(creation, "ephemeral_1h_input_tokens");
    EXPECT_EQ(write_5m + write_1h, Int(u, "cache_creation_input_tokens")) << what;
    usage.set_input_tokens(Int(u, "input_tokens") + read + write_5m + write_1h);
    usage.set_cached_input_tokens(read);
    usage.set_cache_write_5m_tokens(write_5m);
    usage.set_cache_write_1h_tokens(write_1h);
    usage.set_output_tokens(Int(u, "output_tokens"));
    usage.set_reasoning_tokens(Int(u, "thinking_tokens"));
    ASSERT_GT(usage.output_tokens(), 0) << what;
    saw_cache_tokens = saw_cache_tokens || read > 0;
    ExpectRecorded(std::string(c.at("request_id").as_string()), usage, PricesOf(d),
                   absl::StrCat(d.name, " ", what));
  };
  for (const char* call : {"nonstream", "stream", "stream_raw"}) check(out.at(call), call);
  const json::array& tool_calls = out.at("tools").at("calls").as_array();
  ASSERT_EQ(tool_calls.size(), 3u);
  for (size_t i = 0; i < tool_calls.size(); ++i) {
    check(tool_calls[i], absl::StrCat("tool call ", i));
  }
  EXPECT_TRUE(saw_cache_tokens) << "the directives asked every dialect for cached tokens";
}

INSTANTIATE_TEST_SUITE_P(Dialects, SdkTest, ::testing::ValuesIn(kDialects), PrintDialect);

}  // namespace
}  // namespace tollgate::testing
