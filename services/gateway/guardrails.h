#pragma once
// Guardrails: per-team / per-key checks applied by the gateway to a request before any provider
// sees the prompt (issue 8 item 4; docs/guardrails.md).
//
//   absl::StatusOr<std::shared_ptr<const Guardrails>> g = Guardrails::Compile(config.guardrails);
//   ...
//   GuardrailDecision d = (*g)->Enforce(key.team, key.id, request_id, raw_body.size(), body,
//                                       metrics);
//   if (d.blocked) reply d.http_status with an OpenAI error {code: d.code, message: d.message};
//   else forward `body` (redacted in place when a detector's mode is `redact`).
//
// A policy is resolved field by field: the key's policy (by api key id), else the team's, else
// the defaults, else "off". What is checked, in this order:
//   1. max_request_bytes: the raw request body's size -> 413 `request_too_large`;
//   2. max_input_tokens: EstimateTokens(bytes of every text the provider would see) -> 400
//      `input_tokens_exceeded`;
//   3. blocked_patterns (RE2, one RE2::Set pass per text) -> 400 `content_blocked` naming the rule
//      (never the matched text);
//   4. PII detectors (one combined RE2 pass per text, then a checksum / range validation of each
//      candidate): mode `block` -> 400 `pii_detected` naming the detector; `redact` -> the match
//      is replaced in place by "[REDACTED:<DETECTOR>]"; `log` -> forwarded unchanged, counted and
//      logged by detector name (never the value).
// Texts checked (the internal OpenAI form, i.e. after the /v1/messages ingress translated it):
// every message's string `content`, the `text` of every content part, assistant tool calls'
// `function.arguments`, `tools[].function.description` and legacy `functions[].description`;
// for embeddings, `input` strings. Other fields (images, token ids, schemas) are not inspected.
//
// Detectors (names used in config, errors, metrics and logs):
//   email        RFC-5322-ish address with a dotted domain and an alphabetic TLD.
//   phone        E.164 ("+" country code, 8-15 digits, optional separators); NANP
//                "(415) 555-0123" / "415-555-0123" / "415.555.0123" (a separator is required);
//                national trunk-prefix numbers "020 7946 0958" (leading 0, a space or dash
//                separator required). Unseparated digit runs, dates and versions never match.
//   card         13-19 digits, optionally grouped by single spaces or dashes (consistently, groups
//                of 3+ digits), with a known issuer prefix (Visa, Mastercard, Amex, Discover,
//                JCB, Diners, UnionPay) and length, and a valid Luhn checksum.
//   iban         2 letters, 2 check digits, 11-30 alphanumerics (groups of 4 may be separated by
//                single spaces), 15-34 characters in all, mod-97 checksum == 1.
//   national_id  US Social Security Number "AAA-GG-SSSS" (dashes or spaces) outside the
//                invalid ranges: area 000, 666, 900-999; group 00; serial 0000; and the
//                publicised numbers 078-05-1120 and 219-09-9999. Other countries' IDs are not
//                detected yet.
//   secret       OpenAI keys (sk-, sk-proj-, sk-svcacct-, sk-admin-), Anthropic (sk-ant-), AWS
//                access key ids (AKIA / ASIA + 16), GitHub tokens (ghp_/gho_/ghu_/ghs_/ghr_ + 36,
//                github_pat_), Google API keys (AIza + 35), Slack tokens (xox?-), and PEM private
//                key blocks (-----BEGIN ... PRIVATE KEY----- up to its END line or the end of the
//                text).
//
// Guardrails is immutable after Compile and thread-safe; Apply/Enforce allocate nothing when no
// limit is crossed and nothing matches (beyond RE2's internal, amortised DFA cache).

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "boost/json/value.hpp"

namespace re2 {
class RE2;
}  // namespace re2

namespace tollgate::gateway {

class GatewayMetrics;
struct GuardrailPatternSet;  // compiled blocked patterns of one level (guardrails.cc)

enum class PiiDetector : uint8_t { kEmail, kPhone, kCard, kIban, kNationalId, kSecret };
inline constexpr size_t kPiiDetectorCount = 6;

// kOff: not checked. kLog: forwarded unchanged, counted and logged. kRedact: replaced in place.
// kBlock: the request is refused.
enum class PiiMode : uint8_t { kOff, kLog, kRedact, kBlock };

// "email", "phone", "card", "iban", "national_id", "secret".
std::string_view PiiDetectorName(PiiDetector detector);
std::optional<PiiDetector> PiiDetectorFromName(std::string_view name);
// "off", "log", "redact", "block".
std::string_view PiiModeName(PiiMode mode);
std::optional<PiiMode> PiiModeFromName(std::string_view name);

struct BlockedPattern {
  std::string name;   // reported in errors, logs and metrics; never the matched text
  std::string regex;  // RE2 syntax, unanchored, case-sensitive unless it says (?i)
};

// One level of policy (defaults, a team, or a key). Unset fields inherit from the level above:
// key -> team -> defaults -> off. `blocked_patterns`, when set, replaces the inherited list (an
// empty list clears it); `pii` is resolved per detector.
struct GuardrailPolicy {
  std::optional<int64_t> max_input_tokens;   // 0: no limit
  std::optional<int64_t> max_request_bytes;  // 0: no limit
  std::optional<std::vector<BlockedPattern>> blocked_patterns;
  std::array<std::optional<PiiMode>, kPiiDetectorCount> pii;
  // Log the (post-redaction) request body at info level with the request id. Off by default.
  std::optional<bool> log_payloads;
};

struct GuardrailsConfig {
  GuardrailPolicy defaults;
  std::map<std::string, GuardrailPolicy> teams;  // by team name
  std::map<std::string, GuardrailPolicy> keys;   // by api key id (config or control plane)
};

// What Apply / Enforce decided. When `blocked`, reply `http_status` with an OpenAI error of type
// invalid_request_error, `code`, `param` (may be empty) and `message` (names the limit, rule or
// detector; never quotes request content).
struct GuardrailDecision {
  bool blocked = false;
  unsigned http_status = 200;
  std::string code;
  std::string param;
  std::string message;
  // The metrics label of what blocked: a detector name, "pattern:<rule>", "max_input_tokens" or
  // "max_request_bytes".
  std::string blocked_by;
  // Matches per detector that were redacted / only logged (before a block, if any).
  std::array<int32_t, kPiiDetectorCount> redacted{};
  std::array<int32_t, kPiiDetectorCount> logged{};
  bool modified = false;     // the body was changed (redactions)
  bool log_payload = false;  // the policy asks for payload logging
};

// A PII candidate that passed its detector's validation: byte offsets into the scanned text.
struct PiiMatch {
  PiiDetector detector;
  size_t begin;
  size_t end;
};

class Guardrails {
 public:
  // The effective policy of one (team, key): cheap to copy, points into the Guardrails.
  struct Effective {
    int64_t max_input_tokens = 0;
    int64_t max_request_bytes = 0;
    const GuardrailPatternSet* patterns = nullptr;  // null: no blocked patterns
    std::array<PiiMode, kPiiDetectorCount> pii{};
    bool log_payloads = false;
    bool any_pii = false;
  };

  // Validates and compiles every level. Errors (kInvalidArgument) name the level ("defaults",
  // "teams.<t>", "keys.<id>") and, for a bad regex, the rule and RE2's message; also rejected:
  // negative limits, empty or duplicate rule names within a level.
  static absl::StatusOr<std::shared_ptr<const Guardrails>> Compile(const GuardrailsConfig& config);

  ~Guardrails();
  Guardrails(const Guardrails&) = delete;
  Guardrails& operator=(const Guardrails&) = delete;

  Effective Resolve(std::string_view team, std::string_view key_id) const;

  // Checks `body` (a parsed chat completions or embeddings request in the internal OpenAI form)
  // of `body_bytes` raw bytes against `policy`, redacting in place. Pure.
  GuardrailDecision Apply(const Effective& policy, size_t body_bytes,
                          boost::json::value& body) const;

  // Resolve + Apply, then the side effects: tollgate_gateway_guardrail_actions_total (metrics may
  // be null), a log line per detector acted on (name and count only) and, when the policy says
  // so and the request is not blocked, the payload log line ("request payload", with request_id,
  // team and the serialised post-redaction body).
  GuardrailDecision Enforce(std::string_view team, std::string_view key_id,
                            std::string_view request_id, size_t body_bytes,
                            boost::json::value& body, GatewayMetrics* metrics) const;

 private:
  Guardrails();
  struct Level;
  static absl::StatusOr<std::unique_ptr<Level>> CompileLevel(const GuardrailPolicy& policy,
                                                             const std::string& where);
  std::unique_ptr<Level> defaults_;
  std::map<std::string, std::unique_ptr<Level>, std::less<>> teams_;
  std::map<std::string, std::unique_ptr<Level>, std::less<>> keys_;
};

// The validated PII candidates in `text`, in order, non-overlapping (every detector, whatever a
// policy's modes). For tests and tools; the hot path scans without allocating.
std::vector<PiiMatch> FindPii(std::string_view text);

// Validators (exposed for tests). `digits` / `iban` may contain spaces and dashes.
bool LuhnValid(std::string_view digits);
bool IbanChecksumValid(std::string_view iban);
bool UsSsnValid(std::string_view ssn);

}  // namespace tollgate::gateway
