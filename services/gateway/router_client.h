#pragma once
// Client of the router's data-plane service (Router.Route, Router.ListModels) over the gRPC
// callback API. Calls never block the caller: the completion is posted to the executor the caller
// passes (the I/O thread that owns the request), never run inline and never on a gRPC thread.
//
//   router.Route(std::move(request), session->executor(),
//                [](absl::StatusOr<v1::RouteResponse> r) { ... runs on the session's thread ... });
//
// Every call carries a deadline (`timeout`). Errors are the router's canonical codes (NOT_FOUND:
// unknown model; FAILED_PRECONDITION: no deployment can serve the request) or the transport's
// (UNAVAILABLE, DEADLINE_EXCEEDED).
//
// Readiness (Ready()): a catalog snapshot from the router's Watch stream is held (the gateway can
// route from it when the router is away; see SetSnapshotStore), or the channel is READY, or it is
// IDLE/CONNECTING and the last call reached the router (any status other than UNAVAILABLE /
// DEADLINE_EXCEEDED / CANCELLED / UNKNOWN / INTERNAL). Otherwise not ready.
//
// Thread-safe. The executors passed in must outlive every call made with them: call WaitIdle()
// before destroying them.

#include <atomic>
#include <chrono>
#include <memory>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "boost/asio/any_io_executor.hpp"
#include "grpcpp/channel.h"
#include "services/gateway/catalog_snapshot.h"
#include "tollgate/v1/router.grpc.pb.h"

namespace tollgate::gateway {

class RouterClient {
 public:
  RouterClient(std::shared_ptr<grpc::Channel> channel, std::chrono::milliseconds timeout);
  ~RouterClient();

  RouterClient(const RouterClient&) = delete;
  RouterClient& operator=(const RouterClient&) = delete;

  using RouteCallback = absl::AnyInvocable<void(absl::StatusOr<v1::RouteResponse>)>;
  using ListModelsCallback = absl::AnyInvocable<void(absl::StatusOr<v1::ListModelsResponse>)>;

  void Route(v1::RouteRequest request, boost::asio::any_io_executor executor, RouteCallback done);
  void ListModels(boost::asio::any_io_executor executor, ListModelsCallback done);

  bool Ready() const;
  // Counts a held snapshot in Ready(). `store` may be null; it must outlive the client. Call
  // before serving.
  void SetSnapshotStore(const SnapshotStore* store) { snapshot_store_ = store; }

  // Starts connecting without waiting (so the first request does not pay for it).
  void Connect();

  // Blocks (polling) until no call is in flight. Bounded by the call timeout. Shutdown only.
  void WaitIdle();

 private:
  template <typename CallT>
  void Complete(CallT* call, const grpc::Status& status);
  void NoteOutcome(const grpc::Status& status);

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Router::Stub> stub_;
  const std::chrono::milliseconds timeout_;
  std::atomic<bool> last_call_reached_router_{false};
  std::atomic<int> in_flight_{0};
  const SnapshotStore* snapshot_store_ = nullptr;
};

}  // namespace tollgate::gateway
