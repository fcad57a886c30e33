#pragma once
// Control-plane authentication and authorisation (issue 8 item 5): admin bearer tokens, their
// roles, and the scope check every TenancyAdmin call makes. Also the key format of virtual keys.
//
// Tokens file (--admin_tokens_file), YAML; tokens are stored as SHA-256 hex digests only
// (`printf %s "$TOKEN" | sha256sum`):
//
//   tokens:
//     - name: ops            # recorded as the actor in the audit log
//       sha256: 9f86d08...   # 64 hex digits
//       role: admin          # admin | team-admin | viewer | gateway
//     - name: alpha-lead
//       sha256: ...
//       role: team-admin
//       team: alpha          # required for team-admin and viewer, refused otherwise
//
//   absl::StatusOr<AdminTokens> tokens = LoadAdminTokens(path);
//   absl::StatusOr<Principal> who = tokens->Authenticate(authorization_metadata_value);
//   absl::Status ok = Authorize(*who, TenancyAction::kCreateKey, "alpha");
//
// Pure values and functions; AdminTokens is immutable after loading and thread-safe.

#include <array>
#include <cstdint>
#include <memory>
#include <thread>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/server_context.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tollgate::ledger {

enum class Role { kAdmin, kTeamAdmin, kViewer, kGateway };

std::string_view RoleName(Role role);

// Who is calling: the token's name, role and (team-admin, viewer) team.
struct Principal {
  std::string name;
  Role role = Role::kViewer;
  std::string team;
};

enum class TenancyAction {
  kCreateTeam,
  kListTeams,
  kCreateKey,
  kListKeys,
  kRevokeKey,
  kListAudit,
  kWatchKeys,
  // Quotas (quota.proto): `team` is the quota's team ("" for org-wide and team-less quotas).
  kSetQuota,
  kListQuotas,
  kDeleteQuota,
  kLease,
};

// Whether `who` may do `action` on `team` ("" = across teams, e.g. listing everything).
//   admin:      everything except WatchKeys and Lease
//   team-admin: CreateKey / RevokeKey / SetQuota / DeleteQuota / reads, on its own team only
//               (quotas without a team, org-wide ones included, are admin-only)
//   viewer:     reads (ListTeams, ListKeys, ListAudit, ListQuotas) of its own team only
//   gateway:    WatchKeys and Lease only
// Errors: kPermissionDenied with a message naming the role, the action and the team.
absl::Status Authorize(const Principal& who, TenancyAction action, std::string_view team);

// For a read with team filter `requested` ("" = all): the team the read must be limited to
// ("" = no limit, admin only), or kPermissionDenied when the caller asks for another team.
absl::StatusOr<std::string> ReadScope(const Principal& who, TenancyAction action,
                                      std::string_view requested);

class AdminTokens {
 public:
  // Parses the YAML text; `source` names it in errors. Errors: kInvalidArgument (unknown field,
  // bad role, missing team, malformed or duplicate sha256, duplicate name, no tokens).
  static absl::StatusOr<AdminTokens> Parse(std::string_view yaml, std::string_view source);

  // The principal of an "authorization" metadata value "Bearer <token>". Errors:
  // kUnauthenticated (missing, not a bearer token, unknown token); never echoes the token.
  absl::StatusOr<Principal> Authenticate(std::string_view authorization) const;

  size_t size() const;

  // Copies share one set: a Replace on any of them is seen by all.
  // Swaps in the tokens of `next` (a reloaded file), thread-safe: calls being authorised finish
  // with the set they started with; later calls see the new one. `next` itself is unchanged.
  void Replace(const AdminTokens& next);

 private:
  using Map = absl::flat_hash_map<std::string, Principal>;  // raw 32-byte SHA-256 -> principal
  struct Shared {
    mutable absl::Mutex mu;
    std::shared_ptr<const Map> map ABSL_GUARDED_BY(mu) = std::make_shared<const Map>();
  };
  std::shared_ptr<const Map> Get() const;

  std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
};

// The caller of a control-plane call, from its "authorization" metadata; a refusal is logged with
// the peer. `tokens` null (no --admin_tokens_file): kUnauthenticated saying `what` calls need
// admin tokens. Errors otherwise as AdminTokens::Authenticate.
absl::StatusOr<Principal> AuthenticateCall(const AdminTokens* tokens,
                                           grpc::CallbackServerContext* context,
                                           std::string_view what);

// Reads and parses a tokens file. Errors: kNotFound when unreadable, else as Parse.
absl::StatusOr<AdminTokens> LoadAdminTokens(const std::string& path);

// Keeps `tokens` in step with its file without a restart (rotating a token, adding a team-admin):
// rereads `path` every `interval` on its own thread and, when the text changed, parses it and
// Replace()s the set. A file that does not parse (or is missing, e.g. mid-update of a mounted
// Secret) is logged and ignored: the last good set stays in force. `tokens` must outlive it.
class AdminTokensReloader {
 public:
  AdminTokensReloader(std::string path, AdminTokens* tokens, absl::Duration interval);
  ~AdminTokensReloader();
  AdminTokensReloader(const AdminTokensReloader&) = delete;
  AdminTokensReloader& operator=(const AdminTokensReloader&) = delete;

  void Start();
  void Stop();  // idempotent
  // One check now (tests): true when a new set was swapped in.
  bool CheckNow();

 private:
  const std::string path_;
  AdminTokens* const tokens_;
  const absl::Duration interval_;
  std::string last_text_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// ---- Virtual keys. ----

// Raw 32-byte SHA-256 of `data`.
std::string Sha256(std::string_view data);
std::string HexEncode(std::string_view bytes);

struct GeneratedKey {
  std::string id;      // 8 lower-case hex digits
  std::string secret;  // "tg-<id>-<64 lower-case hex digits>"
  std::string sha256;  // raw SHA-256 of secret
};

// A fresh key from OpenSSL's CSPRNG (RAND_bytes). Errors: kInternal when the CSPRNG fails.
absl::StatusOr<GeneratedKey> GenerateKey();

// True when `text` has the shape of a generated key ("tg-" 8 hex "-" 64 hex).
bool LooksLikeVirtualKey(std::string_view text);

// Accepts "1a2b3c4d" or "tg-1a2b3c4d" (a full secret is refused: it must not be typed on command
// lines). Returns the id. Errors: kInvalidArgument.
absl::StatusOr<std::string> ParseKeyReference(std::string_view text);

// Team names: [a-z0-9][a-z0-9._-]{0,62}. Errors: kInvalidArgument naming the rule.
absl::Status ValidateTeamName(std::string_view name);

}  // namespace tollgate::ledger
