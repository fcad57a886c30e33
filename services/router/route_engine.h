#pragma once
// The routing decision: which deployments may serve a request, in which order, and why.
//
//   RouteEnv env{.health = health.get(), .now = clock->Now(), .rng = &rng};
//   RouteDecision decision;
//   absl::Status status = DecideRoute(*catalog, request, env, &decision);
//   if (status.ok()) FillRouteResponse(*catalog, request, decision, &response);
//
// Steps, in order:
//   1. The model (name or alias) and the team's access (teams[].allowed_models).
//   2. The request's class (request_classifier.h), the first matching global rule and the first
//      matching model rule; the policy is the model rule's, else the global rule's, else the
//      model's; an `auto` policy hands over to the policy of the request's class.
//   3. Hard filters, first failing one recorded per deployment: team_region, key_region
//      (RouteRequest.allowed_regions), rule_region,
//      rule_deployments, class_deployments, capability (stream implied by stream=true),
//      context_window (estimated input + max output).
//   4. Health filters: circuit_open, cooldown (429 retry-after), probe_busy (a half-open circuit
//      already has its probe). If they leave nothing, the health-filtered deployments are
//      returned anyway as "last resort", soonest available first.
//   5. The policy orders what is left. Deployments near an RPM/TPM limit go after the others
//      (weight 0). A half-open deployment granted its probe goes first.
//   6. Cache TTL: the policy's, or 0 when the answer depends on more than the cache scope
//      (token counts: a context_window removal, or a cost order that changes with the ratio of
//      input to output tokens, or with an input size across a long-context price threshold),
//      holds a probe, or is a last resort; never beyond a candidate's next dated price change.
//
// Errors: kInvalidArgument (no model, negative token counts, unknown class_hint), kNotFound
// (unknown model), kPermissionDenied (team may not use the model), kFailedPrecondition (every
// deployment removed by a hard filter; the message names each deployment and its filter, and
// `decision->removed` lists them).
//
// Thread-safety: DecideRoute is reentrant; `env.rng` must not be shared across threads.

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "services/router/catalog.h"
#include "services/router/health_state.h"
#include "services/router/request_classifier.h"
#include "tollgate/v1/router.pb.h"

namespace tollgate::router {

enum class RemovalFilter : uint8_t {
  kTeamRegion,
  kKeyRegion,
  kRuleRegion,
  kRuleDeployments,
  kClassDeployments,
  kCapability,
  kContextWindow,
  kCircuitOpen,
  kCooldown,
  kProbeBusy,
  kBelowQuality,
};
// "team_region", "rule_region", ..., "below_quality".
absl::string_view RemovalFilterName(RemovalFilter filter);

struct RouteEnv {
  const HealthSnapshot* health = nullptr;  // null: every deployment healthy, no samples
  absl::Time now = absl::UnixEpoch();
  std::mt19937_64* rng = nullptr;  // needed by weighted and least-latency (exploration)
  // false (ExplainRoute): a free probe slot is reported but not taken.
  bool grant_probes = true;
  // How long a granted probe keeps others from probing the same deployment.
  absl::Duration probe_hold = absl::Seconds(10);
};

struct RankedCandidate {
  const v1::Deployment* deployment = nullptr;
  size_t index = 0;  // in Catalog::deployments()
  std::string reason;
  int64_t weight = 0;
  int64_t cost_pico = 0;
  int64_t latency_ewma_us = 0;
  int64_t ttft_ewma_us = 0;
  int32_t quality = -1;
  bool probe = false;
  bool near_limit = false;
  bool last_resort = false;
};

struct Removal {
  const v1::Deployment* deployment = nullptr;
  RemovalFilter filter = RemovalFilter::kCapability;
  std::string detail;  // e.g. "lacks capability 'tools'"
};

struct RouteDecision {
  const CatalogModel* model = nullptr;
  RequestClass request_class = RequestClass::kGeneral;
  PolicyKind policy = PolicyKind::kPriority;  // the policy that ordered the candidates
  std::string policy_path;                    // "rule r > auto > class code > cost-quality"
  std::vector<std::string> rules;             // matched rules, global first
  std::vector<RankedCandidate> candidates;
  std::vector<Removal> removed;  // in the model's deployment order
  int64_t cache_ttl_ms = 0;
  bool draw_weighted = false;
};

absl::Status DecideRoute(const Catalog& catalog, const v1::RouteRequest& request,
                         const RouteEnv& env, RouteDecision* decision);

// Fills `response` from a successful decision (see router.proto RouteResponse).
void FillRouteResponse(const Catalog& catalog, const v1::RouteRequest& request,
                       const RouteDecision& decision, v1::RouteResponse* response);

// The estimated cost in pico-dollars of `input_tokens` + `output_tokens` at `prices` (all input
// uncached; the long-context tier's input and output prices when `input_tokens` is above its
// threshold), saturated at INT64_MAX. DecideRoute prices each deployment by its card in effect
// at env.now (PricesAt, services/common/price_schedule.h).
int64_t EstimateCostPico(const v1::UnitPrices& prices, int64_t input_tokens, int64_t output_tokens);

}  // namespace tollgate::router
