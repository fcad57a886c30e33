#include "services/ledger/spend_query.h"

#include <algorithm>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tollgate::ledger {
namespace {

// The aggregate columns shared by the grouped and the total statement.
constexpr std::string_view kTokenSums =
    "COALESCE(sum(input_tokens), 0)::bigint, "
    "COALESCE(sum(cached_input_tokens), 0)::bigint, "
    "COALESCE(sum(cache_write_5m_tokens), 0)::bigint, "
    "COALESCE(sum(cache_write_1h_tokens), 0)::bigint, "
    "COALESCE(sum(output_tokens), 0)::bigint, "
    "COALESCE(sum(reasoning_tokens), 0)::bigint";
// An event's effective cost: its stored cost plus every repricing delta (usage_corrections).
// Rollups already include the deltas.
constexpr std::string_view kEventsWithCorrections =
    "usage_events LEFT JOIN (SELECT event_id AS corrected_event_id, sum(delta_usd) AS "
    "correction_usd FROM usage_corrections GROUP BY 1) corrections "
    "ON corrections.corrected_event_id = usage_events.event_id";
constexpr std::string_view kEventCost = "(cost_usd + COALESCE(correction_usd, 0))";

absl::Status UnknownDimension(std::string_view what, const std::string& name) {
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown ", std::string(what), " \"", name,
      "\"; valid dimensions: ", absl::StrJoin(SpendDimensions(), ", "), ", or tag:<key>"));
}

bool HasNul(const std::string& s) { return s.find('\0') != std::string::npos; }

// Appends `value` as the next parameter and returns its placeholder ($n).
std::string Bind(std::vector<std::string>& params, std::string value) {
  params.push_back(std::move(value));
  return absl::StrCat("$", params.size());
}

// The SQL expression for a dimension (a whitelisted column, or a tag lookup whose key is bound
// as a parameter). `what` names the role for error messages.
absl::StatusOr<std::string> DimensionExpr(const std::string& name, std::string_view what,
                                          std::vector<std::string>& params) {
  if (name.rfind(kTagDimensionPrefix, 0) == 0) {
    std::string key = name.substr(kTagDimensionPrefix.size());
    if (key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(what), " \"", name, "\": tag key is empty"));
    }
    if (HasNul(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(what), ": tag key contains a NUL byte"));
    }
    return absl::StrCat("COALESCE(tags ->> ", Bind(params, std::move(key)), "::text, '')");
  }
  const auto& dims = SpendDimensions();
  if (std::find(dims.begin(), dims.end(), name) == dims.end()) {
    return UnknownDimension(what, name);
  }
  return name;  // whitelisted: the dimension is the column name
}

}  // namespace

std::string MakePageToken(int64_t offset) { return absl::StrCat("o", offset); }

absl::StatusOr<int64_t> ParsePageToken(const std::string& token) {
  int64_t offset = 0;
  if (token.size() < 2 || token[0] != 'o' || !absl::SimpleAtoi(token.substr(1), &offset) ||
      offset < 0 || token.find_first_not_of("0123456789", 1) != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("bad page_token \"", token, "\""));
  }
  return offset;
}

const std::vector<std::string>& SpendDimensions() {
  static const auto* const kDimensions = new std::vector<std::string>{
      "team",           "feature",         "customer",          "api_key_id",
      "environment",    "requested_model", "served_deployment", "provider",
      "upstream_model", "region",          "endpoint"};
  return *kDimensions;
}

bool CanUseRollups(const v1::SpendQuery& query) {
  auto is_tag = [](const std::string& d) { return d.rfind(kTagDimensionPrefix, 0) == 0; };
  for (const std::string& d : query.group_by()) {
    if (is_tag(d)) return false;
  }
  for (const auto& [d, v] : query.filters()) {
    if (is_tag(d)) return false;
  }
  return query.start_unix_s() % 3600 == 0 && query.end_unix_s() % 3600 == 0;
}

bool CanUseDailyRollups(const v1::SpendQuery& query) {
  return CanUseRollups(query) && query.start_unix_s() % 86400 == 0 &&
         query.end_unix_s() % 86400 == 0 && query.bucket() != v1::BUCKET_HOUR;
}

absl::StatusOr<SpendSql> BuildSpendSql(const v1::SpendQuery& query, SpendSource source) {
  if (query.start_unix_s() < 0 || query.start_unix_s() > kMaxQueryUnixS) {
    return absl::InvalidArgumentError(
        absl::StrCat("start_unix_s ", query.start_unix_s(), " is out of range"));
  }
  if (query.end_unix_s() < 0 || query.end_unix_s() > kMaxQueryUnixS) {
    return absl::InvalidArgumentError(
        absl::StrCat("end_unix_s ", query.end_unix_s(), " is out of range"));
  }
  if (query.end_unix_s() != 0 && query.end_unix_s() <= query.start_unix_s()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "end_unix_s ", query.end_unix_s(), " must be after start_unix_s ", query.start_unix_s()));
  }
  if (query.limit() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("limit ", query.limit(), " is negative"));
  }
  if (query.page_size() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size ", query.page_size(), " is negative"));
  }
  int64_t offset = 0;
  if (!query.page_token().empty()) {
    absl::StatusOr<int64_t> parsed = ParsePageToken(query.page_token());
    if (!parsed.ok()) return parsed.status();
    offset = *parsed;
  }
  std::string_view bucket_unit;
  switch (query.bucket()) {
    case v1::BUCKET_NONE:
      break;
    case v1::BUCKET_HOUR:
      bucket_unit = "hour";
      break;
    case v1::BUCKET_DAY:
      bucket_unit = "day";
      break;
    case v1::BUCKET_WEEK:
      bucket_unit = "week";
      break;
    case v1::BUCKET_MONTH:
      bucket_unit = "month";
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown bucket ", query.bucket()));
  }

  SpendSql out;
  const bool can_use_rollups = CanUseRollups(query);
  if (source == SpendSource::kRollups && !can_use_rollups) {
    return absl::InvalidArgumentError(
        "spend query cannot use rollups: it has a tag dimension or a bound not on a whole hour");
  }
  const bool can_use_daily = CanUseDailyRollups(query);
  if (source == SpendSource::kDailyRollups && !can_use_daily) {
    return absl::InvalidArgumentError(
        "spend query cannot use daily rollups: it has a tag dimension, hour buckets or a bound "
        "not on a whole UTC day");
  }
  out.from_daily_rollups =
      source == SpendSource::kDailyRollups || (source == SpendSource::kAuto && can_use_daily);
  out.from_rollups = out.from_daily_rollups || source == SpendSource::kRollups ||
                     (source == SpendSource::kAuto && can_use_rollups);
  std::vector<std::string>& params = out.rows_params;
  // A tag-free query whose bounds are not whole hours ("--since 30d") still reads the daily
  // rollups for the whole UTC days inside its range (unless it buckets by hour), the hourly
  // rollups for the whole hours around them, and raw events only for the partial hours at its
  // edges: the same sums, exactly, without scanning the month's events or hours.
  const int64_t start = query.start_unix_s(), end = query.end_unix_s();
  const int64_t inner_start = (start + 3599) / 3600 * 3600;  // ceil to the hour
  const int64_t inner_end = end / 3600 * 3600;               // floor; end 0: open
  auto is_tag = [](const std::string& d) { return d.rfind(kTagDimensionPrefix, 0) == 0; };
  bool tag_free = true;
  for (const std::string& d : query.group_by()) tag_free = tag_free && !is_tag(d);
  for (const auto& [d, v] : query.filters()) tag_free = tag_free && !is_tag(d);
  out.split_edges = source == SpendSource::kAuto && !out.from_rollups && tag_free &&
                    (end == 0 || inner_start < inner_end);
  std::string table;
  if (out.split_edges) {
    const std::string dims = absl::StrJoin(SpendDimensions(), ", ");
    const std::string tokens =
        "input_tokens, cached_input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, "
        "output_tokens, reasoning_tokens";
    const std::string lo = Bind(params, absl::StrCat(inner_start));
    std::string middle = absl::StrCat("hour >= to_timestamp(", lo, "::bigint)");
    // Whole days inside [inner_start, inner_end): daily rows; the hours left on either side stay
    // hourly. Daily rollups are written with every insert, so an open end reads today's too.
    const int64_t day_start = (inner_start + 86399) / 86400 * 86400;
    const int64_t day_end = end == 0 ? 0 : inner_end / 86400 * 86400;
    const bool days = query.bucket() != v1::BUCKET_HOUR && (end == 0 || day_start < day_end);
    std::string day_range;
    if (days) {
      const std::string ds = Bind(params, absl::StrCat(day_start));
      day_range = absl::StrCat("day >= to_timestamp(", ds, "::bigint)");
      std::string hours = absl::StrCat("(", middle, " AND hour < to_timestamp(", ds, "::bigint))");
      if (end != 0) {
        const std::string de = Bind(params, absl::StrCat(day_end));
        absl::StrAppend(&day_range, " AND day < to_timestamp(", de, "::bigint)");
        absl::StrAppend(&hours, " OR (hour >= to_timestamp(", de, "::bigint)");
      }
      middle = hours;  // completed with the upper hour bound below
    }
    std::vector<std::string> edges;
    if (start < inner_start) {
      edges.push_back(absl::StrCat("(ts >= to_timestamp(", Bind(params, absl::StrCat(start)),
                                   "::bigint) AND ts < to_timestamp(", lo, "::bigint))"));
    }
    if (end != 0) {
      const std::string hi = Bind(params, absl::StrCat(inner_end));
      absl::StrAppend(&middle, " AND hour < to_timestamp(", hi, "::bigint)", days ? ")" : "");
      if (inner_end < end) {
        edges.push_back(absl::StrCat("(ts >= to_timestamp(", hi, "::bigint) AND ts < to_timestamp(",
                                     Bind(params, absl::StrCat(end)), "::bigint))"));
      }
    }
    table = absl::StrCat("(SELECT hour AS t, ", dims, ", requests, ", tokens,
                         ", cost_usd FROM usage_rollups_hourly WHERE ", middle);
    if (days) {
      absl::StrAppend(&table, " UNION ALL SELECT day, ", dims, ", requests, ", tokens,
                      ", cost_usd FROM usage_rollups_daily WHERE ", day_range);
    }
    if (!edges.empty()) {
      absl::StrAppend(&table, " UNION ALL SELECT ts, ", dims, ", 1, ", tokens, ", ",
                      std::string(kEventCost), " FROM ", std::string(kEventsWithCorrections),
                      " WHERE ", absl::StrJoin(edges, " OR "));
    }
    absl::StrAppend(&table, ") spend_source");
  } else {
    table = out.from_daily_rollups ? "usage_rollups_daily"
            : out.from_rollups     ? "usage_rollups_hourly"
                                   : std::string(kEventsWithCorrections);
  }
  const bool summed = out.from_rollups || out.split_edges;  // rows carry requests and cost_usd
  // Rollup rows carry the same dimension and sum column names as usage_events.
  const std::string ts = out.from_daily_rollups ? "day"
                         : out.from_rollups     ? "hour"
                         : out.split_edges      ? "t"
                                                : "ts";
  const std::string cost = summed ? "cost_usd" : std::string(kEventCost);
  // NUMERIC sums are exact; the cast pins the text to 12 fractional digits.
  const std::string cost_sum = absl::StrCat("COALESCE(sum(", cost, "), 0)::numeric(38,12)::text");
  const std::string count = summed ? "COALESCE(sum(requests), 0)::bigint" : "count(*)::bigint";
  // The WHERE clause comes first so that its parameters are $1..$k in both statements; the
  // grouped statement's own parameters (tag keys) follow. (With split edges the time bounds are
  // inside the source already; the outer ones are then redundant but harmless.)
  std::vector<std::string> conditions;
  if (query.start_unix_s() != 0) {
    conditions.push_back(absl::StrCat(
        ts, " >= to_timestamp(", Bind(params, absl::StrCat(query.start_unix_s())), "::bigint)"));
  }
  // end 0 means "now"; no event is recorded in the future, so it needs no bound.
  if (query.end_unix_s() != 0) {
    conditions.push_back(absl::StrCat(ts, " < to_timestamp(",
                                      Bind(params, absl::StrCat(query.end_unix_s())), "::bigint)"));
  }
  // Sorted so that the SQL text does not depend on the map's iteration order.
  std::vector<std::pair<std::string, std::string>> filters(query.filters().begin(),
                                                           query.filters().end());
  std::sort(filters.begin(), filters.end());
  for (const auto& [dimension, value] : filters) {
    absl::StatusOr<std::string> expr = DimensionExpr(dimension, "filter", params);
    if (!expr.ok()) return expr.status();
    if (HasNul(value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("filter \"", dimension, "\": value contains a NUL byte"));
    }
    conditions.push_back(absl::StrCat(*expr, " = ", Bind(params, value), "::text"));
  }
  const std::string where =
      conditions.empty() ? "" : absl::StrCat(" WHERE ", absl::StrJoin(conditions, " AND "));
  out.total_params = params;

  std::vector<std::string> select;
  std::set<std::string> seen;
  for (const std::string& dimension : query.group_by()) {
    if (!seen.insert(dimension).second) {
      return absl::InvalidArgumentError(absl::StrCat("group_by \"", dimension, "\" is repeated"));
    }
    absl::StatusOr<std::string> expr = DimensionExpr(dimension, "group_by dimension", params);
    if (!expr.ok()) return expr.status();
    select.push_back(*expr);
  }
  out.group_columns = static_cast<int>(select.size());
  out.bucketed = !bucket_unit.empty();
  if (out.bucketed) {
    select.push_back(absl::StrCat("extract(epoch FROM date_trunc('", std::string(bucket_unit),
                                  "', ", ts, ", 'UTC'))::bigint"));
  }
  const size_t keys = select.size();
  std::vector<std::string> ordinals;
  for (size_t i = 1; i <= keys; ++i) ordinals.push_back(absl::StrCat(i));

  std::string& sql = out.rows_sql;
  sql = "SELECT ";
  for (const std::string& s : select) absl::StrAppend(&sql, s, ", ");
  absl::StrAppend(&sql, count, ", ", std::string(kTokenSums), ", ", cost_sum, " FROM ", table,
                  where);
  if (keys > 0) {
    absl::StrAppend(&sql, " GROUP BY ", absl::StrJoin(ordinals, ", "));
  } else {
    // Without GROUP BY an aggregate yields one row even over no events; report none instead.
    absl::StrAppend(&sql, " HAVING count(*) > 0");
  }
  absl::StrAppend(&sql, " ORDER BY sum(", cost, ") DESC");
  for (const std::string& o : ordinals) absl::StrAppend(&sql, ", ", o);
  // Pages are windows of the ordered rows (offset tokens); one extra row tells whether another
  // page follows. The order is total (cost, then every key), so pages do not overlap.
  out.offset = offset;
  out.page_size = query.page_size();
  int64_t fetch = -1;  // -1: no LIMIT
  if (query.page_size() > 0) fetch = int64_t{query.page_size()} + 1;
  if (query.limit() > 0) {
    const int64_t left = std::max<int64_t>(0, int64_t{query.limit()} - offset);
    fetch = fetch < 0 ? left : std::min(fetch, left);
  }
  if (fetch >= 0) absl::StrAppend(&sql, " LIMIT ", fetch);
  if (offset > 0) absl::StrAppend(&sql, " OFFSET ", offset);

  out.total_sql = absl::StrCat("SELECT ", count, ", ", std::string(kTokenSums), ", ", cost_sum,
                               " FROM ", table, where);
  return out;
}

}  // namespace tollgate::ledger
