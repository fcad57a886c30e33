#include "services/ledger/admin_service.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "services/ledger/fake_usage_store.h"
#include "services/ledger/focus.h"

namespace tollgate::ledger {
namespace {

class LedgerAdminServiceTest : public ::testing::Test {
 protected:
  void Start(int threads, LedgerAdminService::Options options) {
    metrics_ = *LedgerMetrics::Create(registry_);
    std::vector<std::unique_ptr<UsageStore>> stores;
    for (int i = 0; i < threads; ++i) stores.push_back(std::make_unique<FakeUsageStore>(state_));
    service_ = std::make_unique<LedgerAdminService>(std::move(stores), options, *metrics_);
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::LedgerAdmin::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
  }

  void TearDown() override {
    {
      absl::MutexLock lock(&state_->mu);
      state_->blocked = false;
    }
    if (server_ != nullptr) server_->Shutdown();
    if (service_ != nullptr) service_->Stop();
  }

  void SetSpendResult(absl::StatusOr<v1::SpendResponse> result) {
    absl::MutexLock lock(&state_->mu);
    state_->spend_result = std::move(result);
  }

  std::shared_ptr<FakeUsageStore::State> state_ = std::make_shared<FakeUsageStore::State>();
  prometheus::Registry registry_;
  std::unique_ptr<LedgerMetrics> metrics_;
  std::unique_ptr<LedgerAdminService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::LedgerAdmin::Stub> stub_;
};

TEST_F(LedgerAdminServiceTest, ReturnsTheStoresAnswerWithTheCallDeadlineAsTimeout) {
  LedgerAdminService::Options options;
  options.max_query_timeout = absl::Seconds(30);
  Start(1, options);
  v1::SpendResponse expected;
  expected.add_group_by("team");
  v1::SpendRow* row = expected.add_rows();
  row->add_group_values("search");
  row->set_requests(3);
  row->set_cost_usd("0.000305000000");
  *expected.mutable_total() = *row;
  SetSpendResult(expected);

  v1::SpendQuery query;
  query.add_group_by("team");
  query.set_limit(5);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  v1::SpendResponse response;
  grpc::Status status = stub_->QuerySpend(&ctx, query, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(response, expected))
      << response.DebugString();

  absl::MutexLock lock(&state_->mu);
  EXPECT_EQ(state_->last_query.limit(), 5);
  // grpc-timeout travels rounded up to its unit, so allow a little over the 5 s asked for.
  EXPECT_LE(state_->last_timeout, absl::Seconds(5) + absl::Milliseconds(100));
  EXPECT_GT(state_->last_timeout, absl::Seconds(3));
  EXPECT_EQ(metrics_->spend_queries(absl::OkStatus()).Value(), 1);
}

TEST_F(LedgerAdminServiceTest, WithoutDeadlineUsesTheMaximumTimeout) {
  LedgerAdminService::Options options;
  options.max_query_timeout = absl::Seconds(12);
  Start(1, options);
  SetSpendResult(v1::SpendResponse());
  grpc::ClientContext ctx;
  v1::SpendResponse response;
  ASSERT_TRUE(stub_->QuerySpend(&ctx, v1::SpendQuery(), &response).ok());
  absl::MutexLock lock(&state_->mu);
  EXPECT_EQ(state_->last_timeout, absl::Seconds(12));
}

TEST_F(LedgerAdminServiceTest, MapsStoreErrorsToCanonicalCodes) {
  Start(1, LedgerAdminService::Options());
  SetSpendResult(absl::InvalidArgumentError("unknown group_by dimension \"x\""));
  grpc::ClientContext ctx;
  v1::SpendResponse response;
  grpc::Status status = stub_->QuerySpend(&ctx, v1::SpendQuery(), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "unknown group_by dimension \"x\"");
  EXPECT_EQ(metrics_->spend_queries(absl::InvalidArgumentError("")).Value(), 1);

  SetSpendResult(absl::UnavailableError("db down"));
  grpc::ClientContext ctx2;
  EXPECT_EQ(stub_->QuerySpend(&ctx2, v1::SpendQuery(), &response).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(LedgerAdminServiceTest, RefusesQueriesBeyondThePendingLimit) {
  LedgerAdminService::Options options;
  options.max_pending = 1;
  Start(1, options);
  SetSpendResult(v1::SpendResponse());
  {
    absl::MutexLock lock(&state_->mu);
    state_->blocked = true;
  }
  struct Call {
    grpc::ClientContext ctx;
    v1::SpendQuery request;
    v1::SpendResponse response;
    grpc::Status status;
    absl::Notification done;
  };
  Call running;
  auto start = [&](Call& call) {
    stub_->async()->QuerySpend(&call.ctx, &call.request, &call.response, [&call](grpc::Status s) {
      call.status = std::move(s);
      call.done.Notify();
    });
  };
  start(running);
  {
    // The first query holds the only query thread.
    absl::MutexLock lock(&state_->mu);
    state_->mu.Await(absl::Condition(
        +[](FakeUsageStore::State* s)
             ABSL_NO_THREAD_SAFETY_ANALYSIS { return s->query_calls == 1; },
        state_.get()));
  }
  // Of two more, whichever reaches the server second finds the one pending slot taken.
  Call second, third;
  start(second);
  start(third);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!second.done.HasBeenNotified() && !third.done.HasBeenNotified()) {
    ASSERT_LT(absl::Now(), deadline);
    absl::SleepFor(absl::Milliseconds(1));
  }
  {
    absl::MutexLock lock(&state_->mu);
    state_->blocked = false;
  }
  running.done.WaitForNotification();
  second.done.WaitForNotification();
  third.done.WaitForNotification();
  EXPECT_TRUE(running.status.ok());
  const int refused = (second.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) +
                      (third.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  const int ok = second.status.ok() + third.status.ok();
  EXPECT_EQ(refused, 1);
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(metrics_->spend_queries(absl::ResourceExhaustedError("")).Value(), 1);
}

TEST_F(LedgerAdminServiceTest, ExportFocusStreamsOneChunkPerDayWithColumnsFirst) {
  Start(2, LedgerAdminService::Options());
  const int64_t day0 = 1'736'899'200;  // 2025-01-15
  {
    absl::MutexLock lock(&state_->mu);
    state_->focus_empty_days = {day0 / 86400 + 1};  // no usage on the 16th
  }
  v1::ExportFocusRequest request;
  request.set_start_unix_s(day0 + 3600);  // starts mid-day, ends mid-day
  request.set_end_unix_s(day0 + 3 * 86400 + 7200);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  std::unique_ptr<grpc::ClientReader<v1::FocusChunk>> reader = stub_->ExportFocus(&ctx, request);
  std::vector<v1::FocusChunk> chunks;
  v1::FocusChunk chunk;
  while (reader->Read(&chunk)) chunks.push_back(chunk);
  const grpc::Status status = reader->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(chunks.size(), 3u);  // the empty day sends nothing
  EXPECT_EQ(chunks[0].columns_size(), static_cast<int>(FocusColumns().size()));
  EXPECT_EQ(chunks[1].columns_size(), 0);
  auto range = [](const v1::FocusChunk& c) {
    return c.records(0).values(0) + "-" + c.records(0).values(1);
  };
  EXPECT_EQ(range(chunks[0]), absl::StrCat(day0 + 3600, "-", day0 + 86400));
  EXPECT_EQ(range(chunks[1]), absl::StrCat(day0 + 2 * 86400, "-", day0 + 3 * 86400));
  EXPECT_EQ(range(chunks[2]), absl::StrCat(day0 + 3 * 86400, "-", day0 + 3 * 86400 + 7200));
  absl::MutexLock lock(&state_->mu);
  EXPECT_EQ(state_->focus_calls.size(), 4u);
}

TEST_F(LedgerAdminServiceTest, ExportFocusEndsWithTheStoresErrorAndRejectsBadRanges) {
  Start(1, LedgerAdminService::Options());
  const int64_t day0 = 1'736'899'200;
  {
    absl::MutexLock lock(&state_->mu);
    state_->focus_fail_days = {day0 / 86400 + 1};
  }
  v1::ExportFocusRequest request;
  request.set_start_unix_s(day0);
  request.set_end_unix_s(day0 + 3 * 86400);
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<v1::FocusChunk>> reader = stub_->ExportFocus(&ctx, request);
  v1::FocusChunk chunk;
  int chunks = 0;
  while (reader->Read(&chunk)) ++chunks;
  EXPECT_EQ(chunks, 1);
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);

  v1::ExportFocusRequest bad;
  bad.set_start_unix_s(0);
  grpc::ClientContext ctx2;
  auto bad_reader = stub_->ExportFocus(&ctx2, bad);
  while (bad_reader->Read(&chunk)) {
  }
  EXPECT_EQ(bad_reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace tollgate::ledger
