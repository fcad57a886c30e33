#pragma once
// tollgatectl's routing commands, over RouterAdmin:
//
//   tollgatectl route explain --model M [--team T] [--prompt-tokens N] [...]   (ExplainRoute)
//   tollgatectl deployments [--format table|json]                             (ListDeployments)
//
// main.cc hands the arguments here when IsRouteCommand() says so; everything else goes to
// ParseCommandLine (ctl_lib.h). The global flags (--router_admin, env TOLLGATE_ROUTER_ADMIN,
// --timeout; --ledger_admin is accepted and ignored) and the flag syntax are ctl_lib's.
//
// Exit codes: 0 success (also when the explained decision would fail: the failure is part of
// the explanation), 1 RPC failure, 2 usage error. Pure functions are thread-safe.

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tollgate/v1/router.pb.h"
#include "tools/tollgatectl/ctl_lib.h"

namespace tollgate::tools::ctl {

struct RouteCommand {
  enum class Kind { kHelp, kExplain, kDeployments };
  Kind kind = Kind::kHelp;
  std::string help_topic;  // kHelp: "route" or "deployments"
  GlobalOptions global;
  Format format = Format::kTable;
  v1::RouteRequest request;  // kExplain
};

// True when `args` (after argv[0]) name the route or deployments command, or ask for their help.
bool IsRouteCommand(const std::vector<std::string>& args);

// Errors: kInvalidArgument with a one-line message.
absl::StatusOr<RouteCommand> ParseRouteCommand(const std::vector<std::string>& args,
                                               const GetEnv& env);

// Help for "route" or "deployments"; RouteCommandsOverview() lists both for the main help.
std::string RouteUsage(std::string_view topic);
std::string RouteCommandsOverview();

// ExplainRoute answers: a header (model, class, policy path, rules, cache), the candidates in
// order with their scores and reasons, the removed deployments with the filter that removed
// each, and the health of the model's deployments. JSON: {"model", "request_class", "policy",
// "policy_path", "rules", "error_code", "error", "cache_ttl_ms", "draw_weighted",
// "candidates": [{"deployment", "provider", "region", "reason", "weight",
// "estimated_cost_usd" (decimal string), "latency_ewma_us", "ttft_ewma_us", "quality",
// "probe", "near_limit"}], "removed": [{"deployment", "filter", "detail"}], "catalog_version"}.
std::string RenderExplainTable(const v1::ExplainRouteResponse& response, absl::Time now);
std::string RenderExplainJson(const v1::ExplainRouteResponse& response);

// ListDeployments answers: one row per deployment with provider, upstream model, region,
// circuit state, availability, EWMAs, error rate, cooldown left, RPM/TPM use against limits.
// JSON: {"catalog_version", "deployments": [{"id", "provider", "upstream_model", "region",
// "circuit" ("closed" | "open" | "half-open"), "available", "consecutive_failures",
// "latency_ewma_us", "ttft_ewma_us", "error_rate", "outcomes", "circuit_open_until_unix_ms",
// "cooldown_until_unix_ms", "rpm_used", "rpm_limit", "tpm_used", "tpm_limit", "near_limit"}]}.
std::string RenderDeploymentsTable(const v1::ListDeploymentsResponse& response, absl::Time now);
std::string RenderDeploymentsJson(const v1::ListDeploymentsResponse& response);

// Parses `args` and runs the command against RouterAdmin; prints help or usage errors itself.
int RunRouteCommand(const std::vector<std::string>& args, const GetEnv& env, std::ostream& out,
                    std::ostream& err);

}  // namespace tollgate::tools::ctl
