#pragma once
// The gateway's YAML configuration file (--config): the client keys it accepts.
//
//   keys:
//     - key: tg-dev-0123456789     # secret; never logged
//       id: dev                    # api key id recorded in the ledger
//       team: platform
//       environment: dev           # optional
//
//   absl::StatusOr<GatewayConfig> config = LoadGatewayConfig("/etc/tollgate/gateway.yaml");
//
// Validation is strict so that typos fail at start: unknown fields, missing or empty key/id/team,
// duplicate keys or ids, keys with whitespace or shorter than kMinKeyBytes, and an empty key list
// are errors. Error messages locate the problem (file, line, keys[i]) and never contain a secret.
// Pure functions; thread-safe.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

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
};

// Parses YAML text; `source` names it in error messages. Errors: kInvalidArgument.
absl::StatusOr<GatewayConfig> ParseGatewayConfig(std::string_view yaml, std::string_view source);

// Reads and parses a file. Errors: kNotFound / kPermissionDenied when it cannot be read,
// otherwise as ParseGatewayConfig.
absl::StatusOr<GatewayConfig> LoadGatewayConfig(const std::string& path);

}  // namespace tollgate::gateway
