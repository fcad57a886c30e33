#pragma once
// tollgatectl's budget and rate-limit commands, over the ledger's Quotas service (quota.proto,
// docs/budgets.md):
//
//   tollgatectl budgets set --team T [--key ID | --feature F | --customer C]
//                           (--usd AMOUNT | --tokens N) --period day|week|month
//                           [--soft] [--alerts 50,80,100] [--name TEXT]
//   tollgatectl budgets set --org (--usd AMOUNT | --tokens N) --period ...     (organisation)
//   tollgatectl budgets list [--team T]
//   tollgatectl budgets delete ID
//   tollgatectl limits set --team T [--key ID] [--rpm N] [--tpm N]    (one SetQuota per limit)
//   tollgatectl limits list [--team T]             (includes the keys' own rpm/tpm, k-<id>-rpm)
//   tollgatectl limits delete ID
//
// Scope of `budgets set`: --org: the organisation (no --team); --team alone: the team; --key:
// that key (its team in --team); --feature / --customer: requests with that feature / customer,
// of --team if given, else of any team. Budgets are hard (429 once spent) unless --soft. Limits
// are validated locally (services/common/quota.h ParseQuotaLimit) before any call, and sent in
// their canonical text ("100.00" -> "100").
//
// Every command takes --token TOKEN (else env TOLLGATE_ADMIN_TOKEN; required), --format
// table|csv|json (default table) and the global flags (--ledger_admin, env
// TOLLGATE_LEDGER_ADMIN; --timeout; --router_admin accepted and ignored), all through ctl_lib's
// ApplyCommonFlag. `budgets` and `limits` alone mean `... list`.
//
// Exit codes: 0 success, 1 RPC failure (one RpcErrorLine on stderr), 2 usage error. Pure
// functions are thread-safe.

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tollgate/v1/quota.pb.h"
#include "tools/tollgatectl/ctl_lib.h"

namespace tollgate::tools::ctl {

struct QuotaCommand {
  enum class Kind { kHelp, kSet, kList, kDelete };
  Kind kind = Kind::kHelp;
  bool limits = false;  // `limits ...` rather than `budgets ...`
  GlobalOptions global;
  Format format = Format::kTable;
  std::vector<v1::SetQuotaRequest> set;  // kSet: one per budget, one per --rpm / --tpm
  v1::ListQuotasRequest list;            // kList
  v1::DeleteQuotaRequest remove;         // kDelete
};

// True when `args` (after argv[0]) name a quota command (budgets, limits) or its help.
bool IsQuotaCommand(const std::vector<std::string>& args);

// Errors: kInvalidArgument with a one-line message naming the flag. A missing token is an error
// for every command but help.
absl::StatusOr<QuotaCommand> ParseQuotaCommand(const std::vector<std::string>& args,
                                               const GetEnv& env);

std::string QuotaUsage();

// Budgets are USD or TOKENS quotas per day, week or month; rate limits REQUESTS or TOKENS
// quotas per minute.
bool IsBudget(const v1::Quota& quota);
bool IsRateLimit(const v1::Quota& quota);

// Quotas as SetQuota / DeleteQuota return them: id, scope, team, subject, unit, period, limit,
// mode (hard|soft), alerts, name. JSON: one object per line.
std::string RenderQuotas(const std::vector<v1::Quota>& quotas, Format format);

// The budgets of a ListQuotas answer (others are skipped): id, scope, team, subject, unit,
// period, limit, spent, committed, remaining, used (percent), mode, alerts_fired, window_end
// (RFC 3339 UTC). Table: "-" for empty cells, "42%"; CSV: empty cells, the header used_percent
// and "42". JSON: the filtered ListQuotasResponse.
std::string RenderBudgets(const v1::ListQuotasResponse& response, Format format);

// The rate limits of a ListQuotas answer: id, scope, team, subject, kind (rpm|tpm), limit,
// committed (this minute), remaining, leases (active). Same conventions as RenderBudgets.
std::string RenderLimits(const v1::ListQuotasResponse& response, Format format);

// Parses `args` and runs the command against Quotas at global.ledger_admin; prints help, usage
// errors and RPC errors itself. `limits set` with --rpm and --tpm makes two calls: a failure of
// the second leaves the first in place (its quota is printed before the error).
int RunQuotaCommand(const std::vector<std::string>& args, const GetEnv& env, std::ostream& out,
                    std::ostream& err);

}  // namespace tollgate::tools::ctl
