#include "services/ledger/ingest_service.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "services/ledger/fake_usage_store.h"
#include "services/ledger/test_events.h"

namespace tollgate::ledger {
namespace {

using ::testing::HasSubstr;
using Stream = grpc::ClientReaderWriter<v1::IngestBatch, v1::IngestAck>;

v1::IngestBatch Batch(uint64_t id, std::vector<std::string> event_ids) {
  v1::IngestBatch b;
  b.set_batch_id(id);
  for (const std::string& e : event_ids)
    *b.add_events() = MakeTestEvent(e, "team", "feat", 100, 10);
  return b;
}

// Polls `condition` (which reads state the service updates from its own threads).
template <typename F>
bool Eventually(F condition, absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

class IngestServiceTest : public ::testing::Test {
 protected:
  void Start(int writers, IngestService::Options options = FastRetries()) {
    metrics_ = *LedgerMetrics::Create(registry_);
    std::vector<std::unique_ptr<UsageStore>> stores;
    for (int i = 0; i < writers; ++i) stores.push_back(std::make_unique<FakeUsageStore>(state_));
    service_ = std::make_unique<IngestService>(std::move(stores), options, *metrics_);
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::Ledger::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
  }

  void TearDown() override {
    if (server_ != nullptr) {
      {
        absl::MutexLock lock(&state_->mu);
        state_->blocked = false;
      }
      server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    }
    if (service_ != nullptr) service_->Stop();
  }

  static IngestService::Options FastRetries() {
    IngestService::Options o;
    o.retry_initial_backoff = absl::Milliseconds(1);
    o.retry_max_backoff = absl::Milliseconds(5);
    o.retry_budget = absl::Seconds(5);
    return o;
  }

  void SetBlocked(bool blocked) {
    absl::MutexLock lock(&state_->mu);
    state_->blocked = blocked;
  }

  // Waits until exactly one writer is blocked inside the store (SetBlocked(true)).
  bool OneInsertBlocked() {
    return Eventually([&] {
      absl::MutexLock lock(&state_->mu);
      return state_->inserts_waiting == 1;
    });
  }

  // Batches read by the service so far (each is observed once in the batch-size histogram).
  uint64_t BatchesRead() { return metrics_->ingest_batch_size().Collect().histogram.sample_count; }

  size_t StoredEvents() {
    absl::MutexLock lock(&state_->mu);
    return state_->events.size();
  }

  std::shared_ptr<FakeUsageStore::State> state_ = std::make_shared<FakeUsageStore::State>();
  prometheus::Registry registry_;
  std::unique_ptr<LedgerMetrics> metrics_;
  std::unique_ptr<IngestService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Ledger::Stub> stub_;
};

TEST_F(IngestServiceTest, AcksEveryBatchInReadOrderAfterCommit) {
  Start(/*writers=*/3);
  grpc::ClientContext ctx;
  std::unique_ptr<Stream> stream = stub_->Ingest(&ctx);
  constexpr int kBatches = 30;
  for (int i = 1; i <= kBatches; ++i) {
    // Each batch repeats one event of the previous batch: a duplicate, never a new row.
    std::vector<std::string> ids = {absl::StrCat("e", i, "a"), absl::StrCat("e", i, "b")};
    if (i > 1) ids.push_back(absl::StrCat("e", i - 1, "a"));
    ASSERT_TRUE(stream->Write(Batch(100 + i, ids)));
  }
  ASSERT_TRUE(stream->WritesDone());
  v1::IngestAck ack;
  int inserted = 0;
  int duplicates = 0;
  for (int i = 1; i <= kBatches; ++i) {
    ASSERT_TRUE(stream->Read(&ack)) << "ack " << i;
    EXPECT_EQ(ack.batch_id(), static_cast<uint64_t>(100 + i));
    EXPECT_EQ(ack.inserted() + ack.duplicates(), i > 1 ? 3 : 2);
    inserted += ack.inserted();
    duplicates += ack.duplicates();
  }
  EXPECT_FALSE(stream->Read(&ack));
  grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(inserted, 2 * kBatches);
  EXPECT_EQ(duplicates, kBatches - 1);
  EXPECT_EQ(StoredEvents(), static_cast<size_t>(2 * kBatches));
  EXPECT_EQ(metrics_->events_inserted().Value(), 2 * kBatches);
  EXPECT_EQ(metrics_->events_duplicate().Value(), kBatches - 1);
  EXPECT_EQ(metrics_->ingest_batches(absl::OkStatus()).Value(), kBatches);
}

TEST_F(IngestServiceTest, ReplayOnANewStreamCountsDuplicates) {
  Start(/*writers=*/1);
  for (int round = 0; round < 2; ++round) {
    grpc::ClientContext ctx;
    std::unique_ptr<Stream> stream = stub_->Ingest(&ctx);
    ASSERT_TRUE(stream->Write(Batch(7, {"a", "b", "c"})));
    v1::IngestAck ack;
    ASSERT_TRUE(stream->Read(&ack));
    EXPECT_EQ(ack.batch_id(), 7u);
    EXPECT_EQ(ack.inserted(), round == 0 ? 3 : 0);
    EXPECT_EQ(ack.duplicates(), round == 0 ? 0 : 3);
    stream->WritesDone();
    EXPECT_TRUE(stream->Finish().ok());
  }
}

TEST_F(IngestServiceTest, EmptyBatchIsAcked) {
  Start(/*writers=*/1);
  grpc::ClientContext ctx;
  std::unique_ptr<Stream> stream = stub_->Ingest(&ctx);
  ASSERT_TRUE(stream->Write(Batch(1, {})));
  v1::IngestAck ack;
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(ack.batch_id(), 1u);
  EXPECT_EQ(ack.inserted(), 0);
  EXPECT_EQ(ack.duplicates(), 0);
}

TEST_F(IngestServiceTest, InvalidBatchEndsTheStreamWithInvalidArgument) {
  Start(/*writers=*/1);
  grpc::ClientContext ctx;
  std::unique_ptr<Stream> stream = stub_->Ingest(&ctx);
  ASSERT_TRUE(stream->Write(Batch(1, {"first"})));
  v1::IngestBatch bad = Batch(2, {"good", "bad-cost"});
  bad.mutable_events(1)->set_cost_pico(bad.events(1).cost_pico() + 1);
  ASSERT_TRUE(stream->Write(bad));
  v1::IngestAck ack;
  ASSERT_TRUE(stream->Read(&ack));  // the batch before the bad one is still acknowledged
  EXPECT_EQ(ack.batch_id(), 1u);
  EXPECT_FALSE(stream->Read(&ack));
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("bad-cost"));
  EXPECT_EQ(StoredEvents(), 1u);  // all of the bad batch rejected
  EXPECT_EQ(metrics_->ingest_batches(absl::InvalidArgumentError("")).Value(), 1);
}

TEST_F(IngestServiceTest, RetriesTransientFailuresAndAcksOnlyAfterCommit) {
  Start(/*writers=*/1);
  {
    absl::MutexLock lock(&state_->mu);
    state_->insert_failures = {absl::UnavailableError("db down"), absl::AbortedError("deadlock")};
  }
  grpc::ClientContext ctx;
  std::unique_ptr<Stream> stream = stub_->Ingest(&ctx);
  ASSERT_TRUE(stream->Write(Batch(1, {"a"})));
  v1::IngestAck ack;
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(ack.inserted(), 1);
  absl::MutexLock lock(&state_->mu);
  EXPECT_EQ(state_->insert_calls, 3);
  EXPECT_EQ(state_->events.size(), 1u);
  EXPECT_EQ(metrics_->ingest_retries().Value(), 2);
}

TEST_F(IngestServiceTest, GivesUpAfterTheRetryBudgetWithUnavailable) {
  IngestService::Options options = FastRetries();
  options.retry_budget = absl::Milliseconds(50);
  Start(/*writers=*/1, options);
  {
    absl::MutexLock lock(&state_->mu);
    for (int i = 0; i < 100000; ++i)
      state_->insert_failures.push_back(absl::UnavailableError("down"));
  }
  grpc::ClientContext ctx;
  std::unique_ptr<Stream> stream = stub_->Ingest(&ctx);
  ASSERT_TRUE(stream->Write(Batch(1, {"a"})));
  v1::IngestAck ack;
  EXPECT_FALSE(stream->Read(&ack));
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("down"));
}

TEST_F(IngestServiceTest, WriterCommitsQueuedBatchesTogetherWithPerBatchAcks) {
  IngestService::Options options = FastRetries();
  options.max_write_events = 4;
  Start(/*writers=*/1, options);
  SetBlocked(true);
  grpc::ClientContext ctx;
  std::unique_ptr<Stream> stream = stub_->Ingest(&ctx);
  ASSERT_TRUE(stream->Write(Batch(1, {"a"})));  // taken by the writer, which blocks
  ASSERT_TRUE(OneInsertBlocked());
  // Queued meanwhile: 2 + 2 events fit in one transaction, the next 2 + 1 in another.
  ASSERT_TRUE(stream->Write(Batch(2, {"b", "c"})));
  ASSERT_TRUE(stream->Write(Batch(3, {"c", "a"})));  // both already stored or staged
  ASSERT_TRUE(stream->Write(Batch(4, {"d", "d"})));
  ASSERT_TRUE(stream->Write(Batch(5, {"e"})));
  ASSERT_TRUE(Eventually([&] { return BatchesRead() == 5; }));
  SetBlocked(false);
  const std::vector<std::pair<int, int>> expected = {{1, 0}, {2, 0}, {0, 2}, {1, 1}, {1, 0}};
  v1::IngestAck ack;
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_TRUE(stream->Read(&ack));
    EXPECT_EQ(ack.batch_id(), i + 1);
    EXPECT_EQ(ack.inserted(), expected[i].first) << "batch " << i + 1;
    EXPECT_EQ(ack.duplicates(), expected[i].second) << "batch " << i + 1;
  }
  ASSERT_TRUE(stream->WritesDone());
  EXPECT_FALSE(stream->Read(&ack));
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(StoredEvents(), 5u);
  absl::MutexLock lock(&state_->mu);
  EXPECT_THAT(state_->batches_per_insert, ::testing::ElementsAre(1u, 2u, 2u));
}

TEST_F(IngestServiceTest, InvalidBatchInAJointTransactionFailsOnlyItsStream) {
  Start(/*writers=*/1);
  SetBlocked(true);
  grpc::ClientContext good_ctx;
  std::unique_ptr<Stream> good = stub_->Ingest(&good_ctx);
  ASSERT_TRUE(good->Write(Batch(1, {"g1"})));
  ASSERT_TRUE(OneInsertBlocked());
  grpc::ClientContext bad_ctx;
  std::unique_ptr<Stream> bad_stream = stub_->Ingest(&bad_ctx);
  v1::IngestBatch bad = Batch(1, {"fine", "bad-cost"});
  bad.mutable_events(1)->set_cost_pico(bad.events(1).cost_pico() + 1);
  ASSERT_TRUE(bad_stream->Write(bad));
  ASSERT_TRUE(bad_stream->Write(Batch(2, {"after-bad"})));
  ASSERT_TRUE(good->Write(Batch(2, {"g2"})));
  ASSERT_TRUE(Eventually([&] { return BatchesRead() == 4; }));
  SetBlocked(false);

  v1::IngestAck ack;
  EXPECT_FALSE(bad_stream->Read(&ack));
  const grpc::Status status = bad_stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("bad-cost"));
  for (uint64_t id = 1; id <= 2; ++id) {
    ASSERT_TRUE(good->Read(&ack));
    EXPECT_EQ(ack.batch_id(), id);
    EXPECT_EQ(ack.inserted(), 1);
  }
  ASSERT_TRUE(good->WritesDone());
  EXPECT_TRUE(good->Finish().ok());
  absl::MutexLock lock(&state_->mu);
  EXPECT_EQ(state_->events.count("g2"), 1u);
  EXPECT_EQ(state_->events.count("fine"), 0u);       // the bad batch is rejected whole
  EXPECT_EQ(state_->events.count("after-bad"), 0u);  // nothing after it is written
}

TEST_F(IngestServiceTest, FullQueueStopsReadingInsteadOfDropping) {
  IngestService::Options options = FastRetries();
  options.queue_capacity = 1;
  Start(/*writers=*/1, options);
  SetBlocked(true);
  grpc::ClientContext ctx;
  std::unique_ptr<Stream> stream = stub_->Ingest(&ctx);
  constexpr int kBatches = 6;
  // Writes block once the server stops reading, so they run on their own thread.
  std::thread sender([&] {
    for (int i = 1; i <= kBatches; ++i)
      EXPECT_TRUE(stream->Write(Batch(i, {absl::StrCat("e", i)})));
    stream->WritesDone();
  });
  // One batch in the blocked writer, one queued, one parked: then the stream stops reading.
  ASSERT_TRUE(Eventually([&] { return BatchesRead() == 3; })) << BatchesRead();
  ASSERT_TRUE(OneInsertBlocked());
  EXPECT_EQ(metrics_->ingest_queue_depth().Value(), 1);
  // Not synchronisation: a window in which an unbounded reader would have read more.
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(BatchesRead(), 3u);

  SetBlocked(false);
  v1::IngestAck ack;
  for (int i = 1; i <= kBatches; ++i) {
    ASSERT_TRUE(stream->Read(&ack));
    EXPECT_EQ(ack.batch_id(), static_cast<uint64_t>(i));
    EXPECT_EQ(ack.inserted(), 1);
  }
  sender.join();
  EXPECT_FALSE(stream->Read(&ack));
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(StoredEvents(), static_cast<size_t>(kBatches));
  EXPECT_EQ(metrics_->ingest_queue_depth().Value(), 0);
}

TEST_F(IngestServiceTest, DrainCommitsAndAcksWhatWasReadThenEndsUnavailable) {
  Start(/*writers=*/1);
  SetBlocked(true);
  grpc::ClientContext ctx;
  std::unique_ptr<Stream> stream = stub_->Ingest(&ctx);
  ASSERT_TRUE(stream->Write(Batch(1, {"a"})));
  ASSERT_TRUE(stream->Write(Batch(2, {"b"})));
  ASSERT_TRUE(Eventually([&] { return BatchesRead() == 2; }));
  service_->StartDrain();
  SetBlocked(false);
  v1::IngestAck ack;
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(ack.batch_id(), 1u);
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(ack.batch_id(), 2u);
  EXPECT_FALSE(stream->Read(&ack));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(StoredEvents(), 2u);

  // New streams are refused while draining.
  grpc::ClientContext ctx2;
  std::unique_ptr<Stream> late = stub_->Ingest(&ctx2);
  late->Write(Batch(3, {"c"}));
  EXPECT_FALSE(late->Read(&ack));
  EXPECT_EQ(late->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(StoredEvents(), 2u);
}

TEST_F(IngestServiceTest, CancelledStreamWithBatchesInFlightIsCleanedUp) {
  IngestService::Options options = FastRetries();
  options.max_write_events = 1;  // batch 2 stays queued behind batch 1, never joins its write
  Start(/*writers=*/1, options);
  SetBlocked(true);
  auto ctx = std::make_unique<grpc::ClientContext>();
  std::unique_ptr<Stream> stream = stub_->Ingest(ctx.get());
  ASSERT_TRUE(stream->Write(Batch(1, {"a"})));
  ASSERT_TRUE(stream->Write(Batch(2, {"b"})));
  ASSERT_TRUE(Eventually([&] { return BatchesRead() == 2; }));
  ASSERT_TRUE(OneInsertBlocked());  // batch 1 in the writer, batch 2 queued
  EXPECT_EQ(metrics_->ingest_streams().Value(), 1);
  ctx->TryCancel();
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The server is done with the stream (OnDone) while the writer still holds batch 1: releasing
  // it must not touch a deleted reactor, and batch 2 is skipped (the gateway resends
  // unacknowledged batches).
  ASSERT_TRUE(Eventually([&] { return metrics_->ingest_streams().Value() == 0; }));
  SetBlocked(false);
  ASSERT_TRUE(
      Eventually([&] { return metrics_->ingest_batches(absl::CancelledError()).Value() == 1; }));
  absl::MutexLock lock(&state_->mu);
  EXPECT_EQ(state_->insert_calls, 1);
}

TEST_F(IngestServiceTest, ManyConcurrentStreams) {
  Start(/*writers=*/2);
  constexpr int kStreams = 8;
  constexpr int kBatches = 20;
  std::vector<std::thread> clients;
  for (int s = 0; s < kStreams; ++s) {
    clients.emplace_back([&, s] {
      grpc::ClientContext ctx;
      std::unique_ptr<Stream> stream = stub_->Ingest(&ctx);
      for (int b = 0; b < kBatches; ++b) {
        stream->Write(Batch(b, {absl::StrCat("s", s, "b", b)}));
      }
      stream->WritesDone();
      v1::IngestAck ack;
      int expected = 0;
      while (stream->Read(&ack)) {
        EXPECT_EQ(ack.batch_id(), static_cast<uint64_t>(expected++));
      }
      EXPECT_EQ(expected, kBatches);
      EXPECT_TRUE(stream->Finish().ok());
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(StoredEvents(), static_cast<size_t>(kStreams * kBatches));
}

}  // namespace
}  // namespace tollgate::ledger
