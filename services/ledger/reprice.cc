#include "services/ledger/reprice.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/common/money.h"
#include "services/ledger/spend_query.h"

namespace tollgate::ledger {
namespace {

std::string Bind(std::vector<std::string>& params, std::string value) {
  params.push_back(std::move(value));
  return absl::StrCat("$", params.size());
}

bool HasNul(const std::string& s) { return s.find('\0') != std::string::npos; }

// "" (keep the stored price) -> SQL NULL; otherwise exact pico-dollars per token.
absl::StatusOr<std::string> PriceParam(const std::string& deployment, std::string_view field,
                                       const std::string& text, std::vector<std::string>& params) {
  if (text.empty()) return std::string("NULL::bigint");
  absl::StatusOr<int64_t> pico = ParseUsdPerMillionTokens(text);
  if (!pico.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("deployment \"", deployment, "\" ",
                                                   std::string(field), " \"", text,
                                                   "\": ", std::string(pico.status().message())));
  }
  if (*pico < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("deployment \"", deployment, "\" ", std::string(field), " is negative"));
  }
  return absl::StrCat(Bind(params, absl::StrCat(*pico)), "::bigint");
}

}  // namespace

absl::StatusOr<RepriceSql> BuildRepriceSql(const v1::RepriceRequest& request) {
  if (request.start_unix_s() < 0 || request.start_unix_s() > kMaxQueryUnixS ||
      request.end_unix_s() < 0 || request.end_unix_s() > kMaxQueryUnixS) {
    return absl::InvalidArgumentError("reprice time range is out of range");
  }
  if (request.end_unix_s() != 0 && request.end_unix_s() <= request.start_unix_s()) {
    return absl::InvalidArgumentError(absl::StrCat("end_unix_s ", request.end_unix_s(),
                                                   " must be after start_unix_s ",
                                                   request.start_unix_s()));
  }
  if (request.prices().empty()) {
    return absl::InvalidArgumentError("reprice needs prices for at least one deployment");
  }
  if (HasNul(request.reason()) || HasNul(request.price_card_version())) {
    return absl::InvalidArgumentError("reason and price_card_version must not contain NUL");
  }
  RepriceSql out;
  std::vector<std::string>& params = out.params;
  std::vector<std::string> rows;
  std::set<std::string> seen;
  for (const v1::DeploymentPrices& p : request.prices()) {
    if (p.deployment().empty() || HasNul(p.deployment())) {
      return absl::InvalidArgumentError("reprice: deployment name is empty or has a NUL byte");
    }
    if (!seen.insert(p.deployment()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("reprice: deployment \"", p.deployment(), "\" is repeated"));
    }
    std::vector<std::string> values = {absl::StrCat(Bind(params, p.deployment()), "::text")};
    const std::pair<std::string_view, const std::string*> fields[] = {
        {"input", &p.input_usd_per_m()},
        {"cached_input", &p.cached_input_usd_per_m()},
        {"cache_write_5m", &p.cache_write_5m_usd_per_m()},
        {"cache_write_1h", &p.cache_write_1h_usd_per_m()},
        {"output", &p.output_usd_per_m()},
        {"reasoning", &p.reasoning_usd_per_m()}};
    for (const auto& [name, text] : fields) {
      absl::StatusOr<std::string> v = PriceParam(p.deployment(), name, *text, params);
      if (!v.ok()) return v.status();
      values.push_back(*v);
    }
    rows.push_back(absl::StrCat("(", absl::StrJoin(values, ", "), ")"));
  }

  std::vector<std::string> conditions;
  if (request.start_unix_s() != 0) {
    conditions.push_back(absl::StrCat(
        "e.ts >= to_timestamp(", Bind(params, absl::StrCat(request.start_unix_s())), "::bigint)"));
  }
  if (request.end_unix_s() != 0) {
    conditions.push_back(absl::StrCat(
        "e.ts < to_timestamp(", Bind(params, absl::StrCat(request.end_unix_s())), "::bigint)"));
  }
  std::vector<std::pair<std::string, std::string>> filters(request.filters().begin(),
                                                           request.filters().end());
  std::sort(filters.begin(), filters.end());
  const std::vector<std::string>& dims = SpendDimensions();
  for (const auto& [dimension, value] : filters) {
    if (std::find(dims.begin(), dims.end(), dimension) == dims.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "reprice filter \"", dimension,
          "\" is not a dimension (tags are not allowed); valid: ", absl::StrJoin(dims, ", ")));
    }
    if (HasNul(value)) {
      return absl::InvalidArgumentError("reprice filter value contains a NUL byte");
    }
    conditions.push_back(absl::StrCat("e.", dimension, " = ", Bind(params, value), "::text"));
  }

  std::string dim_cols;
  for (const std::string& d : dims) absl::StrAppend(&dim_cols, ", e.", d);
  // Same formula as PriceUsage and the usage_events_cost_reproducible constraint.
  constexpr std::string_view kNewCostPico =
      "(e.input_tokens::numeric - e.cached_input_tokens - e.cache_write_5m_tokens"
      " - e.cache_write_1h_tokens) * p.pin"
      " + e.cached_input_tokens::numeric * p.pcached"
      " + e.cache_write_5m_tokens::numeric * p.pcw5m"
      " + e.cache_write_1h_tokens::numeric * p.pcw1h"
      " + (e.output_tokens::numeric - e.reasoning_tokens) * p.pout"
      " + e.reasoning_tokens::numeric * (CASE WHEN p.preas <> 0 THEN p.preas ELSE p.pout END)";
  out.select_sql = absl::StrCat(
      "WITH np (deployment, pin, pcached, pcw5m, pcw1h, pout, preas) AS (VALUES ",
      absl::StrJoin(rows, ", "), ") SELECT e.event_id, e.ts", dim_cols,
      ", e.cost_usd + COALESCE((SELECT sum(c.delta_usd) FROM usage_corrections c "
      "WHERE c.event_id = e.event_id), 0) AS old_cost, "
      "p.pin, p.pcached, p.pcw5m, p.pcw1h, p.pout, p.preas, "
      "((",
      std::string(kNewCostPico),
      ") * 0.000000000001)::numeric(38,12) AS new_cost "
      "FROM usage_events e JOIN np ON np.deployment = e.served_deployment "
      "CROSS JOIN LATERAL (SELECT COALESCE(np.pin, e.price_input_pico) AS pin, "
      "COALESCE(np.pcached, e.price_cached_input_pico) AS pcached, "
      "COALESCE(np.pcw5m, e.price_cache_write_5m_pico) AS pcw5m, "
      "COALESCE(np.pcw1h, e.price_cache_write_1h_pico) AS pcw1h, "
      "COALESCE(np.pout, e.price_output_pico) AS pout, "
      "COALESCE(np.preas, e.price_reasoning_pico) AS preas) p",
      conditions.empty() ? "" : absl::StrCat(" WHERE ", absl::StrJoin(conditions, " AND ")));
  return out;
}

}  // namespace tollgate::ledger
