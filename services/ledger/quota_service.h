#pragma once
// Quotas (quota.proto): budgets and rate limits, and the leases gateways enforce them with.
// Served on the ledger's admin listener next to TenancyAdmin; docs/budgets.md.
//
//   QuotaService quotas(std::move(control_store), std::move(lease_store), &tokens, metrics,
//                       options);
//   quotas.Start();           // worker threads
//   builder.RegisterService(&quotas);
//   ...
//   quotas.Stop();            // before the server is destroyed
//
// Authentication and authorisation as TenancyAdmin (tenancy_auth.h; kSetQuota, kListQuotas,
// kDeleteQuota, kLease). With no tokens (null) every call fails UNAUTHENTICATED.
//
// Database work never runs on gRPC's threads. Two worker threads, each with its own connection
// and a bounded queue (Options::max_pending; more get RESOURCE_EXHAUSTED): one for Lease calls
// (the gateways' path, kept free of slow control-plane work), one for SetQuota / ListQuotas /
// DeleteQuota and, every Options::state_interval, the state pass: each SetQuota quota's state
// in its current window -> the budget gauges (QuotaMetrics), and alert thresholds newly crossed
// -> a WARN log line "budget alert" (fired once per window across replicas); windows that ended
// more than an hour ago are deleted. After a successful Set/Delete, Options::on_change runs
// (main pushes a new WatchKeys snapshot).
//
// Thread-safe. Stop() before destroying; the server must be shut down before destruction.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "services/ledger/ledger_metrics.h"
#include "services/ledger/quota_store.h"
#include "services/ledger/tenancy_auth.h"
#include "tollgate/v1/quota.grpc.pb.h"

namespace tollgate::ledger {

class QuotaService final : public v1::Quotas::CallbackService {
 public:
  struct Options {
    std::chrono::milliseconds state_interval{5000};
    size_t max_pending = 256;
    std::function<void()> on_change;  // may be empty; runs on the control worker thread
  };

  // `tokens` may be null (every call UNAUTHENTICATED); `metrics` may be null. Both must outlive
  // the service.
  QuotaService(std::unique_ptr<QuotaStore> control_store, std::unique_ptr<QuotaStore> lease_store,
               const AdminTokens* tokens, QuotaMetrics* metrics, Options options);
  ~QuotaService() override;

  void Start();
  void Stop();  // idempotent; finishes queued calls with UNAVAILABLE

  grpc::ServerUnaryReactor* SetQuota(grpc::CallbackServerContext* context,
                                     const v1::SetQuotaRequest* request,
                                     v1::Quota* response) override;
  grpc::ServerUnaryReactor* ListQuotas(grpc::CallbackServerContext* context,
                                       const v1::ListQuotasRequest* request,
                                       v1::ListQuotasResponse* response) override;
  grpc::ServerUnaryReactor* DeleteQuota(grpc::CallbackServerContext* context,
                                        const v1::DeleteQuotaRequest* request,
                                        v1::Quota* response) override;
  grpc::ServerUnaryReactor* Lease(grpc::CallbackServerContext* context,
                                  const v1::LeaseRequest* request,
                                  v1::LeaseResponse* response) override;

  class Worker;  // implementation detail

 private:
  absl::StatusOr<Principal> Who(grpc::CallbackServerContext* context) const;
  void StatePass(QuotaStore& store);

  const AdminTokens* const tokens_;
  QuotaMetrics* const metrics_;
  const Options options_;
  std::unique_ptr<Worker> control_;
  std::unique_ptr<Worker> lease_;
};

// Checks and normalises a SetQuota quota: scope, unit and period set; team required for TEAM and
// KEY (a valid team name when given); subject required for KEY (a key id or "tg-" prefix,
// normalised to the id), FEATURE and CUSTOMER, empty for ORG and TEAM; the limit
// (ParseQuotaLimit; rewritten in canonical form); alert percents 1..1000 (at most 20, sorted and
// deduplicated); name at most 128 bytes; MINUTE only for REQUESTS and TOKENS, which must then be
// hard; id empty or "q-<8 hex>" (key limits "k-..." are not set here). Returns the limit in lease
// units. Errors: kInvalidArgument naming the field.
absl::StatusOr<int64_t> ValidateQuota(v1::Quota* quota);

}  // namespace tollgate::ledger
