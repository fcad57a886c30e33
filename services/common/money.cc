#include "services/common/money.h"

#include <limits>

#include "absl/strings/str_cat.h"

namespace tollgate {
namespace {

// Parses "[-]digits[.digits]" into an integer scaled by 10^scale. Rejects more fractional
// digits than `scale`, empty parts, signs where not allowed, and overflow.
absl::StatusOr<int64_t> ParseScaledDecimal(std::string_view text, int scale, bool allow_negative,
                                           std::string_view what) {
  const std::string_view original = text;
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid ", std::string(what), " \"", std::string(original), "\": ", std::string(why)));
  };
  if (text.empty()) return bad("empty");
  bool negative = false;
  if (text.front() == '-') {
    if (!allow_negative) return bad("must not be negative");
    negative = true;
    text.remove_prefix(1);
  } else if (text.front() == '+') {
    text.remove_prefix(1);
  }
  const size_t dot = text.find('.');
  std::string_view whole = text.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
  if (whole.empty() && frac.empty()) return bad("no digits");
  if (dot != std::string_view::npos && frac.empty()) return bad("no digits after '.'");
  if (static_cast<int>(frac.size()) > scale) {
    return bad(absl::StrCat("more than ", scale, " fractional digits"));
  }
  __int128 value = 0;
  constexpr __int128 kMax = std::numeric_limits<int64_t>::max();
  for (char c : whole) {
    if (c < '0' || c > '9') return bad("not a decimal number");
    value = value * 10 + (c - '0');
    if (value > kMax) return absl::OutOfRangeError(absl::StrCat(std::string(what), " \"", std::string(original), "\" is too large"));
  }
  int digits = 0;
  for (char c : frac) {
    if (c < '0' || c > '9') return bad("not a decimal number");
    value = value * 10 + (c - '0');
    ++digits;
  }
  for (; digits < scale; ++digits) value *= 10;
  if (value > kMax) return absl::OutOfRangeError(absl::StrCat(std::string(what), " \"", std::string(original), "\" is too large"));
  return static_cast<int64_t>(negative ? -value : value);
}

std::string FormatScaled(__int128 value, int scale, bool trim) {
  const bool negative = value < 0;
  unsigned __int128 magnitude =
      negative ? static_cast<unsigned __int128>(-(value + 1)) + 1 : static_cast<unsigned __int128>(value);
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(magnitude % 10)));
    magnitude /= 10;
  } while (magnitude != 0);
  if (static_cast<int>(digits.size()) <= scale) {
    digits.insert(0, static_cast<size_t>(scale + 1) - digits.size(), '0');
  }
  std::string out = negative ? "-" : "";
  out.append(digits, 0, digits.size() - scale);
  std::string frac = digits.substr(digits.size() - scale);
  if (trim) {
    while (!frac.empty() && frac.back() == '0') frac.pop_back();
  }
  if (!frac.empty()) {
    out.push_back('.');
    out += frac;
  }
  return out;
}

}  // namespace

absl::StatusOr<int64_t> ParseUsdPerMillionTokens(std::string_view text) {
  // USD per 1e6 tokens -> pico-dollars (1e-12) per token: scale 1e12 / 1e6 = 1e6.
  return ParseScaledDecimal(text, 6, /*allow_negative=*/false, "price (USD per million tokens)");
}

absl::StatusOr<int64_t> ParseUsd(std::string_view text) {
  return ParseScaledDecimal(text, 12, /*allow_negative=*/true, "USD amount");
}

std::string FormatPicoUsd(int64_t pico) { return FormatScaled(pico, 12, /*trim=*/false); }
std::string FormatPicoUsd(__int128 pico) { return FormatScaled(pico, 12, /*trim=*/false); }

std::string FormatUsdPerMillionTokens(int64_t pico_per_token) {
  return FormatScaled(pico_per_token, 6, /*trim=*/true);
}

bool LongContextApplies(const v1::UnitPrices& prices, int64_t input_tokens) {
  return prices.long_context_threshold_tokens() > 0 && prices.has_long_context() &&
         input_tokens > prices.long_context_threshold_tokens();
}

v1::UnitPrices EffectivePrices(const v1::UnitPrices& prices, const v1::TokenUsage& usage) {
  const bool long_context = LongContextApplies(prices, usage.input_tokens());
  const v1::UnitPrices& tier = long_context ? prices.long_context() : prices;
  v1::UnitPrices out;
  out.set_input_pico(tier.input_pico());
  out.set_cached_input_pico(tier.cached_input_pico());
  out.set_cache_write_5m_pico(tier.cache_write_5m_pico());
  out.set_cache_write_1h_pico(tier.cache_write_1h_pico());
  out.set_output_pico(tier.output_pico());
  out.set_reasoning_pico(tier.reasoning_pico());
  out.set_price_card_version(long_context
                                 ? absl::StrCat(prices.price_card_version(), kLongContextCardSuffix)
                                 : prices.price_card_version());
  return out;
}

absl::StatusOr<int64_t> PriceUsage(const v1::TokenUsage& u, const v1::UnitPrices& prices) {
  // Providers bill the whole request at the long-context tier once the prompt crosses it, not
  // only the tokens above the threshold.
  const v1::UnitPrices& p =
      LongContextApplies(prices, u.input_tokens()) ? prices.long_context() : prices;
  if (u.input_tokens() < 0 || u.cached_input_tokens() < 0 || u.cache_write_5m_tokens() < 0 ||
      u.cache_write_1h_tokens() < 0 || u.output_tokens() < 0 || u.reasoning_tokens() < 0) {
    return absl::InvalidArgumentError("token counts must not be negative");
  }
  const __int128 subsets = static_cast<__int128>(u.cached_input_tokens()) +
                           u.cache_write_5m_tokens() + u.cache_write_1h_tokens();
  if (subsets > u.input_tokens()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cached + cache-write tokens (", static_cast<int64_t>(subsets),
                     ") exceed input tokens (", u.input_tokens(), ")"));
  }
  if (u.reasoning_tokens() > u.output_tokens()) {
    return absl::InvalidArgumentError(absl::StrCat("reasoning tokens (", u.reasoning_tokens(),
                                                   ") exceed output tokens (", u.output_tokens(),
                                                   ")"));
  }
  const int64_t reasoning_price = p.reasoning_pico() != 0 ? p.reasoning_pico() : p.output_pico();
  const __int128 cost =
      (static_cast<__int128>(u.input_tokens()) - subsets) * p.input_pico() +
      static_cast<__int128>(u.cached_input_tokens()) * p.cached_input_pico() +
      static_cast<__int128>(u.cache_write_5m_tokens()) * p.cache_write_5m_pico() +
      static_cast<__int128>(u.cache_write_1h_tokens()) * p.cache_write_1h_pico() +
      (static_cast<__int128>(u.output_tokens()) - u.reasoning_tokens()) * p.output_pico() +
      static_cast<__int128>(u.reasoning_tokens()) * reasoning_price;
  if (cost > std::numeric_limits<int64_t>::max() || cost < 0) {
    return absl::OutOfRangeError("cost does not fit in 64-bit pico-dollars");
  }
  return static_cast<int64_t>(cost);
}

}  // namespace tollgate
