#include "services/ledger/spend_math.h"

#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/common/money.h"

namespace tollgate::ledger {
namespace {

constexpr __int128 kMaxPico = static_cast<__int128>(1) << 100;

std::string Int128ToString(__int128 v) {
  if (v == 0) return "0";
  const bool negative = v < 0;
  unsigned __int128 u = negative ? -static_cast<unsigned __int128>(v) : v;
  std::string digits;
  while (u > 0) {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(u % 10)));
    u /= 10;
  }
  return negative ? "-" + digits : digits;
}

absl::StatusOr<__int128> Pico(const std::string& text) { return ParseDecimalPico(text); }

__int128 Tokens(const v1::SpendRow& row) {
  return static_cast<__int128>(row.tokens().input_tokens()) + row.tokens().output_tokens();
}

}  // namespace

absl::StatusOr<__int128> ParseDecimalPico(std::string_view text) {
  const std::string original(text);
  bool negative = false;
  if (!text.empty() && (text[0] == '-' || text[0] == '+')) {
    negative = text[0] == '-';
    text.remove_prefix(1);
  }
  const size_t dot = text.find('.');
  const std::string_view whole = text.substr(0, dot);
  const std::string_view frac = dot == std::string_view::npos ? "" : text.substr(dot + 1);
  if (whole.empty() || (dot != std::string_view::npos && frac.empty()) || frac.size() > 12) {
    return absl::InvalidArgumentError(absl::StrCat("bad decimal amount \"", original, "\""));
  }
  __int128 v = 0;
  for (char c : whole) {
    if (c < '0' || c > '9') {
      return absl::InvalidArgumentError(absl::StrCat("bad decimal amount \"", original, "\""));
    }
    v = v * 10 + (c - '0');
    if (v > kMaxPico) return absl::OutOfRangeError("amount too large");
  }
  for (size_t i = 0; i < 12; ++i) {
    const char c = i < frac.size() ? frac[i] : '0';
    if (c < '0' || c > '9') {
      return absl::InvalidArgumentError(absl::StrCat("bad decimal amount \"", original, "\""));
    }
    v = v * 10 + (c - '0');
  }
  if (v > kMaxPico) return absl::OutOfRangeError("amount too large");
  return negative ? -v : v;
}

__int128 DivRound(__int128 num, __int128 den) {
  if (den < 0) {
    num = -num;
    den = -den;
  }
  const bool negative = num < 0;
  const __int128 a = negative ? -num : num;
  // Half away from zero: round(a / den) = floor((2a + den) / (2den)) for a >= 0.
  const __int128 r = (2 * a + den) / (2 * den);
  return negative ? -r : r;
}

std::string FormatScaled(__int128 scaled, int digits) {
  const bool negative = scaled < 0;
  std::string s = Int128ToString(negative ? -scaled : scaled);
  if (static_cast<int>(s.size()) <= digits) {
    s.insert(s.begin(), static_cast<size_t>(digits + 1) - s.size(), '0');
  }
  if (digits > 0) s.insert(s.end() - digits, '.');
  return negative ? "-" + s : s;
}

absl::Status AddDerivedColumns(v1::SpendResponse& response) {
  absl::StatusOr<__int128> total = Pico(response.total().cost_usd());
  if (!total.ok()) return total.status();
  auto fill = [&](v1::SpendRow& row) -> absl::Status {
    absl::StatusOr<__int128> cost = Pico(row.cost_usd());
    if (!cost.ok()) return cost.status();
    const __int128 tokens = Tokens(row);
    row.set_cost_per_1k_tokens_usd(tokens > 0 ? FormatScaled(DivRound(*cost * 1000, tokens), 12)
                                              : "");
    row.set_cost_per_request_usd(
        row.requests() > 0 ? FormatScaled(DivRound(*cost, row.requests()), 12) : "");
    row.set_share_of_total(*total != 0 ? FormatScaled(DivRound(*cost * 1'000'000, *total), 6) : "");
    return absl::OkStatus();
  };
  for (v1::SpendRow& row : *response.mutable_rows()) {
    if (absl::Status s = fill(row); !s.ok()) return s;
  }
  return fill(*response.mutable_total());
}

absl::Status AddComparison(v1::SpendResponse& current, const v1::SpendResponse& previous,
                           int64_t shift_s, bool bucketed) {
  using Key = std::pair<std::vector<std::string>, int64_t>;
  std::map<Key, const v1::SpendRow*> before;
  for (const v1::SpendRow& row : previous.rows()) {
    before[{{row.group_values().begin(), row.group_values().end()},
            bucketed ? row.bucket_start_unix_s() : 0}] = &row;
  }
  auto fill = [&](v1::SpendRow& row, const v1::SpendRow* prev) -> absl::Status {
    absl::StatusOr<__int128> now = Pico(row.cost_usd());
    if (!now.ok()) return now.status();
    __int128 then = 0;
    if (prev != nullptr) {
      absl::StatusOr<__int128> p = Pico(prev->cost_usd());
      if (!p.ok()) return p.status();
      then = *p;
      row.set_previous_requests(prev->requests());
    } else {
      row.set_previous_requests(0);
    }
    row.set_previous_cost_usd(FormatPicoUsd(then));
    row.set_change_usd(FormatPicoUsd(*now - then));
    row.set_change_ratio(then != 0 ? FormatScaled(DivRound((*now - then) * 1'000'000, then), 6)
                                   : "");
    return absl::OkStatus();
  };
  for (v1::SpendRow& row : *current.mutable_rows()) {
    const Key key{{row.group_values().begin(), row.group_values().end()},
                  bucketed ? row.bucket_start_unix_s() - shift_s : 0};
    auto it = before.find(key);
    if (absl::Status s = fill(row, it == before.end() ? nullptr : it->second); !s.ok()) return s;
  }
  return fill(*current.mutable_total(), &previous.total());
}

}  // namespace tollgate::ledger
