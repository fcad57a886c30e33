#include "services/ledger/focus.h"

#include <map>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "services/common/logging.h"
#include "services/common/money.h"
#include "services/ledger/spend_math.h"

namespace tollgate::ledger {
namespace {

std::string Iso(int64_t unix_s) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(unix_s), absl::UTCTimeZone());
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  AppendJsonEscaped(out, s);
  out += '"';
  return out;
}

}  // namespace

const std::vector<std::string>& FocusColumns() {
  static const auto* const kColumns = new std::vector<std::string>{"BilledCost",
                                                                   "EffectiveCost",
                                                                   "ListCost",
                                                                   "ContractedCost",
                                                                   "BillingCurrency",
                                                                   "ChargePeriodStart",
                                                                   "ChargePeriodEnd",
                                                                   "ChargeCategory",
                                                                   "ChargeClass",
                                                                   "ChargeDescription",
                                                                   "ConsumedQuantity",
                                                                   "ConsumedUnit",
                                                                   "PricingQuantity",
                                                                   "PricingUnit",
                                                                   "ListUnitPrice",
                                                                   "ContractedUnitPrice",
                                                                   "SkuId",
                                                                   "SkuMeter",
                                                                   "SkuPriceId",
                                                                   "ServiceCategory",
                                                                   "ServiceName",
                                                                   "ProviderName",
                                                                   "PublisherName",
                                                                   "InvoiceIssuerName",
                                                                   "RegionId",
                                                                   "RegionName",
                                                                   "ResourceId",
                                                                   "ResourceName",
                                                                   "ResourceType",
                                                                   "Tags",
                                                                   "x_Team",
                                                                   "x_Feature",
                                                                   "x_Customer",
                                                                   "x_ApiKeyId",
                                                                   "x_Environment",
                                                                   "x_RequestedModel",
                                                                   "x_UpstreamModel",
                                                                   "x_Endpoint",
                                                                   "x_PriceCardVersion"};
  return *kColumns;
}

void AppendFocusRecords(const FocusGroup& g, v1::FocusChunk& out) {
  struct Meter {
    std::string name;
    int64_t tokens;
    int64_t price;
  };
  const Meter meters[] = {{"input", g.input, g.price_input},
                          {"cached_input", g.cached_input, g.price_cached_input},
                          {"cache_write_5m", g.cache_write_5m, g.price_cache_write_5m},
                          {"cache_write_1h", g.cache_write_1h, g.price_cache_write_1h},
                          {"output", g.output, g.price_output},
                          {"reasoning", g.reasoning, g.price_reasoning}};
  // Sorted keys: a stable, canonical JSON object.
  const std::string tags =
      absl::StrCat("{\"customer\":", JsonString(g.customer), ",\"feature\":", JsonString(g.feature),
                   ",\"team\":", JsonString(g.team), "}");
  for (const Meter& m : meters) {
    if (m.tokens <= 0) continue;
    const std::string cost =
        FormatPicoUsd(static_cast<__int128>(m.tokens) * static_cast<__int128>(m.price));
    const std::string unit_price = FormatScaled(m.price, 6);    // USD per 1M tokens
    const std::string pricing_qty = FormatScaled(m.tokens, 6);  // in units of 1M tokens
    const std::string sku = absl::StrCat(g.provider, "/", g.upstream_model, "/", m.name);
    v1::FocusRecord* r = out.add_records();
    for (const std::string& v : std::vector<std::string>{
             cost,
             cost,
             cost,
             cost,
             std::string("USD"),
             Iso(g.hour_unix_s),
             Iso(g.hour_unix_s + 3600),
             std::string("Usage"),
             std::string(""),
             absl::StrCat(m.name, " tokens of ", g.upstream_model, " via ", g.served_deployment),
             absl::StrCat(m.tokens),
             std::string("Tokens"),
             pricing_qty,
             std::string("1M Tokens"),
             unit_price,
             unit_price,
             sku,
             std::string(m.name),
             absl::StrCat(sku, "@", g.price_card_version),
             std::string("AI and Machine Learning"),
             absl::StrCat(g.provider, " LLM API"),
             g.provider,
             g.provider,
             g.provider,
             g.region,
             g.region,
             g.served_deployment,
             g.served_deployment,
             std::string("LLM Deployment"),
             tags,
             g.team,
             g.feature,
             g.customer,
             g.api_key_id,
             g.environment,
             g.requested_model,
             g.upstream_model,
             g.endpoint,
             g.price_card_version}) {
      r->add_values(v);
    }
  }
}

}  // namespace tollgate::ledger
