#include "services/router/watch.h"

#include <memory>

#include "gtest/gtest.h"

namespace tollgate::router {
namespace {

std::shared_ptr<const v1::WatchEvent> Health(const std::string& id) {
  auto event = std::make_shared<v1::WatchEvent>();
  event->mutable_health()->set_deployment_id(id);
  return event;
}

std::shared_ptr<const v1::WatchEvent> Snapshot() {
  auto event = std::make_shared<v1::WatchEvent>();
  event->mutable_snapshot()->set_catalog_version("fresh");
  return event;
}

TEST(WatchBacklogTest, KeepsOrderUpToItsBound) {
  WatchBacklog backlog(3);
  int snapshots = 0;
  auto snapshot = [&] {
    ++snapshots;
    return Snapshot();
  };
  EXPECT_FALSE(backlog.Push(Health("a"), snapshot));
  EXPECT_FALSE(backlog.Push(Health("b"), snapshot));
  EXPECT_FALSE(backlog.Push(Health("c"), snapshot));
  EXPECT_EQ(backlog.size(), 3u);
  EXPECT_EQ(backlog.Pop()->health().deployment_id(), "a");
  EXPECT_FALSE(backlog.Push(Health("d"), snapshot));
  EXPECT_EQ(snapshots, 0);

  // Full: the backlog (and the new event) become one fresh snapshot.
  EXPECT_TRUE(backlog.Push(Health("e"), snapshot));
  EXPECT_EQ(snapshots, 1);
  ASSERT_EQ(backlog.size(), 1u);
  EXPECT_EQ(backlog.Pop()->snapshot().catalog_version(), "fresh");
  EXPECT_TRUE(backlog.empty());
  EXPECT_TRUE(backlog.Pop() == nullptr);

  EXPECT_FALSE(backlog.Push(Health("f"), snapshot));
  backlog.Clear();
  EXPECT_TRUE(backlog.empty());
}

}  // namespace
}  // namespace tollgate::router
