// Route round trip against the floor: a bare gRPC echo and Router.Route, both served in this
// process over loopback TCP with the callback API and called with one call in flight, then the
// ratio. Prints percentiles; not a test.
//
//   build/tools/bench/grpc_route_bench [--calls=N] [--catalog=deploy/config/catalog.dev.yaml]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "grpcpp/grpcpp.h"
#include "prometheus/registry.h"
#include "services/router/catalog.h"
#include "services/router/router_service.h"
#include "tollgate/v1/router.grpc.pb.h"
#include "tools/bench/echo.grpc.pb.h"

ABSL_FLAG(int, calls, 20000, "Measured calls per case (after 2000 warm-up calls).");
ABSL_FLAG(std::string, catalog, "deploy/config/catalog.dev.yaml", "Catalog the router serves.");
ABSL_FLAG(std::string, model, "gpt-4o-mini", "Model asked for in Route.");

namespace {

class EchoService final : public tollgate::bench::Echo::CallbackService {
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const tollgate::bench::EchoMessage* request,
                                 tollgate::bench::EchoMessage* response) override {
    *response = *request;
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

struct Percentiles {
  double p50_us, p90_us, p99_us;
};

template <typename Fn>
Percentiles Measure(int calls, Fn&& fn) {
  for (int i = 0; i < 2000; ++i) fn();
  std::vector<double> us;
  us.reserve(calls);
  for (int i = 0; i < calls; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[static_cast<size_t>(q * (us.size() - 1))]; };
  return {at(0.5), at(0.9), at(0.99)};
}

std::shared_ptr<grpc::Channel> Connect(int port) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a channel of its own per target
  return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials(), args);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int calls = absl::GetFlag(FLAGS_calls);

  auto catalog = tollgate::router::LoadCatalogFile(absl::GetFlag(FLAGS_catalog));
  if (!catalog.ok()) {
    std::fprintf(stderr, "catalog: %s\n", std::string(catalog.status().message()).c_str());
    return 1;
  }
  auto registry = std::make_shared<prometheus::Registry>();
  auto metrics = tollgate::router::RouterMetrics::Create(*registry);
  if (!metrics.ok()) return 1;
  tollgate::router::CatalogStore store(*catalog, metrics->get());
  tollgate::router::RouterService router(&store, metrics->get());
  EchoService echo;

  auto echo_server = tollgate::router::StartGrpcServer("127.0.0.1:0", {&echo}, false);
  auto router_server = tollgate::router::StartGrpcServer("127.0.0.1:0", {&router}, false);
  if (!echo_server.ok() || !router_server.ok()) {
    std::fprintf(stderr, "cannot start servers\n");
    return 1;
  }

  auto echo_stub = tollgate::bench::Echo::NewStub(Connect(echo_server->port));
  auto router_stub = tollgate::v1::Router::NewStub(Connect(router_server->port));

  tollgate::bench::EchoMessage ping;
  ping.set_payload(std::string(64, 'x'));
  const Percentiles e = Measure(calls, [&] {
    grpc::ClientContext ctx;
    tollgate::bench::EchoMessage pong;
    if (!echo_stub->Echo(&ctx, ping, &pong).ok()) std::abort();
  });

  tollgate::v1::RouteRequest req;
  req.set_request_id("bench");
  req.set_model(absl::GetFlag(FLAGS_model));
  req.mutable_attribution()->set_team("bench");
  req.set_estimated_input_tokens(40);
  req.add_required_capabilities("chat");
  const Percentiles r = Measure(calls, [&] {
    grpc::ClientContext ctx;
    tollgate::v1::RouteResponse resp;
    grpc::Status st = router_stub->Route(&ctx, req, &resp);
    if (!st.ok()) {
      std::fprintf(stderr, "Route: %s\n", st.error_message().c_str());
      std::abort();
    }
  });

  std::printf("%-22s %10s %10s %10s\n", "case (1 call in flight)", "p50 us", "p90 us", "p99 us");
  std::printf("%-22s %10.1f %10.1f %10.1f\n", "bare gRPC echo", e.p50_us, e.p90_us, e.p99_us);
  std::printf("%-22s %10.1f %10.1f %10.1f\n", "Router.Route", r.p50_us, r.p90_us, r.p99_us);
  std::printf("%-22s %10.2f %10.2f %10.2f\n", "ratio Route/echo", r.p50_us / e.p50_us,
              r.p90_us / e.p90_us, r.p99_us / e.p99_us);
  echo_server->server->Shutdown();
  router_server->server->Shutdown();
  return 0;
}
