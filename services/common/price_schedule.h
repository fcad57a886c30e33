#pragma once
// Which of a deployment's dated price cards applies at a given instant.
//
// A catalog deployment either has one undated card (Deployment.prices, price_schedule empty) or
// a schedule of cards sorted by effective_from (Deployment.price_schedule; the router's catalog
// loader guarantees ascending, unique dates). A request is priced by the card in effect when it
// started, so a price change applies from its date on and an event recorded earlier keeps the
// card it was priced with:
//
//   const v1::UnitPrices& card = PricesAt(deployment, start_unix_ms);
//   v1::UnitPrices flat = EffectivePrices(card, usage);   // money.h: long-context tier
//   event.set_cost_pico(*PriceUsage(usage, flat));
//   *event.mutable_prices() = flat;
//
// All functions are pure and thread-safe; returned references point into `deployment`.

#include <cstdint>

#include "tollgate/v1/router.pb.h"

namespace tollgate {

// The card in effect at `unix_ms`: Deployment.prices when there is no schedule; otherwise the
// last schedule entry whose effective_from_unix_ms <= unix_ms, or the first entry when
// `unix_ms` precedes every date (the catalog loader requires the first card to be in effect at
// load, so this only happens for skewed clocks).
const v1::UnitPrices& PricesAt(const v1::Deployment& deployment, int64_t unix_ms);

// The first effective_from_unix_ms strictly after `unix_ms` (the next price change), or
// INT64_MAX when none is scheduled. For callers that cache a price-dependent decision.
int64_t NextPriceChangeUnixMs(const v1::Deployment& deployment, int64_t unix_ms);

}  // namespace tollgate
