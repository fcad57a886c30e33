#pragma once
// The router's catalog: providers, deployments and models, loaded from a declarative YAML file
// (reference: deploy/config/catalog.example.yaml).
//
//   TOLLGATE_ASSIGN_OR_RETURN(std::shared_ptr<const Catalog> catalog, LoadCatalogFile(path));
//   if (const CatalogModel* model = catalog->FindModel("mini")) {   // a name or an alias
//     for (const v1::Deployment* d : model->deployments) { ... }    // priority (= fallback) order
//   }
//
// Loading validates the whole file: unknown or duplicate keys, missing required fields, bad
// values, duplicate names, and dangling references are kInvalidArgument errors whose message
// starts with "<source>:<line>: " and names the offending entry. Prices are read from the YAML
// scalar's text (never through a double), so `input: 0.15` is exactly 150000 pico-dollars/token.
//
// Prices: a deployment's `prices:` is one price card (a mapping: input, cached_input,
// cache_write_5m, cache_write_1h, output, reasoning, and an optional long_context tier with
// above_input_tokens) or a list of dated cards, each with effective_from (RFC 3339 UTC,
// "2025-01-01T00:00:00Z"), oldest first, dates unique, the first in effect at load. A list fills
// Deployment.price_schedule (price_card_version "<catalog version>@<effective_from>") and
// Deployment.prices holds the card in effect at load; a mapping leaves price_schedule empty and
// its price_card_version is the catalog version. Whoever prices a request uses
// PricesAt(deployment, start time) (services/common/price_schedule.h), never prices() alone.
//
// Providers whose `enabled_if_env` variable is unset or empty are skipped with their deployments;
// models left without deployments are dropped. Each skip is recorded in notes() for the caller to
// log. The file must still be valid as a whole, skipped entries included.
//
// Routing (reference: the `policy`, `rules`, `teams`, `classifier` and `routing` sections of
// catalog.example.yaml): each model has a PolicySpec (priority by default) and optional
// conditional rules; top-level rules apply to every model; teams restrict regions and models.
// Every deployment id, region, class and model named there is checked at load.
//
// Deployment-indexed vectors below (PolicySpec::weights, PolicySpec::allowed,
// RoutingRule::allowed) are indexed by a deployment's position in Catalog::deployments()
// (Catalog::IndexOf); they are empty when they do not restrict anything.
//
// Thread-safety: a Catalog is immutable once loaded; share it freely across threads through
// std::shared_ptr<const Catalog>. The loader functions are thread-safe.

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/router/request_classifier.h"
#include "tollgate/v1/router.pb.h"

namespace tollgate::router {

// The wire dialects a provider may declare: openai, azure_openai, anthropic, gemini.
const std::vector<std::string>& SupportedDialects();

// The capability names a deployment may declare (and a RouteRequest may require):
// chat, stream, tools, json, json_schema, vision, embeddings, reasoning, prompt_caching.
const std::vector<std::string>& KnownCapabilities();

struct CatalogProvider {
  std::string name;
  std::string dialect;         // one of SupportedDialects()
  std::string base_url;        // http(s) URL, trailing '/' removed
  std::string api_key_env;     // may be empty; read by the gateway, never by the router
  std::string enabled_if_env;  // may be empty (always enabled)
  // Dialect options (azure_openai: api_version, url_style; anthropic: anthropic_version, ...),
  // copied into every deployment's Deployment.options; deployments may override keys.
  std::map<std::string, std::string> options;
};

enum class PolicyKind : uint8_t {
  kPriority,      // the model's deployments in catalog order
  kWeighted,      // weighted random first choice
  kLeastLatency,  // lowest EWMA latency (or time to first token), with exploration
  kLeastCost,     // cheapest estimated input + output at the deployment's prices
  kCostQuality,   // cheapest whose quality for the request's class meets a threshold
  kAuto,          // classify the request, then route by the class's own policy
};
// "priority", "weighted", "least-latency", "least-cost", "cost-quality", "auto".
absl::string_view PolicyKindName(PolicyKind kind);

// Which EWMA least-latency compares: kAuto = time to first token for streaming requests,
// total latency otherwise.
enum class LatencyMetric : uint8_t { kAuto, kLatency, kTtft };

struct PolicySpec {
  PolicyKind kind = PolicyKind::kPriority;
  // kWeighted: weight per catalog deployment index; 0 = fallback only.
  std::vector<int64_t> weights;
  // kLeastLatency.
  LatencyMetric metric = LatencyMetric::kAuto;
  int64_t exploration_ppm = 50000;  // share of first choices drawn among the non-best, 1e-6
  // kLeastCost, kCostQuality: output tokens assumed when the request gives no max_output_tokens.
  int64_t default_output_tokens = 1024;
  // kCostQuality.
  int32_t min_quality = 0;
  bool strict = false;  // true: drop deployments below min_quality; false: keep them as fallbacks
  // Policies of `auto` classes: only these deployments (by catalog index); empty = all.
  std::vector<bool> allowed;
  // Decision caching by gateways: cache_ttl_ms is resolved (catalog default when not given) and
  // is 0 when `cache: false`.
  int64_t cache_ttl_ms = 0;
  // kAuto: the policy of each class (indexed by RequestClass), never null and never kAuto.
  std::array<std::shared_ptr<const PolicySpec>, kRequestClassCount> classes;
};

// Conditions on a request's attribution. Every non-empty list must contain the request's value
// (OR within a list, AND across lists); a tag condition needs the tag with one of the values.
struct AttributionMatch {
  std::vector<std::string> team;
  std::vector<std::string> feature;
  std::vector<std::string> customer;
  std::vector<std::string> environment;
  std::vector<std::string> api_key_id;
  std::vector<std::pair<std::string, std::vector<std::string>>> tags;
  // `budget_used_percent: N`: the request's hard budgets are at least N% used (0: no condition).
  int budget_used_percent = 0;

  bool Matches(const v1::Attribution& attribution, int budget_used_percent = 0) const;
};

// A conditional rule: when `when` matches, restrict the deployments and/or pick a policy.
struct RoutingRule {
  std::string name;
  AttributionMatch when;
  std::vector<std::string> regions;          // only deployments in these regions; empty = any
  std::vector<bool> allowed;                 // only these deployments; empty = any
  std::shared_ptr<const PolicySpec> policy;  // null = keep the model's policy
};

// Data residency and model access of one team (attribution.team).
struct TeamSettings {
  std::string name;
  std::vector<std::string> allowed_regions;  // empty = any region
  std::vector<bool> allowed_models;          // by Catalog::models() index; empty = any model
};

struct CatalogModel {
  std::string name;  // canonical name clients may ask for
  std::vector<std::string> aliases;
  std::string owned_by;
  // Priority (= fallback) order; never empty. Points into the owning Catalog's deployments().
  std::vector<const v1::Deployment*> deployments;
  size_t index = 0;                          // position in Catalog::models()
  std::shared_ptr<const PolicySpec> policy;  // never null
  std::vector<RoutingRule> rules;            // evaluated after the catalog's global rules
  // Attribution fields other than team that any applicable rule looks at, sorted: "feature",
  // "customer", "environment", "api_key_id", "tag:<name>", "budget:<N>"
  // (services/common/route_scope.h). They belong to the cache scope.
  std::vector<std::string> scope_fields;
};

class Catalog {
 public:
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;

  // The model whose name or alias is `name_or_alias` (exact, case-sensitive), or nullptr.
  const CatalogModel* FindModel(absl::string_view name_or_alias) const;
  // The enabled deployment with this id, or nullptr.
  const v1::Deployment* FindDeployment(absl::string_view id) const;
  // Position of `deployment` (which must point into deployments()) in deployments().
  size_t IndexOf(const v1::Deployment* deployment) const {
    return static_cast<size_t>(deployment - deployments_.data());
  }
  // Quality score 0..100 of deployments()[index] for `c`; -1 when not rated.
  int32_t Quality(size_t index, RequestClass c) const {
    return quality_[index][static_cast<size_t>(c)];
  }
  // Settings of `team`, or nullptr when the catalog has none for it.
  const TeamSettings* FindTeam(absl::string_view team) const;
  // Rules that apply to every model, in file order.
  const std::vector<RoutingRule>& rules() const { return rules_; }
  const ClassifierConfig& classifier() const { return classifier_; }
  // `routing.cache_ttl_ms`: how long gateways may reuse a decision unless a policy says otherwise.
  int64_t default_cache_ttl_ms() const { return default_cache_ttl_ms_; }

  // Enabled entries only, in file order. Each deployment carries its provider's dialect,
  // api_key_env, options and (unless overridden) base_url, and its prices (and price_schedule)
  // with price_card_version set.
  const std::vector<CatalogProvider>& providers() const { return providers_; }
  const std::vector<v1::Deployment>& deployments() const { return deployments_; }
  const std::vector<CatalogModel>& models() const { return models_; }

  // Short hex content hash of the file (FNV-1a 64); also the price_card_version of undated
  // price cards (dated ones: "<version>@<effective_from>").
  const std::string& version() const { return version_; }
  // Where the catalog came from (file path or the name given to LoadCatalogFromString).
  const std::string& source() const { return source_; }
  // Unix seconds at load (CatalogLoadOptions::now_unix_ms); reported as ModelInfo.created.
  int64_t loaded_at_unix() const { return loaded_at_unix_; }
  // Informational messages about skipped providers and dropped models, for the caller to log.
  const std::vector<std::string>& notes() const { return notes_; }

 private:
  friend class CatalogParser;
  Catalog() = default;

  std::vector<CatalogProvider> providers_;
  std::vector<v1::Deployment> deployments_;
  std::vector<CatalogModel> models_;
  absl::flat_hash_map<std::string, size_t> model_by_name_;  // names and aliases -> models_ index
  absl::flat_hash_map<std::string, size_t> deployment_by_id_;
  std::vector<std::array<int32_t, kRequestClassCount>> quality_;  // by deployment index
  std::vector<RoutingRule> rules_;
  std::vector<TeamSettings> teams_;
  absl::flat_hash_map<std::string, size_t> team_by_name_;
  ClassifierConfig classifier_;
  int64_t default_cache_ttl_ms_ = 0;
  std::string version_;
  std::string source_;
  int64_t loaded_at_unix_ = 0;
  std::vector<std::string> notes_;
};

struct CatalogLoadOptions {
  // Reads an environment variable for `enabled_if_env`; nullopt when unset. Default (empty
  // function): the process environment.
  std::function<std::optional<std::string>(const std::string& name)> getenv;
  // The load time in unix milliseconds: selects each deployment's price card in effect (see
  // "Prices" above) and is reported as loaded_at_unix(). Default (empty function): the clock.
  std::function<int64_t()> now_unix_ms;
};

// FNV-1a 64 of `bytes` as 16 lowercase hex digits.
std::string ContentHash(absl::string_view bytes);

// Reads and validates the catalog at `path`. Errors: kNotFound / kPermissionDenied / ... when the
// file cannot be read, kInvalidArgument when it is not a valid catalog.
absl::StatusOr<std::shared_ptr<const Catalog>> LoadCatalogFile(
    const std::string& path, const CatalogLoadOptions& options = {});

// Validates `text` as a catalog; `source_name` prefixes error messages ("catalog.yaml:14: ...").
absl::StatusOr<std::shared_ptr<const Catalog>> LoadCatalogFromString(
    absl::string_view text, absl::string_view source_name, const CatalogLoadOptions& options = {});

}  // namespace tollgate::router
