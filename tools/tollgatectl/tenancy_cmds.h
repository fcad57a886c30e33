#pragma once
// tollgatectl's tenancy commands, over the ledger's TenancyAdmin service (docs/tenancy.md):
//
//   tollgatectl teams create NAME                                        (CreateTeam; admin)
//   tollgatectl teams list                                               (ListTeams)
//   tollgatectl keys create --team T [--name N] [--expires 30d|RFC3339|DATE]
//                           [--models a,b] [--feature F] [--regions r1,r2] [--rpm N] [--tpm N]
//                                                   (CreateKey; prints the secret ONCE)
//   tollgatectl keys list [--team T] [--all]        (ListKeys; --all includes revoked keys)
//   tollgatectl keys revoke ID|PREFIX               (RevokeKey)
//   tollgatectl audit [--team T] [--limit N]        (ListAudit)
//
// Every command takes --token TOKEN (else env TOLLGATE_ADMIN_TOKEN), sent as
// "authorization: Bearer TOKEN", and --format table|json (default table). Global flags
// (--ledger_admin, env TOLLGATE_LEDGER_ADMIN; --timeout; --router_admin accepted and ignored)
// and the flag syntax are ctl_lib's. Tables use ctl_lib's RenderAligned.
//
// Exit codes: 0 success, 1 RPC failure (one RpcErrorLine on stderr), 2 usage error. Pure
// functions are thread-safe.

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tollgate/v1/tenancy.pb.h"
#include "tools/tollgatectl/ctl_lib.h"

namespace tollgate::tools::ctl {

struct TenancyCommand {
  enum class Kind {
    kHelp,
    kTeamsCreate,
    kTeamsList,
    kKeysCreate,
    kKeysList,
    kKeysRevoke,
    kAudit,
  };
  Kind kind = Kind::kHelp;
  GlobalOptions global;
  std::string token;  // global.token (--token, env TOLLGATE_ADMIN_TOKEN), never empty once parsed
  Format format = Format::kTable;
  v1::CreateTeamRequest create_team;
  v1::CreateKeyRequest create_key;
  v1::ListKeysRequest list_keys;
  v1::RevokeKeyRequest revoke_key;
  v1::ListAuditRequest audit;
};

// True when `args` (after argv[0]) name a tenancy command (teams, keys, audit) or its help.
bool IsTenancyCommand(const std::vector<std::string>& args);

// Errors: kInvalidArgument with a one-line message. A missing token is an error for every
// command but help.
absl::StatusOr<TenancyCommand> ParseTenancyCommand(const std::vector<std::string>& args,
                                                   const GetEnv& env, absl::Time now);

std::string TenancyUsage();

// Renderings. JSON uses the protos' field names (preserve_proto_field_names).
std::string RenderTeams(const v1::ListTeamsResponse& response, Format format);
std::string RenderKeys(const v1::ListKeysResponse& response, Format format);
// The new key: the secret on its own line with a one-time warning, then its metadata.
std::string RenderCreatedKey(const v1::CreateKeyResponse& response, Format format);
std::string RenderAudit(const v1::ListAuditResponse& response, Format format);

int RunTenancyCommand(const std::vector<std::string>& args, const GetEnv& env, std::ostream& out,
                      std::ostream& err);

}  // namespace tollgate::tools::ctl
