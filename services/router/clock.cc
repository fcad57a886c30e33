#include "services/router/clock.h"

namespace tollgate::router {
namespace {

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

}  // namespace

const Clock* Clock::Real() {
  static const RealClock* const kClock = new RealClock();
  return kClock;
}

}  // namespace tollgate::router
