#include "services/common/request_id.h"

#include <set>

#include "gtest/gtest.h"

namespace tollgate {
namespace {

TEST(NewRequestId, ThirtyTwoHexDigitsLedByTheTime) {
  const std::string id = NewRequestId(0x0193'4a5b'6c7dLL);
  ASSERT_EQ(id.size(), 32u);
  EXPECT_EQ(id.substr(0, 12), "01934a5b6c7d");
  for (char c : id) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << id;
}

TEST(NewRequestId, SortsByTimeAndNeverRepeats) {
  std::set<std::string> seen;
  std::string previous;
  for (int64_t ms = 1'795'000'000'000; ms < 1'795'000'000'000 + 1000; ++ms) {
    for (int i = 0; i < 10; ++i) {
      const std::string id = NewRequestId(ms);
      EXPECT_TRUE(seen.insert(id).second) << id;
      if (i == 0) {
        EXPECT_LT(previous, id);  // a later millisecond sorts after every earlier id
      }
      previous = std::max(previous, id);
    }
  }
  // The clock-based overload uses the current time.
  EXPECT_GT(NewRequestId(), NewRequestId(1'795'000'000'000));
}

}  // namespace
}  // namespace tollgate
