#include "services/gateway/guardrails.h"

#include <memory>
#include <string>
#include <vector>

#include "boost/json/parse.hpp"
#include "boost/json/serialize.hpp"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "services/gateway/gateway_metrics.h"

namespace tollgate::gateway {
namespace {

namespace json = boost::json;

// The detector names FindPii reports for `text`, in order.
std::vector<std::string> Detect(std::string_view text) {
  std::vector<std::string> out;
  for (const PiiMatch& m : FindPii(text)) out.emplace_back(PiiDetectorName(m.detector));
  return out;
}

// The matched substrings.
std::vector<std::string> Matches(std::string_view text) {
  std::vector<std::string> out;
  for (const PiiMatch& m : FindPii(text)) out.emplace_back(text.substr(m.begin, m.end - m.begin));
  return out;
}

using Names = std::vector<std::string>;

// ---------------------------------------------------------------------------------------------
// Validators.

TEST(GuardrailsValidators, Luhn) {
  EXPECT_TRUE(LuhnValid("4111111111111111"));
  EXPECT_TRUE(LuhnValid("4111 1111 1111 1111"));
  EXPECT_TRUE(LuhnValid("378282246310005"));
  EXPECT_FALSE(LuhnValid("4111111111111112"));
  EXPECT_FALSE(LuhnValid("41x1"));
}

TEST(GuardrailsValidators, Iban) {
  EXPECT_TRUE(IbanChecksumValid("DE89370400440532013000"));
  EXPECT_TRUE(IbanChecksumValid("GB82 WEST 1234 5698 7654 32"));
  EXPECT_TRUE(IbanChecksumValid("FR1420041010050500013M02606"));
  EXPECT_FALSE(IbanChecksumValid("DE89370400440532013001"));  // checksum off by one
  EXPECT_FALSE(IbanChecksumValid("GB82WEST123456987654"));    // truncated
  EXPECT_FALSE(IbanChecksumValid("DE8937"));
}

TEST(GuardrailsValidators, UsSsnRanges) {
  EXPECT_TRUE(UsSsnValid("123-45-6789"));
  EXPECT_TRUE(UsSsnValid("536 22 1234"));
  EXPECT_FALSE(UsSsnValid("000-12-3456"));  // area 000
  EXPECT_FALSE(UsSsnValid("666-12-3456"));  // area 666
  EXPECT_FALSE(UsSsnValid("900-12-3456"));  // area 900-999
  EXPECT_FALSE(UsSsnValid("999-12-3456"));
  EXPECT_FALSE(UsSsnValid("123-00-4567"));  // group 00
  EXPECT_FALSE(UsSsnValid("123-45-0000"));  // serial 0000
  EXPECT_FALSE(UsSsnValid("078-05-1120"));  // publicised
  EXPECT_FALSE(UsSsnValid("123-45 6789"));  // mixed separators
}

// ---------------------------------------------------------------------------------------------
// Detectors, each with its false-positive cases.

TEST(GuardrailsDetectors, Email) {
  EXPECT_EQ(Matches("mail jane.doe+news@mail.example.co.uk today"),
            Names({"jane.doe+news@mail.example.co.uk"}));
  EXPECT_EQ(Detect("a@b.io"), Names({"email"}));
  EXPECT_EQ(Detect("user@localhost and pkg@1.2.3 and @handle"), Names());
}

TEST(GuardrailsDetectors, Phone) {
  EXPECT_EQ(Matches("call +1 415 555 0123 now"), Names({"+1 415 555 0123"}));
  EXPECT_EQ(Matches("+44 20 7946 0958"), Names({"+44 20 7946 0958"}));
  EXPECT_EQ(Matches("+4915112345678"), Names({"+4915112345678"}));
  EXPECT_EQ(Matches("(415) 555-0123"), Names({"(415) 555-0123"}));
  EXPECT_EQ(Matches("415-555-0123 or 415.555.0123"), Names({"415-555-0123", "415.555.0123"}));
  EXPECT_EQ(Matches("020 7946 0958"), Names({"020 7946 0958"}));
  EXPECT_EQ(Detect("x +33 6 12 34 56 78"), Names({"phone"}));
}

TEST(GuardrailsDetectors, PhoneFalsePositives) {
  EXPECT_EQ(Detect("released 2024-01-15 at 12:30:45"), Names());      // date, time
  EXPECT_EQ(Detect("on 01/02/2024 and 15.01.2024"), Names());         // dates
  EXPECT_EQ(Detect("version 1.2.3, v10.14.2, 2.0.0-rc.1"), Names());  // versions
  EXPECT_EQ(Detect("order 4155550123 and 1234567"), Names());         // plain numbers
  EXPECT_EQ(Detect("order 0001-2345-6789"), Names());                 // 00 is not a trunk
  EXPECT_EQ(Detect("ip 192.168.100.200"), Names());
  EXPECT_EQ(Detect("+12 items"), Names());     // too few digits
  EXPECT_EQ(Detect("123-555-0123"), Names());  // NANP area codes start with 2-9
}

TEST(GuardrailsDetectors, Card) {
  EXPECT_EQ(Matches("card 4111 1111 1111 1111 exp"), Names({"4111 1111 1111 1111"}));
  EXPECT_EQ(Matches("4111-1111-1111-1111"), Names({"4111-1111-1111-1111"}));
  EXPECT_EQ(Matches("5500000000000004"), Names({"5500000000000004"}));
  EXPECT_EQ(Matches("amex 3782 822463 10005"), Names({"3782 822463 10005"}));
  EXPECT_EQ(Detect("6011111111111117"), Names({"card"}));
}

TEST(GuardrailsDetectors, CardFalsePositives) {
  EXPECT_EQ(Detect("4111111111111112"), Names());  // fails Luhn
  EXPECT_EQ(Detect("4111 1111 1111 1112"), Names());
  EXPECT_EQ(Detect("order 1234567812345670"), Names());  // Luhn-valid, no issuer prefix
  EXPECT_EQ(Detect("0000000000000000"), Names());
  EXPECT_EQ(Detect("4111 11111111-1111"), Names());       // inconsistent separators
  EXPECT_EQ(Detect("timestamp 1700000000000"), Names());  // 13-digit epoch millis
  EXPECT_EQ(Detect("uuid 123e4567-e89b-12d3-a456-426614174000"), Names());
}

TEST(GuardrailsDetectors, Iban) {
  EXPECT_EQ(Matches("pay to DE89 3704 0044 0532 0130 00 please"),
            Names({"DE89 3704 0044 0532 0130 00"}));
  EXPECT_EQ(Detect("GB82WEST12345698765432"), Names({"iban"}));
  EXPECT_EQ(Detect("DE89 3704 0044 0532 0130 01"), Names());  // bad checksum
  EXPECT_EQ(Detect("SKU AB12CDEF34567890"), Names());
}

TEST(GuardrailsDetectors, NationalId) {
  EXPECT_EQ(Matches("ssn 123-45-6789."), Names({"123-45-6789"}));
  EXPECT_EQ(Detect("000-12-3456 666-12-3456 912-34-5678 123-00-4567 123-45-0000"), Names());
  EXPECT_EQ(Detect("078-05-1120"), Names());
  EXPECT_EQ(Detect("123456789 and 2024-11-2233"), Names());  // unseparated, date-like
}

TEST(GuardrailsDetectors, Secrets) {
  const std::string openai = "sk-proj-" + std::string(40, 'a') + "1B2c";
  const std::string legacy = "sk-" + std::string(20, 'Z') + "0123456789abcdefghijklmn";
  const std::string anthropic = "sk-ant-api03-" + std::string(30, 'x') + "9_-Q";
  EXPECT_EQ(Matches("key=" + openai + " end"), Names({openai}));
  EXPECT_EQ(Matches(legacy), Names({legacy}));
  EXPECT_EQ(Matches("ANTHROPIC_API_KEY=" + anthropic), Names({anthropic}));
  EXPECT_EQ(Matches("AKIAIOSFODNN7EXAMPLE"), Names({"AKIAIOSFODNN7EXAMPLE"}));
  EXPECT_EQ(Detect("ghp_" + std::string(30, 'a') + "123456"), Names({"secret"}));
  EXPECT_EQ(Detect("AIzaSyA-" + std::string(26, 'b') + "123456789"), Names({"secret"}));
  const std::string pem =
      "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----";
  EXPECT_EQ(Matches("x\n" + pem + "\ny"), Names({pem}));
  EXPECT_EQ(Detect("-----BEGIN PRIVATE KEY-----\nMIIE (truncated"), Names({"secret"}));
}

TEST(GuardrailsDetectors, SecretFalsePositives) {
  EXPECT_EQ(Detect("use sk-learn-and-scikit-image-and-friends-together for this"), Names());
  EXPECT_EQ(Detect("ask-" + std::string(40, 'a') + "1"), Names());  // not at a word start
  EXPECT_EQ(Detect("AKIA is a prefix; AKIAshort"), Names());
  EXPECT_EQ(Detect("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----"), Names());
  EXPECT_EQ(Detect("ghp_tooshort"), Names());
}

TEST(GuardrailsDetectors, PlainTextHasNothing) {
  EXPECT_EQ(Detect("The quick brown fox jumps over the lazy dog. Ticket #4521, room 101, "
                   "build 20240115, commit 3f2a9c1, uuid 550e8400-e29b-41d4-a716-446655440000, "
                   "price $1,234.56, 3.14159, 10:45, 2024-06-01T12:00:00Z."),
            Names());
  EXPECT_EQ(Detect(""), Names());
}

// ---------------------------------------------------------------------------------------------
// Policies and Apply.

GuardrailPolicy Pii(std::initializer_list<std::pair<PiiDetector, PiiMode>> modes) {
  GuardrailPolicy p;
  for (auto [d, m] : modes) p.pii[static_cast<size_t>(d)] = m;
  return p;
}

std::shared_ptr<const Guardrails> MustCompile(const GuardrailsConfig& config) {
  auto g = Guardrails::Compile(config);
  EXPECT_TRUE(g.ok()) << g.status();
  return g.ok() ? *g : nullptr;
}

json::value Chat(std::string_view user_text) {
  json::object body;
  body["model"] = "gpt-4o-mini";
  json::array messages;
  messages.push_back(json::object{{"role", "system"}, {"content", "be brief"}});
  messages.push_back(json::object{{"role", "user"}, {"content", user_text}});
  body["messages"] = std::move(messages);
  return body;
}

std::string UserText(const json::value& body) {
  return std::string(body.at("messages").at(1).at("content").as_string());
}

TEST(Guardrails, NoPolicyIsANoOp) {
  auto g = MustCompile({});
  json::value body = Chat("mail me at a@b.io, card 4111111111111111");
  const std::string before = json::serialize(body);
  GuardrailDecision d = g->Apply(g->Resolve("t", "k"), 100000, body);
  EXPECT_FALSE(d.blocked);
  EXPECT_FALSE(d.modified);
  EXPECT_FALSE(d.log_payload);
  EXPECT_EQ(json::serialize(body), before);
}

TEST(Guardrails, RedactInPlace) {
  GuardrailsConfig c;
  c.defaults = Pii({{PiiDetector::kEmail, PiiMode::kRedact},
                    {PiiDetector::kCard, PiiMode::kRedact},
                    {PiiDetector::kPhone, PiiMode::kRedact}});
  auto g = MustCompile(c);
  json::value body =
      Chat("mail a@b.io or x@y.org, card 4111 1111 1111 1111, call +1 415 555 0123.");
  GuardrailDecision d = g->Apply(g->Resolve("t", "k"), 100, body);
  EXPECT_FALSE(d.blocked);
  EXPECT_TRUE(d.modified);
  EXPECT_EQ(UserText(body),
            "mail [REDACTED:EMAIL] or [REDACTED:EMAIL], card [REDACTED:CARD], call "
            "[REDACTED:PHONE].");
  EXPECT_EQ(d.redacted[static_cast<size_t>(PiiDetector::kEmail)], 2);
  EXPECT_EQ(d.redacted[static_cast<size_t>(PiiDetector::kCard)], 1);
  EXPECT_EQ(d.redacted[static_cast<size_t>(PiiDetector::kPhone)], 1);
  EXPECT_EQ(body.at("messages").at(0).at("content"), "be brief");
}

TEST(Guardrails, EveryTextTheProviderSeesIsChecked) {
  GuardrailsConfig c;
  c.defaults = Pii({{PiiDetector::kEmail, PiiMode::kRedact}});
  auto g = MustCompile(c);
  json::value body = json::parse(R"({
    "model": "m",
    "messages": [
      {"role": "system", "content": "admin is root@corp.example"},
      {"role": "user", "content": [{"type": "text", "text": "hi bob@corp.example"},
                                   {"type": "image_url", "image_url": {"url": "https://x/a@b.io"}}]},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
        "function": {"name": "send", "arguments": "{\"to\":\"eve@corp.example\"}"}}]},
      {"role": "tool", "tool_call_id": "c1", "content": "sent to eve@corp.example"}
    ],
    "tools": [{"type": "function", "function": {"name": "send",
               "description": "mails ops@corp.example", "parameters": {"type": "object"}}}]
  })");
  GuardrailDecision d = g->Apply(g->Resolve("t", "k"), 100, body);
  EXPECT_EQ(d.redacted[0], 5);
  const json::value& m = body.at("messages");
  EXPECT_EQ(m.at(0).at("content"), "admin is [REDACTED:EMAIL]");
  EXPECT_EQ(m.at(1).at("content").at(0).at("text"), "hi [REDACTED:EMAIL]");
  EXPECT_EQ(m.at(1).at("content").at(1).at("image_url").at("url"), "https://x/a@b.io");
  EXPECT_EQ(m.at(2).at("tool_calls").at(0).at("function").at("arguments"),
            "{\"to\":\"[REDACTED:EMAIL]\"}");
  EXPECT_EQ(m.at(3).at("content"), "sent to [REDACTED:EMAIL]");
  EXPECT_EQ(body.at("tools").at(0).at("function").at("description"), "mails [REDACTED:EMAIL]");
}

TEST(Guardrails, EmbeddingsInputs) {
  GuardrailsConfig c;
  c.defaults = Pii({{PiiDetector::kEmail, PiiMode::kRedact}});
  auto g = MustCompile(c);
  json::value one = json::parse(R"({"model":"e","input":"a@b.io"})");
  g->Apply(g->Resolve("t", "k"), 10, one);
  EXPECT_EQ(one.at("input"), "[REDACTED:EMAIL]");
  json::value many = json::parse(R"({"model":"e","input":["x", "c@d.io", [1, 2]]})");
  g->Apply(g->Resolve("t", "k"), 10, many);
  EXPECT_EQ(json::serialize(many.at("input")), R"(["x","[REDACTED:EMAIL]",[1,2]])");
}

TEST(Guardrails, BlockNamesTheDetectorNotTheValue) {
  GuardrailsConfig c;
  c.defaults =
      Pii({{PiiDetector::kEmail, PiiMode::kRedact}, {PiiDetector::kCard, PiiMode::kBlock}});
  auto g = MustCompile(c);
  json::value body = Chat("pay with 4111111111111111");
  GuardrailDecision d = g->Apply(g->Resolve("t", "k"), 100, body);
  ASSERT_TRUE(d.blocked);
  EXPECT_EQ(d.http_status, 400u);
  EXPECT_EQ(d.code, "pii_detected");
  EXPECT_EQ(d.blocked_by, "card");
  EXPECT_NE(d.message.find("'card'"), std::string::npos);
  EXPECT_EQ(d.message.find("4111"), std::string::npos);
}

TEST(Guardrails, LogModeForwardsUnchanged) {
  GuardrailsConfig c;
  c.defaults = Pii({{PiiDetector::kIban, PiiMode::kLog}});
  auto g = MustCompile(c);
  json::value body = Chat("IBAN DE89370400440532013000 and GB82WEST12345698765432");
  const std::string before = json::serialize(body);
  GuardrailDecision d = g->Apply(g->Resolve("t", "k"), 100, body);
  EXPECT_FALSE(d.blocked);
  EXPECT_FALSE(d.modified);
  EXPECT_EQ(d.logged[static_cast<size_t>(PiiDetector::kIban)], 2);
  EXPECT_EQ(json::serialize(body), before);
}

TEST(Guardrails, OffDetectorsAreIgnored) {
  GuardrailsConfig c;
  c.defaults = Pii({{PiiDetector::kSecret, PiiMode::kBlock}});
  auto g = MustCompile(c);
  json::value body = Chat("a@b.io 4111111111111111 123-45-6789");
  GuardrailDecision d = g->Apply(g->Resolve("t", "k"), 100, body);
  EXPECT_FALSE(d.blocked);
  EXPECT_FALSE(d.modified);
  json::value secret = Chat("AKIAIOSFODNN7EXAMPLE");
  EXPECT_EQ(g->Apply(g->Resolve("t", "k"), 100, secret).code, "pii_detected");
}

TEST(Guardrails, BlockedPatternsNameTheRule) {
  GuardrailsConfig c;
  c.defaults.blocked_patterns = std::vector<BlockedPattern>{{"codename", R"((?i)project\s+falcon)"},
                                                            {"drop-table", R"(\bDROP\s+TABLE\b)"}};
  auto g = MustCompile(c);
  json::value body = Chat("tell me about PROJECT  Falcon");
  GuardrailDecision d = g->Apply(g->Resolve("t", "k"), 100, body);
  ASSERT_TRUE(d.blocked);
  EXPECT_EQ(d.code, "content_blocked");
  EXPECT_EQ(d.blocked_by, "pattern:codename");
  EXPECT_NE(d.message.find("'codename'"), std::string::npos);
  EXPECT_EQ(d.message.find("alcon"), std::string::npos);
  json::value ok = Chat("falcons are birds; drop table manners");
  EXPECT_FALSE(g->Apply(g->Resolve("t", "k"), 100, ok).blocked);
}

TEST(Guardrails, Limits) {
  GuardrailsConfig c;
  c.defaults.max_request_bytes = 1000;
  c.defaults.max_input_tokens = 10;
  auto g = MustCompile(c);
  json::value body = Chat("short");
  EXPECT_FALSE(g->Apply(g->Resolve("t", "k"), 1000, body).blocked);
  GuardrailDecision big = g->Apply(g->Resolve("t", "k"), 1001, body);
  EXPECT_EQ(big.http_status, 413u);
  EXPECT_EQ(big.code, "request_too_large");
  EXPECT_NE(big.message.find("1000 bytes (max_request_bytes)"), std::string::npos);
  json::value long_body = Chat(std::string(60, 'w'));  // (8 + 60) bytes of text: 17 tokens
  GuardrailDecision tokens = g->Apply(g->Resolve("t", "k"), 200, long_body);
  EXPECT_EQ(tokens.http_status, 400u);
  EXPECT_EQ(tokens.code, "input_tokens_exceeded");
  EXPECT_NE(tokens.message.find("10 input tokens (max_input_tokens)"), std::string::npos);
}

TEST(Guardrails, TeamAndKeyOverrides) {
  GuardrailsConfig c;
  c.defaults =
      Pii({{PiiDetector::kEmail, PiiMode::kBlock}, {PiiDetector::kPhone, PiiMode::kRedact}});
  c.defaults.blocked_patterns = std::vector<BlockedPattern>{{"codename", "falcon"}};
  c.teams["alpha"] = Pii({{PiiDetector::kEmail, PiiMode::kRedact}});
  c.teams["alpha"].log_payloads = true;
  c.keys["alpha-trusted"] = Pii({{PiiDetector::kEmail, PiiMode::kOff}});
  c.keys["alpha-trusted"].blocked_patterns = std::vector<BlockedPattern>{};
  c.keys["alpha-trusted"].max_input_tokens = 500;
  auto g = MustCompile(c);

  Guardrails::Effective other = g->Resolve("beta", "beta-key");
  EXPECT_EQ(other.pii[0], PiiMode::kBlock);
  EXPECT_FALSE(other.log_payloads);
  EXPECT_NE(other.patterns, nullptr);

  Guardrails::Effective team = g->Resolve("alpha", "alpha-key");
  EXPECT_EQ(team.pii[0], PiiMode::kRedact);
  EXPECT_EQ(team.pii[1], PiiMode::kRedact);  // inherited from the defaults
  EXPECT_TRUE(team.log_payloads);
  EXPECT_NE(team.patterns, nullptr);

  Guardrails::Effective key = g->Resolve("alpha", "alpha-trusted");
  EXPECT_EQ(key.pii[0], PiiMode::kOff);
  EXPECT_EQ(key.pii[1], PiiMode::kRedact);
  EXPECT_TRUE(key.log_payloads);     // from its team
  EXPECT_EQ(key.patterns, nullptr);  // [] cleared the inherited list
  EXPECT_EQ(key.max_input_tokens, 500);

  json::value body = Chat("a@b.io falcon");
  EXPECT_EQ(g->Apply(other, 100, body).code, "content_blocked");
  json::value body2 = Chat("a@b.io falcon");
  GuardrailDecision d = g->Apply(key, 100, body2);
  EXPECT_FALSE(d.blocked);
  EXPECT_EQ(UserText(body2), "a@b.io falcon");
}

TEST(Guardrails, CompileErrorsNameTheRule) {
  GuardrailsConfig c;
  c.teams["alpha"].blocked_patterns = std::vector<BlockedPattern>{{"broken", "a(b"}};
  auto g = Guardrails::Compile(c);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("teams.alpha"), absl::string_view::npos);
  EXPECT_NE(g.status().message().find("'broken'"), absl::string_view::npos);
  EXPECT_NE(g.status().message().find("missing )"), absl::string_view::npos) << g.status();

  GuardrailsConfig dup;
  dup.defaults.blocked_patterns = std::vector<BlockedPattern>{{"x", "a"}, {"x", "b"}};
  EXPECT_FALSE(Guardrails::Compile(dup).ok());
  GuardrailsConfig negative;
  negative.keys["k"].max_input_tokens = -1;
  EXPECT_FALSE(Guardrails::Compile(negative).ok());
}

std::string Scrape(GatewayMetrics& metrics) {
  prometheus::TextSerializer serializer;
  return serializer.Serialize(metrics.registry()->Collect());
}

TEST(Guardrails, EnforceCountsAndLogsPayloadOnlyWhenAsked) {
  GuardrailsConfig c;
  c.defaults =
      Pii({{PiiDetector::kEmail, PiiMode::kRedact}, {PiiDetector::kCard, PiiMode::kBlock}});
  c.teams["alpha"].log_payloads = true;
  auto g = MustCompile(c);
  GatewayMetrics metrics(std::make_shared<prometheus::Registry>(), 10);

  json::value body = Chat("a@b.io");
  testing::internal::CaptureStderr();
  testing::internal::CaptureStdout();
  GuardrailDecision d = g->Enforce("alpha", "alpha-key", "req-1", 100, body, &metrics);
  std::string logs =
      testing::internal::GetCapturedStdout() + testing::internal::GetCapturedStderr();
  EXPECT_FALSE(d.blocked);
  EXPECT_TRUE(d.log_payload);
  // Logging may not be initialised in a unit test; when it is, the payload is post-redaction.
  if (logs.find("request payload") != std::string::npos) {
    EXPECT_NE(logs.find("[REDACTED:EMAIL]"), std::string::npos);
    EXPECT_EQ(logs.find("a@b.io"), std::string::npos);
  }

  json::value beta = Chat("a@b.io");
  GuardrailDecision quiet = g->Enforce("beta", "beta-key", "req-2", 100, beta, &metrics);
  EXPECT_FALSE(quiet.log_payload);

  json::value card = Chat("4111111111111111");
  EXPECT_TRUE(g->Enforce("beta", "beta-key", "req-3", 100, card, &metrics).blocked);

  const std::string text = Scrape(metrics);
  EXPECT_NE(
      text.find(
          R"(tollgate_gateway_guardrail_actions_total{action="redact",detector="email",team="alpha"} 1)"),
      std::string::npos)
      << text;
  EXPECT_NE(
      text.find(
          R"(tollgate_gateway_guardrail_actions_total{action="redact",detector="email",team="beta"} 1)"),
      std::string::npos);
  EXPECT_NE(
      text.find(
          R"(tollgate_gateway_guardrail_actions_total{action="block",detector="card",team="beta"} 1)"),
      std::string::npos);
}

}  // namespace
}  // namespace tollgate::gateway
