#pragma once
// The gateway's YAML configuration file (--config): the client keys it accepts.
//
//   keys:
//     - key: tg-dev-0123456789     # secret; never logged
//       id: dev                    # api key id recorded in the ledger
//       team: platform
//       environment: dev           # optional
//
//   guardrails:                  # optional (docs/guardrails.md, guardrails.h)
//     defaults:                  # a policy; every field optional
//       max_input_tokens: 32000  # estimated input tokens; 0 = no limit -> 400
//       max_request_bytes: 1048576  # raw body bytes; 0 = no limit -> 413
//       blocked_patterns:        # RE2 regexes -> 400 content_blocked naming the rule
//         - name: codename       # unique within the list
//           regex: '(?i)project\s+falcon'
//       pii:                     # detector: off | log | redact | block (default off)
//         email: redact          # detectors: email phone card iban national_id secret
//         secret: block
//       log_payloads: false      # log the post-redaction body at info level
//     teams:                     # by team name: overrides of the defaults
//       alpha: {pii: {email: log}, log_payloads: true}
//     keys:                      # by api key id (config or control-plane keys): overrides of
//       alpha-key: {max_input_tokens: 1000}   # the key's team policy
//
// A level's unset fields inherit (key -> team -> defaults -> off); `blocked_patterns`, when set,
// replaces the inherited list ([] clears it); `pii` is merged per detector. Regexes are compiled
// at load (GatewayConfig::guardrails); a bad one is an error naming the rule and RE2's message.
// Team names and key ids are not checked against `keys` (keys may come from the control plane).
//
//   absl::StatusOr<GatewayConfig> config = LoadGatewayConfig("/etc/tollgate/gateway.yaml");
//
// Validation is strict so that typos fail at start: unknown fields, missing or empty key/id/team,
// duplicate keys or ids, and keys with whitespace or shorter than kMinKeyBytes are errors. The key
// list may be empty or absent (a gateway with --ledger_admin serves the ledger's virtual keys). Error messages locate the problem (file, line, keys[i]) and never contain a secret.
// Pure functions; thread-safe.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "services/gateway/guardrails.h"

namespace tollgate::gateway {

inline constexpr size_t kMinKeyBytes = 8;

struct ApiKeyConfig {
  std::string key;  // the secret the client presents as "Authorization: Bearer <key>"
  std::string id;
  std::string team;
  std::string environment;  // may be empty
};

struct GatewayConfig {
  std::vector<ApiKeyConfig> keys;
  // The `guardrails:` section as written, and compiled (null when the section is absent).
  GuardrailsConfig guardrails_config;
  std::shared_ptr<const Guardrails> guardrails;
};

// Parses YAML text; `source` names it in error messages. Errors: kInvalidArgument.
absl::StatusOr<GatewayConfig> ParseGatewayConfig(std::string_view yaml, std::string_view source);

// Reads and parses a file. Errors: kNotFound / kPermissionDenied when it cannot be read,
// otherwise as ParseGatewayConfig.
absl::StatusOr<GatewayConfig> LoadGatewayConfig(const std::string& path);

}  // namespace tollgate::gateway
