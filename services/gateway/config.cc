#include "services/gateway/config.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <map>
#include <optional>
#include <sstream>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "services/common/status.h"
#include "yaml-cpp/yaml.h"

namespace tollgate::gateway {
namespace {

// "gateway.yaml:12: keys[1]: ..." (yaml-cpp marks are 0-based).
absl::Status Error(std::string_view source, const YAML::Node& at, std::string_view message) {
  const YAML::Mark mark = at.Mark();
  if (mark.line >= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(source), ":", mark.line + 1, ": ", std::string(message)));
  }
  return absl::InvalidArgumentError(absl::StrCat(std::string(source), ": ", std::string(message)));
}

absl::StatusOr<std::string> ScalarField(std::string_view source, const YAML::Node& entry,
                                        const std::string& what, const char* name, bool required) {
  const YAML::Node node = entry[name];
  if (!node.IsDefined() || node.IsNull()) {
    if (required) return Error(source, entry, absl::StrCat(what, ": missing '", name, "'"));
    return std::string();
  }
  if (!node.IsScalar()) {
    return Error(source, node, absl::StrCat(what, ": '", name, "' must be a string"));
  }
  std::string value = node.Scalar();
  if (required && value.empty()) {
    return Error(source, node, absl::StrCat(what, ": '", name, "' must not be empty"));
  }
  return value;
}

absl::Status CheckFields(std::string_view source, const YAML::Node& map, const std::string& what,
                         std::initializer_list<std::string_view> valid) {
  for (const auto& item : map) {
    const std::string field = item.first.as<std::string>();
    if (std::find(valid.begin(), valid.end(), field) == valid.end()) {
      std::string list;
      for (std::string_view v : valid)
        absl::StrAppend(&list, list.empty() ? "" : ", ", std::string(v));
      return Error(source, item.first,
                   absl::StrCat(what, ": unknown field '", field, "' (valid: ", list, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> NonNegativeInt(std::string_view source, const YAML::Node& node,
                                       const std::string& what) {
  int64_t value = 0;
  if (!node.IsScalar() || !YAML::convert<int64_t>::decode(node, value) || value < 0) {
    return Error(source, node, absl::StrCat(what, " must be a non-negative integer"));
  }
  return value;
}

// One guardrail policy level (guardrails.h GuardrailPolicy).
absl::StatusOr<GuardrailPolicy> ParsePolicy(std::string_view source, const YAML::Node& node,
                                            const std::string& what) {
  GuardrailPolicy policy;
  if (node.IsNull()) return policy;
  if (!node.IsMap()) return Error(source, node, absl::StrCat(what, " must be a mapping"));
  TOLLGATE_RETURN_IF_ERROR(CheckFields(
      source, node, what,
      {"max_input_tokens", "max_request_bytes", "blocked_patterns", "pii", "log_payloads"}));
  if (const YAML::Node n = node["max_input_tokens"]; n.IsDefined()) {
    TOLLGATE_ASSIGN_OR_RETURN(policy.max_input_tokens,
                              NonNegativeInt(source, n, what + ".max_input_tokens"));
  }
  if (const YAML::Node n = node["max_request_bytes"]; n.IsDefined()) {
    TOLLGATE_ASSIGN_OR_RETURN(policy.max_request_bytes,
                              NonNegativeInt(source, n, what + ".max_request_bytes"));
  }
  if (const YAML::Node n = node["log_payloads"]; n.IsDefined()) {
    bool value = false;
    if (!n.IsScalar() || !YAML::convert<bool>::decode(n, value)) {
      return Error(source, n, absl::StrCat(what, ".log_payloads must be true or false"));
    }
    policy.log_payloads = value;
  }
  if (const YAML::Node n = node["blocked_patterns"]; n.IsDefined()) {
    const std::string list = what + ".blocked_patterns";
    if (!n.IsNull() && !n.IsSequence()) return Error(source, n, list + " must be a list");
    policy.blocked_patterns.emplace();
    for (size_t i = 0; n.IsSequence() && i < n.size(); ++i) {
      const YAML::Node entry = n[i];
      const std::string at = absl::StrCat(list, "[", i, "]");
      if (!entry.IsMap()) return Error(source, entry, at + " must be a mapping");
      TOLLGATE_RETURN_IF_ERROR(CheckFields(source, entry, at, {"name", "regex"}));
      BlockedPattern rule;
      TOLLGATE_ASSIGN_OR_RETURN(rule.name, ScalarField(source, entry, at, "name", true));
      TOLLGATE_ASSIGN_OR_RETURN(rule.regex, ScalarField(source, entry, at, "regex", true));
      // Compile here too, so that the error carries the line of the rule.
      GuardrailsConfig single;
      single.defaults.blocked_patterns = std::vector<BlockedPattern>{rule};
      absl::StatusOr<std::shared_ptr<const Guardrails>> one = Guardrails::Compile(single);
      if (!one.ok()) {
        std::string message(one.status().message());
        const size_t colon = message.find(": invalid regex");
        if (colon != std::string::npos) message = message.substr(colon + 2);
        return Error(source, entry["regex"],
                     absl::StrCat(at, " (rule '", rule.name, "'): ", message));
      }
      policy.blocked_patterns->push_back(std::move(rule));
    }
  }
  if (const YAML::Node n = node["pii"]; n.IsDefined() && !n.IsNull()) {
    if (!n.IsMap()) return Error(source, n, what + ".pii must be a mapping");
    for (const auto& item : n) {
      const std::string name = item.first.as<std::string>();
      std::optional<PiiDetector> detector = PiiDetectorFromName(name);
      if (!detector) {
        return Error(source, item.first,
                     absl::StrCat(what, ".pii: unknown detector '", name,
                                  "' (valid: email, phone, card, iban, national_id, secret)"));
      }
      std::optional<PiiMode> mode =
          item.second.IsScalar() ? PiiModeFromName(item.second.Scalar()) : std::nullopt;
      if (!mode) {
        return Error(source, item.second,
                     absl::StrCat(what, ".pii.", name, " must be off, log, redact or block"));
      }
      policy.pii[static_cast<size_t>(*detector)] = *mode;
    }
  }
  return policy;
}

absl::StatusOr<std::map<std::string, GuardrailPolicy>> ParsePolicies(std::string_view source,
                                                                     const YAML::Node& node,
                                                                     const std::string& what) {
  std::map<std::string, GuardrailPolicy> out;
  if (node.IsNull()) return out;
  if (!node.IsMap()) return Error(source, node, what + " must be a mapping");
  for (const auto& item : node) {
    const std::string name = item.first.as<std::string>();
    if (name.empty()) return Error(source, item.first, what + ": empty name");
    TOLLGATE_ASSIGN_OR_RETURN(GuardrailPolicy policy,
                              ParsePolicy(source, item.second, absl::StrCat(what, ".", name)));
    out.emplace(name, std::move(policy));
  }
  return out;
}

absl::Status ParseGuardrails(std::string_view source, const YAML::Node& node,
                             GatewayConfig& config) {
  if (node.IsNull()) return absl::OkStatus();
  if (!node.IsMap()) return Error(source, node, "'guardrails' must be a mapping");
  TOLLGATE_RETURN_IF_ERROR(CheckFields(source, node, "guardrails", {"defaults", "teams", "keys"}));
  GuardrailsConfig& g = config.guardrails_config;
  if (const YAML::Node n = node["defaults"]; n.IsDefined()) {
    TOLLGATE_ASSIGN_OR_RETURN(g.defaults, ParsePolicy(source, n, "guardrails.defaults"));
  }
  if (const YAML::Node n = node["teams"]; n.IsDefined()) {
    TOLLGATE_ASSIGN_OR_RETURN(g.teams, ParsePolicies(source, n, "guardrails.teams"));
  }
  if (const YAML::Node n = node["keys"]; n.IsDefined()) {
    TOLLGATE_ASSIGN_OR_RETURN(g.keys, ParsePolicies(source, n, "guardrails.keys"));
  }
  absl::StatusOr<std::shared_ptr<const Guardrails>> compiled = Guardrails::Compile(g);
  if (!compiled.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(source), ": ", std::string(compiled.status().message())));
  }
  config.guardrails = std::move(*compiled);
  return absl::OkStatus();
}

absl::StatusOr<GatewayConfig> ParseRoot(std::string_view source, const YAML::Node& root) {
  if (!root.IsDefined() || root.IsNull()) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(source), ": empty configuration"));
  }
  if (!root.IsMap()) return Error(source, root, "the top level must be a mapping");
  for (const auto& item : root) {
    const std::string field = item.first.as<std::string>();
    if (field != "keys" && field != "guardrails") {
      return Error(source, item.first,
                   absl::StrCat("unknown field '", field, "' (valid: keys, guardrails)"));
    }
  }
  // No static keys is valid: a gateway with --ledger_admin takes the ledger's virtual keys (main
  // refuses to start with neither).
  const YAML::Node keys = root["keys"].IsDefined() && !root["keys"].IsNull()
                              ? root["keys"]
                              : YAML::Node(YAML::NodeType::Sequence);
  if (!keys.IsSequence()) return Error(source, keys, "'keys' must be a list");

  GatewayConfig config;
  std::unordered_map<std::string, size_t> index_of_key;
  std::unordered_map<std::string, size_t> index_of_id;
  for (size_t i = 0; i < keys.size(); ++i) {
    const YAML::Node entry = keys[i];
    const std::string what = absl::StrCat("keys[", i, "]");
    if (!entry.IsMap()) return Error(source, entry, absl::StrCat(what, " must be a mapping"));
    for (const auto& item : entry) {
      const std::string field = item.first.as<std::string>();
      if (field != "key" && field != "id" && field != "team" && field != "environment") {
        return Error(source, item.first,
                     absl::StrCat(what, ": unknown field '", field,
                                  "' (valid: key, id, team, environment)"));
      }
    }
    ApiKeyConfig k;
    auto key = ScalarField(source, entry, what, "key", true);
    if (!key.ok()) return key.status();
    k.key = std::move(*key);
    auto id = ScalarField(source, entry, what, "id", true);
    if (!id.ok()) return id.status();
    k.id = std::move(*id);
    auto team = ScalarField(source, entry, what, "team", true);
    if (!team.ok()) return team.status();
    k.team = std::move(*team);
    auto environment = ScalarField(source, entry, what, "environment", false);
    if (!environment.ok()) return environment.status();
    k.environment = std::move(*environment);

    // Messages below must not quote the key: it is a secret.
    if (k.key.size() < kMinKeyBytes) {
      return Error(source, entry["key"],
                   absl::StrCat(what, ": 'key' must be at least ", kMinKeyBytes, " bytes"));
    }
    for (unsigned char c : k.key) {
      if (c <= 0x20 || c == 0x7f) {
        return Error(
            source, entry["key"],
            absl::StrCat(what, ": 'key' must not contain whitespace or control characters"));
      }
    }
    if (auto [it, inserted] = index_of_key.emplace(k.key, i); !inserted) {
      return Error(source, entry["key"],
                   absl::StrCat(what, ": duplicate key (same secret as keys[", it->second, "])"));
    }
    if (auto [it, inserted] = index_of_id.emplace(k.id, i); !inserted) {
      return Error(source, entry["id"],
                   absl::StrCat(what, ": duplicate id '", k.id, "' (also keys[", it->second, "])"));
    }
    config.keys.push_back(std::move(k));
  }
  if (const YAML::Node guardrails = root["guardrails"]; guardrails.IsDefined()) {
    TOLLGATE_RETURN_IF_ERROR(ParseGuardrails(source, guardrails, config));
  }
  return config;
}

}  // namespace

absl::StatusOr<GatewayConfig> ParseGatewayConfig(std::string_view yaml, std::string_view source) {
  try {
    return ParseRoot(source, YAML::Load(std::string(yaml)));
  } catch (const YAML::Exception& e) {
    if (e.mark.line >= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(source), ":", e.mark.line + 1, ": invalid YAML: ", e.msg));
    }
    return absl::InvalidArgumentError(absl::StrCat(std::string(source), ": invalid YAML: ", e.msg));
  }
}

absl::StatusOr<GatewayConfig> LoadGatewayConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    const std::string message =
        absl::StrCat("cannot read config file ", path, ": ", std::strerror(err));
    if (err == EACCES) return absl::PermissionDeniedError(message);
    return absl::NotFoundError(message);
  }
  std::ostringstream text;
  text << in.rdbuf();
  return ParseGatewayConfig(text.str(), path);
}

}  // namespace tollgate::gateway
