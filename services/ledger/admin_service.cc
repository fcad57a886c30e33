#include "services/ledger/admin_service.h"

#include <chrono>
#include <deque>
#include <functional>
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
#include "services/common/status.h"
#include "services/ledger/focus.h"

namespace tollgate::ledger {

struct LedgerAdminService::Shared {
  struct Task {
    // Called once with the outcome (on a query thread, or on the caller's thread when refused).
    std::function<void(const grpc::Status&)> done;
    // Runs the call on a query thread's store with the time it may take; fills the response.
    std::function<absl::Status(UsageStore&, absl::Duration)> work;
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
    task.done(ToGrpcStatus(status));
  }

  void Run(UsageStore& store, const Task& task) {
    const absl::Duration left = task.deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      Finish(task, absl::DeadlineExceededError("deadline expired before the query started"));
      return;
    }
    Finish(task, task.work(store, std::min(left, options.max_query_timeout)));
  }

  // The call's deadline; absl::InfiniteFuture() when it has none.
  static absl::Time Deadline(grpc::CallbackServerContext* context) {
    // gRPC reports "no deadline" as the far future.
    const auto deadline = context->deadline();
    if (deadline < std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
      return absl::FromChrono(deadline);
    }
    return absl::InfiniteFuture();
  }

  // Queues `task`, or finishes it at once when shutting down or full.
  void Submit(grpc::CallbackServerContext* context, Task task) {
    task.deadline = Deadline(context);
    Submit(std::move(task));
  }

  void Submit(Task task) {
    absl::Status refused;
    {
      absl::MutexLock lock(&mu);
      if (stopped) {
        refused = absl::UnavailableError("ledger is shutting down");
      } else if (tasks.size() >= options.max_pending) {
        refused = absl::ResourceExhaustedError(
            absl::StrCat("too many spend queries waiting (", options.max_pending, ")"));
      } else {
        tasks.push_back(task);
      }
    }
    if (!refused.ok()) Finish(task, refused);
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
  auto work = [request, response](UsageStore& store, absl::Duration timeout) -> absl::Status {
    TOLLGATE_ASSIGN_OR_RETURN(*response, store.QuerySpend(*request, timeout));
    return absl::OkStatus();
  };
  shared_->Submit(context, Shared::Task{[reactor](const grpc::Status& s) { reactor->Finish(s); },
                                        work, absl::InfiniteFuture(), absl::Now()});
  return reactor;
}

grpc::ServerUnaryReactor* LedgerAdminService::Reprice(grpc::CallbackServerContext* context,
                                                      const v1::RepriceRequest* request,
                                                      v1::RepriceResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto work = [request, response](UsageStore& store, absl::Duration timeout) -> absl::Status {
    TOLLGATE_ASSIGN_OR_RETURN(*response, store.Reprice(*request, timeout));
    return absl::OkStatus();
  };
  shared_->Submit(context, Shared::Task{[reactor](const grpc::Status& s) { reactor->Finish(s); },
                                        work, absl::InfiniteFuture(), absl::Now()});
  return reactor;
}

grpc::ServerUnaryReactor* LedgerAdminService::ListAnomalies(grpc::CallbackServerContext* context,
                                                            const v1::ListAnomaliesRequest* request,
                                                            v1::ListAnomaliesResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto work = [request, response](UsageStore& store, absl::Duration timeout) -> absl::Status {
    TOLLGATE_ASSIGN_OR_RETURN(*response, store.ListAnomalies(*request, timeout));
    return absl::OkStatus();
  };
  shared_->Submit(context, Shared::Task{[reactor](const grpc::Status& s) { reactor->Finish(s); },
                                        work, absl::InfiniteFuture(), absl::Now()});
  return reactor;
}

namespace {

// Streams FocusChunks one UTC day at a time: each day is read on a query thread (a pool task with
// the call's deadline), written, and only when the write completes is the next day queued, so at
// most one day is buffered per call and a slow reader slows the export instead of growing memory.
class FocusExportReactor final : public grpc::ServerWriteReactor<v1::FocusChunk> {
 public:
  FocusExportReactor(LedgerAdminService::Shared* shared, v1::ExportFocusRequest request,
                     absl::Time deadline)
      : shared_(shared), request_(std::move(request)), deadline_(deadline) {}

  void Begin();
  void OnWriteDone(bool ok) override;
  void OnDone() override { delete this; }
  void OnCancel() override {}

 private:
  void Next();

  LedgerAdminService::Shared* shared_;
  const v1::ExportFocusRequest request_;
  const absl::Time deadline_;
  int64_t cursor_ = 0;
  int64_t end_ = 0;
  bool sent_header_ = false;
  v1::FocusChunk chunk_;
};

}  // namespace

grpc::ServerWriteReactor<v1::FocusChunk>* LedgerAdminService::ExportFocus(
    grpc::CallbackServerContext* context, const v1::ExportFocusRequest* request) {
  auto* reactor = new FocusExportReactor(shared_.get(), *request, Shared::Deadline(context));
  reactor->Begin();
  return reactor;
}

void FocusExportReactor::Begin() {
  if (request_.start_unix_s() <= 0 || request_.end_unix_s() < 0 ||
      (request_.end_unix_s() != 0 && request_.end_unix_s() <= request_.start_unix_s())) {
    Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "ExportFocus needs start_unix_s > 0 and end after start"));
    return;
  }
  cursor_ = request_.start_unix_s();
  end_ = request_.end_unix_s() != 0 ? request_.end_unix_s() : absl::ToUnixSeconds(absl::Now()) + 1;
  Next();
}

void FocusExportReactor::Next() {
  if (cursor_ >= end_) {
    Finish(grpc::Status::OK);
    return;
  }
  // Up to the next UTC midnight.
  const int64_t to = std::min(end_, (cursor_ / 86400 + 1) * 86400);
  const int64_t from = cursor_;
  cursor_ = to;
  auto work = [this, from, to](UsageStore& store, absl::Duration timeout) -> absl::Status {
    absl::StatusOr<v1::FocusChunk> chunk = store.FocusRecords(request_, from, to, timeout);
    if (!chunk.ok()) return chunk.status();
    chunk_ = std::move(*chunk);
    return absl::OkStatus();
  };
  auto done = [this](const grpc::Status& status) {
    if (!status.ok()) {
      Finish(status);
      return;
    }
    if (!sent_header_) {
      for (const std::string& c : FocusColumns()) chunk_.add_columns(c);
      sent_header_ = true;
    } else if (chunk_.records_size() == 0) {
      Next();  // nothing that day: no empty message
      return;
    }
    StartWrite(&chunk_);
  };
  shared_->Submit(LedgerAdminService::Shared::Task{done, work, deadline_, absl::Now()});
}

void FocusExportReactor::OnWriteDone(bool ok) {
  if (!ok) {
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
    return;
  }
  chunk_.Clear();
  Next();
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
