#include "services/gateway/config.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "absl/strings/str_cat.h"
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

absl::StatusOr<GatewayConfig> ParseRoot(std::string_view source, const YAML::Node& root) {
  if (!root.IsDefined() || root.IsNull()) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(source), ": empty configuration"));
  }
  if (!root.IsMap()) return Error(source, root, "the top level must be a mapping");
  for (const auto& item : root) {
    const std::string field = item.first.as<std::string>();
    if (field != "keys") {
      return Error(source, item.first, absl::StrCat("unknown field '", field, "' (valid: keys)"));
    }
  }
  const YAML::Node keys = root["keys"];
  if (!keys.IsDefined() || keys.IsNull()) return Error(source, root, "missing 'keys'");
  if (!keys.IsSequence()) return Error(source, keys, "'keys' must be a list");
  if (keys.size() == 0) return Error(source, keys, "'keys' must list at least one key");

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
