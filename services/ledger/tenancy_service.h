#pragma once
// TenancyAdmin (tenancy.proto): teams, virtual keys, the audit log and the WatchKeys stream the
// gateways authenticate from. Served on the ledger's admin listener.
//
//   TenancyAdminService tenancy(std::make_unique<TenancyStore>(...), &tokens, options);
//   tenancy.Start();          // worker thread: database calls, snapshot polling, heartbeats
//   builder.RegisterService(&tenancy);
//   ...
//   tenancy.Stop();           // ends every WatchKeys stream; then shut the server down
//
// Every call is authenticated from its "authorization: Bearer <token>" metadata against
// `tokens` and authorised by tenancy_auth.h's rules before anything else happens. With no
// tokens (null), every call fails UNAUTHENTICATED: tenancy needs --admin_tokens_file.
//
// Database work runs on one worker thread with its own connection (control-plane calls are rare),
// never on gRPC's threads. The worker also rereads the active key set every
// Options::poll_interval, so changes made through another ledger replica reach this replica's
// watchers too; the snapshot also carries every quota (quota_store.h), so quota changes are
// pushed the same way; a changed set is pushed at once as a full snapshot to every WatchKeys stream
// (after a local change, immediately). Streams carry a heartbeat every
// Options::heartbeat_interval when idle. A slow stream never queues more than one pending
// snapshot (newer replaces older).
//
// Thread-safe. Stop() before destroying; the server must be shut down before destruction.

#include <chrono>
#include <memory>

#include "grpcpp/grpcpp.h"
#include "services/ledger/tenancy_auth.h"
#include "services/ledger/tenancy_store.h"
#include "tollgate/v1/tenancy.grpc.pb.h"

namespace tollgate::ledger {

class TenancyAdminService final : public v1::TenancyAdmin::CallbackService {
 public:
  struct Options {
    std::chrono::milliseconds poll_interval{500};
    std::chrono::milliseconds heartbeat_interval{1000};
    size_t max_pending = 256;  // queued calls; more get RESOURCE_EXHAUSTED
  };

  // `tokens` may be null (every call UNAUTHENTICATED) and must outlive the service.
  TenancyAdminService(std::unique_ptr<TenancyStore> store, const AdminTokens* tokens,
                      Options options);
  ~TenancyAdminService() override;

  void Start();
  void Stop();  // idempotent

  // Rereads the key set and quotas on the worker thread soon and pushes a snapshot if they
  // changed (QuotaService calls it after a quota change). Thread-safe, non-blocking.
  void RequestRefresh();

  grpc::ServerUnaryReactor* CreateTeam(grpc::CallbackServerContext* context,
                                       const v1::CreateTeamRequest* request,
                                       v1::Team* response) override;
  grpc::ServerUnaryReactor* ListTeams(grpc::CallbackServerContext* context,
                                      const v1::ListTeamsRequest* request,
                                      v1::ListTeamsResponse* response) override;
  grpc::ServerUnaryReactor* CreateKey(grpc::CallbackServerContext* context,
                                      const v1::CreateKeyRequest* request,
                                      v1::CreateKeyResponse* response) override;
  grpc::ServerUnaryReactor* ListKeys(grpc::CallbackServerContext* context,
                                     const v1::ListKeysRequest* request,
                                     v1::ListKeysResponse* response) override;
  grpc::ServerUnaryReactor* RevokeKey(grpc::CallbackServerContext* context,
                                      const v1::RevokeKeyRequest* request,
                                      v1::RevokeKeyResponse* response) override;
  grpc::ServerUnaryReactor* ListAudit(grpc::CallbackServerContext* context,
                                      const v1::ListAuditRequest* request,
                                      v1::ListAuditResponse* response) override;
  grpc::ServerWriteReactor<v1::KeyWatchEvent>* WatchKeys(
      grpc::CallbackServerContext* context, const v1::KeyWatchRequest* request) override;

  struct Shared;  // implementation detail

 private:
  std::shared_ptr<Shared> shared_;
};

// Checks a CreateKeyRequest's fields (team name, name length, expiry in the future relative to
// `now_unix_s`, non-empty and bounded model/region entries, non-negative rpm/tpm). Errors:
// kInvalidArgument naming the field.
absl::Status ValidateCreateKey(const v1::CreateKeyRequest& request, int64_t now_unix_s);

}  // namespace tollgate::ledger
