#include "services/gateway/bounded_queue.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace tollgate::gateway {
namespace {

TEST(BoundedQueue, FifoAndFull) {
  BoundedQueue<std::unique_ptr<int>> q(4);
  EXPECT_FALSE(q.TryPop().has_value());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(q.TryPush(std::make_unique<int>(i)));
  auto extra = std::make_unique<int>(99);
  EXPECT_FALSE(q.TryPush(std::move(extra)));
  ASSERT_NE(extra, nullptr) << "a refused value is left with the caller";
  EXPECT_EQ(q.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    auto v = q.TryPop();
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(**v, i);
  }
  EXPECT_FALSE(q.TryPop().has_value());
  EXPECT_EQ(q.size(), 0u);
  // Wraps around.
  for (int round = 0; round < 10; ++round) {
    ASSERT_TRUE(q.TryPush(std::make_unique<int>(round)));
    EXPECT_EQ(**q.TryPop(), round);
  }
}

TEST(BoundedQueue, CapacityIsHonouredBelowThePowerOfTwo) {
  BoundedQueue<int> q(5);  // ring of 8
  int accepted = 0;
  for (int i = 0; i < 20; ++i) accepted += q.TryPush(int(i)) ? 1 : 0;
  EXPECT_EQ(accepted, 5);
  EXPECT_EQ(q.capacity(), 5u);
}

TEST(BoundedQueue, ManyProducersOneConsumerLoseNothing) {
  constexpr int kProducers = 4;
  constexpr int kPerProducer = 50000;
  BoundedQueue<int> q(1024);
  std::atomic<int> refused{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        int value = p * kPerProducer + i;
        while (!q.TryPush(int(value))) {
          refused.fetch_add(1, std::memory_order_relaxed);
          std::this_thread::yield();
        }
      }
    });
  }
  std::vector<int> seen(kProducers * kPerProducer, 0);
  std::vector<int> last(kProducers, -1);
  int received = 0;
  while (received < kProducers * kPerProducer) {
    if (auto v = q.TryPop()) {
      ++seen[*v];
      const int producer = *v / kPerProducer;
      EXPECT_GT(*v, last[producer]) << "per-producer order is kept";
      last[producer] = *v;
      ++received;
    } else {
      std::this_thread::yield();
    }
  }
  for (auto& t : producers) t.join();
  for (int count : seen) ASSERT_EQ(count, 1);
  EXPECT_FALSE(q.TryPop().has_value());
}

}  // namespace
}  // namespace tollgate::gateway
