#include "services/ledger/admin_service.h"

#include <chrono>
#include <deque>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/call_once.h"
#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "services/common/grpc_status.h"
#include "services/common/logging.h"

namespace tollgate::ledger {

struct LedgerAdminService::Shared {
  struct Task {
    grpc::ServerUnaryReactor* reactor;
    const v1::SpendQuery* request;
    v1::SpendResponse* response;
    absl::Time deadline;  // absl::InfiniteFuture() without a call deadline
    absl::Time received;
  };

  Shared(Options o, LedgerMetrics& m) : options(std::move(o)), metrics(m) {}

  bool HasWorkOrStopped() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return !tasks.empty() || stopped;
  }

  void Finish(const Task& task, const absl::Status& status) {
    metrics.spend_queries(status).Increment();
    metrics.spend_query_seconds().Observe(absl::ToDoubleSeconds(absl::Now() - task.received));
    if (!status.ok() && status.code() != absl::StatusCode::kInvalidArgument) {
      LogWarn("spend query failed", {{"error", std::string(status.message())}});
    }
    task.reactor->Finish(ToGrpcStatus(status));
  }

  void Run(UsageStore& store, const Task& task) {
    const absl::Duration left = task.deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      Finish(task, absl::DeadlineExceededError("deadline expired before the query started"));
      return;
    }
    absl::StatusOr<v1::SpendResponse> result =
        store.QuerySpend(*task.request, std::min(left, options.max_query_timeout));
    if (!result.ok()) {
      Finish(task, result.status());
      return;
    }
    *task.response = std::move(*result);
    Finish(task, absl::OkStatus());
  }

  void Loop(UsageStore& store) {
    for (;;) {
      Task task;
      {
        absl::MutexLock lock(&mu);
        mu.Await(absl::Condition(this, &Shared::HasWorkOrStopped));
        if (stopped) break;
        task = tasks.front();
        tasks.pop_front();
      }
      Run(store, task);
    }
  }

  const Options options;
  LedgerMetrics& metrics;
  absl::once_flag stop_once;
  absl::Mutex mu;
  std::deque<Task> tasks ABSL_GUARDED_BY(mu);
  bool stopped ABSL_GUARDED_BY(mu) = false;
  std::vector<std::unique_ptr<UsageStore>> stores;
  std::vector<std::thread> threads;
};

LedgerAdminService::LedgerAdminService(std::vector<std::unique_ptr<UsageStore>> stores,
                                       Options options, LedgerMetrics& metrics)
    : shared_(std::make_unique<Shared>(std::move(options), metrics)) {
  shared_->stores = std::move(stores);
  for (auto& store : shared_->stores) {
    shared_->threads.emplace_back([shared = shared_.get(), s = store.get()] { shared->Loop(*s); });
  }
}

LedgerAdminService::~LedgerAdminService() { Stop(); }

grpc::ServerUnaryReactor* LedgerAdminService::QuerySpend(grpc::CallbackServerContext* context,
                                                         const v1::SpendQuery* request,
                                                         v1::SpendResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Shared::Task task{reactor, request, response, absl::InfiniteFuture(), absl::Now()};
  // gRPC reports "no deadline" as the far future.
  const auto deadline = context->deadline();
  if (deadline < std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
    task.deadline = absl::FromChrono(deadline);
  }
  absl::Status refused;
  {
    absl::MutexLock lock(&shared_->mu);
    if (shared_->stopped) {
      refused = absl::UnavailableError("ledger is shutting down");
    } else if (shared_->tasks.size() >= shared_->options.max_pending) {
      refused = absl::ResourceExhaustedError(
          absl::StrCat("too many spend queries waiting (", shared_->options.max_pending, ")"));
    } else {
      shared_->tasks.push_back(task);
    }
  }
  if (!refused.ok()) shared_->Finish(task, refused);
  return reactor;
}

void LedgerAdminService::Stop() {
  absl::call_once(shared_->stop_once, [this] {
    std::deque<Shared::Task> left;
    {
      absl::MutexLock lock(&shared_->mu);
      shared_->stopped = true;
      left.swap(shared_->tasks);
    }
    for (const Shared::Task& t : left) {
      shared_->Finish(t, absl::UnavailableError("ledger is shutting down"));
    }
    for (std::thread& t : shared_->threads) t.join();
  });
}

}  // namespace tollgate::ledger
