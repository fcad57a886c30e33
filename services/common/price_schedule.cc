#include "services/common/price_schedule.h"

#include <limits>

namespace tollgate {

const v1::UnitPrices& PricesAt(const v1::Deployment& deployment, int64_t unix_ms) {
  const auto& schedule = deployment.price_schedule();
  if (schedule.empty()) return deployment.prices();
  // Schedules are a handful of cards: a linear scan beats a binary search's branches.
  const v1::DatedPrices* in_effect = &schedule[0];
  for (const v1::DatedPrices& card : schedule) {
    if (card.effective_from_unix_ms() > unix_ms) break;
    in_effect = &card;
  }
  return in_effect->prices();
}

int64_t NextPriceChangeUnixMs(const v1::Deployment& deployment, int64_t unix_ms) {
  for (const v1::DatedPrices& card : deployment.price_schedule()) {
    if (card.effective_from_unix_ms() > unix_ms) return card.effective_from_unix_ms();
  }
  return std::numeric_limits<int64_t>::max();
}

}  // namespace tollgate
