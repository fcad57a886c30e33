#pragma once
// The RPC side of tollgatectl: runs a parsed Command against the control-plane services with
// synchronous gRPC stubs and prints the rendered answer. Separate from main so tests can drive it
// against fake services.
//
//   int exit_code = RunCommand(*command, std::cout, std::cerr);
//
// Exit codes: 0 success (answer on `out`), 1 RPC failure (one RpcErrorLine on `err`).

#include <ostream>

#include "tools/tollgatectl/ctl_lib.h"

namespace tollgate::tools::ctl {

// Runs kSpend (LedgerAdmin.QuerySpend at global.ledger_admin) or kCatalog
// (RouterAdmin.ListCatalog at global.router_admin) with deadline global.timeout; kHelp prints
// Usage(help_topic). Blocks until the answer or the deadline.
int RunCommand(const Command& command, std::ostream& out, std::ostream& err);

}  // namespace tollgate::tools::ctl
