// tollgatectl: operator CLI over the control-plane gRPC APIs (RouterAdmin, LedgerAdmin).
// Usage and behaviour: ctl_lib.h (parsing, rendering) and ctl_rpc.h (the RPCs).

#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tools/tollgatectl/ctl_lib.h"
#include "tools/tollgatectl/ctl_rpc.h"
#include "tools/tollgatectl/ledger_cmds.h"
#include "tools/tollgatectl/quota_cmds.h"
#include "tools/tollgatectl/route_cmd.h"
#include "tools/tollgatectl/tenancy_cmds.h"

namespace {

// The command families' help, after the overview.
std::string FamiliesOverview() {
  namespace ctl = tollgate::tools::ctl;
  return absl::StrCat("\n", ctl::RouteCommandsOverview(), "\n", ctl::LedgerCommandsOverview(), "\n",
                      ctl::TenancyUsage(), "\n", ctl::QuotaUsage());
}

}  // namespace

int main(int argc, char** argv) {
  namespace ctl = tollgate::tools::ctl;
  const std::vector<std::string> args(argv + 1, argv + argc);
  const ctl::GetEnv env = [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
  if (ctl::IsRouteCommand(args)) return ctl::RunRouteCommand(args, env, std::cout, std::cerr);
  if (ctl::IsLedgerCommand(args)) return ctl::RunLedgerCommand(args, env, std::cout, std::cerr);
  if (ctl::IsTenancyCommand(args)) return ctl::RunTenancyCommand(args, env, std::cout, std::cerr);
  if (ctl::IsQuotaCommand(args)) return ctl::RunQuotaCommand(args, env, std::cout, std::cerr);
  auto command = ctl::ParseCommandLine(args, env, absl::Now());
  if (!command.ok()) {
    // Show the help of the command being typed, if any.
    std::string topic;
    for (const auto& a : args) {
      if (a == "spend" || a == "catalog") topic = a;
    }
    const int code = ctl::PrintUsageError(std::cerr, command.status(), ctl::Usage(topic));
    if (topic.empty()) std::cerr << FamiliesOverview();
    return code;
  }
  const int code = ctl::RunCommand(*command, std::cout, std::cerr);
  if (command->kind == ctl::Command::Kind::kHelp && command->help_topic.empty()) {
    std::cout << FamiliesOverview();
  }
  return code;
}
