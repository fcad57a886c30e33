#pragma once
// Time source for the router's health logic, injectable so tests control time.
//
//   const Clock* clock = Clock::Real();      // absl::Now()
//   FakeClock fake(absl::FromUnixSeconds(1000));
//   fake.Advance(absl::Seconds(30));
//
// Thread-safety: Now() may be called from any thread; FakeClock's setters too.

#include <atomic>
#include <cstdint>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tollgate::router {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // The process-wide real clock (never null, never destroyed).
  static const Clock* Real();
};

// A clock that only moves when told to. For tests.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1700000000))
      : now_ns_(absl::ToUnixNanos(start)) {}
  absl::Time Now() const override { return absl::FromUnixNanos(now_ns_.load()); }
  void Set(absl::Time t) { now_ns_.store(absl::ToUnixNanos(t)); }
  void Advance(absl::Duration d) { now_ns_.fetch_add(absl::ToInt64Nanoseconds(d)); }

 private:
  std::atomic<int64_t> now_ns_;
};

}  // namespace tollgate::router
