#include "services/ledger/usage_event.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "services/common/money.h"

namespace tollgate::ledger {
namespace {

absl::Status Invalid(const v1::UsageEvent& event, std::string_view why) {
  // The id itself may be the problem; escape-free truncation keeps the message readable.
  std::string id = event.event_id().substr(0, 128);
  if (!IsStorableText(id)) id = "<not valid UTF-8>";
  return absl::InvalidArgumentError(absl::StrCat("event \"", id, "\": ", std::string(why)));
}

}  // namespace

bool IsStorableText(std::string_view text) {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == 0) return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    int extra;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      extra = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i <= static_cast<size_t>(extra)) return false;
    for (int k = 1; k <= extra; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong encodings, UTF-16 surrogates and code points beyond U+10FFFF are not UTF-8.
    static constexpr uint32_t kMinForLength[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += static_cast<size_t>(extra) + 1;
  }
  return true;
}

absl::Status ValidateUsageEvent(const v1::UsageEvent& event) {
  if (event.event_id().empty()) return Invalid(event, "event_id is empty");
  if (event.time_unix_us() <= 0 || event.time_unix_us() > kMaxEventTimeUnixUs) {
    return Invalid(event, absl::StrCat("time_unix_us ", event.time_unix_us(),
                                       " is out of range (must be after 1970 and before 10000)"));
  }
  const v1::UnitPrices& p = event.prices();
  if (p.input_pico() < 0 || p.cached_input_pico() < 0 || p.cache_write_5m_pico() < 0 ||
      p.cache_write_1h_pico() < 0 || p.output_pico() < 0 || p.reasoning_pico() < 0) {
    return Invalid(event, "unit prices must not be negative");
  }
  // The ledger stores one flat price per token type: the gateway resolves a long-context tier
  // before it records (money.h EffectivePrices); a tiered card here could not be reproduced.
  if (p.long_context_threshold_tokens() != 0 || p.has_long_context()) {
    return Invalid(event, "unit prices must be flat (long-context tier already resolved)");
  }
  absl::StatusOr<int64_t> cost = PriceUsage(event.usage(), p);
  if (!cost.ok()) return Invalid(event, std::string(cost.status().message()));
  if (*cost != event.cost_pico()) {
    return Invalid(
        event, absl::StrCat("cost_pico ", event.cost_pico(),
                            " does not match its usage priced at its unit prices (", *cost, ")"));
  }

  const v1::Attribution& a = event.attribution();
  const std::pair<std::string_view, const std::string*> fields[] = {
      {"event_id", &event.event_id()},
      {"request_id", &event.request_id()},
      {"attribution.team", &a.team()},
      {"attribution.feature", &a.feature()},
      {"attribution.customer", &a.customer()},
      {"attribution.api_key_id", &a.api_key_id()},
      {"attribution.environment", &a.environment()},
      {"endpoint", &event.endpoint()},
      {"requested_model", &event.requested_model()},
      {"served_deployment", &event.served_deployment()},
      {"provider", &event.provider()},
      {"upstream_model", &event.upstream_model()},
      {"region", &event.region()},
      {"prices.price_card_version", &p.price_card_version()},
      {"error_code", &event.error_code()},
  };
  for (const auto& [name, value] : fields) {
    if (!IsStorableText(*value)) {
      return Invalid(event, absl::StrCat(std::string(name), " is not UTF-8 text without NUL"));
    }
  }
  for (const auto& [key, value] : a.tags()) {
    if (!IsStorableText(key) || !IsStorableText(value)) {
      return Invalid(event, "a tag is not UTF-8 text without NUL");
    }
  }
  for (const v1::Attempt& attempt : event.attempts()) {
    if (!IsStorableText(attempt.deployment_id()) || !IsStorableText(attempt.error())) {
      return Invalid(event, "an attempt's text is not UTF-8 text without NUL");
    }
  }
  return absl::OkStatus();
}

}  // namespace tollgate::ledger
