#include "services/gateway/config.h"

#include <cstdio>
#include <fstream>

#include "gtest/gtest.h"
#include "services/gateway/auth.h"

namespace tollgate::gateway {
namespace {

TEST(GatewayConfig, ParsesKeys) {
  auto config = ParseGatewayConfig(R"yaml(
keys:
  - key: tg-dev-0123456789     # secret
    id: dev
    team: platform
    environment: dev
  - key: tg-other-abcdefgh
    id: other
    team: search
)yaml",
                                   "gateway.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->keys.size(), 2u);
  EXPECT_EQ(config->keys[0].key, "tg-dev-0123456789");
  EXPECT_EQ(config->keys[0].id, "dev");
  EXPECT_EQ(config->keys[0].team, "platform");
  EXPECT_EQ(config->keys[0].environment, "dev");
  EXPECT_EQ(config->keys[1].environment, "");
}

void ExpectError(const std::string& yaml, const std::string& fragment) {
  auto config = ParseGatewayConfig(yaml, "gw.yaml");
  ASSERT_FALSE(config.ok()) << yaml;
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(config.status().message());
  EXPECT_NE(message.find(fragment), std::string::npos) << message;
  EXPECT_EQ(message.rfind("gw.yaml", 0), 0u) << "errors name the file: " << message;
}

TEST(GatewayConfig, StaticKeysAreOptional) {
  // A gateway fed by the ledger's virtual keys (--ledger_admin) may list none.
  for (const char* yaml : {"keys: []\n", "guardrails: {}\n", "keys:\n"}) {
    absl::StatusOr<GatewayConfig> config = ParseGatewayConfig(yaml, "gw.yaml");
    ASSERT_TRUE(config.ok()) << yaml << ": " << config.status();
    EXPECT_TRUE(config->keys.empty());
  }
}

TEST(GatewayConfig, Errors) {
  ExpectError("keys: [", "invalid YAML");
  ExpectError("", "empty configuration");
  ExpectError("- a\n- b\n", "top level must be a mapping");
  ExpectError("other: 1\n", "unknown field 'other'");
  ExpectError("keys: {}\n", "'keys' must be a list");
  ExpectError("keys:\n  - id: a\n    team: t\n", "keys[0]: missing 'key'");
  ExpectError("keys:\n  - key: tg-aaaaaaaa\n    team: t\n", "keys[0]: missing 'id'");
  ExpectError("keys:\n  - key: tg-aaaaaaaa\n    id: a\n", "keys[0]: missing 'team'");
  ExpectError("keys:\n  - key: tg-aaaaaaaa\n    id: ''\n    team: t\n", "'id' must not be empty");
  ExpectError("keys:\n  - key: tg-aaaaaaaa\n    id: [a]\n    team: t\n", "'id' must be a string");
  ExpectError("keys:\n  - key: short\n    id: a\n    team: t\n", "at least 8 bytes");
  ExpectError("keys:\n  - key: 'tg has space'\n    id: a\n    team: t\n", "whitespace");
  ExpectError("keys:\n  - key: tg-aaaaaaaa\n    id: a\n    team: t\n    tem: x\n",
              "unknown field 'tem'");
  ExpectError("keys:\n  - just-a-string\n", "keys[0] must be a mapping");
  ExpectError(
      "keys:\n  - key: tg-aaaaaaaa\n    id: a\n    team: t\n"
      "  - key: tg-bbbbbbbb\n    id: a\n    team: u\n",
      "keys[1]: duplicate id 'a'");
}

constexpr const char* kOneKey = "keys:\n  - key: tg-aaaaaaaa\n    id: a\n    team: t\n";

TEST(GatewayConfig, ParsesGuardrails) {
  auto config = ParseGatewayConfig(std::string(kOneKey) + R"yaml(
guardrails:
  defaults:
    max_input_tokens: 32000
    max_request_bytes: 1048576
    blocked_patterns:
      - name: codename
        regex: '(?i)project\s+falcon'
    pii:
      email: redact
      secret: block
      card: block
  teams:
    t:
      pii: {email: log}
      log_payloads: true
  keys:
    a:
      max_input_tokens: 1000
      blocked_patterns: []
)yaml",
                                   "gateway.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_NE(config->guardrails, nullptr);
  const GuardrailsConfig& g = config->guardrails_config;
  EXPECT_EQ(g.defaults.max_input_tokens, 32000);
  EXPECT_EQ(g.defaults.max_request_bytes, 1048576);
  ASSERT_TRUE(g.defaults.blocked_patterns.has_value());
  EXPECT_EQ(g.defaults.blocked_patterns->at(0).name, "codename");
  EXPECT_EQ(g.defaults.pii[static_cast<size_t>(PiiDetector::kEmail)], PiiMode::kRedact);
  EXPECT_FALSE(g.defaults.pii[static_cast<size_t>(PiiDetector::kPhone)].has_value());

  Guardrails::Effective key = config->guardrails->Resolve("t", "a");
  EXPECT_EQ(key.max_input_tokens, 1000);
  EXPECT_EQ(key.max_request_bytes, 1048576);
  EXPECT_EQ(key.pii[static_cast<size_t>(PiiDetector::kEmail)], PiiMode::kLog);
  EXPECT_EQ(key.pii[static_cast<size_t>(PiiDetector::kCard)], PiiMode::kBlock);
  EXPECT_TRUE(key.log_payloads);
  EXPECT_EQ(key.patterns, nullptr);
  EXPECT_NE(config->guardrails->Resolve("other", "b").patterns, nullptr);
  EXPECT_FALSE(config->guardrails->Resolve("other", "b").log_payloads);

  auto none = ParseGatewayConfig(kOneKey, "gateway.yaml");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->guardrails, nullptr);
}

TEST(GatewayConfig, GuardrailErrors) {
  const std::string k = kOneKey;
  ExpectError(k + "guardrails: [1]\n", "'guardrails' must be a mapping");
  ExpectError(k + "guardrails:\n  default: {}\n", "guardrails: unknown field 'default'");
  ExpectError(k + "guardrails:\n  defaults:\n    max_input_tokens: -1\n",
              "guardrails.defaults.max_input_tokens must be a non-negative integer");
  ExpectError(k + "guardrails:\n  defaults:\n    max_request_bytes: lots\n",
              "max_request_bytes must be a non-negative integer");
  ExpectError(k + "guardrails:\n  defaults:\n    pii: {mail: redact}\n", "unknown detector 'mail'");
  ExpectError(k + "guardrails:\n  teams:\n    t:\n      pii: {email: hide}\n",
              "guardrails.teams.t.pii.email must be off, log, redact or block");
  ExpectError(k + "guardrails:\n  keys:\n    a:\n      log_payloads: maybe\n",
              "guardrails.keys.a.log_payloads must be true or false");
  ExpectError(k + "guardrails:\n  defaults:\n    blocked_patterns:\n      - regex: x\n",
              "blocked_patterns[0]: missing 'name'");
  ExpectError(k + "guardrails:\n  teams:\n    t:\n      blocked_patterns:\n"
                  "        - name: broken\n          regex: 'a(b'\n",
              "gw.yaml:10: guardrails.teams.t.blocked_patterns[0] (rule 'broken'): invalid regex: "
              "missing )");
  ExpectError(k + "guardrails:\n  defaults:\n    blocked_patterns:\n"
                  "        - {name: x, regex: a}\n        - {name: x, regex: b}\n",
              "duplicate rule name 'x'");
  ExpectError(k + "guardrails:\n  defaults:\n    blocked_patterns:\n      - {name: x, rgx: a}\n",
              "unknown field 'rgx'");
}

TEST(GatewayConfig, DuplicateKeyErrorDoesNotLeakTheSecret) {
  auto config = ParseGatewayConfig(
      "keys:\n  - key: tg-secret-value-1\n    id: a\n    team: t\n"
      "  - key: tg-secret-value-1\n    id: b\n    team: t\n",
      "gw.yaml");
  ASSERT_FALSE(config.ok());
  const std::string message(config.status().message());
  EXPECT_NE(message.find("keys[1]: duplicate key"), std::string::npos) << message;
  EXPECT_EQ(message.find("tg-secret-value-1"), std::string::npos) << message;
  EXPECT_NE(message.find("gw.yaml:5"), std::string::npos) << "line of the duplicate: " << message;
}

TEST(GatewayConfig, LoadFromFile) {
  EXPECT_EQ(LoadGatewayConfig("/nonexistent/tollgate/gateway.yaml").status().code(),
            absl::StatusCode::kNotFound);
  const std::string path = ::testing::TempDir() + "/gateway_config_test.yaml";
  {
    std::ofstream out(path);
    out << "keys:\n  - key: tg-file-key-123\n    id: f\n    team: files\n";
  }
  auto config = LoadGatewayConfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->keys.at(0).team, "files");
  std::remove(path.c_str());
}

TEST(Auth, BearerTokens) {
  EXPECT_EQ(BearerToken("Bearer abc"), "abc");
  EXPECT_EQ(BearerToken("bearer   abc  "), "abc");
  EXPECT_EQ(BearerToken("BEARER\tabc"), "abc");
  EXPECT_FALSE(BearerToken("Bearer").has_value());
  EXPECT_FALSE(BearerToken("Bearer    ").has_value());
  EXPECT_FALSE(BearerToken("Basic abc").has_value());
  EXPECT_FALSE(BearerToken("Bearerabc").has_value());
  EXPECT_FALSE(BearerToken("").has_value());
}

TEST(Auth, AuthenticatesAgainstTheSnapshot) {
  KeyStore store(KeySnapshot::Build({{"tg-key-1234567", "k1", "team-a", "prod"}}));
  auto key = Authenticate(store, "Bearer tg-key-1234567");
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->id, "k1");
  EXPECT_EQ(key->team, "team-a");
  EXPECT_EQ(key->environment, "prod");

  for (const char* bad : {"", "Bearer tg-wrong", "tg-key-1234567", "Basic tg-key-1234567"}) {
    auto r = Authenticate(store, bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(std::string(r.status().message()).find("tg-"), std::string::npos)
        << "never echo the presented key";
  }

  // A swapped snapshot takes effect for later lookups.
  store.Replace(KeySnapshot::Build({{"tg-key-7654321", "k2", "team-b", ""}}));
  EXPECT_FALSE(Authenticate(store, "Bearer tg-key-1234567").ok());
  EXPECT_EQ(Authenticate(store, "Bearer tg-key-7654321")->team, "team-b");
}

}  // namespace
}  // namespace tollgate::gateway
