#include "services/gateway/ledger_client.h"

#include <chrono>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/channel_arguments.h"
#include "gtest/gtest.h"

namespace tollgate::gateway {
namespace {

// An in-memory Ledger: records event ids (idempotently, like the real one) and acks each batch
// unless told not to.
class FakeLedger final : public v1::Ledger::CallbackService {
 public:
  explicit FakeLedger(bool ack) : ack_(ack) {}

  grpc::ServerBidiReactor<v1::IngestBatch, v1::IngestAck>* Ingest(
      grpc::CallbackServerContext*) override {
    return new Stream(this);
  }

  size_t distinct_events() {
    absl::MutexLock lock(&mu_);
    return ids_.size();
  }
  size_t received_events() {
    absl::MutexLock lock(&mu_);
    return received_;
  }

 private:
  class Stream : public grpc::ServerBidiReactor<v1::IngestBatch, v1::IngestAck> {
   public:
    explicit Stream(FakeLedger* ledger) : ledger_(ledger) { StartRead(&batch_); }

    void OnReadDone(bool ok) override {
      absl::MutexLock lock(&mu_);
      if (!ok) {
        reading_done_ = true;
        MaybeFinishLocked();
        return;
      }
      {
        absl::MutexLock ledger_lock(&ledger_->mu_);
        for (const v1::UsageEvent& e : batch_.events()) ledger_->ids_.insert(e.event_id());
        ledger_->received_ += batch_.events_size();
      }
      if (ledger_->ack_) {
        v1::IngestAck ack;
        ack.set_batch_id(batch_.batch_id());
        ack.set_inserted(batch_.events_size());
        acks_.push_back(ack);
        if (!writing_) {
          writing_ = true;
          StartWrite(&acks_.front());
        }
      }
      StartRead(&batch_);
    }

    void OnWriteDone(bool ok) override {
      absl::MutexLock lock(&mu_);
      acks_.pop_front();
      writing_ = false;
      if (ok && !acks_.empty()) {
        writing_ = true;
        StartWrite(&acks_.front());
        return;
      }
      MaybeFinishLocked();
    }

    void OnDone() override { delete this; }

   private:
    void MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      if (reading_done_ && !writing_ && !finished_) {
        finished_ = true;
        Finish(grpc::Status::OK);
      }
    }

    FakeLedger* const ledger_;
    v1::IngestBatch batch_;
    absl::Mutex mu_;
    std::deque<v1::IngestAck> acks_ ABSL_GUARDED_BY(mu_);
    bool writing_ ABSL_GUARDED_BY(mu_) = false;
    bool reading_done_ ABSL_GUARDED_BY(mu_) = false;
    bool finished_ ABSL_GUARDED_BY(mu_) = false;
  };

  const bool ack_;
  absl::Mutex mu_;
  std::set<std::string> ids_ ABSL_GUARDED_BY(mu_);
  size_t received_ ABSL_GUARDED_BY(mu_) = 0;
};

struct RunningLedger {
  std::unique_ptr<FakeLedger> service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;

  void Kill() { server->Shutdown(std::chrono::system_clock::now()); }
};

RunningLedger StartLedger(bool ack, int port = 0) {
  RunningLedger r;
  r.service = std::make_unique<FakeLedger>(ack);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat("127.0.0.1:", port), grpc::InsecureServerCredentials(),
                           &r.port);
  builder.RegisterService(r.service.get());
  r.server = builder.BuildAndStart();
  return r;
}

std::shared_ptr<grpc::Channel> Channel(int port) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials(), args);
}

LedgerClientOptions FastOptions() {
  LedgerClientOptions options;
  options.queue_capacity = 10000;
  options.batch_max_events = 16;
  options.batch_delay = std::chrono::milliseconds(5);
  options.reconnect_initial_backoff = std::chrono::milliseconds(20);
  options.reconnect_max_backoff = std::chrono::milliseconds(200);
  return options;
}

std::unique_ptr<v1::UsageEvent> Event(const std::string& id) {
  auto e = std::make_unique<v1::UsageEvent>();
  e->set_event_id(id);
  e->set_request_id(id);
  return e;
}

// Polls `condition` until it holds or `timeout` passes.
bool Eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

TEST(LedgerClient, DeliversBatchesAndCountsAcks) {
  RunningLedger ledger = StartLedger(/*ack=*/true);
  LedgerClient client(FastOptions(), Channel(ledger.port), nullptr);
  client.Start();
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(client.Enqueue(Event(absl::StrCat("e", i))));
  EXPECT_EQ(client.Shutdown(std::chrono::seconds(20)), 0u);
  EXPECT_EQ(ledger.service->distinct_events(), 1000u);
  EXPECT_EQ(client.acked_events(), 1000u);
  EXPECT_EQ(client.dropped_events(), 0u);
  EXPECT_FALSE(client.Enqueue(Event("late"))) << "events after shutdown are refused";
  ledger.Kill();
}

TEST(LedgerClient, QueuesWhileTheLedgerIsDownAndDeliversWhenItComesUp) {
  // Reserve a port, then free it: nothing listens there at first.
  RunningLedger probe = StartLedger(true);
  const int port = probe.port;
  probe.Kill();
  probe.server.reset();

  LedgerClient client(FastOptions(), Channel(port), nullptr);
  client.Start();
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(client.Enqueue(Event(absl::StrCat("d", i))));
  EXPECT_EQ(client.acked_events(), 0u);

  RunningLedger ledger = StartLedger(true, port);
  ASSERT_EQ(ledger.port, port);
  EXPECT_TRUE(Eventually([&] { return client.acked_events() == 50; }))
      << "acked " << client.acked_events();
  EXPECT_EQ(ledger.service->distinct_events(), 50u);
  EXPECT_EQ(client.Shutdown(std::chrono::seconds(5)), 0u);
  ledger.Kill();
}

TEST(LedgerClient, ResendsUnacknowledgedBatchesAfterAReconnect) {
  // The first ledger receives everything but never acknowledges, then dies.
  RunningLedger silent = StartLedger(/*ack=*/false);
  const int port = silent.port;
  LedgerClient client(FastOptions(), Channel(port), nullptr);
  client.Start();
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(client.Enqueue(Event(absl::StrCat("r", i))));
  ASSERT_TRUE(Eventually([&] { return silent.service->received_events() >= 40; }));
  EXPECT_EQ(client.unacked_events(), 40u);
  silent.Kill();
  silent.server.reset();

  // Its replacement gets every unacknowledged batch again.
  RunningLedger ledger = StartLedger(/*ack=*/true, port);
  ASSERT_EQ(ledger.port, port);
  EXPECT_TRUE(Eventually([&] { return client.unacked_events() == 0; }))
      << "unacked " << client.unacked_events();
  EXPECT_EQ(ledger.service->distinct_events(), 40u);
  EXPECT_EQ(client.acked_events(), 40u);
  EXPECT_EQ(client.Shutdown(std::chrono::seconds(5)), 0u);
  ledger.Kill();
}

TEST(LedgerClient, DropsInsteadOfBlockingWhenFull) {
  RunningLedger probe = StartLedger(true);
  const int port = probe.port;
  probe.Kill();
  probe.server.reset();

  LedgerClientOptions options = FastOptions();
  options.queue_capacity = 4;
  LedgerClient client(options, Channel(port), nullptr);
  client.Start();
  int accepted = 0;
  for (int i = 0; i < 100; ++i) accepted += client.Enqueue(Event(absl::StrCat("f", i))) ? 1 : 0;
  // At most `capacity` in the queue plus `capacity` handed to the (dead) stream.
  EXPECT_LE(accepted, 8);
  EXPECT_EQ(client.dropped_events(), static_cast<uint64_t>(100 - accepted));
  // Nothing can be delivered: a bounded shutdown reports (and counts) them as lost.
  EXPECT_EQ(client.Shutdown(std::chrono::milliseconds(50)), static_cast<size_t>(accepted));
  EXPECT_EQ(client.dropped_events(), 100u);
}

// A spool directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "ledger_client_test.XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::unique_ptr<Spool> OpenSpool(const std::string& dir) {
  SpoolOptions options;
  options.dir = dir;
  options.segment_bytes = 4096;  // several segments for a few dozen events
  absl::StatusOr<std::unique_ptr<Spool>> spool = Spool::Open(options, nullptr);
  EXPECT_TRUE(spool.ok()) << spool.status();
  return spool.ok() ? std::move(*spool) : nullptr;
}

int FreePort() {
  RunningLedger probe = StartLedger(true);
  const int port = probe.port;
  probe.Kill();
  return port;
}

TEST(LedgerClientSpool, KeepsUnacknowledgedEventsOnDiskAcrossRestarts) {
  TempDir dir;
  const int port = FreePort();
  {
    // The ledger is down: a bounded shutdown leaves everything in the spool, nothing dropped.
    auto spool = OpenSpool(dir.Sub("spool"));
    LedgerClientOptions options = FastOptions();
    options.spool = spool.get();
    LedgerClient client(options, Channel(port), nullptr);
    client.Start();
    for (int i = 0; i < 120; ++i) {
      ASSERT_TRUE(client.Enqueue(Event(absl::StrCat("s", i, "-", std::string(30, 'p')))));
    }
    EXPECT_EQ(client.Shutdown(std::chrono::milliseconds(100)), 120u);
    EXPECT_EQ(client.dropped_events(), 0u);
  }
  RunningLedger ledger = StartLedger(/*ack=*/true, port);
  ASSERT_EQ(ledger.port, port);
  auto spool = OpenSpool(dir.Sub("spool"));
  ASSERT_GT(spool->segments(), 2u);
  LedgerClientOptions options = FastOptions();
  options.spool = spool.get();
  LedgerClient client(options, Channel(port), nullptr);
  client.Start();
  EXPECT_TRUE(Eventually([&] { return client.acked_events() == 120; }))
      << "acked " << client.acked_events();
  ASSERT_TRUE(client.Enqueue(Event("after-restart")));
  EXPECT_EQ(client.Shutdown(std::chrono::seconds(10)), 0u);
  EXPECT_EQ(ledger.service->distinct_events(), 121u);
  EXPECT_EQ(spool->acked_end(), spool->durable_end());
  EXPECT_EQ(spool->segments(), 1u) << "acknowledged segments are deleted";
  ledger.Kill();
}

TEST(LedgerClientSpool, ReplayedSegmentIsResentAndDeduplicatedByTheLedger) {
  TempDir dir;
  RunningLedger ledger = StartLedger(/*ack=*/true);
  {
    auto spool = OpenSpool(dir.Sub("spool"));
    for (int i = 0; i < 60; ++i) spool->Append(*Event(absl::StrCat("r", i)));
    ASSERT_TRUE(spool->Flush(std::chrono::seconds(10)));
  }
  // A copy taken before delivery: the same segments with the ack state lost.
  std::filesystem::copy(dir.Sub("spool"), dir.Sub("replay"));
  std::filesystem::remove(dir.Sub("replay") + "/LOCK");
  for (const char* name : {"spool", "replay"}) {
    auto spool = OpenSpool(dir.Sub(name));
    LedgerClientOptions options = FastOptions();
    options.spool = spool.get();
    LedgerClient client(options, Channel(ledger.port), nullptr);
    client.Start();
    EXPECT_EQ(client.Shutdown(std::chrono::seconds(10)), 0u) << name;
    EXPECT_EQ(client.acked_events(), 60u) << name;
  }
  EXPECT_EQ(ledger.service->received_events(), 120u) << "the replay was sent again";
  EXPECT_EQ(ledger.service->distinct_events(), 60u) << "and deduplicated on event_id";
  ledger.Kill();
}

}  // namespace
}  // namespace tollgate::gateway
