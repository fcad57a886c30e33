#pragma once
// Bearer-token checks in front of LedgerAdmin (spend queries, repricing, FOCUS export,
// anomalies), used when the ledger has --admin_tokens_file (docs/tenancy.md). Each call is
// authenticated like TenancyAdmin's, authorised, then handed unchanged to the wrapped service.
//
//   admin:              every call
//   team-admin, viewer: QuerySpend and ExportFocus restricted to their own team, which the query
//                       must say with the filter team=<their team>; no Reprice, no ListAnomalies
//                       (anomalies span teams)
//   gateway:            nothing
//
// Errors: UNAUTHENTICATED, PERMISSION_DENIED (the message says which filter to add).
// Thread-safe; `inner` and `tokens` must outlive the guard. An RPC added to LedgerAdmin later
// must be added here too (until then it answers UNIMPLEMENTED when tokens are configured).

#include "grpcpp/grpcpp.h"
#include "services/ledger/tenancy_auth.h"
#include "tollgate/v1/ledger.grpc.pb.h"

namespace tollgate::ledger {

// Whether `who` may run a spend query or export with these filters. Errors: kPermissionDenied.
absl::Status AuthorizeSpendRead(const Principal& who,
                                const google::protobuf::Map<std::string, std::string>& filters);

class LedgerAdminGuard final : public v1::LedgerAdmin::CallbackService {
 public:
  LedgerAdminGuard(v1::LedgerAdmin::CallbackService* inner, const AdminTokens* tokens)
      : inner_(inner), tokens_(tokens) {}

  grpc::ServerUnaryReactor* QuerySpend(grpc::CallbackServerContext* context,
                                       const v1::SpendQuery* request,
                                       v1::SpendResponse* response) override;
  grpc::ServerUnaryReactor* Reprice(grpc::CallbackServerContext* context,
                                    const v1::RepriceRequest* request,
                                    v1::RepriceResponse* response) override;
  grpc::ServerUnaryReactor* ListAnomalies(grpc::CallbackServerContext* context,
                                          const v1::ListAnomaliesRequest* request,
                                          v1::ListAnomaliesResponse* response) override;
  grpc::ServerWriteReactor<v1::FocusChunk>* ExportFocus(
      grpc::CallbackServerContext* context, const v1::ExportFocusRequest* request) override;

 private:
  absl::StatusOr<Principal> Who(grpc::CallbackServerContext* context) const;

  v1::LedgerAdmin::CallbackService* const inner_;
  const AdminTokens* const tokens_;
};

}  // namespace tollgate::ledger
