#include "services/gateway/router_client.h"

#include <thread>
#include <utility>

#include "boost/asio/post.hpp"
#include "services/common/grpc_status.h"

namespace tollgate::gateway {

namespace {

// One call in flight: owned by the gRPC completion callback, freed there.
template <typename Request, typename Response, typename Callback>
struct Call {
  grpc::ClientContext context;
  Request request;
  Response response;
  boost::asio::any_io_executor executor;
  Callback done;
};

}  // namespace

RouterClient::RouterClient(std::shared_ptr<grpc::Channel> channel,
                           std::chrono::milliseconds timeout)
    : channel_(std::move(channel)), stub_(v1::Router::NewStub(channel_)), timeout_(timeout) {}

RouterClient::~RouterClient() { WaitIdle(); }

void RouterClient::Connect() { channel_->GetState(/*try_to_connect=*/true); }

bool RouterClient::Ready() const {
  if (snapshot_store_ != nullptr && snapshot_store_->has_snapshot()) return true;
  switch (channel_->GetState(/*try_to_connect=*/true)) {
    case GRPC_CHANNEL_READY:
      return true;
    case GRPC_CHANNEL_IDLE:
    case GRPC_CHANNEL_CONNECTING:
      return last_call_reached_router_.load(std::memory_order_relaxed);
    default:
      return false;
  }
}

void RouterClient::NoteOutcome(const grpc::Status& status) {
  bool reached = true;
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::INTERNAL:
      reached = false;
      break;
    default:
      break;
  }
  last_call_reached_router_.store(reached, std::memory_order_relaxed);
}

template <typename CallT>
void RouterClient::Complete(CallT* raw, const grpc::Status& status) {
  std::unique_ptr<CallT> call(raw);
  using Response = decltype(call->response);
  NoteOutcome(status);
  absl::StatusOr<Response> result = status.ok()
                                        ? absl::StatusOr<Response>(std::move(call->response))
                                        : absl::StatusOr<Response>(FromGrpcStatus(status));
  // Hand the result to the caller's thread; the gRPC thread must not run request code.
  boost::asio::post(call->executor,
                    [done = std::move(call->done), result = std::move(result)]() mutable {
                      done(std::move(result));
                    });
  in_flight_.fetch_sub(1, std::memory_order_acq_rel);
}

void RouterClient::Route(v1::RouteRequest request, boost::asio::any_io_executor executor,
                         RouteCallback done) {
  using RouteCall = Call<v1::RouteRequest, v1::RouteResponse, RouteCallback>;
  auto* call = new RouteCall();
  call->request = std::move(request);
  call->done = std::move(done);
  call->executor = std::move(executor);
  call->context.set_deadline(std::chrono::system_clock::now() + timeout_);
  in_flight_.fetch_add(1, std::memory_order_acq_rel);
  stub_->async()->Route(&call->context, &call->request, &call->response,
                        [this, call](grpc::Status status) { Complete(call, status); });
}

void RouterClient::ListModels(boost::asio::any_io_executor executor, ListModelsCallback done) {
  using ListCall = Call<v1::ListModelsRequest, v1::ListModelsResponse, ListModelsCallback>;
  auto* call = new ListCall();
  call->done = std::move(done);
  call->executor = std::move(executor);
  call->context.set_deadline(std::chrono::system_clock::now() + timeout_);
  in_flight_.fetch_add(1, std::memory_order_acq_rel);
  stub_->async()->ListModels(&call->context, &call->request, &call->response,
                             [this, call](grpc::Status status) { Complete(call, status); });
}

void RouterClient::WaitIdle() {
  while (in_flight_.load(std::memory_order_acquire) > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace tollgate::gateway
