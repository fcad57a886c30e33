#include "services/ledger/tenancy_auth.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/common/logging.h"
#include "yaml-cpp/yaml.h"

namespace tollgate::ledger {
namespace {

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::StatusOr<std::string> HexDecode(std::string_view hex) {
  std::string lower = absl::AsciiStrToLower(absl::string_view(hex.data(), hex.size()));
  if (lower.size() % 2 != 0 || !IsLowerHex(lower)) {
    return absl::InvalidArgumentError("not a hex string");
  }
  std::string out(lower.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    out[i] = static_cast<char>(nibble(lower[2 * i]) << 4 | nibble(lower[2 * i + 1]));
  }
  return out;
}

std::string_view ActionName(TenancyAction action) {
  switch (action) {
    case TenancyAction::kCreateTeam:
      return "create teams";
    case TenancyAction::kListTeams:
      return "list teams";
    case TenancyAction::kCreateKey:
      return "create keys";
    case TenancyAction::kListKeys:
      return "list keys";
    case TenancyAction::kRevokeKey:
      return "revoke keys";
    case TenancyAction::kListAudit:
      return "read the audit log";
    case TenancyAction::kWatchKeys:
      return "watch keys";
    case TenancyAction::kSetQuota:
      return "set quotas";
    case TenancyAction::kListQuotas:
      return "list quotas";
    case TenancyAction::kDeleteQuota:
      return "delete quotas";
    case TenancyAction::kLease:
      return "lease quotas";
  }
  return "?";
}

bool IsRead(TenancyAction action) {
  return action == TenancyAction::kListTeams || action == TenancyAction::kListKeys ||
         action == TenancyAction::kListAudit || action == TenancyAction::kListQuotas;
}

absl::Status Denied(const Principal& who, TenancyAction action, std::string_view team,
                    std::string_view why) {
  return absl::PermissionDeniedError(
      absl::StrCat("token '", who.name, "' (role ", std::string(RoleName(who.role)),
                   who.team.empty() ? "" : absl::StrCat(", team ", who.team), ") may not ",
                   std::string(ActionName(action)),
                   team.empty() ? "" : absl::StrCat(" of team '", std::string(team), "'"), ": ",
                   std::string(why)));
}

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kAdmin:
      return "admin";
    case Role::kTeamAdmin:
      return "team-admin";
    case Role::kViewer:
      return "viewer";
    case Role::kGateway:
      return "gateway";
  }
  return "?";
}

absl::Status Authorize(const Principal& who, TenancyAction action, std::string_view team) {
  if (action == TenancyAction::kWatchKeys || action == TenancyAction::kLease) {
    if (who.role == Role::kGateway) return absl::OkStatus();
    return Denied(who, action, "", "only tokens with role gateway may");
  }
  switch (who.role) {
    case Role::kAdmin:
      return absl::OkStatus();
    case Role::kGateway:
      return Denied(who, action, team, "gateway tokens may only watch keys and lease quotas");
    case Role::kViewer:
      if (!IsRead(action)) return Denied(who, action, team, "viewers are read-only");
      break;
    case Role::kTeamAdmin:
      if (action == TenancyAction::kCreateTeam) {
        return Denied(who, action, team, "only admins create teams");
      }
      if ((action == TenancyAction::kSetQuota || action == TenancyAction::kDeleteQuota) &&
          team.empty()) {
        return Denied(who, action, team,
                      "org-wide quotas and quotas without a team are admin-only");
      }
      break;
  }
  if (team.empty()) return Denied(who, action, team, "the call must name the caller's team");
  if (team != who.team) return Denied(who, action, team, "it belongs to another team");
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadScope(const Principal& who, TenancyAction action,
                                      std::string_view requested) {
  if (who.role == Role::kAdmin) {
    if (absl::Status st = Authorize(who, action, requested); !st.ok()) return st;
    return std::string(requested);
  }
  const std::string team = requested.empty() ? who.team : std::string(requested);
  if (absl::Status st = Authorize(who, action, team); !st.ok()) return st;
  return team;
}

absl::StatusOr<AdminTokens> AdminTokens::Parse(std::string_view yaml, std::string_view source) {
  const std::string src(source);
  auto error = [&](const YAML::Node& at, const std::string& message) {
    const YAML::Mark mark = at.Mark();
    return absl::InvalidArgumentError(mark.line >= 0
                                          ? absl::StrCat(src, ":", mark.line + 1, ": ", message)
                                          : absl::StrCat(src, ": ", message));
  };
  Map by_hash;
  try {
    const YAML::Node root = YAML::Load(std::string(yaml));
    if (!root.IsMap()) return absl::InvalidArgumentError(absl::StrCat(src, ": expected a mapping"));
    for (const auto& item : root) {
      if (item.first.as<std::string>() != "tokens") {
        return error(item.first, absl::StrCat("unknown field '", item.first.as<std::string>(),
                                              "' (valid: tokens)"));
      }
    }
    const YAML::Node list = root["tokens"];
    if (!list.IsSequence() || list.size() == 0) {
      return error(root, "'tokens' must be a non-empty list");
    }
    absl::flat_hash_map<std::string, size_t> names;
    for (size_t i = 0; i < list.size(); ++i) {
      const YAML::Node entry = list[i];
      const std::string what = absl::StrCat("tokens[", i, "]");
      if (!entry.IsMap()) return error(entry, absl::StrCat(what, " must be a mapping"));
      for (const auto& item : entry) {
        const std::string field = item.first.as<std::string>();
        if (field != "name" && field != "sha256" && field != "role" && field != "team") {
          return error(item.first, absl::StrCat(what, ": unknown field '", field,
                                                "' (valid: name, sha256, role, team)"));
        }
      }
      auto scalar = [&](const char* name) -> std::string {
        const YAML::Node n = entry[name];
        return n.IsDefined() && n.IsScalar() ? n.Scalar() : std::string();
      };
      Principal p;
      p.name = scalar("name");
      if (p.name.empty()) return error(entry, absl::StrCat(what, ": missing 'name'"));
      const std::string role = scalar("role");
      if (role == "admin") {
        p.role = Role::kAdmin;
      } else if (role == "team-admin") {
        p.role = Role::kTeamAdmin;
      } else if (role == "viewer") {
        p.role = Role::kViewer;
      } else if (role == "gateway") {
        p.role = Role::kGateway;
      } else {
        return error(entry, absl::StrCat(what,
                                         ": 'role' must be admin, team-admin, viewer or "
                                         "gateway"));
      }
      p.team = scalar("team");
      const bool scoped = p.role == Role::kTeamAdmin || p.role == Role::kViewer;
      if (scoped && p.team.empty()) {
        return error(entry, absl::StrCat(what, ": role ", role, " needs 'team'"));
      }
      if (!scoped && !p.team.empty()) {
        return error(entry, absl::StrCat(what, ": role ", role, " takes no 'team'"));
      }
      const std::string hex = scalar("sha256");
      absl::StatusOr<std::string> hash = HexDecode(hex);
      if (!hash.ok() || hash->size() != 32) {
        return error(entry, absl::StrCat(what,
                                         ": 'sha256' must be 64 hex digits (the SHA-256 of "
                                         "the token, not the token itself)"));
      }
      if (auto [it, inserted] = names.emplace(p.name, i); !inserted) {
        return error(entry, absl::StrCat(what, ": duplicate name '", p.name, "'"));
      }
      if (!by_hash.emplace(*hash, std::move(p)).second) {
        return error(entry, absl::StrCat(what, ": duplicate sha256"));
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(src, ": invalid YAML: ", e.msg));
  }
  AdminTokens tokens;
  {
    absl::MutexLock lock(&tokens.shared_->mu);
    tokens.shared_->map = std::make_shared<const Map>(std::move(by_hash));
  }
  return tokens;
}

std::shared_ptr<const AdminTokens::Map> AdminTokens::Get() const {
  absl::MutexLock lock(&shared_->mu);
  return shared_->map;
}

size_t AdminTokens::size() const { return Get()->size(); }

void AdminTokens::Replace(const AdminTokens& next) {
  std::shared_ptr<const Map> map = next.Get();
  absl::MutexLock lock(&shared_->mu);
  shared_->map = std::move(map);
}

absl::StatusOr<Principal> AdminTokens::Authenticate(std::string_view authorization) const {
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "missing credentials: send metadata 'authorization: Bearer <admin token>'");
  }
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(absl::string_view(authorization.data(), kScheme.size()),
                              absl::string_view(kScheme.data(), kScheme.size()))) {
    return absl::UnauthenticatedError(
        "malformed credentials: the authorization metadata must be 'Bearer <admin token>'");
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  const std::shared_ptr<const Map> by_hash = Get();
  auto it = by_hash->find(Sha256(token));
  if (it == by_hash->end()) return absl::UnauthenticatedError("unknown admin token");
  return it->second;
}

absl::StatusOr<Principal> AuthenticateCall(const AdminTokens* tokens,
                                           grpc::CallbackServerContext* context,
                                           std::string_view what) {
  if (tokens == nullptr) {
    return absl::UnauthenticatedError(absl::StrCat(
        std::string(what), " calls need admin tokens: start the ledger with --admin_tokens_file"));
  }
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  std::string_view value;
  if (it != metadata.end()) value = std::string_view(it->second.data(), it->second.size());
  absl::StatusOr<Principal> who = tokens->Authenticate(value);
  if (!who.ok()) {
    LogWarn("control-plane call refused",
            {{"peer", context->peer()}, {"error", std::string(who.status().message())}});
  }
  return who;
}

namespace {

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot read admin tokens file ", path, ": ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

absl::StatusOr<AdminTokens> LoadAdminTokens(const std::string& path) {
  absl::StatusOr<std::string> text = ReadText(path);
  if (!text.ok()) return text.status();
  return AdminTokens::Parse(*text, path);
}

AdminTokensReloader::AdminTokensReloader(std::string path, AdminTokens* tokens,
                                         absl::Duration interval)
    : path_(std::move(path)), tokens_(tokens), interval_(interval) {
  if (absl::StatusOr<std::string> text = ReadText(path_); text.ok()) last_text_ = *text;
}

AdminTokensReloader::~AdminTokensReloader() { Stop(); }

void AdminTokensReloader::Start() {
  thread_ = std::thread([this] {
    absl::MutexLock lock(&mu_);
    while (!mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval_)) {
      mu_.Unlock();
      CheckNow();
      mu_.Lock();
    }
  });
}

void AdminTokensReloader::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool AdminTokensReloader::CheckNow() {
  absl::StatusOr<std::string> text = ReadText(path_);
  if (!text.ok() || *text == last_text_) return false;
  absl::StatusOr<AdminTokens> parsed = AdminTokens::Parse(*text, path_);
  if (!parsed.ok()) {
    LogError("admin tokens file changed but does not parse; keeping the previous tokens",
             {{"path", path_}, {"error", std::string(parsed.status().message())}});
    last_text_ = *std::move(text);  // reported once; a fixed file is picked up when it changes
    return false;
  }
  tokens_->Replace(*parsed);
  last_text_ = *std::move(text);
  LogInfo("admin tokens reloaded", {{"path", path_}, {"tokens", absl::StrCat(parsed->size())}});
  return true;
}

std::string Sha256(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof(digest));
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

absl::StatusOr<GeneratedKey> GenerateKey() {
  unsigned char random[36];
  if (RAND_bytes(random, sizeof(random)) != 1) {
    return absl::InternalError("the CSPRNG (RAND_bytes) failed");
  }
  GeneratedKey key;
  key.id = HexEncode(std::string_view(reinterpret_cast<const char*>(random), 4));
  key.secret =
      absl::StrCat("tg-", key.id, "-",
                   HexEncode(std::string_view(reinterpret_cast<const char*>(random + 4), 32)));
  OPENSSL_cleanse(random, sizeof(random));
  key.sha256 = Sha256(key.secret);
  return key;
}

bool LooksLikeVirtualKey(std::string_view text) {
  return text.size() == 3 + 8 + 1 + 64 && text.substr(0, 3) == "tg-" && text[11] == '-' &&
         IsLowerHex(text.substr(3, 8)) && IsLowerHex(text.substr(12));
}

absl::StatusOr<std::string> ParseKeyReference(std::string_view text) {
  if (LooksLikeVirtualKey(text)) {
    return absl::InvalidArgumentError(
        "key: pass the key's id or prefix (tg-<id>), never the secret itself");
  }
  std::string_view id = text;
  if (id.substr(0, 3) == "tg-") id.remove_prefix(3);
  if (id.size() != 8 || !IsLowerHex(id)) {
    return absl::InvalidArgumentError(
        "key: expected a key id (8 lower-case hex digits, e.g. 1a2b3c4d) or prefix (tg-1a2b3c4d)");
  }
  return std::string(id);
}

absl::Status ValidateTeamName(std::string_view name) {
  auto ok_char = [](char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (!first && (c == '.' || c == '_' || c == '-'));
  };
  bool valid = !name.empty() && name.size() <= 63;
  for (size_t i = 0; valid && i < name.size(); ++i) valid = ok_char(name[i], i == 0);
  if (!valid) {
    return absl::InvalidArgumentError(absl::StrCat(
        "team: '", std::string(name.substr(0, 80)),
        "' is not a valid team name (1-63 characters: lower-case letters, digits, '.', '_', '-'; "
        "starting with a letter or digit)"));
  }
  return absl::OkStatus();
}

}  // namespace tollgate::ledger
