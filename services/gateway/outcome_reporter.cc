#include "services/gateway/outcome_reporter.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/client_context.h"
#include "services/common/logging.h"
#include "services/gateway/gateway_metrics.h"

namespace tollgate::gateway {

OutcomeReporter::OutcomeReporter(std::shared_ptr<grpc::Channel> channel, GatewayMetrics* metrics,
                                 OutcomeReporterOptions options)
    : stub_(v1::Router::NewStub(std::move(channel))),
      metrics_(metrics),
      options_(options),
      queue_(options.queue_capacity) {}

OutcomeReporter::~OutcomeReporter() { Stop(); }

void OutcomeReporter::Start() {
  thread_ = std::thread([this] { Run(); });
}

void OutcomeReporter::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool OutcomeReporter::Report(v1::Outcome outcome) {
  if (!queue_.TryPush(std::move(outcome))) {
    if (metrics_ != nullptr) metrics_->AddOutcomes("dropped", 1);
    return false;
  }
  return true;
}

size_t OutcomeReporter::Drain() {
  size_t taken = 0;
  while (true) {
    v1::ReportOutcomesRequest request;
    while (static_cast<size_t>(request.outcomes_size()) < options_.batch_size) {
      std::optional<v1::Outcome> next = queue_.TryPop();
      if (!next) break;
      *request.add_outcomes() = std::move(*next);
    }
    if (metrics_ != nullptr) metrics_->SetOutcomeQueueDepth(static_cast<double>(queue_.size()));
    if (request.outcomes_size() == 0) return taken;
    taken += static_cast<size_t>(request.outcomes_size());
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + options_.rpc_timeout);
    v1::ReportOutcomesResponse response;
    const grpc::Status status = stub_->ReportOutcomes(&context, request, &response);
    if (metrics_ != nullptr) {
      metrics_->AddOutcomes(status.ok() ? "sent" : "failed", request.outcomes_size());
    }
    if (!status.ok()) {
      LogDebug("outcome report failed", {{"outcomes", absl::StrCat(request.outcomes_size())},
                                         {"error", status.error_message()}});
    }
  }
}

void OutcomeReporter::Run() {
  while (true) {
    bool stop = false;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                           absl::Milliseconds(options_.batch_delay.count()));
      stop = stopping_;
    }
    Drain();
    if (stop) return;
  }
}

}  // namespace tollgate::gateway
