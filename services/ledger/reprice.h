#pragma once
// Translation of a RepriceRequest (proto tollgate.v1.RepriceRequest) into parameterised SQL.
// Pure: no database access, so validation is unit-tested without PostgreSQL.
//
// The SQL selects, for every stored event in range whose served_deployment has corrected prices
// (and that matches the filters), its current effective cost (stored cost plus earlier
// corrections), the unit prices that now apply (a corrected price, else the event's stored one)
// and the new cost computed from the stored token counts with exactly PriceUsage's formula
// (services/common/money.h), in NUMERIC. PostgresUsageStore::Reprice materialises it in a
// temporary table and writes the corrections and rollup deltas from there.
//
// Thread-safe.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tollgate/v1/ledger.pb.h"

namespace tollgate::ledger {

struct RepriceSql {
  // Columns: event_id, ts, the eleven SpendDimensions() columns, old_cost, the six new unit
  // prices (pin, pcached, pcw5m, pcw1h, pout, preas; bigint pico per token), new_cost
  // (numeric(38,12)).
  std::string select_sql;
  std::vector<std::string> params;
};

// Errors: kInvalidArgument for no deployment, an empty or repeated deployment, a malformed or
// negative price, an unknown or tag filter, a NUL byte, or a bad time range (as spend queries).
absl::StatusOr<RepriceSql> BuildRepriceSql(const v1::RepriceRequest& request);

}  // namespace tollgate::ledger
