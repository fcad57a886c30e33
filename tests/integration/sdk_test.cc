// The official OpenAI client library (Node, from npm; tests/sdk) drives the real gateway, and
// every call lands in the ledger with the tokens and cost the client saw.

#include <boost/json.hpp>
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/common/money.h"
#include "tests/testing/suite.h"

namespace tollgate::testing {
namespace {

namespace json = boost::json;

TEST(OpenAiSdk, DrivesTheGatewayAndEveryCallIsRecorded) {
  auto suite = Suite::Start();
  ASSERT_TRUE(suite.ok()) << suite.status();
  Suite& s = **suite;
  CommandResult r = RunCommand(
      {"node", TOLLGATE_SOURCE_DIR "/tests/sdk/openai_sdk.mjs"},
      {{"OPENAI_BASE_URL", absl::StrCat("http://127.0.0.1:", s.gateway_port(), "/v1")},
       {"OPENAI_API_KEY", Suite::kAlphaKey}});
  ASSERT_EQ(r.exit_code, 0) << r.output << s.Logs();
  // The script's last line is its JSON summary.
  std::string output = r.output;
  while (!output.empty() && output.back() == '\n') output.pop_back();
  const std::string last_line = output.substr(output.rfind('\n') + 1);
  json::value out = json::parse(last_line);
  for (const char* call : {"nonstream", "stream", "stream_usage"}) {
    const auto& c = out.at(call).as_object();
    const std::string id(c.at("request_id").as_string());
    const auto& usage = c.at("usage").as_object();
    const int64_t input = usage.at("prompt_tokens").to_number<int64_t>();
    const int64_t output = usage.at("completion_tokens").to_number<int64_t>();
    // gpt-4o-mini: $0.15/M input, $0.60/M output; the mock reports no cached tokens here.
    const std::string cost = FormatPicoUsd(input * 150'000 + output * 600'000);
    const std::string want = absl::StrCat("alpha|sdk|", input, "|", output, "|", cost);
    std::string got;
    for (int i = 0; i < 400 && got != want; ++i) {
      auto row = s.Sql(absl::StrCat("SELECT team, feature, input_tokens, output_tokens, cost_usd"
                                    " FROM usage_events WHERE request_id = '", id, "'"));
      got = row.ok() ? *row : std::string(row.status().message());
      if (got != want) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(got, want) << call;
  }
}

}  // namespace
}  // namespace tollgate::testing
