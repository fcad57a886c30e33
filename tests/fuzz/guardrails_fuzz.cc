// Guardrails see every client text: detection never crashes, matches are ordered, in bounds and
// non-overlapping, redaction only changes texts that had matches, and arbitrary JSON bodies
// (the input parsed as a request) are walked safely under block, redact and log policies.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "boost/json/parse.hpp"
#include "boost/json/serialize.hpp"
#include "services/gateway/guardrails.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using tollgate::gateway::GuardrailDecision;
using tollgate::gateway::Guardrails;
using tollgate::gateway::GuardrailsConfig;
using tollgate::gateway::kPiiDetectorCount;
using tollgate::gateway::PiiMode;

std::shared_ptr<const Guardrails> Make(PiiMode mode, bool patterns) {
  GuardrailsConfig c;
  for (size_t i = 0; i < kPiiDetectorCount; ++i) c.defaults.pii[i] = mode;
  if (patterns) {
    c.defaults.blocked_patterns = std::vector<tollgate::gateway::BlockedPattern>{
        {"codename", R"((?i)project\s+falcon)"}, {"sql", R"(\bDROP\s+TABLE\b)"}};
  }
  c.defaults.max_input_tokens = 1 << 20;
  auto g = Guardrails::Compile(c);
  FUZZ_CHECK(g.ok());
  return *g;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::shared_ptr<const Guardrails> redact = Make(PiiMode::kRedact, false);
  static const std::shared_ptr<const Guardrails> block = Make(PiiMode::kBlock, true);
  static const std::shared_ptr<const Guardrails> log = Make(PiiMode::kLog, false);
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  const auto matches = tollgate::gateway::FindPii(text);
  size_t previous_end = 0;
  for (const auto& m : matches) {
    FUZZ_CHECK(m.begin < m.end && m.end <= text.size());
    FUZZ_CHECK(m.begin >= previous_end);
    previous_end = m.end;
  }

  // The input as a user message.
  boost::json::value body = boost::json::object{
      {"model", "m"},
      {"messages", boost::json::array{boost::json::object{
                       {"role", "user"}, {"content", boost::json::string(text)}}}}};
  GuardrailDecision d = redact->Apply(redact->Resolve("t", "k"), size, body);
  FUZZ_CHECK(!d.blocked);
  FUZZ_CHECK(d.modified == !matches.empty());
  const auto& content = body.at("messages").at(0).at("content").as_string();
  if (matches.empty()) FUZZ_CHECK(std::string_view(content.data(), content.size()) == text);

  boost::json::value logged =
      boost::json::object{{"model", "m"}, {"input", boost::json::string(text)}};
  GuardrailDecision l = log->Apply(log->Resolve("t", "k"), size, logged);
  FUZZ_CHECK(!l.blocked && !l.modified);
  int32_t total = 0;
  for (int32_t n : l.logged) total += n;
  FUZZ_CHECK(total == static_cast<int32_t>(matches.size()));

  // The input as a whole request body.
  boost::system::error_code ec;
  boost::json::value parsed = boost::json::parse(text, ec);
  if (!ec) {
    GuardrailDecision b = block->Apply(block->Resolve("t", "k"), size, parsed);
    FUZZ_CHECK(!b.modified);
    if (b.blocked) FUZZ_CHECK(b.http_status == 400 && !b.code.empty() && !b.blocked_by.empty());
    boost::json::value copy = parsed;
    redact->Apply(redact->Resolve("t", "k"), size, copy);
  }
  return 0;
}
