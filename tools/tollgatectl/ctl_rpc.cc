#include "tools/tollgatectl/ctl_rpc.h"

#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "tollgate/v1/ledger.grpc.pb.h"
#include "tollgate/v1/router.grpc.pb.h"

namespace tollgate::tools::ctl {
namespace {

int RunSpend(const Command& cmd, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      AdminChannel(cmd.global.ledger_admin, cmd.global);
  if (!channel.ok()) return PrintError(err, channel.status());
  auto stub = v1::LedgerAdmin::NewStub(*channel);
  grpc::ClientContext context;
  PrepareContext(context, cmd.global);
  v1::SpendResponse response;
  const grpc::Status status = stub->QuerySpend(&context, cmd.spend_query, &response);
  if (!status.ok()) return PrintRpcError(err, "ledger", cmd.global.ledger_admin, status);
  out << RenderSpend(response, cmd.spend_query.bucket(), cmd.format);
  return 0;
}

int RunCatalog(const Command& cmd, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      AdminChannel(cmd.global.router_admin, cmd.global);
  if (!channel.ok()) return PrintError(err, channel.status());
  auto stub = v1::RouterAdmin::NewStub(*channel);
  grpc::ClientContext context;
  SetDeadline(context, cmd.global.timeout);  // RouterAdmin takes no token
  v1::ListCatalogResponse response;
  const grpc::Status status = stub->ListCatalog(&context, v1::ListCatalogRequest(), &response);
  if (!status.ok()) return PrintRpcError(err, "router", cmd.global.router_admin, status);
  out << (cmd.format == Format::kJson ? RenderCatalogJson(response) : RenderCatalogTable(response));
  return 0;
}

}  // namespace

int RunCommand(const Command& command, std::ostream& out, std::ostream& err) {
  switch (command.kind) {
    case Command::Kind::kSpend:
      return RunSpend(command, out, err);
    case Command::Kind::kCatalog:
      return RunCatalog(command, out, err);
    case Command::Kind::kHelp:
      break;
  }
  out << Usage(command.help_topic);
  return 0;
}

}  // namespace tollgate::tools::ctl
