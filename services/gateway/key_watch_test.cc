// KeyWatcher against an in-process TenancyAdmin.WatchKeys: bearer token, snapshot swaps
// (revocation), refusal, and reconnection after the server went away.

#include "services/common/metrics.h"
#include "services/gateway/key_watch.h"

#include <chrono>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace tollgate::gateway {
namespace {

constexpr const char* kSecret =
    "tg-1a2b3c4d-00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

v1::KeySetSnapshot WithKey() {
  v1::KeySetSnapshot s;
  v1::ActiveKey* k = s.add_keys();
  k->set_id("1a2b3c4d");
  k->set_team("alpha");
  k->set_key_sha256(KeySha256(kSecret));
  return s;
}

class FakeTenancy final : public v1::TenancyAdmin::Service {
 public:
  void Publish(v1::KeySetSnapshot snapshot) {
    absl::MutexLock lock(&mu_);
    snapshot_ = std::move(snapshot);
    ++version_;
  }
  int streams() {
    absl::MutexLock lock(&mu_);
    return streams_;
  }

  grpc::Status WatchKeys(grpc::ServerContext* context, const v1::KeyWatchRequest*,
                         grpc::ServerWriter<v1::KeyWatchEvent>* writer) override {
    auto it = context->client_metadata().find("authorization");
    if (it == context->client_metadata().end() ||
        std::string(it->second.data(), it->second.size()) != "Bearer gw-token") {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown admin token");
    }
    int64_t sent = -1;
    {
      absl::MutexLock lock(&mu_);
      ++streams_;
    }
    while (!context->IsCancelled()) {
      v1::KeyWatchEvent event;
      {
        absl::MutexLock lock(&mu_);
        auto changed = [this, &sent]() { return version_ != sent; };
        mu_.AwaitWithTimeout(absl::Condition(&changed), absl::Milliseconds(50));
        if (version_ == sent) continue;
        sent = version_;
        *event.mutable_snapshot() = snapshot_;
      }
      if (!writer->Write(event)) break;
    }
    return grpc::Status::OK;
  }

 private:
  absl::Mutex mu_;
  v1::KeySetSnapshot snapshot_;
  int64_t version_ = 0;
  int streams_ = 0;
};

struct Server {
  explicit Server(FakeTenancy* service, int port = 0) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort(absl::StrCat("127.0.0.1:", port), grpc::InsecureServerCredentials(),
                             &this->port);
    builder.RegisterService(service);
    server = builder.BuildAndStart();
  }
  ~Server() { server->Shutdown(std::chrono::system_clock::now()); }
  int port = 0;
  std::unique_ptr<grpc::Server> server;
};

bool Eventually(const std::function<bool()>& condition) {
  const absl::Time until = absl::Now() + absl::Seconds(10);
  while (absl::Now() < until) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return false;
}

KeyWatcher::Options Fast() {
  KeyWatcher::Options o;
  o.initial_backoff = std::chrono::milliseconds(20);
  o.max_backoff = std::chrono::milliseconds(100);
  return o;
}

TEST(KeyWatcher, AppliesSnapshotsAndRevocations) {
  FakeTenancy service;
  service.Publish(WithKey());
  Server server(&service);
  KeyStore keys(KeySnapshot::Build({}));
  KeyWatcher::Options options = Fast();
  options.registry = std::make_shared<prometheus::Registry>();
  KeyWatcher watcher(grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.port),
                                         grpc::InsecureChannelCredentials()),
                     &keys, "gw-token", options);
  watcher.Start();
  ASSERT_TRUE(watcher.WaitForFirstSnapshot(absl::Seconds(10)));
  const std::string auth = std::string("Bearer ") + kSecret;
  EXPECT_EQ(Authenticate(keys, auth)->team, "alpha");
  const std::string exposition = SerializeMetrics(*options.registry);
  EXPECT_NE(exposition.find("tollgate_gateway_virtual_keys 1"), std::string::npos) << exposition;
  EXPECT_NE(exposition.find("tollgate_gateway_key_watch_events_total{kind=\"snapshot\"} 1"),
            std::string::npos)
      << exposition;

  service.Publish(v1::KeySetSnapshot());  // the key was revoked
  EXPECT_TRUE(Eventually([&] { return !Authenticate(keys, auth).ok(); }));
  EXPECT_TRUE(Eventually([&] {
    return SerializeMetrics(*options.registry).find("tollgate_gateway_virtual_keys 0") !=
           std::string::npos;
  }));
  watcher.Stop();
}

TEST(KeyWatcher, WrongTokenGetsNoSnapshot) {
  FakeTenancy service;
  service.Publish(WithKey());
  Server server(&service);
  KeyStore keys(KeySnapshot::Build({}));
  KeyWatcher watcher(grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.port),
                                         grpc::InsecureChannelCredentials()),
                     &keys, "not-the-token", Fast());
  watcher.Start();
  EXPECT_FALSE(watcher.WaitForFirstSnapshot(absl::Milliseconds(300)));
  EXPECT_EQ(watcher.snapshots(), 0);
  EXPECT_EQ(keys.GetLedger()->size(), 0u);
  watcher.Stop();
}

TEST(KeyWatcher, ReconnectsAfterTheLedgerComesBackAndKeepsTheLastSetMeanwhile) {
  FakeTenancy service;
  service.Publish(WithKey());
  auto server = std::make_unique<Server>(&service);
  const int port = server->port;
  KeyStore keys(KeySnapshot::Build({}));
  KeyWatcher watcher(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()),
      &keys, "gw-token", Fast());
  watcher.Start();
  ASSERT_TRUE(watcher.WaitForFirstSnapshot(absl::Seconds(10)));
  server.reset();  // ledger gone: the last set stays in force
  const std::string auth = std::string("Bearer ") + kSecret;
  EXPECT_TRUE(Authenticate(keys, auth).ok());

  service.Publish(v1::KeySetSnapshot());
  server = std::make_unique<Server>(&service, port);
  ASSERT_NE(server->server, nullptr);
  EXPECT_TRUE(Eventually([&] { return !Authenticate(keys, auth).ok(); }))
      << "no new snapshot after the ledger came back";
  EXPECT_GE(watcher.snapshots(), 2);
  watcher.Stop();
}

}  // namespace
}  // namespace tollgate::gateway
