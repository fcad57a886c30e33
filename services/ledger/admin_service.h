#pragma once
// LedgerAdmin (control plane): spend queries, repricing and the FOCUS export.
//
// Queries run on a small pool of query threads, each with its own UsageStore (connection), never
// on gRPC's callback threads. The call's deadline bounds the query: the statement timeout is the
// time left (capped by Options::max_query_timeout, which also applies without a deadline). Errors
// map to canonical codes: INVALID_ARGUMENT (bad dimension, time range...), DEADLINE_EXCEEDED,
// UNAVAILABLE (database down: retry), RESOURCE_EXHAUSTED (too many queries waiting).
//
// Lifetime: shut the grpc::Server down before Stop() or destruction. Thread-safe.

#include <memory>
#include <vector>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "services/ledger/ledger_metrics.h"
#include "services/ledger/store.h"
#include "tollgate/v1/ledger.grpc.pb.h"

namespace tollgate::ledger {

class LedgerAdminService final : public v1::LedgerAdmin::CallbackService {
 public:
  struct Options {
    absl::Duration max_query_timeout = absl::Seconds(30);
    // Queries waiting for a query thread; more are refused with RESOURCE_EXHAUSTED.
    size_t max_pending = 64;
  };

  // One query thread per store; `stores` must not be empty. `metrics` must outlive the service.
  LedgerAdminService(std::vector<std::unique_ptr<UsageStore>> stores, Options options,
                     LedgerMetrics& metrics);
  ~LedgerAdminService() override;  // Stop()s

  grpc::ServerUnaryReactor* QuerySpend(grpc::CallbackServerContext* context,
                                       const v1::SpendQuery* request,
                                       v1::SpendResponse* response) override;
  // Same pool, deadline and error mapping as QuerySpend (see UsageStore::Reprice).
  grpc::ServerUnaryReactor* Reprice(grpc::CallbackServerContext* context,
                                    const v1::RepriceRequest* request,
                                    v1::RepriceResponse* response) override;

  grpc::ServerUnaryReactor* ListAnomalies(grpc::CallbackServerContext* context,
                                          const v1::ListAnomaliesRequest* request,
                                          v1::ListAnomaliesResponse* response) override;

  // Streams FOCUS records (focus.h) one UTC day per chunk, the first chunk with the columns.
  // Each day's read is a pool task bounded by the call's deadline.
  grpc::ServerWriteReactor<v1::FocusChunk>* ExportFocus(
      grpc::CallbackServerContext* context, const v1::ExportFocusRequest* request) override;

  // Fails queries still waiting with UNAVAILABLE and joins the query threads. Idempotent.
  void Stop();

  struct Shared;  // implementation detail

 private:
  std::unique_ptr<Shared> shared_;
};

}  // namespace tollgate::ledger
