#pragma once
// Translation of a SpendQuery (proto tollgate.v1.SpendQuery) into parameterised SQL over
// usage_events. Pure: no database access, so validation is unit-tested without PostgreSQL.
//
// Dimensions (group_by entries and filter keys) come from a fixed whitelist and map to column
// names; `tag:<key>` addresses a free tag (tags->>'key', '' when absent). Every user-supplied value
// (filter values, tag keys, times) is bound as a parameter, never spliced into the SQL text.
//
//   absl::StatusOr<SpendSql> sql = BuildSpendSql(query);
//   // run sql->rows_sql with sql->rows_params and sql->total_sql with sql->total_params
//
// Thread-safe.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tollgate/v1/ledger.pb.h"

namespace tollgate::ledger {

// The attribution and routing dimensions, in documentation order: team, feature, customer,
// api_key_id, environment, requested_model, served_deployment, provider, upstream_model, region,
// endpoint. Plus the `tag:<key>` form, which is not listed here.
const std::vector<std::string>& SpendDimensions();

inline constexpr std::string_view kTagDimensionPrefix = "tag:";

// Latest accepted query bound: 9999-12-31T23:59:59Z.
inline constexpr int64_t kMaxQueryUnixS = 253'402'300'799;

// Where a spend query reads from. kAuto picks the daily rollups when they give the same answer as
// the raw events: no tag dimension in group_by or filters, start and end on whole UTC days (0
// counts as aligned) and buckets other than hours; else the hourly rollups when start and end are
// on whole UTC hours; else, without tags, the hourly rollups for the whole hours inside the range
// plus raw events for the partial hours at its edges (split_edges); raw usage_events otherwise.
// kRollups forces the hourly rollups, kDailyRollups the daily ones (both: error when they cannot
// answer exactly).
enum class SpendSource { kAuto, kEvents, kRollups, kDailyRollups };

// True when `query` can be answered from usage_rollups_hourly.
bool CanUseRollups(const v1::SpendQuery& query);
// True when `query` can be answered from usage_rollups_daily.
bool CanUseDailyRollups(const v1::SpendQuery& query);

struct SpendSql {
  // Columns, in order: one text column per group_by entry; bucket start (bigint, Unix seconds)
  // when `bucketed`; requests (bigint); input, cached input, cache write 5m, cache write 1h,
  // output, reasoning token sums (bigint); cost (text, exactly 12 fractional digits).
  // Rows ordered by cost descending, then by group values and bucket ascending.
  std::string rows_sql;
  std::vector<std::string> rows_params;
  // One row: requests, the six token sums and the cost, over every matching event.
  std::string total_sql;
  std::vector<std::string> total_params;
  int group_columns = 0;
  bool bucketed = false;
  bool from_rollups = false;        // reads usage_rollups_hourly or usage_rollups_daily
  bool from_daily_rollups = false;  // reads usage_rollups_daily
  // kAuto, tag-free, bounds not on whole hours: the hourly rollups for the whole hours inside the
  // range plus raw events for the partial hours at its edges (same sums, exactly).
  bool split_edges = false;
  // Paging: rows_sql skips `offset` rows and, when page_size > 0, returns at most page_size + 1
  // (a row beyond page_size means another page follows).
  int64_t offset = 0;
  int32_t page_size = 0;
};

// Opaque page tokens (an offset into the ordered rows). Errors: kInvalidArgument.
std::string MakePageToken(int64_t offset);
absl::StatusOr<int64_t> ParsePageToken(const std::string& token);

// Errors: kInvalidArgument for an unknown or repeated dimension (the message lists the valid
// ones), an empty tag key, a filter value with NUL, negative or out-of-range times, end <= start,
// a negative limit, or an unknown bucket; kRollups for a query that cannot use them.
absl::StatusOr<SpendSql> BuildSpendSql(const v1::SpendQuery& query,
                                       SpendSource source = SpendSource::kAuto);

}  // namespace tollgate::ledger
