#include "services/common/route_scope.h"
#include "services/router/catalog.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "boost/url/parse.hpp"
#include "boost/url/scheme.hpp"
#include "services/common/money.h"
#include "services/common/price_schedule.h"
#include "services/common/status.h"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/yaml.h"

namespace tollgate::router {

const std::vector<std::string>& SupportedDialects() {
  static const std::vector<std::string> kDialects = {"openai", "azure_openai", "anthropic",
                                                     "gemini"};
  return kDialects;
}

const std::vector<std::string>& KnownCapabilities() {
  static const std::vector<std::string> kCapabilities = {
      "chat",   "stream",     "tools",     "json",          "json_schema",
      "vision", "embeddings", "reasoning", "prompt_caching"};
  return kCapabilities;
}

std::string ContentHash(absl::string_view bytes) {
  uint64_t hash = 14695981039346656037ULL;
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  return absl::StrFormat("%016x", hash);
}

absl::string_view PolicyKindName(PolicyKind kind) {
  switch (kind) {
    case PolicyKind::kPriority:
      return "priority";
    case PolicyKind::kWeighted:
      return "weighted";
    case PolicyKind::kLeastLatency:
      return "least-latency";
    case PolicyKind::kLeastCost:
      return "least-cost";
    case PolicyKind::kCostQuality:
      return "cost-quality";
    case PolicyKind::kAuto:
      return "auto";
  }
  return "priority";
}

namespace {

bool OneOf(const std::vector<std::string>& values, const std::string& value) {
  if (values.empty()) return true;
  for (const std::string& v : values) {
    if (v == value) return true;
  }
  return false;
}

}  // namespace

bool AttributionMatch::Matches(const v1::Attribution& a, int budget_used) const {
  if (budget_used_percent > 0 && budget_used < budget_used_percent) return false;
  if (!OneOf(team, a.team()) || !OneOf(feature, a.feature()) || !OneOf(customer, a.customer()) ||
      !OneOf(environment, a.environment()) || !OneOf(api_key_id, a.api_key_id())) {
    return false;
  }
  for (const auto& [tag, values] : tags) {
    auto it = a.tags().find(tag);
    if (it == a.tags().end() || !OneOf(values, it->second)) return false;
  }
  return true;
}

const TeamSettings* Catalog::FindTeam(absl::string_view team) const {
  auto it = team_by_name_.find(team);
  return it == team_by_name_.end() ? nullptr : &teams_[it->second];
}

const CatalogModel* Catalog::FindModel(absl::string_view name_or_alias) const {
  auto it = model_by_name_.find(name_or_alias);
  return it == model_by_name_.end() ? nullptr : &models_[it->second];
}

const v1::Deployment* Catalog::FindDeployment(absl::string_view id) const {
  auto it = deployment_by_id_.find(id);
  return it == deployment_by_id_.end() ? nullptr : &deployments_[it->second];
}

namespace {

constexpr int64_t kDefaultContextWindow = 128000;
constexpr int64_t kDefaultMaxOutputTokens = 16384;
constexpr int64_t kDefaultCacheTtlMs = 500;

// "0.05" -> 50000 parts per million; "0", "1", "1.0" are fine; at most 6 fractional digits.
std::optional<int64_t> ParsePpm(absl::string_view text) {
  const size_t dot = text.find('.');
  const absl::string_view whole = text.substr(0, dot);
  const absl::string_view frac = dot == absl::string_view::npos ? "" : text.substr(dot + 1);
  if (whole.empty() || whole.size() > 1 || frac.size() > 6) return std::nullopt;
  if (dot != absl::string_view::npos && frac.empty()) return std::nullopt;
  int64_t value = 0;
  for (char c : whole) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  int64_t fraction = 0;
  for (size_t i = 0; i < 6; ++i) {
    const char c = i < frac.size() ? frac[i] : '0';
    if (c < '0' || c > '9') return std::nullopt;
    fraction = fraction * 10 + (c - '0');
  }
  const int64_t ppm = value * 1000000 + fraction;
  if (ppm > 1000000) return std::nullopt;
  return ppm;
}

bool Contains(const std::vector<std::string>& values, absl::string_view value) {
  for (const std::string& v : values) {
    if (v == value) return true;
  }
  return false;
}

std::string JoinedList(const std::vector<std::string>& values) {
  return absl::StrJoin(values, ", ");
}

// Names and ids end up in URLs, metrics labels and logs: no whitespace or control characters.
bool IsValidName(absl::string_view name) {
  if (name.empty()) return false;
  for (unsigned char c : name) {
    if (c <= 0x20 || c == 0x7f) return false;
  }
  return true;
}

bool IsValidEnvName(absl::string_view name) {
  if (name.empty()) return false;
  if (name[0] >= '0' && name[0] <= '9') return false;
  for (char c : name) {
    const bool ok =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

// Exactly "YYYY-MM-DDTHH:MM:SSZ" (RFC 3339, UTC, whole seconds, years 1970-9999) -> unix ms.
// One spelling per instant, so the text can name a price card.
std::optional<int64_t> ParseRfc3339Utc(absl::string_view text) {
  if (text.size() != 20 || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' ||
      text[16] != ':' || text[19] != 'Z') {
    return std::nullopt;
  }
  auto number = [&](size_t at, size_t len) -> std::optional<int> {
    int value = 0;
    for (size_t i = at; i < at + len; ++i) {
      if (text[i] < '0' || text[i] > '9') return std::nullopt;
      value = value * 10 + (text[i] - '0');
    }
    return value;
  };
  const std::optional<int> year = number(0, 4), month = number(5, 2), day = number(8, 2),
                           hour = number(11, 2), minute = number(14, 2), second = number(17, 2);
  if (!year || !month || !day || !hour || !minute || !second || *year < 1970) return std::nullopt;
  const absl::CivilSecond civil(*year, *month, *day, *hour, *minute, *second);
  // CivilSecond normalises out-of-range fields (Feb 30 -> Mar 2): reject those.
  if (civil.year() != *year || civil.month() != *month || civil.day() != *day ||
      civil.hour() != *hour || civil.minute() != *minute || civil.second() != *second) {
    return std::nullopt;
  }
  return absl::ToUnixMillis(absl::FromCivil(civil, absl::UTCTimeZone()));
}

std::string FormatRfc3339Utc(int64_t unix_ms) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixMillis(unix_ms), absl::UTCTimeZone());
}

std::optional<std::string> ProcessGetenv(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

}  // namespace

// Turns the YAML tree into a Catalog. One instance per load; not thread-safe (it needn't be).
namespace {

// Where a second YAML document starts in `text`, if there is one. Throws YAML::Exception on
// malformed input, like YAML::Load.
class DocumentCounter final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
  std::vector<YAML::Mark> starts;
};

absl::optional<YAML::Mark> SecondDocument(absl::string_view text) {
  std::istringstream stream{std::string(text)};
  YAML::Parser parser(stream);
  DocumentCounter counter;
  for (int i = 0; i < 2 && parser.HandleNextDocument(counter); ++i) {
  }
  if (counter.starts.size() > 1) return counter.starts[1];
  return absl::nullopt;
}

}  // namespace

class CatalogParser {
 public:
  CatalogParser(absl::string_view source, const CatalogLoadOptions& options)
      : source_(source),
        options_(options),
        now_unix_ms_(options.now_unix_ms ? options.now_unix_ms()
                                         : absl::ToUnixMillis(absl::Now())) {}

  absl::StatusOr<std::shared_ptr<const Catalog>> Parse(absl::string_view text) {
    // yaml-cpp reports both syntax errors and misuse by throwing; nothing may escape the loader.
    try {
      return ParseOrThrow(text);
    } catch (const YAML::Exception& e) {
      return ErrorAt(e.mark, e.msg);
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(source_, ": ", e.what()));
    }
  }

 private:
  struct ParsedProvider {
    CatalogProvider provider;
    bool enabled = true;
  };
  struct ParsedDeployment {
    v1::Deployment deployment;
    bool has_base_url_override = false;
    size_t provider = 0;  // index into providers
  };
  struct ParsedPolicy {
    PolicyKind kind = PolicyKind::kPriority;
    LatencyMetric metric = LatencyMetric::kAuto;
    int64_t exploration_ppm = 50000;
    int64_t default_output_tokens = 1024;
    int32_t min_quality = 0;
    bool strict = false;
    std::vector<std::pair<size_t, int64_t>> weights;  // parsed deployment index -> weight
    std::optional<std::vector<size_t>> deployments;   // parsed deployment indexes
    std::optional<bool> cache;
    std::optional<int64_t> cache_ttl_ms;
    std::array<std::shared_ptr<ParsedPolicy>, kRequestClassCount> classes;
  };
  struct ParsedRule {
    RoutingRule rule;  // name, when and regions; allowed and policy resolved in Build
    std::optional<std::vector<size_t>> deployments;
    std::shared_ptr<ParsedPolicy> policy;
  };
  struct ParsedModel {
    CatalogModel model;
    std::vector<size_t> deployments;  // indexes into deployments
    std::shared_ptr<ParsedPolicy> policy;
    std::vector<ParsedRule> rules;
  };
  struct ParsedTeam {
    TeamSettings team;                               // name and allowed_regions
    std::optional<std::vector<std::string>> models;  // canonical model names
  };
  // Which deployments a policy or rule may name: a model's (parsed indexes), or any (nullptr).
  using DeploymentScope = const std::vector<size_t>*;

  absl::Status ErrorAt(const YAML::Mark& mark, absl::string_view msg) const {
    if (mark.is_null()) return absl::InvalidArgumentError(absl::StrCat(source_, ": ", msg));
    return absl::InvalidArgumentError(absl::StrCat(source_, ":", mark.line + 1, ": ", msg));
  }
  absl::Status Error(const YAML::Node& at, absl::string_view msg) const {
    return ErrorAt(at.IsDefined() ? at.Mark() : YAML::Mark::null_mark(), msg);
  }

  // `node` must be a map whose keys are unique and among `allowed`; `what` names it in errors.
  absl::Status CheckMap(const YAML::Node& node, absl::string_view what,
                        std::initializer_list<absl::string_view> allowed) const {
    if (!node.IsMap()) return Error(node, absl::StrCat(what, " must be a mapping"));
    absl::flat_hash_set<std::string> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      const YAML::Node key = it->first;
      if (!key.IsScalar()) return Error(key, absl::StrCat(what, ": keys must be plain strings"));
      const std::string& name = key.Scalar();
      bool known = false;
      for (absl::string_view a : allowed) known = known || a == name;
      if (!known) {
        return Error(key, absl::StrCat(what, ": unknown key '", name,
                                       "' (valid keys: ", absl::StrJoin(allowed, ", "), ")"));
      }
      if (!seen.insert(name).second) {
        return Error(key, absl::StrCat(what, ": duplicate key '", name, "'"));
      }
    }
    return absl::OkStatus();
  }

  // The scalar text under `map[key]`; nullopt when the key is absent or null.
  absl::StatusOr<std::optional<std::string>> OptionalScalar(const YAML::Node& map, const char* key,
                                                            absl::string_view what) const {
    const YAML::Node value = map[key];
    if (!value.IsDefined() || value.IsNull()) return std::optional<std::string>();
    if (!value.IsScalar()) {
      return Error(value, absl::StrCat(what, ": '", key, "' must be a scalar"));
    }
    return std::optional<std::string>(value.Scalar());
  }

  absl::StatusOr<std::string> RequiredScalar(const YAML::Node& map, const char* key,
                                             absl::string_view what) const {
    TOLLGATE_ASSIGN_OR_RETURN(std::optional<std::string> value, OptionalScalar(map, key, what));
    if (!value.has_value() || value->empty()) {
      const YAML::Node at = map[key];
      return Error(at.IsDefined() ? at : map, absl::StrCat(what, ": '", key, "' is required"));
    }
    return *std::move(value);
  }

  absl::StatusOr<std::string> Name(const YAML::Node& map, const char* key,
                                   absl::string_view what) const {
    TOLLGATE_ASSIGN_OR_RETURN(std::string name, RequiredScalar(map, key, what));
    if (!IsValidName(name)) {
      return Error(map[key], absl::StrCat(what, ": '", key,
                                          "' must not contain whitespace or "
                                          "control characters: '",
                                          name, "'"));
    }
    return name;
  }

  absl::StatusOr<std::string> EnvName(const YAML::Node& map, const char* key,
                                      absl::string_view what) const {
    TOLLGATE_ASSIGN_OR_RETURN(std::optional<std::string> name, OptionalScalar(map, key, what));
    if (!name.has_value()) return std::string();
    if (!IsValidEnvName(*name)) {
      return Error(map[key], absl::StrCat(what, ": '", key,
                                          "' must be an environment variable "
                                          "name ([A-Za-z_][A-Za-z0-9_]*), got '",
                                          *name, "'"));
    }
    return *std::move(name);
  }

  // A positive integer under `map[key]`, or `default_value` when absent.
  absl::StatusOr<int64_t> PositiveInt(const YAML::Node& map, const char* key,
                                      absl::string_view what, int64_t default_value) const {
    TOLLGATE_ASSIGN_OR_RETURN(std::optional<std::string> text, OptionalScalar(map, key, what));
    if (!text.has_value()) return default_value;
    int64_t value = 0;
    if (!absl::SimpleAtoi(*text, &value) || value <= 0) {
      return Error(map[key], absl::StrCat(what, ": '", key, "' must be a positive integer, got '",
                                          *text, "'"));
    }
    return value;
  }

  // An http(s) URL with a host and no query, fragment or credentials; trailing '/' removed.
  absl::StatusOr<std::string> BaseUrl(const YAML::Node& map, absl::string_view what) const {
    TOLLGATE_ASSIGN_OR_RETURN(std::string text, RequiredScalar(map, "base_url", what));
    const YAML::Node at = map["base_url"];
    auto parsed = boost::urls::parse_uri(text);
    if (parsed.has_error()) {
      return Error(at, absl::StrCat(what, ": 'base_url' is not a valid URL: '", text, "' (",
                                    parsed.error().message(), ")"));
    }
    const boost::urls::url_view& url = *parsed;
    if (url.scheme_id() != boost::urls::scheme::http &&
        url.scheme_id() != boost::urls::scheme::https) {
      return Error(
          at, absl::StrCat(what, ": 'base_url' must be an http or https URL, got '", text, "'"));
    }
    if (!url.has_authority() || url.encoded_host().empty()) {
      return Error(at, absl::StrCat(what, ": 'base_url' has no host: '", text, "'"));
    }
    if (url.has_userinfo() || url.has_query() || url.has_fragment()) {
      return Error(at, absl::StrCat(what,
                                    ": 'base_url' must not carry credentials, a query or a "
                                    "fragment: '",
                                    text, "'"));
    }
    while (!text.empty() && text.back() == '/') text.pop_back();
    return text;
  }

  // A list of scalars under `map[key]`; empty vector when absent.
  absl::StatusOr<std::vector<std::pair<std::string, YAML::Node>>> ScalarList(
      const YAML::Node& map, const char* key, absl::string_view what) const {
    std::vector<std::pair<std::string, YAML::Node>> out;
    const YAML::Node list = map[key];
    if (!list.IsDefined() || list.IsNull()) return out;
    if (!list.IsSequence()) {
      return Error(list, absl::StrCat(what, ": '", key, "' must be a list"));
    }
    for (size_t i = 0; i < list.size(); ++i) {
      const YAML::Node item = list[i];
      if (!item.IsScalar()) {
        return Error(item, absl::StrCat(what, ": every entry of '", key, "' must be a scalar"));
      }
      out.emplace_back(item.Scalar(), item);
    }
    return out;
  }

  absl::StatusOr<YAML::Node> Section(const YAML::Node& root, const char* key) const {
    const YAML::Node list = root[key];
    if (!list.IsDefined() || list.IsNull()) {
      return Error(root, absl::StrCat("catalog: '", key, "' is required"));
    }
    if (!list.IsSequence() || list.size() == 0) {
      return Error(list, absl::StrCat("catalog: '", key, "' must be a non-empty list"));
    }
    return list;
  }

  absl::Status ParseProvider(const YAML::Node& node, size_t index) {
    const std::string where = absl::StrCat("providers[", index, "]");
    TOLLGATE_RETURN_IF_ERROR(CheckMap(
        node, where, {"name", "dialect", "base_url", "api_key_env", "enabled_if_env", "options"}));
    ParsedProvider parsed;
    CatalogProvider& p = parsed.provider;
    TOLLGATE_ASSIGN_OR_RETURN(p.name, Name(node, "name", where));
    const std::string what = absl::StrCat("provider '", p.name, "'");
    if (provider_by_name_.contains(p.name)) {
      return Error(node["name"], absl::StrCat("duplicate provider name '", p.name, "'"));
    }
    TOLLGATE_ASSIGN_OR_RETURN(p.dialect, RequiredScalar(node, "dialect", what));
    if (!Contains(SupportedDialects(), p.dialect)) {
      return Error(node["dialect"],
                   absl::StrCat(what, ": unknown dialect '", p.dialect,
                                "' (valid: ", JoinedList(SupportedDialects()), ")"));
    }
    TOLLGATE_ASSIGN_OR_RETURN(p.base_url, BaseUrl(node, what));
    TOLLGATE_ASSIGN_OR_RETURN(p.api_key_env, EnvName(node, "api_key_env", what));
    TOLLGATE_ASSIGN_OR_RETURN(p.enabled_if_env, EnvName(node, "enabled_if_env", what));
    TOLLGATE_RETURN_IF_ERROR(ParseOptions(node["options"], what, &p.options));
    if (!p.enabled_if_env.empty()) {
      const std::optional<std::string> value =
          options_.getenv ? options_.getenv(p.enabled_if_env) : ProcessGetenv(p.enabled_if_env);
      parsed.enabled = value.has_value() && !value->empty();
    }
    provider_by_name_[p.name] = providers_.size();
    providers_.push_back(std::move(parsed));
    return absl::OkStatus();
  }

  // One price key of a card or tier: the scalar's own text goes to the exact decimal parser, so
  // no double ever sees a price.
  absl::StatusOr<std::optional<int64_t>> PriceKey(const YAML::Node& node, const char* key,
                                                  absl::string_view what) const {
    TOLLGATE_ASSIGN_OR_RETURN(std::optional<std::string> text, OptionalScalar(node, key, what));
    if (!text.has_value()) return std::optional<int64_t>();
    absl::StatusOr<int64_t> pico = ParseUsdPerMillionTokens(*text);
    if (!pico.ok()) {
      return Error(node[key], absl::StrCat(what, ": '", key, "': ", pico.status().message()));
    }
    return std::optional<int64_t>(*pico);
  }

  // Fills fields 1-6 of `prices` from the price keys of `node` (a card or a long_context tier).
  // input and output are required; cached_input and the cache writes default to input, reasoning
  // to 0 (billed as output). `explicit_keys` receives the keys that were given.
  absl::Status PriceFields(const YAML::Node& node, absl::string_view what, v1::UnitPrices* prices,
                           std::vector<std::string>* explicit_keys) const {
    std::optional<int64_t> values[6];
    static constexpr const char* kKeys[6] = {"input",          "cached_input", "cache_write_5m",
                                             "cache_write_1h", "output",       "reasoning"};
    for (size_t i = 0; i < 6; ++i) {
      TOLLGATE_ASSIGN_OR_RETURN(values[i], PriceKey(node, kKeys[i], what));
      if (values[i].has_value()) explicit_keys->push_back(kKeys[i]);
    }
    if (!values[0].has_value()) return Error(node, absl::StrCat(what, ": 'input' is required"));
    if (!values[4].has_value()) return Error(node, absl::StrCat(what, ": 'output' is required"));
    const int64_t input = *values[0];
    prices->set_input_pico(input);
    prices->set_cached_input_pico(values[1].value_or(input));
    prices->set_cache_write_5m_pico(values[2].value_or(input));
    prices->set_cache_write_1h_pico(values[3].value_or(input));
    prices->set_output_pico(*values[4]);
    prices->set_reasoning_pico(values[5].value_or(0));
    return absl::OkStatus();
  }

  // One price card: the price keys, an optional long_context tier, and (dated cards, i.e. list
  // entries) effective_from. `card_what` names the card in errors.
  absl::Status ParsePriceCard(const YAML::Node& node, absl::string_view card_what, bool dated,
                              int64_t context_window, v1::UnitPrices* prices) const {
    if (dated) {
      TOLLGATE_RETURN_IF_ERROR(
          CheckMap(node, card_what,
                   {"effective_from", "input", "cached_input", "cache_write_5m", "cache_write_1h",
                    "output", "reasoning", "long_context"}));
    } else {
      if (node.IsMap() && node["effective_from"].IsDefined()) {
        return Error(node["effective_from"],
                     absl::StrCat(card_what,
                                  ": 'effective_from' belongs to a list of dated price cards "
                                  "(prices: [{effective_from: ..., input: ..., ...}, ...])"));
      }
      TOLLGATE_RETURN_IF_ERROR(CheckMap(node, card_what,
                                        {"input", "cached_input", "cache_write_5m",
                                         "cache_write_1h", "output", "reasoning", "long_context"}));
    }
    std::vector<std::string> card_keys;
    TOLLGATE_RETURN_IF_ERROR(PriceFields(node, card_what, prices, &card_keys));
    const YAML::Node tier = node["long_context"];
    if (!tier.IsDefined() || tier.IsNull()) return absl::OkStatus();

    const std::string tier_what = absl::StrCat(card_what, " long_context");
    TOLLGATE_RETURN_IF_ERROR(CheckMap(tier, tier_what,
                                      {"above_input_tokens", "input", "cached_input",
                                       "cache_write_5m", "cache_write_1h", "output", "reasoning"}));
    if (!tier["above_input_tokens"].IsDefined() || tier["above_input_tokens"].IsNull()) {
      return Error(tier, absl::StrCat(tier_what, ": 'above_input_tokens' is required"));
    }
    TOLLGATE_ASSIGN_OR_RETURN(const int64_t threshold,
                              PositiveInt(tier, "above_input_tokens", tier_what, 0));
    if (threshold >= context_window) {
      return Error(tier["above_input_tokens"],
                   absl::StrCat(tier_what, ": 'above_input_tokens' (", threshold,
                                ") must be below the deployment's context_window (", context_window,
                                "), or the tier never applies"));
    }
    std::vector<std::string> tier_keys;
    TOLLGATE_RETURN_IF_ERROR(
        PriceFields(tier, tier_what, prices->mutable_long_context(), &tier_keys));
    // A tier inheriting a default the card overrides (e.g. cached_input = the tier's full input
    // price while the card gives a 90% cache discount) is almost surely a mistake: make the
    // tier say it.
    for (const std::string& key : card_keys) {
      if (!Contains(tier_keys, key)) {
        return Error(tier, absl::StrCat(tier_what, ": '", key,
                                        "' is required because the card sets it (a tier "
                                        "repeats every price its card gives)"));
      }
    }
    prices->set_long_context_threshold_tokens(threshold);
    return absl::OkStatus();
  }

  // `prices:` — one undated card (a mapping) or dated cards (a list, oldest first). Sets
  // d.prices (the card in effect at load) and, for a list, d.price_schedule.
  absl::Status ParsePrices(const YAML::Node& node, absl::string_view deployment_what,
                           v1::Deployment* d) const {
    const std::string what = absl::StrCat(deployment_what, " prices");
    if (!node.IsMap() && !node.IsSequence()) {
      return Error(node, absl::StrCat(what,
                                      " must be a mapping (one price card) or a non-empty "
                                      "list of dated price cards"));
    }
    if (node.IsMap()) {
      TOLLGATE_RETURN_IF_ERROR(
          ParsePriceCard(node, what, /*dated=*/false, d->context_window(), d->mutable_prices()));
      d->mutable_prices()->set_price_card_version(version_);
      return absl::OkStatus();
    }
    if (node.size() == 0) {
      return Error(node, absl::StrCat(what,
                                      " must be a mapping (one price card) or a non-empty "
                                      "list of dated price cards"));
    }
    std::string previous_text;
    for (size_t i = 0; i < node.size(); ++i) {
      const YAML::Node card = node[i];
      std::string card_what = absl::StrCat(what, "[", i, "]");
      if (!card.IsMap()) return Error(card, absl::StrCat(card_what, " must be a mapping"));
      TOLLGATE_ASSIGN_OR_RETURN(const std::string text,
                                RequiredScalar(card, "effective_from", card_what));
      const std::optional<int64_t> from_ms = ParseRfc3339Utc(text);
      if (!from_ms.has_value()) {
        return Error(card["effective_from"],
                     absl::StrCat(card_what,
                                  ": 'effective_from' must be an RFC 3339 UTC time "
                                  "like 2025-01-01T00:00:00Z, got '",
                                  text, "'"));
      }
      card_what = absl::StrCat(what, " card effective_from ", text);
      v1::DatedPrices* dated = d->add_price_schedule();
      if (i > 0 &&
          *from_ms <= d->price_schedule(static_cast<int>(i) - 1).effective_from_unix_ms()) {
        return Error(card["effective_from"],
                     absl::StrCat(card_what, ": not after the previous card's ", previous_text,
                                  " (cards must be listed oldest first, one per date)"));
      }
      dated->set_effective_from_unix_ms(*from_ms);
      TOLLGATE_RETURN_IF_ERROR(ParsePriceCard(card, card_what, /*dated=*/true, d->context_window(),
                                              dated->mutable_prices()));
      dated->mutable_prices()->set_price_card_version(absl::StrCat(version_, "@", text));
      previous_text = text;
    }
    // Every request needs a price: refuse a schedule that starts in the future. Once valid, a
    // file stays valid as time passes.
    if (d->price_schedule(0).effective_from_unix_ms() > now_unix_ms_) {
      return Error(
          node[0]["effective_from"],
          absl::StrCat(what, ": no card is in effect yet: the first effective_from (",
                       node[0]["effective_from"].Scalar(), ") is after the catalog's load time (",
                       FormatRfc3339Utc(now_unix_ms_),
                       "); add a card that starts at or before now"));
    }
    *d->mutable_prices() = PricesAt(*d, now_unix_ms_);
    return absl::OkStatus();
  }

  absl::Status ParseDeployment(const YAML::Node& node, size_t index) {
    const std::string where = absl::StrCat("deployments[", index, "]");
    TOLLGATE_RETURN_IF_ERROR(CheckMap(
        node, where,
        {"id", "provider", "upstream_model", "region", "base_url", "prices", "capabilities",
         "context_window", "max_output_tokens", "limits", "quality", "options"}));
    ParsedDeployment parsed;
    v1::Deployment& d = parsed.deployment;
    TOLLGATE_ASSIGN_OR_RETURN(std::string id, Name(node, "id", where));
    const std::string what = absl::StrCat("deployment '", id, "'");
    if (deployment_by_id_.contains(id)) {
      return Error(node["id"], absl::StrCat("duplicate deployment id '", id, "'"));
    }
    d.set_id(id);

    TOLLGATE_ASSIGN_OR_RETURN(std::string provider, RequiredScalar(node, "provider", what));
    auto provider_it = provider_by_name_.find(provider);
    if (provider_it == provider_by_name_.end()) {
      return Error(node["provider"],
                   absl::StrCat(what, " references unknown provider '", provider, "'"));
    }
    parsed.provider = provider_it->second;
    const CatalogProvider& p = providers_[parsed.provider].provider;
    d.set_provider(p.name);
    d.set_dialect(p.dialect);
    d.set_api_key_env(p.api_key_env);
    for (const auto& [key, value] : p.options) (*d.mutable_options())[key] = value;

    TOLLGATE_ASSIGN_OR_RETURN(std::string upstream, RequiredScalar(node, "upstream_model", what));
    d.set_upstream_model(std::move(upstream));

    TOLLGATE_ASSIGN_OR_RETURN(std::optional<std::string> region,
                              OptionalScalar(node, "region", what));
    if (region.has_value() && !IsValidName(*region)) {
      return Error(node["region"], absl::StrCat(what, ": 'region' must be a non-empty word"));
    }
    d.set_region(region.value_or("global"));

    if (node["base_url"].IsDefined() && !node["base_url"].IsNull()) {
      TOLLGATE_ASSIGN_OR_RETURN(std::string url, BaseUrl(node, what));
      d.set_base_url(std::move(url));
      parsed.has_base_url_override = true;
    } else {
      d.set_base_url(p.base_url);
    }

    const YAML::Node prices = node["prices"];
    if (!prices.IsDefined() || prices.IsNull()) {
      return Error(node, absl::StrCat(what, ": 'prices' is required"));
    }

    TOLLGATE_ASSIGN_OR_RETURN(auto capabilities, ScalarList(node, "capabilities", what));
    if (!node["capabilities"].IsDefined() || node["capabilities"].IsNull()) {
      d.add_capabilities("chat");
      d.add_capabilities("stream");
    } else if (capabilities.empty()) {
      return Error(node["capabilities"], absl::StrCat(what, ": 'capabilities' must not be empty"));
    }
    for (const auto& [capability, at] : capabilities) {
      if (!Contains(KnownCapabilities(), capability)) {
        return Error(at, absl::StrCat(what, ": unknown capability '", capability,
                                      "' (valid: ", JoinedList(KnownCapabilities()), ")"));
      }
      for (const std::string& existing : d.capabilities()) {
        if (existing == capability) {
          return Error(at, absl::StrCat(what, ": duplicate capability '", capability, "'"));
        }
      }
      d.add_capabilities(capability);
    }

    TOLLGATE_ASSIGN_OR_RETURN(const int64_t context_window,
                              PositiveInt(node, "context_window", what, kDefaultContextWindow));
    TOLLGATE_ASSIGN_OR_RETURN(const int64_t max_output, PositiveInt(node, "max_output_tokens", what,
                                                                    kDefaultMaxOutputTokens));
    if (max_output > context_window) {
      return Error(node, absl::StrCat(what, ": max_output_tokens (", max_output,
                                      ") exceeds context_window (", context_window, ")"));
    }
    d.set_context_window(context_window);
    d.set_max_output_tokens(max_output);
    // After context_window: a long-context tier must start below it.
    TOLLGATE_RETURN_IF_ERROR(ParsePrices(prices, what, &d));

    if (const YAML::Node limits = node["limits"]; limits.IsDefined() && !limits.IsNull()) {
      const std::string limits_what = absl::StrCat(what, " limits");
      TOLLGATE_RETURN_IF_ERROR(CheckMap(limits, limits_what, {"rpm", "tpm"}));
      TOLLGATE_ASSIGN_OR_RETURN(const int64_t rpm, PositiveInt(limits, "rpm", limits_what, 0));
      TOLLGATE_ASSIGN_OR_RETURN(const int64_t tpm, PositiveInt(limits, "tpm", limits_what, 0));
      d.mutable_limits()->set_rpm(rpm);
      d.mutable_limits()->set_tpm(tpm);
    }
    if (const YAML::Node quality = node["quality"]; quality.IsDefined() && !quality.IsNull()) {
      TOLLGATE_RETURN_IF_ERROR(ParseQuality(quality, what, &d));
    }
    std::map<std::string, std::string> overrides;
    TOLLGATE_RETURN_IF_ERROR(ParseOptions(node["options"], what, &overrides));
    for (const auto& [key, value] : overrides) (*d.mutable_options())[key] = value;
    regions_.insert(d.region());

    deployment_by_id_[id] = deployments_.size();
    deployments_.push_back(std::move(parsed));
    return absl::OkStatus();
  }

  // `options:` — a flat map of dialect options (string keys, scalar values).
  absl::Status ParseOptions(const YAML::Node& node, absl::string_view owner,
                            std::map<std::string, std::string>* out) const {
    if (!node.IsDefined() || node.IsNull()) return absl::OkStatus();
    const std::string what = absl::StrCat(owner, " options");
    if (!node.IsMap()) return Error(node, absl::StrCat(what, " must be a mapping"));
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar() || it->first.Scalar().empty()) {
        return Error(it->first, absl::StrCat(what, ": keys must be plain strings"));
      }
      if (!it->second.IsScalar()) {
        return Error(it->second,
                     absl::StrCat(what, ": '", it->first.Scalar(), "' must be a scalar"));
      }
      (*out)[it->first.Scalar()] = it->second.Scalar();
    }
    return absl::OkStatus();
  }

  absl::Status ParseQuality(const YAML::Node& node, absl::string_view deployment_what,
                            v1::Deployment* d) const {
    const std::string what = absl::StrCat(deployment_what, " quality");
    if (!node.IsMap()) return Error(node, absl::StrCat(what, " must be a mapping"));
    for (auto it = node.begin(); it != node.end(); ++it) {
      const YAML::Node key = it->first;
      const YAML::Node value = it->second;
      if (!key.IsScalar()) return Error(key, absl::StrCat(what, ": keys must be plain strings"));
      const std::string& name = key.Scalar();
      if (name != "default" && !ParseRequestClass(name).has_value()) {
        return Error(key, absl::StrCat(what, ": unknown class '", name, "' (valid: ", ClassNames(),
                                       ", default)"));
      }
      if (d->quality().contains(name)) {
        return Error(key, absl::StrCat(what, ": duplicate key '", name, "'"));
      }
      int64_t score = -1;
      if (!value.IsScalar() || !absl::SimpleAtoi(value.Scalar(), &score) || score < 0 ||
          score > 100) {
        return Error(value.IsDefined() ? value : key,
                     absl::StrCat(what, ": '", name, "' must be an integer from 0 to 100"));
      }
      (*d->mutable_quality())[name] = static_cast<int32_t>(score);
    }
    return absl::OkStatus();
  }

  static std::string ClassNames() {
    std::vector<std::string> names;
    for (RequestClass c : AllRequestClasses()) names.emplace_back(RequestClassName(c));
    return absl::StrJoin(names, ", ");
  }

  absl::StatusOr<std::optional<bool>> OptionalBool(const YAML::Node& map, const char* key,
                                                   absl::string_view what) const {
    TOLLGATE_ASSIGN_OR_RETURN(std::optional<std::string> text, OptionalScalar(map, key, what));
    if (!text.has_value()) return std::optional<bool>();
    if (*text == "true") return std::optional<bool>(true);
    if (*text == "false") return std::optional<bool>(false);
    return Error(map[key],
                 absl::StrCat(what, ": '", key, "' must be true or false, got '", *text, "'"));
  }

  absl::StatusOr<std::optional<int64_t>> OptionalIntInRange(const YAML::Node& map, const char* key,
                                                            absl::string_view what, int64_t min,
                                                            int64_t max) const {
    TOLLGATE_ASSIGN_OR_RETURN(std::optional<std::string> text, OptionalScalar(map, key, what));
    if (!text.has_value()) return std::optional<int64_t>();
    int64_t value = 0;
    if (!absl::SimpleAtoi(*text, &value) || value < min || value > max) {
      return Error(map[key], absl::StrCat(what, ": '", key, "' must be an integer from ", min,
                                          " to ", max, ", got '", *text, "'"));
    }
    return std::optional<int64_t>(value);
  }

  // Scalar or list of scalars: the values a condition accepts. Never empty.
  absl::StatusOr<std::vector<std::string>> ScalarOrList(const YAML::Node& node,
                                                        absl::string_view what) const {
    std::vector<std::string> values;
    if (node.IsScalar()) {
      values.push_back(node.Scalar());
      return values;
    }
    if (!node.IsSequence() || node.size() == 0) {
      return Error(node, absl::StrCat(what, " must be a string or a non-empty list of strings"));
    }
    for (size_t i = 0; i < node.size(); ++i) {
      if (!node[i].IsScalar()) {
        return Error(node[i], absl::StrCat(what, ": every entry must be a string"));
      }
      values.push_back(node[i].Scalar());
    }
    return values;
  }

  // A list of region names under `map[key]`, each the region of at least one deployment.
  absl::StatusOr<std::vector<std::string>> Regions(const YAML::Node& map, const char* key,
                                                   absl::string_view what) const {
    TOLLGATE_ASSIGN_OR_RETURN(auto list, ScalarList(map, key, what));
    if (list.empty()) {
      return Error(map[key], absl::StrCat(what, ": '", key, "' must be a non-empty list"));
    }
    std::vector<std::string> regions;
    for (const auto& [region, at] : list) {
      if (!regions_.contains(region)) {
        std::vector<std::string> known(regions_.begin(), regions_.end());
        std::sort(known.begin(), known.end());
        return Error(at, absl::StrCat(what, ": region '", region,
                                      "' is not the region of any deployment (regions: ",
                                      absl::StrJoin(known, ", "), ")"));
      }
      if (Contains(regions, region)) {
        return Error(at, absl::StrCat(what, ": region '", region, "' listed twice"));
      }
      regions.push_back(region);
    }
    return regions;
  }

  // A non-empty list of deployment ids under `map[key]`, each within `scope`.
  absl::StatusOr<std::vector<size_t>> DeploymentList(const YAML::Node& map, const char* key,
                                                     absl::string_view what, DeploymentScope scope,
                                                     absl::string_view scope_name) const {
    TOLLGATE_ASSIGN_OR_RETURN(auto list, ScalarList(map, key, what));
    if (list.empty()) {
      return Error(map[key], absl::StrCat(what, ": '", key, "' must be a non-empty list"));
    }
    std::vector<size_t> out;
    for (const auto& [id, at] : list) {
      TOLLGATE_ASSIGN_OR_RETURN(size_t index, DeploymentIn(id, at, what, scope, scope_name));
      if (std::find(out.begin(), out.end(), index) != out.end()) {
        return Error(at, absl::StrCat(what, ": deployment '", id, "' listed twice"));
      }
      out.push_back(index);
    }
    return out;
  }

  absl::StatusOr<size_t> DeploymentIn(const std::string& id, const YAML::Node& at,
                                      absl::string_view what, DeploymentScope scope,
                                      absl::string_view scope_name) const {
    auto it = deployment_by_id_.find(id);
    if (it == deployment_by_id_.end()) {
      return Error(at, absl::StrCat(what, " references unknown deployment '", id, "'"));
    }
    if (scope != nullptr && std::find(scope->begin(), scope->end(), it->second) == scope->end()) {
      return Error(
          at, absl::StrCat(what, ": deployment '", id, "' is not a deployment of ", scope_name));
    }
    return it->second;
  }

  // A policy block: a policy name ("least-cost") or a mapping with `type` and its options.
  // `scope`: the deployments it may name; `in_class`: it is the policy of an `auto` class.
  absl::StatusOr<std::shared_ptr<ParsedPolicy>> ParsePolicy(const YAML::Node& node,
                                                            const std::string& what,
                                                            DeploymentScope scope,
                                                            absl::string_view scope_name,
                                                            bool in_class) const {
    auto policy = std::make_shared<ParsedPolicy>();
    std::string type;
    if (node.IsScalar()) {
      type = node.Scalar();
    } else if (node.IsMap()) {
      TOLLGATE_ASSIGN_OR_RETURN(type, RequiredScalar(node, "type", what));
    } else {
      return Error(node, absl::StrCat(what, " must be a policy name or a mapping with 'type'"));
    }
    const YAML::Node type_at = node.IsScalar() ? node : node["type"];
    bool known = false;
    for (PolicyKind kind : {PolicyKind::kPriority, PolicyKind::kWeighted, PolicyKind::kLeastLatency,
                            PolicyKind::kLeastCost, PolicyKind::kCostQuality, PolicyKind::kAuto}) {
      if (PolicyKindName(kind) == type) {
        policy->kind = kind;
        known = true;
      }
    }
    if (!known) {
      return Error(type_at, absl::StrCat(what, ": unknown policy type '", type,
                                         "' (valid: priority, weighted, least-latency, "
                                         "least-cost, cost-quality, auto)"));
    }
    if (in_class && policy->kind == PolicyKind::kAuto) {
      return Error(type_at, absl::StrCat(what, ": an auto class cannot use policy 'auto'"));
    }
    if (policy->kind == PolicyKind::kWeighted && node.IsScalar()) {
      return Error(node, absl::StrCat(what, ": policy 'weighted' needs 'weights'"));
    }
    if (policy->kind == PolicyKind::kCostQuality && node.IsScalar()) {
      return Error(node, absl::StrCat(what, ": policy 'cost-quality' needs 'min_quality'"));
    }
    if (node.IsScalar()) return policy;

    std::vector<absl::string_view> allowed = {"type", "cache", "cache_ttl_ms"};
    if (in_class) allowed.push_back("deployments");
    switch (policy->kind) {
      case PolicyKind::kWeighted:
        allowed.push_back("weights");
        break;
      case PolicyKind::kLeastLatency:
        allowed.insert(allowed.end(), {"exploration", "metric"});
        break;
      case PolicyKind::kLeastCost:
        allowed.push_back("default_output_tokens");
        break;
      case PolicyKind::kCostQuality:
        allowed.insert(allowed.end(), {"min_quality", "strict", "default_output_tokens"});
        break;
      case PolicyKind::kAuto:
        allowed.push_back("classes");
        break;
      case PolicyKind::kPriority:
        break;
    }
    TOLLGATE_RETURN_IF_ERROR(CheckMapKeys(node, absl::StrCat(what, " (", type, ")"), allowed));

    TOLLGATE_ASSIGN_OR_RETURN(policy->cache, OptionalBool(node, "cache", what));
    TOLLGATE_ASSIGN_OR_RETURN(policy->cache_ttl_ms,
                              OptionalIntInRange(node, "cache_ttl_ms", what, 0, 3600000));
    if (policy->cache == std::optional<bool>(false) && policy->cache_ttl_ms.has_value()) {
      return Error(node["cache_ttl_ms"],
                   absl::StrCat(what, ": 'cache_ttl_ms' makes no sense with 'cache: false'"));
    }
    if (node["deployments"].IsDefined() && !node["deployments"].IsNull()) {
      TOLLGATE_ASSIGN_OR_RETURN(policy->deployments,
                                DeploymentList(node, "deployments", what, scope, scope_name));
    }
    TOLLGATE_ASSIGN_OR_RETURN(
        std::optional<int64_t> output_tokens,
        OptionalIntInRange(node, "default_output_tokens", what, 1, 100000000));
    if (output_tokens.has_value()) policy->default_output_tokens = *output_tokens;

    if (policy->kind == PolicyKind::kWeighted) {
      const YAML::Node weights = node["weights"];
      if (!weights.IsDefined() || weights.IsNull()) {
        return Error(node, absl::StrCat(what, ": policy 'weighted' needs 'weights'"));
      }
      if (!weights.IsMap() || weights.size() == 0) {
        return Error(weights, absl::StrCat(what,
                                           ": 'weights' must be a non-empty mapping of "
                                           "deployment id to weight"));
      }
      bool positive = false;
      for (auto it = weights.begin(); it != weights.end(); ++it) {
        const YAML::Node key = it->first;
        if (!key.IsScalar()) return Error(key, absl::StrCat(what, ": weights: bad key"));
        TOLLGATE_ASSIGN_OR_RETURN(
            size_t index,
            DeploymentIn(key.Scalar(), key, absl::StrCat(what, " weights"), scope, scope_name));
        for (const auto& [existing, w] : policy->weights) {
          if (existing == index) {
            return Error(key, absl::StrCat(what, ": weights: duplicate key '", key.Scalar(), "'"));
          }
        }
        int64_t weight = 0;
        const YAML::Node value = it->second;
        if (!value.IsScalar() || !absl::SimpleAtoi(value.Scalar(), &weight) || weight < 0 ||
            weight > 1000000) {
          return Error(value.IsDefined() ? value : key,
                       absl::StrCat(what, ": weight of '", key.Scalar(),
                                    "' must be an integer from 0 to 1000000"));
        }
        positive = positive || weight > 0;
        policy->weights.emplace_back(index, weight);
      }
      if (!positive) {
        return Error(weights, absl::StrCat(what, ": at least one weight must be positive"));
      }
    }
    if (policy->kind == PolicyKind::kLeastLatency) {
      TOLLGATE_ASSIGN_OR_RETURN(std::optional<std::string> exploration,
                                OptionalScalar(node, "exploration", what));
      if (exploration.has_value()) {
        std::optional<int64_t> ppm = ParsePpm(*exploration);
        if (!ppm.has_value()) {
          return Error(node["exploration"],
                       absl::StrCat(what,
                                    ": 'exploration' must be a decimal from 0 to 1 with at "
                                    "most 6 fractional digits, got '",
                                    *exploration, "'"));
        }
        policy->exploration_ppm = *ppm;
      }
      TOLLGATE_ASSIGN_OR_RETURN(std::optional<std::string> metric,
                                OptionalScalar(node, "metric", what));
      if (metric.has_value()) {
        if (*metric == "auto") {
          policy->metric = LatencyMetric::kAuto;
        } else if (*metric == "latency") {
          policy->metric = LatencyMetric::kLatency;
        } else if (*metric == "ttft") {
          policy->metric = LatencyMetric::kTtft;
        } else {
          return Error(node["metric"], absl::StrCat(what, ": unknown metric '", *metric,
                                                    "' (valid: auto, latency, ttft)"));
        }
      }
    }
    if (policy->kind == PolicyKind::kCostQuality) {
      TOLLGATE_ASSIGN_OR_RETURN(std::optional<int64_t> min_quality,
                                OptionalIntInRange(node, "min_quality", what, 0, 100));
      if (!min_quality.has_value()) {
        return Error(node, absl::StrCat(what, ": policy 'cost-quality' needs 'min_quality'"));
      }
      policy->min_quality = static_cast<int32_t>(*min_quality);
      TOLLGATE_ASSIGN_OR_RETURN(std::optional<bool> strict, OptionalBool(node, "strict", what));
      policy->strict = strict.value_or(false);
    }
    if (policy->kind == PolicyKind::kAuto) {
      const YAML::Node classes = node["classes"];
      if (classes.IsDefined() && !classes.IsNull()) {
        if (!classes.IsMap()) {
          return Error(classes, absl::StrCat(what,
                                             ": 'classes' must be a mapping of class to "
                                             "policy"));
        }
        std::shared_ptr<ParsedPolicy> fallback;
        absl::flat_hash_set<std::string> seen;
        for (auto it = classes.begin(); it != classes.end(); ++it) {
          const YAML::Node key = it->first;
          if (!key.IsScalar()) return Error(key, absl::StrCat(what, ": classes: bad key"));
          const std::string& name = key.Scalar();
          std::optional<RequestClass> c = ParseRequestClass(name);
          if (!c.has_value() && name != "default") {
            return Error(key, absl::StrCat(what, ": unknown class '", name,
                                           "' (valid: ", ClassNames(), ", default)"));
          }
          if (!seen.insert(name).second) {
            return Error(key, absl::StrCat(what, ": classes: duplicate key '", name, "'"));
          }
          TOLLGATE_ASSIGN_OR_RETURN(
              std::shared_ptr<ParsedPolicy> class_policy,
              ParsePolicy(it->second, absl::StrCat(what, " class '", name, "'"), scope, scope_name,
                          /*in_class=*/true));
          if (c.has_value()) {
            policy->classes[static_cast<size_t>(*c)] = std::move(class_policy);
          } else {
            fallback = std::move(class_policy);
          }
        }
        for (auto& class_policy : policy->classes) {
          if (class_policy == nullptr) class_policy = fallback;
        }
      }
    }
    return policy;
  }

  // Like CheckMap, with the allowed keys in a vector.
  absl::Status CheckMapKeys(const YAML::Node& node, absl::string_view what,
                            const std::vector<absl::string_view>& allowed) const {
    if (!node.IsMap()) return Error(node, absl::StrCat(what, " must be a mapping"));
    absl::flat_hash_set<std::string> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      const YAML::Node key = it->first;
      if (!key.IsScalar()) return Error(key, absl::StrCat(what, ": keys must be plain strings"));
      const std::string& name = key.Scalar();
      if (std::find(allowed.begin(), allowed.end(), absl::string_view(name)) == allowed.end()) {
        return Error(key, absl::StrCat(what, ": unknown key '", name,
                                       "' (valid keys: ", absl::StrJoin(allowed, ", "), ")"));
      }
      if (!seen.insert(name).second) {
        return Error(key, absl::StrCat(what, ": duplicate key '", name, "'"));
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<AttributionMatch> ParseWhen(const YAML::Node& node,
                                             const std::string& what) const {
    TOLLGATE_RETURN_IF_ERROR(
        CheckMap(node, what,
                 {"team", "feature", "customer", "environment", "api_key_id", "tags",
                  "budget_used_percent"}));
    if (node.size() == 0) {
      return Error(node, absl::StrCat(what, " must name at least one condition"));
    }
    AttributionMatch match;
    const std::pair<const char*, std::vector<std::string>*> fields[] = {
        {"team", &match.team},
        {"feature", &match.feature},
        {"customer", &match.customer},
        {"environment", &match.environment},
        {"api_key_id", &match.api_key_id}};
    for (const auto& [key, out] : fields) {
      const YAML::Node value = node[key];
      if (!value.IsDefined() || value.IsNull()) continue;
      TOLLGATE_ASSIGN_OR_RETURN(*out, ScalarOrList(value, absl::StrCat(what, " ", key)));
    }
    if (const YAML::Node budget = node["budget_used_percent"];
        budget.IsDefined() && !budget.IsNull()) {
      int percent = 0;
      if (!budget.IsScalar() || !absl::SimpleAtoi(budget.Scalar(), &percent) || percent < 1 ||
          percent > 1000) {
        return Error(budget, absl::StrCat(what, " budget_used_percent must be a whole number "
                                                "from 1 to 1000"));
      }
      match.budget_used_percent = percent;
    }
    const YAML::Node tags = node["tags"];
    if (tags.IsDefined() && !tags.IsNull()) {
      if (!tags.IsMap() || tags.size() == 0) {
        return Error(tags, absl::StrCat(what, " tags must be a non-empty mapping"));
      }
      for (auto it = tags.begin(); it != tags.end(); ++it) {
        if (!it->first.IsScalar()) return Error(it->first, absl::StrCat(what, " tags: bad key"));
        const std::string tag = it->first.Scalar();
        for (const auto& [existing, values] : match.tags) {
          if (existing == tag) {
            return Error(it->first, absl::StrCat(what, " tags: duplicate key '", tag, "'"));
          }
        }
        TOLLGATE_ASSIGN_OR_RETURN(std::vector<std::string> values,
                                  ScalarOrList(it->second, absl::StrCat(what, " tag '", tag, "'")));
        match.tags.emplace_back(tag, std::move(values));
      }
    }
    return match;
  }

  // One entry of a `rules` list. `scope`: the deployments it may name (nullptr: any).
  absl::StatusOr<ParsedRule> ParseRule(const YAML::Node& node, const std::string& where,
                                       DeploymentScope scope, absl::string_view scope_name,
                                       absl::flat_hash_set<std::string>& names) const {
    TOLLGATE_RETURN_IF_ERROR(
        CheckMap(node, where, {"name", "when", "regions", "deployments", "policy"}));
    ParsedRule parsed;
    TOLLGATE_ASSIGN_OR_RETURN(parsed.rule.name, Name(node, "name", where));
    const std::string what = absl::StrCat("rule '", parsed.rule.name, "'");
    if (!names.insert(parsed.rule.name).second) {
      return Error(node["name"], absl::StrCat("duplicate rule name '", parsed.rule.name, "'"));
    }
    const YAML::Node when = node["when"];
    if (!when.IsDefined() || when.IsNull()) {
      return Error(node, absl::StrCat(what, ": 'when' is required"));
    }
    TOLLGATE_ASSIGN_OR_RETURN(parsed.rule.when, ParseWhen(when, absl::StrCat(what, " when")));
    bool acts = false;
    if (node["regions"].IsDefined() && !node["regions"].IsNull()) {
      TOLLGATE_ASSIGN_OR_RETURN(parsed.rule.regions, Regions(node, "regions", what));
      acts = true;
    }
    if (node["deployments"].IsDefined() && !node["deployments"].IsNull()) {
      TOLLGATE_ASSIGN_OR_RETURN(parsed.deployments,
                                DeploymentList(node, "deployments", what, scope, scope_name));
      acts = true;
    }
    if (node["policy"].IsDefined() && !node["policy"].IsNull()) {
      TOLLGATE_ASSIGN_OR_RETURN(parsed.policy,
                                ParsePolicy(node["policy"], absl::StrCat(what, " policy"), scope,
                                            scope_name, /*in_class=*/false));
      acts = true;
    }
    if (!acts) {
      return Error(node, absl::StrCat(what,
                                      ": needs at least one of 'regions', 'deployments', "
                                      "'policy'"));
    }
    return parsed;
  }

  absl::StatusOr<std::vector<ParsedRule>> ParseRules(const YAML::Node& list,
                                                     const std::string& what, DeploymentScope scope,
                                                     absl::string_view scope_name) const {
    std::vector<ParsedRule> rules;
    if (!list.IsSequence()) return Error(list, absl::StrCat(what, " must be a list"));
    absl::flat_hash_set<std::string> names;
    for (size_t i = 0; i < list.size(); ++i) {
      TOLLGATE_ASSIGN_OR_RETURN(ParsedRule rule, ParseRule(list[i], absl::StrCat(what, "[", i, "]"),
                                                           scope, scope_name, names));
      rules.push_back(std::move(rule));
    }
    return rules;
  }

  absl::Status ParseTeam(const YAML::Node& node, size_t index) {
    const std::string where = absl::StrCat("teams[", index, "]");
    TOLLGATE_RETURN_IF_ERROR(CheckMap(node, where, {"name", "allowed_regions", "allowed_models"}));
    ParsedTeam parsed;
    TOLLGATE_ASSIGN_OR_RETURN(parsed.team.name, Name(node, "name", where));
    const std::string what = absl::StrCat("team '", parsed.team.name, "'");
    for (const ParsedTeam& existing : teams_) {
      if (existing.team.name == parsed.team.name) {
        return Error(node["name"], absl::StrCat("duplicate team name '", parsed.team.name, "'"));
      }
    }
    bool restricts = false;
    if (node["allowed_regions"].IsDefined() && !node["allowed_regions"].IsNull()) {
      TOLLGATE_ASSIGN_OR_RETURN(parsed.team.allowed_regions,
                                Regions(node, "allowed_regions", what));
      restricts = true;
    }
    if (node["allowed_models"].IsDefined() && !node["allowed_models"].IsNull()) {
      TOLLGATE_ASSIGN_OR_RETURN(auto list, ScalarList(node, "allowed_models", what));
      if (list.empty()) {
        return Error(node["allowed_models"],
                     absl::StrCat(what, ": 'allowed_models' must be a non-empty list"));
      }
      std::vector<std::string> models;
      for (const auto& [name, at] : list) {
        auto it = model_names_.find(name);
        if (it == model_names_.end()) {
          return Error(at, absl::StrCat(what, " references unknown model '", name, "'"));
        }
        if (!Contains(models, it->second)) models.push_back(it->second);
      }
      parsed.models = std::move(models);
      restricts = true;
    }
    if (!restricts) {
      return Error(node, absl::StrCat(what, ": needs 'allowed_regions' and/or 'allowed_models'"));
    }
    teams_.push_back(std::move(parsed));
    return absl::OkStatus();
  }

  absl::Status ParseClassifier(const YAML::Node& node) {
    const std::string what = "classifier";
    TOLLGATE_RETURN_IF_ERROR(CheckMap(
        node, what, {"long_input_tokens", "simple_max_input_tokens", "simple_max_output_tokens"}));
    TOLLGATE_ASSIGN_OR_RETURN(
        classifier_.long_input_tokens,
        PositiveInt(node, "long_input_tokens", what, classifier_.long_input_tokens));
    TOLLGATE_ASSIGN_OR_RETURN(
        classifier_.simple_max_input_tokens,
        PositiveInt(node, "simple_max_input_tokens", what, classifier_.simple_max_input_tokens));
    TOLLGATE_ASSIGN_OR_RETURN(
        classifier_.simple_max_output_tokens,
        PositiveInt(node, "simple_max_output_tokens", what, classifier_.simple_max_output_tokens));
    if (classifier_.simple_max_input_tokens >= classifier_.long_input_tokens) {
      return Error(
          node,
          absl::StrCat(what, ": simple_max_input_tokens (", classifier_.simple_max_input_tokens,
                       ") must be below long_input_tokens (", classifier_.long_input_tokens, ")"));
    }
    return absl::OkStatus();
  }

  absl::Status ParseRouting(const YAML::Node& node) {
    TOLLGATE_RETURN_IF_ERROR(CheckMap(node, "routing", {"cache_ttl_ms"}));
    TOLLGATE_ASSIGN_OR_RETURN(std::optional<int64_t> ttl,
                              OptionalIntInRange(node, "cache_ttl_ms", "routing", 0, 3600000));
    if (ttl.has_value()) default_cache_ttl_ms_ = *ttl;
    return absl::OkStatus();
  }

  absl::Status ParseModel(const YAML::Node& node, size_t index) {
    const std::string where = absl::StrCat("models[", index, "]");
    TOLLGATE_RETURN_IF_ERROR(
        CheckMap(node, where, {"name", "aliases", "owned_by", "deployments", "policy", "rules"}));
    ParsedModel parsed;
    CatalogModel& m = parsed.model;
    TOLLGATE_ASSIGN_OR_RETURN(m.name, Name(node, "name", where));
    const std::string what = absl::StrCat("model '", m.name, "'");
    auto claim = [&](const std::string& name, const YAML::Node& at) -> absl::Status {
      if (!IsValidName(name)) {
        return Error(at, absl::StrCat(what, ": alias must not be empty or contain whitespace: '",
                                      name, "'"));
      }
      auto [it, inserted] = model_names_.emplace(name, m.name);
      if (!inserted) {
        return Error(at, absl::StrCat("model name or alias '", name, "' is already used by model '",
                                      it->second, "'"));
      }
      return absl::OkStatus();
    };
    TOLLGATE_RETURN_IF_ERROR(claim(m.name, node["name"]));
    TOLLGATE_ASSIGN_OR_RETURN(auto aliases, ScalarList(node, "aliases", what));
    for (const auto& [alias, at] : aliases) {
      TOLLGATE_RETURN_IF_ERROR(claim(alias, at));
      m.aliases.push_back(alias);
    }
    TOLLGATE_ASSIGN_OR_RETURN(std::optional<std::string> owned_by,
                              OptionalScalar(node, "owned_by", what));
    m.owned_by = owned_by.has_value() && !owned_by->empty() ? *owned_by : "tollgate";

    const YAML::Node list = node["deployments"];
    if (!list.IsDefined() || list.IsNull()) {
      return Error(node, absl::StrCat(what, ": 'deployments' is required"));
    }
    TOLLGATE_ASSIGN_OR_RETURN(auto deployments, ScalarList(node, "deployments", what));
    if (deployments.empty()) {
      return Error(list, absl::StrCat(what, ": 'deployments' must not be empty"));
    }
    for (const auto& [id, at] : deployments) {
      auto it = deployment_by_id_.find(id);
      if (it == deployment_by_id_.end()) {
        return Error(at, absl::StrCat(what, " references unknown deployment '", id, "'"));
      }
      for (size_t existing : parsed.deployments) {
        if (existing == it->second) {
          return Error(at, absl::StrCat(what, " lists deployment '", id, "' twice"));
        }
      }
      parsed.deployments.push_back(it->second);
    }
    const std::string scope_name = absl::StrCat("model '", m.name, "'");
    if (node["policy"].IsDefined() && !node["policy"].IsNull()) {
      TOLLGATE_ASSIGN_OR_RETURN(parsed.policy,
                                ParsePolicy(node["policy"], absl::StrCat(what, " policy"),
                                            &parsed.deployments, scope_name, /*in_class=*/false));
    } else {
      parsed.policy = std::make_shared<ParsedPolicy>();
    }
    if (node["rules"].IsDefined() && !node["rules"].IsNull()) {
      TOLLGATE_ASSIGN_OR_RETURN(
          parsed.rules,
          ParseRules(node["rules"], absl::StrCat(what, " rules"), &parsed.deployments, scope_name));
    }
    models_.push_back(std::move(parsed));
    return absl::OkStatus();
  }

  absl::StatusOr<std::shared_ptr<const Catalog>> ParseOrThrow(absl::string_view text) {
    version_ = ContentHash(text);
    // A second "---" document would be ignored by YAML::Load without a word, so count the
    // documents first. Not with YAML::LoadAll: yaml-cpp 0.7 loops forever, allocating, on some
    // malformed input (found by config_fuzz), so at most two documents are looked at.
    if (absl::optional<YAML::Mark> second = SecondDocument(text)) {
      return ErrorAt(*second, "catalog must be a single YAML document");
    }
    const YAML::Node root = YAML::Load(std::string(text));
    if (!root.IsDefined() || root.IsNull()) {
      return absl::InvalidArgumentError(absl::StrCat(source_, ":1: catalog is empty"));
    }
    TOLLGATE_RETURN_IF_ERROR(CheckMap(
        root, "catalog",
        {"providers", "deployments", "models", "rules", "teams", "classifier", "routing"}));
    TOLLGATE_ASSIGN_OR_RETURN(const YAML::Node providers, Section(root, "providers"));
    TOLLGATE_ASSIGN_OR_RETURN(const YAML::Node deployments, Section(root, "deployments"));
    TOLLGATE_ASSIGN_OR_RETURN(const YAML::Node models, Section(root, "models"));
    for (size_t i = 0; i < providers.size(); ++i) {
      TOLLGATE_RETURN_IF_ERROR(ParseProvider(providers[i], i));
    }
    for (size_t i = 0; i < deployments.size(); ++i) {
      TOLLGATE_RETURN_IF_ERROR(ParseDeployment(deployments[i], i));
    }
    for (size_t i = 0; i < models.size(); ++i) {
      TOLLGATE_RETURN_IF_ERROR(ParseModel(models[i], i));
    }
    if (const YAML::Node rules = root["rules"]; rules.IsDefined() && !rules.IsNull()) {
      TOLLGATE_ASSIGN_OR_RETURN(rules_, ParseRules(rules, "rules", nullptr, ""));
    }
    if (const YAML::Node teams = root["teams"]; teams.IsDefined() && !teams.IsNull()) {
      if (!teams.IsSequence()) return Error(teams, "catalog: 'teams' must be a list");
      for (size_t i = 0; i < teams.size(); ++i) {
        TOLLGATE_RETURN_IF_ERROR(ParseTeam(teams[i], i));
      }
    }
    if (const YAML::Node node = root["classifier"]; node.IsDefined() && !node.IsNull()) {
      TOLLGATE_RETURN_IF_ERROR(ParseClassifier(node));
    }
    if (const YAML::Node node = root["routing"]; node.IsDefined() && !node.IsNull()) {
      TOLLGATE_RETURN_IF_ERROR(ParseRouting(node));
    }
    return Build();
  }

  // The whole file is valid: keep what is enabled.
  absl::StatusOr<std::shared_ptr<const Catalog>> Build() {
    std::shared_ptr<Catalog> catalog(new Catalog());
    catalog->version_ = version_;
    catalog->source_ = source_;
    catalog->loaded_at_unix_ = now_unix_ms_ / 1000;
    for (const ParsedProvider& p : providers_) {
      if (p.enabled) {
        catalog->providers_.push_back(p.provider);
      } else {
        catalog->notes_.push_back(absl::StrCat("provider '", p.provider.name,
                                               "' skipped with its deployments: environment "
                                               "variable ",
                                               p.provider.enabled_if_env, " is unset or empty"));
      }
    }
    // Map from parsed deployment index to catalog index; reserve first so pointers stay put.
    std::vector<std::optional<size_t>> kept(deployments_.size());
    catalog->deployments_.reserve(deployments_.size());
    for (size_t i = 0; i < deployments_.size(); ++i) {
      if (!providers_[deployments_[i].provider].enabled) continue;
      kept[i] = catalog->deployments_.size();
      catalog->deployment_by_id_[deployments_[i].deployment.id()] = catalog->deployments_.size();
      catalog->deployments_.push_back(deployments_[i].deployment);
    }
    catalog->classifier_ = classifier_;
    catalog->default_cache_ttl_ms_ = default_cache_ttl_ms_;
    catalog->quality_.reserve(catalog->deployments_.size());
    for (const v1::Deployment& d : catalog->deployments_) {
      std::array<int32_t, kRequestClassCount> quality;
      auto fallback = d.quality().find("default");
      quality.fill(fallback == d.quality().end() ? -1 : fallback->second);
      for (RequestClass c : AllRequestClasses()) {
        auto it = d.quality().find(std::string(RequestClassName(c)));
        if (it != d.quality().end()) quality[static_cast<size_t>(c)] = it->second;
      }
      catalog->quality_.push_back(quality);
    }
    const Resolver resolver{kept, catalog->deployments_.size()};

    for (ParsedRule& rule : rules_) {
      catalog->rules_.push_back(ResolveRule(rule, resolver, default_cache_ttl_ms_));
    }
    for (ParsedModel& parsed : models_) {
      CatalogModel model = std::move(parsed.model);
      for (size_t d : parsed.deployments) {
        if (kept[d].has_value()) model.deployments.push_back(&catalog->deployments_[*kept[d]]);
      }
      if (model.deployments.empty()) {
        catalog->notes_.push_back(
            absl::StrCat("model '", model.name, "' dropped: none of its deployments is enabled"));
        continue;
      }
      model.policy = ResolvePolicy(*parsed.policy, resolver, default_cache_ttl_ms_);
      for (ParsedRule& rule : parsed.rules) {
        model.rules.push_back(ResolveRule(rule, resolver, default_cache_ttl_ms_));
      }
      model.scope_fields = ScopeFields(catalog->rules_, model.rules);
      model.index = catalog->models_.size();
      catalog->model_by_name_[model.name] = model.index;
      for (const std::string& alias : model.aliases) catalog->model_by_name_[alias] = model.index;
      catalog->models_.push_back(std::move(model));
    }
    if (catalog->models_.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source_, ": no model is left with an enabled deployment (",
                       absl::StrJoin(catalog->notes_, "; "), ")"));
    }
    for (ParsedTeam& parsed : teams_) {
      TeamSettings team = std::move(parsed.team);
      if (parsed.models.has_value()) {
        // A dropped model stays forbidden; an empty vector would mean "any model".
        team.allowed_models.assign(catalog->models_.size(), false);
        for (const std::string& name : *parsed.models) {
          auto it = catalog->model_by_name_.find(name);
          if (it != catalog->model_by_name_.end()) team.allowed_models[it->second] = true;
        }
      }
      catalog->team_by_name_[team.name] = catalog->teams_.size();
      catalog->teams_.push_back(std::move(team));
    }
    return std::shared_ptr<const Catalog>(std::move(catalog));
  }

  // Maps parsed deployment indexes to catalog indexes (disabled deployments have none).
  struct Resolver {
    const std::vector<std::optional<size_t>>& kept;
    size_t count;  // catalog deployments

    std::vector<bool> Allowed(const std::vector<size_t>& parsed) const {
      std::vector<bool> allowed(count, false);
      for (size_t d : parsed) {
        if (kept[d].has_value()) allowed[*kept[d]] = true;
      }
      return allowed;
    }
  };

  static std::shared_ptr<const PolicySpec> ResolvePolicy(const ParsedPolicy& parsed,
                                                         const Resolver& resolver,
                                                         int64_t inherited_ttl_ms) {
    auto spec = std::make_shared<PolicySpec>();
    spec->kind = parsed.kind;
    spec->metric = parsed.metric;
    spec->exploration_ppm = parsed.exploration_ppm;
    spec->default_output_tokens = parsed.default_output_tokens;
    spec->min_quality = parsed.min_quality;
    spec->strict = parsed.strict;
    if (parsed.cache == std::optional<bool>(false)) {
      spec->cache_ttl_ms = 0;
    } else {
      spec->cache_ttl_ms = parsed.cache_ttl_ms.value_or(inherited_ttl_ms);
    }
    if (parsed.kind == PolicyKind::kWeighted) {
      spec->weights.assign(resolver.count, 0);
      for (const auto& [d, weight] : parsed.weights) {
        if (resolver.kept[d].has_value()) spec->weights[*resolver.kept[d]] = weight;
      }
    }
    if (parsed.deployments.has_value()) spec->allowed = resolver.Allowed(*parsed.deployments);
    if (parsed.kind == PolicyKind::kAuto) {
      for (size_t c = 0; c < kRequestClassCount; ++c) {
        if (parsed.classes[c] != nullptr) {
          spec->classes[c] = ResolvePolicy(*parsed.classes[c], resolver, spec->cache_ttl_ms);
        } else {
          auto priority = std::make_shared<PolicySpec>();
          priority->cache_ttl_ms = spec->cache_ttl_ms;
          spec->classes[c] = std::move(priority);
        }
      }
    }
    return spec;
  }

  static RoutingRule ResolveRule(const ParsedRule& parsed, const Resolver& resolver,
                                 int64_t inherited_ttl_ms) {
    RoutingRule rule = parsed.rule;
    if (parsed.deployments.has_value()) rule.allowed = resolver.Allowed(*parsed.deployments);
    if (parsed.policy != nullptr) {
      rule.policy = ResolvePolicy(*parsed.policy, resolver, inherited_ttl_ms);
    }
    return rule;
  }

  static std::vector<std::string> ScopeFields(const std::vector<RoutingRule>& global,
                                              const std::vector<RoutingRule>& own) {
    std::vector<std::string> fields;
    auto add = [&](const std::string& field) {
      if (!Contains(fields, field)) fields.push_back(field);
    };
    for (const auto* rules : {&global, &own}) {
      for (const RoutingRule& rule : *rules) {
        const AttributionMatch& w = rule.when;
        if (!w.feature.empty()) add("feature");
        if (!w.customer.empty()) add("customer");
        if (!w.environment.empty()) add("environment");
        if (!w.api_key_id.empty()) add("api_key_id");
        for (const auto& [tag, values] : w.tags) add(absl::StrCat("tag:", tag));
        if (w.budget_used_percent > 0) add(BudgetScopeField(w.budget_used_percent));
      }
    }
    std::sort(fields.begin(), fields.end());
    return fields;
  }

  const std::string source_;
  const CatalogLoadOptions& options_;
  const int64_t now_unix_ms_;  // load time: picks each deployment's current price card
  std::string version_;
  std::vector<ParsedProvider> providers_;
  absl::flat_hash_map<std::string, size_t> provider_by_name_;
  std::vector<ParsedDeployment> deployments_;
  absl::flat_hash_map<std::string, size_t> deployment_by_id_;
  std::vector<ParsedModel> models_;
  absl::flat_hash_map<std::string, std::string> model_names_;  // name or alias -> model name
  absl::flat_hash_set<std::string> regions_;                   // of every deployment
  std::vector<ParsedRule> rules_;                              // global
  std::vector<ParsedTeam> teams_;
  ClassifierConfig classifier_;
  int64_t default_cache_ttl_ms_ = kDefaultCacheTtlMs;
};

absl::StatusOr<std::shared_ptr<const Catalog>> LoadCatalogFromString(
    absl::string_view text, absl::string_view source_name, const CatalogLoadOptions& options) {
  CatalogParser parser(source_name, options);
  return parser.Parse(text);
}

absl::StatusOr<std::shared_ptr<const Catalog>> LoadCatalogFile(const std::string& path,
                                                               const CatalogLoadOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    return absl::Status(
        absl::ErrnoToStatusCode(error),
        absl::StrCat("cannot read catalog file '", path, "': ", std::strerror(error)));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) {
    return absl::UnavailableError(absl::StrCat("error reading catalog file '", path, "'"));
  }
  return LoadCatalogFromString(contents.str(), path, options);
}

}  // namespace tollgate::router
