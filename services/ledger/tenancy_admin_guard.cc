#include "services/ledger/tenancy_admin_guard.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "services/common/grpc_status.h"
#include "services/common/logging.h"

namespace tollgate::ledger {
namespace {

grpc::ServerUnaryReactor* Refuse(grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// A stream that ends at once with an error.
class RefusedStream final : public grpc::ServerWriteReactor<v1::FocusChunk> {
 public:
  explicit RefusedStream(const absl::Status& status) { Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

absl::Status AdminOnly(const Principal& who, std::string_view what) {
  if (who.role == Role::kAdmin) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat("token '", who.name, "' (role ",
                                                  std::string(RoleName(who.role)), ") may not ",
                                                  std::string(what), ": admin only"));
}

}  // namespace

absl::Status AuthorizeSpendRead(const Principal& who,
                                const google::protobuf::Map<std::string, std::string>& filters) {
  if (who.role == Role::kAdmin) return absl::OkStatus();
  if (who.role == Role::kGateway) {
    return absl::PermissionDeniedError(
        absl::StrCat("token '", who.name, "' (role gateway) may not read spend"));
  }
  auto it = filters.find("team");
  if (it == filters.end() || it->second != who.team) {
    return absl::PermissionDeniedError(absl::StrCat(
        "token '", who.name, "' (role ", std::string(RoleName(who.role)), ", team ", who.team,
        ") may only read its own team's spend: add the filter team=", who.team));
  }
  return absl::OkStatus();
}

absl::StatusOr<Principal> LedgerAdminGuard::Who(grpc::CallbackServerContext* context) const {
  return AuthenticateCall(tokens_, context, "LedgerAdmin");
}

grpc::ServerUnaryReactor* LedgerAdminGuard::QuerySpend(grpc::CallbackServerContext* context,
                                                       const v1::SpendQuery* request,
                                                       v1::SpendResponse* response) {
  absl::StatusOr<Principal> who = Who(context);
  if (!who.ok()) return Refuse(context, who.status());
  if (absl::Status st = AuthorizeSpendRead(*who, request->filters()); !st.ok()) {
    return Refuse(context, st);
  }
  return inner_->QuerySpend(context, request, response);
}

grpc::ServerUnaryReactor* LedgerAdminGuard::Reprice(grpc::CallbackServerContext* context,
                                                    const v1::RepriceRequest* request,
                                                    v1::RepriceResponse* response) {
  absl::StatusOr<Principal> who = Who(context);
  if (!who.ok()) return Refuse(context, who.status());
  if (absl::Status st = AdminOnly(*who, "reprice"); !st.ok()) return Refuse(context, st);
  return inner_->Reprice(context, request, response);
}

grpc::ServerUnaryReactor* LedgerAdminGuard::ListAnomalies(grpc::CallbackServerContext* context,
                                                          const v1::ListAnomaliesRequest* request,
                                                          v1::ListAnomaliesResponse* response) {
  absl::StatusOr<Principal> who = Who(context);
  if (!who.ok()) return Refuse(context, who.status());
  if (absl::Status st = AdminOnly(*who, "list anomalies"); !st.ok()) return Refuse(context, st);
  return inner_->ListAnomalies(context, request, response);
}

grpc::ServerWriteReactor<v1::FocusChunk>* LedgerAdminGuard::ExportFocus(
    grpc::CallbackServerContext* context, const v1::ExportFocusRequest* request) {
  absl::StatusOr<Principal> who = Who(context);
  if (!who.ok()) return new RefusedStream(who.status());
  if (absl::Status st = AuthorizeSpendRead(*who, request->filters()); !st.ok()) {
    return new RefusedStream(st);
  }
  return inner_->ExportFocus(context, request);
}

}  // namespace tollgate::ledger
