#include "services/common/route_scope.h"
#include "services/router/route_engine.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "services/common/money.h"
#include "services/common/price_schedule.h"

namespace tollgate::router {
namespace {

constexpr int64_t kPpm = 1000000;

// A deployment still in the running, with the scores every policy reports.
struct Work {
  const v1::Deployment* d = nullptr;
  size_t index = 0;
  const DeploymentHealthView* health = nullptr;
  int64_t cost = 0;
  // Per-token prices of the card in effect now (price_schedule.h): `in`/`out` at this request's
  // estimated input (the long-context tier's when it applies), and their range over any input
  // size (min/max of base and tier) for telling whether a cost order holds for every request.
  int64_t in = 0, out = 0;
  int64_t min_in = 0, max_in = 0, min_out = 0, max_out = 0;
  int32_t quality = -1;
  bool probe = false;
  std::string health_detail;  // why health removed it (last-resort reason)
  absl::Time available_at = absl::InfinitePast();
  RemovalFilter health_filter = RemovalFilter::kCooldown;

  int64_t latency() const { return health == nullptr ? 0 : health->latency_ewma_us; }
  int64_t ttft() const { return health == nullptr ? 0 : health->ttft_ewma_us; }
};

bool HasCapability(const v1::Deployment& deployment, const std::string& capability) {
  for (const std::string& c : deployment.capabilities()) {
    if (c == capability) return true;
  }
  return false;
}

bool InList(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

// Uniform in [0, bound) from 64 random bits; bound > 0.
int64_t Uniform(std::mt19937_64& rng, int64_t bound) {
  return static_cast<int64_t>(
      (static_cast<unsigned __int128>(rng()) * static_cast<unsigned __int128>(bound)) >> 64);
}

// Index into `weights` drawn with probability proportional to weight; -1 when all are 0.
int DrawIndex(std::mt19937_64& rng, const std::vector<int64_t>& weights) {
  int64_t total = 0;
  for (int64_t w : weights) total += w;
  if (total <= 0) return -1;
  int64_t r = Uniform(rng, total);
  for (size_t i = 0; i < weights.size(); ++i) {
    if (r < weights[i]) return static_cast<int>(i);
    r -= weights[i];
  }
  return static_cast<int>(weights.size()) - 1;
}

std::string Ms(int64_t us) { return absl::StrFormat("%.1f ms", static_cast<double>(us) / 1000); }
std::string Seconds(absl::Duration d) {
  return absl::StrFormat("%.1f s", absl::ToDoubleSeconds(d));
}
std::string Usd(int64_t pico) { return absl::StrCat("$", FormatPicoUsd(pico)); }

// input x input price + output x output price, all input uncached, saturated at INT64_MAX.
int64_t EstimateCost(int64_t input_pico, int64_t output_pico, int64_t input_tokens,
                     int64_t output_tokens) {
  const __int128 cost = static_cast<__int128>(std::max<int64_t>(input_tokens, 0)) * input_pico +
                        static_cast<__int128>(std::max<int64_t>(output_tokens, 0)) * output_pico;
  return cost > std::numeric_limits<int64_t>::max() ? std::numeric_limits<int64_t>::max()
                                                    : static_cast<int64_t>(cost);
}

RankedCandidate Rank(const Work& w, std::string reason, int64_t weight = 0) {
  RankedCandidate c;
  c.deployment = w.d;
  c.index = w.index;
  c.reason = std::move(reason);
  c.weight = weight;
  c.cost_pico = w.cost;
  c.latency_ewma_us = w.latency();
  c.ttft_ewma_us = w.ttft();
  c.quality = w.quality;
  c.probe = w.probe;
  return c;
}

// Fills the price fields of `w` from the card of `d` in effect at `now_ms`.
void SetPrices(Work& w, const v1::Deployment& d, int64_t now_ms, int64_t input_tokens) {
  const v1::UnitPrices& card = PricesAt(d, now_ms);
  const bool tiered = card.long_context_threshold_tokens() > 0 && card.has_long_context();
  const v1::UnitPrices& applied =
      LongContextApplies(card, input_tokens) ? card.long_context() : card;
  w.in = applied.input_pico();
  w.out = applied.output_pico();
  w.min_in = w.max_in = card.input_pico();
  w.min_out = w.max_out = card.output_pico();
  if (tiered) {
    w.min_in = std::min(w.min_in, card.long_context().input_pico());
    w.max_in = std::max(w.max_in, card.long_context().input_pico());
    w.min_out = std::min(w.min_out, card.long_context().output_pico());
    w.max_out = std::max(w.max_out, card.long_context().output_pico());
  }
}

// Cheapest first; ties by input price, then output price, then the model's order.
void SortByCost(std::vector<Work>& list) {
  std::stable_sort(list.begin(), list.end(), [](const Work& a, const Work& b) {
    if (a.cost != b.cost) return a.cost < b.cost;
    if (a.in != b.in) return a.in < b.in;
    return a.out < b.out;
  });
}

// True when `a` before `b` might not hold for another request (another ratio of input to
// output tokens, or an input size on the other side of a long-context threshold): the order is
// token-independent only if `a`'s dearest prices are no dearer than `b`'s cheapest. Without
// tiers that is "no dearer in both prices".
bool Crosses(const Work& a, const Work& b) { return a.max_in > b.min_in || a.max_out > b.min_out; }

struct OrderOutcome {
  bool token_dependent = false;
  bool draw_weighted = false;
};

class Orderer {
 public:
  Orderer(const v1::RouteRequest& request, const RouteEnv& env, const PolicySpec& spec,
          RequestClass request_class, RouteDecision* decision)
      : request_(request), env_(env), spec_(spec), class_(request_class), decision_(decision) {}

  // Appends `list` in the policy's order to `out`.
  OrderOutcome Order(std::vector<Work>& list, std::vector<RankedCandidate>& out) {
    OrderOutcome outcome;
    if (list.empty()) return outcome;
    switch (spec_.kind) {
      case PolicyKind::kWeighted:
        Weighted(list, out, outcome);
        break;
      case PolicyKind::kLeastLatency:
        LeastLatency(list, out, outcome);
        break;
      case PolicyKind::kLeastCost:
        LeastCost(list, out, outcome);
        break;
      case PolicyKind::kCostQuality:
        CostQuality(list, out, outcome);
        break;
      case PolicyKind::kPriority:
      case PolicyKind::kAuto:  // never the leaf: DecideRoute resolves auto to a class policy
        Priority(list, out);
        break;
    }
    return outcome;
  }

 private:
  void Priority(const std::vector<Work>& list, std::vector<RankedCandidate>& out) {
    for (size_t i = 0; i < list.size(); ++i) {
      out.push_back(Rank(list[i], absl::StrCat("priority ", i + 1, " of ", list.size())));
    }
  }

  void Weighted(std::vector<Work>& list, std::vector<RankedCandidate>& out, OrderOutcome& outcome) {
    std::vector<int64_t> weights;
    weights.reserve(list.size());
    int64_t total = 0;
    for (const Work& w : list) {
      const int64_t weight = w.index < spec_.weights.size() ? spec_.weights[w.index] : 0;
      weights.push_back(weight);
      total += weight;
    }
    const int drawn = env_.rng != nullptr ? DrawIndex(*env_.rng, weights) : -1;
    std::vector<size_t> order;
    order.reserve(list.size());
    if (drawn >= 0) order.push_back(static_cast<size_t>(drawn));
    std::vector<size_t> rest;
    for (size_t i = 0; i < list.size(); ++i) {
      if (static_cast<int>(i) != drawn) rest.push_back(i);
    }
    std::stable_sort(rest.begin(), rest.end(),
                     [&](size_t a, size_t b) { return weights[a] > weights[b]; });
    order.insert(order.end(), rest.begin(), rest.end());
    for (size_t i : order) {
      std::string reason;
      if (weights[i] == 0) {
        reason = "weight 0: fallback only";
      } else {
        reason =
            absl::StrFormat("weight %d of %d (%.1f%%)%s", weights[i], total,
                            100.0 * static_cast<double>(weights[i]) / static_cast<double>(total),
                            static_cast<int>(i) == drawn ? ", drawn" : "");
      }
      out.push_back(Rank(list[i], std::move(reason), weights[i]));
    }
    outcome.draw_weighted = total > 0;
  }

  void LeastLatency(std::vector<Work>& list, std::vector<RankedCandidate>& out,
                    OrderOutcome& outcome) {
    const bool ttft = spec_.metric == LatencyMetric::kTtft ||
                      (spec_.metric == LatencyMetric::kAuto && request_.stream());
    const char* metric = ttft ? "ttft" : "latency";
    auto score = [ttft](const Work& w) { return ttft ? w.ttft() : w.latency(); };
    std::stable_sort(list.begin(), list.end(), [&](const Work& a, const Work& b) {
      const int64_t sa = score(a), sb = score(b);
      if ((sa > 0) != (sb > 0)) return sa > 0;  // measured ones first
      return sa > 0 && sa < sb;
    });
    const size_t n = list.size();
    std::vector<int64_t> weights(n, 0);
    const bool explore = n >= 2 && spec_.exploration_ppm > 0;
    if (explore) {
      const int64_t each =
          std::max<int64_t>(1, spec_.exploration_ppm / static_cast<int64_t>(n - 1));
      for (size_t i = 1; i < n; ++i) weights[i] = each;
      weights[0] = std::max<int64_t>(0, kPpm - spec_.exploration_ppm);
    } else {
      weights[0] = kPpm;
    }
    const int drawn = explore && env_.rng != nullptr ? DrawIndex(*env_.rng, weights) : 0;
    std::vector<size_t> order;
    order.reserve(n);
    order.push_back(static_cast<size_t>(std::max(drawn, 0)));
    for (size_t i = 0; i < n; ++i) {
      if (i != order[0]) order.push_back(i);
    }
    for (size_t i : order) {
      const int64_t s = score(list[i]);
      std::string reason = s > 0 ? absl::StrCat(metric, " ewma ", Ms(s))
                                 : absl::StrCat("no ", metric, " sample yet");
      if (i == 0 && s > 0) absl::StrAppend(&reason, " (fastest)");
      if (i != 0 && static_cast<int>(i) == drawn) {
        absl::StrAppend(&reason, absl::StrFormat(", exploring (%.1f%% of requests)",
                                                 static_cast<double>(spec_.exploration_ppm) / 1e4));
      }
      out.push_back(Rank(list[i], std::move(reason), weights[i]));
    }
    outcome.draw_weighted = explore;
  }

  void LeastCost(std::vector<Work>& list, std::vector<RankedCandidate>& out,
                 OrderOutcome& outcome) {
    SortByCost(list);
    for (size_t i = 0; i < list.size(); ++i) {
      if (i > 0 && Crosses(list[i - 1], list[i])) outcome.token_dependent = true;
      out.push_back(Rank(
          list[i], absl::StrCat("est. cost ", Usd(list[i].cost), i == 0 ? " (cheapest)" : "")));
    }
  }

  void CostQuality(std::vector<Work>& list, std::vector<RankedCandidate>& out,
                   OrderOutcome& outcome) {
    const absl::string_view class_name = RequestClassName(class_);
    std::vector<Work> good, weak;
    for (Work& w : list) (w.quality >= spec_.min_quality ? good : weak).push_back(std::move(w));
    SortByCost(good);
    for (size_t i = 0; i < good.size(); ++i) {
      if (i > 0 && Crosses(good[i - 1], good[i])) outcome.token_dependent = true;
      out.push_back(Rank(
          good[i],
          absl::StrCat("quality ", good[i].quality, " >= ", spec_.min_quality, " for ", class_name,
                       ", est. cost ", Usd(good[i].cost), i == 0 ? " (cheapest)" : "")));
    }
    auto weak_detail = [&](const Work& w) {
      return w.quality < 0 ? absl::StrCat("not rated for ", class_name)
                           : absl::StrCat("quality ", w.quality, " < ", spec_.min_quality, " for ",
                                          class_name);
    };
    if (spec_.strict) {
      for (const Work& w : weak) {
        decision_->removed.push_back({w.d, RemovalFilter::kBelowQuality, weak_detail(w)});
      }
      return;
    }
    SortByCost(weak);
    std::stable_sort(weak.begin(), weak.end(),
                     [](const Work& a, const Work& b) { return a.quality > b.quality; });
    for (size_t i = 0; i < weak.size(); ++i) {
      if (i > 0 && weak[i - 1].quality == weak[i].quality && Crosses(weak[i - 1], weak[i])) {
        outcome.token_dependent = true;
      }
      out.push_back(Rank(weak[i], absl::StrCat(weak_detail(weak[i]), ": fallback, est. cost ",
                                               Usd(weak[i].cost))));
    }
  }

  const v1::RouteRequest& request_;
  const RouteEnv& env_;
  const PolicySpec& spec_;
  const RequestClass class_;
  RouteDecision* decision_;
};

std::string LimitDetail(const DeploymentHealthView& h) {
  std::vector<std::string> parts;
  if (h.rpm_limit > 0) parts.push_back(absl::StrCat("rpm ", h.rpm_used, "/", h.rpm_limit));
  if (h.tpm_limit > 0) parts.push_back(absl::StrCat("tpm ", h.tpm_used, "/", h.tpm_limit));
  return absl::StrJoin(parts, ", ");
}

}  // namespace

absl::string_view RemovalFilterName(RemovalFilter filter) {
  switch (filter) {
    case RemovalFilter::kTeamRegion:
      return "team_region";
    case RemovalFilter::kKeyRegion:
      return "key_region";
    case RemovalFilter::kRuleRegion:
      return "rule_region";
    case RemovalFilter::kRuleDeployments:
      return "rule_deployments";
    case RemovalFilter::kClassDeployments:
      return "class_deployments";
    case RemovalFilter::kCapability:
      return "capability";
    case RemovalFilter::kContextWindow:
      return "context_window";
    case RemovalFilter::kCircuitOpen:
      return "circuit_open";
    case RemovalFilter::kCooldown:
      return "cooldown";
    case RemovalFilter::kProbeBusy:
      return "probe_busy";
    case RemovalFilter::kBelowQuality:
      return "below_quality";
  }
  return "unknown";
}

int64_t EstimateCostPico(const v1::UnitPrices& prices, int64_t input_tokens,
                         int64_t output_tokens) {
  const v1::UnitPrices& p =
      LongContextApplies(prices, input_tokens) ? prices.long_context() : prices;
  return EstimateCost(p.input_pico(), p.output_pico(), input_tokens, output_tokens);
}

absl::Status DecideRoute(const Catalog& catalog, const v1::RouteRequest& request,
                         const RouteEnv& env, RouteDecision* decision) {
  if (request.model().empty()) return absl::InvalidArgumentError("model is required");
  if (request.estimated_input_tokens() < 0 || request.max_output_tokens() < 0) {
    return absl::InvalidArgumentError(
        "estimated_input_tokens and max_output_tokens must not be negative");
  }
  if (!request.class_hint().empty() && !ParseRequestClass(request.class_hint()).has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown class_hint '", request.class_hint(),
                     "' (valid: simple, general, code, reasoning, tools, long)"));
  }
  const CatalogModel* model = catalog.FindModel(request.model());
  if (model == nullptr) {
    return absl::NotFoundError(absl::StrCat("model '", request.model(), "' not found"));
  }
  decision->model = model;
  const v1::Attribution& attribution = request.attribution();
  const TeamSettings* team = catalog.FindTeam(attribution.team());
  if (team != nullptr && !team->allowed_models.empty() && !team->allowed_models[model->index]) {
    return absl::PermissionDeniedError(
        absl::StrCat("team '", team->name, "' may not use model '", model->name, "'"));
  }

  // Policy: model rule over global rule over the model's own; auto hands over to the class.
  const RequestClass request_class = ClassifyRequest(request, catalog.classifier());
  decision->request_class = request_class;
  const RoutingRule* rules[2] = {nullptr, nullptr};
  for (const RoutingRule& rule : catalog.rules()) {
    if (rule.when.Matches(attribution, request.budget_used_percent())) {
      rules[0] = &rule;
      break;
    }
  }
  for (const RoutingRule& rule : model->rules) {
    if (rule.when.Matches(attribution, request.budget_used_percent())) {
      rules[1] = &rule;
      break;
    }
  }
  const PolicySpec* policy = model->policy.get();
  std::string path;
  for (const RoutingRule* rule : rules) {
    if (rule == nullptr) continue;
    decision->rules.push_back(rule->name);
    if (rule->policy != nullptr) {
      policy = rule->policy.get();
      path = absl::StrCat("rule ", rule->name, " > ");
    }
  }
  const PolicySpec* leaf = policy;
  if (policy->kind == PolicyKind::kAuto) {
    leaf = policy->classes[static_cast<size_t>(request_class)].get();
    absl::StrAppend(&path, "auto > class ", RequestClassName(request_class), " > ");
  }
  absl::StrAppend(&path, PolicyKindName(leaf->kind));
  decision->policy = leaf->kind;
  decision->policy_path = std::move(path);

  // Hard filters.
  std::vector<const std::string*> required;
  for (const std::string& capability : request.required_capabilities()) {
    required.push_back(&capability);
  }
  static const std::string kStream = "stream";
  if (request.stream()) required.push_back(&kStream);
  // Both are validated non-negative; __int128 keeps a hostile pair of huge values from wrapping.
  const __int128 needed_tokens =
      static_cast<__int128>(request.estimated_input_tokens()) + request.max_output_tokens();
  const int64_t output_tokens =
      request.max_output_tokens() > 0 ? request.max_output_tokens() : leaf->default_output_tokens;

  // Prices are the cards in effect now; a cached answer must not outlive the next price change
  // of a candidate (below).
  const int64_t now_ms = absl::ToUnixMillis(env.now);
  int64_t next_price_change_ms = std::numeric_limits<int64_t>::max();
  std::vector<Work> healthy;
  std::vector<Work> near_limit;
  std::vector<Work> unhealthy;
  healthy.reserve(model->deployments.size());
  bool window_removed = false;
  for (const v1::Deployment* d : model->deployments) {
    const size_t index = catalog.IndexOf(d);
    RemovalFilter filter = RemovalFilter::kCapability;
    std::string why;
    if (team != nullptr && !team->allowed_regions.empty() &&
        !InList(team->allowed_regions, d->region())) {
      filter = RemovalFilter::kTeamRegion;
      why = absl::StrCat("region '", d->region(), "' is not allowed for team '", team->name,
                         "' (allowed: ", absl::StrJoin(team->allowed_regions, ", "), ")");
    } else if (!request.allowed_regions().empty() &&
               std::find(request.allowed_regions().begin(), request.allowed_regions().end(),
                         d->region()) == request.allowed_regions().end()) {
      filter = RemovalFilter::kKeyRegion;
      why = absl::StrCat("region '", d->region(), "' is not allowed for this API key (allowed: ",
                         absl::StrJoin(request.allowed_regions(), ", "), ")");
    }
    for (const RoutingRule* rule : rules) {
      if (!why.empty() || rule == nullptr) continue;
      if (!rule->regions.empty() && !InList(rule->regions, d->region())) {
        filter = RemovalFilter::kRuleRegion;
        why = absl::StrCat("region '", d->region(), "' is not allowed by rule '", rule->name,
                           "' (allowed: ", absl::StrJoin(rule->regions, ", "), ")");
      } else if (!rule->allowed.empty() && !rule->allowed[index]) {
        filter = RemovalFilter::kRuleDeployments;
        why = absl::StrCat("is not among the deployments of rule '", rule->name, "'");
      }
    }
    if (why.empty() && !leaf->allowed.empty() && !leaf->allowed[index]) {
      filter = RemovalFilter::kClassDeployments;
      why = absl::StrCat("is not among the deployments of class '", RequestClassName(request_class),
                         "'");
    }
    if (why.empty()) {
      for (const std::string* capability : required) {
        if (!HasCapability(*d, *capability)) {
          filter = RemovalFilter::kCapability;
          why = absl::StrCat("lacks capability '", *capability, "'");
          break;
        }
      }
    }
    if (why.empty() && needed_tokens > 0 && d->context_window() < needed_tokens) {
      filter = RemovalFilter::kContextWindow;
      window_removed = true;
      why = absl::StrCat("context window ", d->context_window(), " < ",
                         static_cast<int64_t>(std::min<__int128>(
                             needed_tokens, std::numeric_limits<int64_t>::max())),
                         " tokens (estimated input ", request.estimated_input_tokens(),
                         " + max output ", request.max_output_tokens(), ")");
    }
    if (!why.empty()) {
      decision->removed.push_back({d, filter, std::move(why)});
      continue;
    }

    Work w;
    w.d = d;
    w.index = index;
    w.health =
        env.health == nullptr ? nullptr : env.health->Find(catalog.version(), index, d->id());
    SetPrices(w, *d, now_ms, request.estimated_input_tokens());
    w.cost = EstimateCost(w.in, w.out, request.estimated_input_tokens(), output_tokens);
    next_price_change_ms = std::min(next_price_change_ms, NextPriceChangeUnixMs(*d, now_ms));
    w.quality = catalog.Quality(index, request_class);
    if (w.health != nullptr) {
      const DeploymentHealthView& h = *w.health;
      const v1::CircuitState circuit = h.CircuitAt(env.now);
      if (circuit == v1::CIRCUIT_OPEN) {
        w.health_filter = RemovalFilter::kCircuitOpen;
        w.available_at = h.open_until;
        w.health_detail =
            absl::StrCat("circuit open for ", Seconds(h.open_until - env.now), " more after ",
                         h.consecutive_failures, " consecutive failures");
      } else if (h.CoolingDownAt(env.now)) {
        w.health_filter = RemovalFilter::kCooldown;
        w.available_at = h.cooldown_until;
        w.health_detail = absl::StrCat("cooling down for ", Seconds(h.cooldown_until - env.now),
                                       " more after a 429");
      } else if (circuit == v1::CIRCUIT_HALF_OPEN) {
        const bool free = h.probe_gate == nullptr ||
                          (env.grant_probes ? h.probe_gate->TryAcquire(env.now, env.probe_hold)
                                            : h.probe_gate->Available(env.now));
        if (free) {
          w.probe = true;
        } else {
          w.health_filter = RemovalFilter::kProbeBusy;
          w.available_at = env.now;
          w.health_detail = "circuit half-open and its probe is in flight";
        }
      }
      if (!w.health_detail.empty()) {
        unhealthy.push_back(std::move(w));
        continue;
      }
      if (h.near_limit) {
        near_limit.push_back(std::move(w));
        continue;
      }
    }
    healthy.push_back(std::move(w));
  }

  if (healthy.empty() && near_limit.empty() && unhealthy.empty()) {
    std::vector<std::string> reasons;
    reasons.reserve(decision->removed.size());
    for (const Removal& r : decision->removed) {
      reasons.push_back(absl::StrCat("deployment '", r.deployment->id(), "' ", r.detail));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("no deployment of model '", model->name,
                     "' can serve this request: ", absl::StrJoin(reasons, "; ")));
  }

  Orderer orderer(request, env, *leaf, request_class, decision);
  OrderOutcome outcome;
  bool last_resort = false;
  if (!healthy.empty() || !near_limit.empty()) {
    for (const Work& w : unhealthy) {
      decision->removed.push_back({w.d, w.health_filter, w.health_detail});
    }
    // All near a limit: nothing to prefer, the policy orders them as usual.
    const bool all_near = healthy.empty();
    if (all_near) healthy.swap(near_limit);
    outcome = orderer.Order(healthy, decision->candidates);
    const size_t first_near = all_near ? 0 : decision->candidates.size();
    const OrderOutcome near = orderer.Order(near_limit, decision->candidates);
    outcome.token_dependent = outcome.token_dependent || near.token_dependent;
    for (size_t i = first_near; i < decision->candidates.size(); ++i) {
      RankedCandidate& c = decision->candidates[i];
      const DeploymentHealthView* h =
          env.health->Find(catalog.version(), c.index, c.deployment->id());
      c.near_limit = true;
      if (all_near) {
        c.reason = absl::StrCat("near its rate limit (", LimitDetail(*h), ") like all; ", c.reason);
      } else {
        c.reason = absl::StrCat("near its rate limit (", LimitDetail(*h), "): after the others; ",
                                c.reason);
        c.weight = 0;
      }
    }
    // A granted probe goes first: that is how a half-open circuit gets its answer.
    std::stable_partition(decision->candidates.begin(), decision->candidates.end(),
                          [](const RankedCandidate& c) { return c.probe; });
    for (RankedCandidate& c : decision->candidates) {
      if (c.probe) c.reason = absl::StrCat("half-open circuit probe; ", c.reason);
    }
  } else {
    // Everything is unhealthy: better a deployment that may have recovered than no answer.
    last_resort = true;
    std::stable_sort(unhealthy.begin(), unhealthy.end(),
                     [](const Work& a, const Work& b) { return a.available_at < b.available_at; });
    for (const Work& w : unhealthy) {
      RankedCandidate c = Rank(w, absl::StrCat("last resort: ", w.health_detail));
      c.last_resort = true;
      decision->candidates.push_back(std::move(c));
    }
    absl::StrAppend(&decision->policy_path, " > last resort");
  }
  if (decision->candidates.empty()) {
    // Only a strict cost-quality policy removes everything it is given.
    std::vector<std::string> reasons;
    for (const Removal& r : decision->removed) {
      reasons.push_back(absl::StrCat("deployment '", r.deployment->id(), "' ", r.detail));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("no deployment of model '", model->name,
                     "' can serve this request: ", absl::StrJoin(reasons, "; ")));
  }
  // Removals in the model's order, whichever step made them.
  std::stable_sort(decision->removed.begin(), decision->removed.end(),
                   [&](const Removal& a, const Removal& b) {
                     return catalog.IndexOf(a.deployment) < catalog.IndexOf(b.deployment);
                   });

  bool probe = false;
  for (const RankedCandidate& c : decision->candidates) probe = probe || c.probe;
  decision->draw_weighted = outcome.draw_weighted && !last_resort;
  decision->cache_ttl_ms = leaf->cache_ttl_ms;
  if (outcome.token_dependent || window_removed || probe || last_resort) {
    decision->cache_ttl_ms = 0;
  }
  // Estimated costs (and so cost orders) change when a card does.
  if (decision->cache_ttl_ms > 0 && next_price_change_ms != std::numeric_limits<int64_t>::max()) {
    decision->cache_ttl_ms =
        std::clamp<int64_t>(next_price_change_ms - now_ms, 0, decision->cache_ttl_ms);
  }
  return absl::OkStatus();
}

void FillRouteResponse(const Catalog& catalog, const v1::RouteRequest& request,
                       const RouteDecision& decision, v1::RouteResponse* response) {
  const CatalogModel& model = *decision.model;
  response->set_model(model.name);
  response->set_policy(std::string(PolicyKindName(decision.policy)));
  response->mutable_candidates()->Reserve(static_cast<int>(decision.candidates.size()));
  for (const RankedCandidate& c : decision.candidates) {
    v1::Candidate* candidate = response->add_candidates();
    *candidate->mutable_deployment() = *c.deployment;
    candidate->set_reason(c.reason);
    candidate->set_weight(c.weight);
    candidate->set_estimated_cost_pico(c.cost_pico);
    candidate->set_latency_ewma_us(c.latency_ewma_us);
    candidate->set_ttft_ewma_us(c.ttft_ewma_us);
    candidate->set_quality(c.quality);
    candidate->set_probe(c.probe);
    candidate->set_near_limit(c.near_limit);
  }
  response->set_cache_ttl_ms(decision.cache_ttl_ms);
  response->set_request_class(std::string(RequestClassName(decision.request_class)));
  response->set_draw_weighted(decision.draw_weighted);
  response->set_catalog_version(catalog.version());
  response->set_policy_path(decision.policy_path);
  for (const std::string& rule : decision.rules) response->add_rules(rule);
  if (decision.cache_ttl_ms > 0) {
    v1::RouteCacheScope* scope = response->mutable_cache_scope();
    scope->set_model(request.model());
    scope->set_team(request.attribution().team());
    scope->set_request_class(response->request_class());
    std::vector<std::string> capabilities(request.required_capabilities().begin(),
                                          request.required_capabilities().end());
    if (request.stream()) capabilities.push_back("stream");
    std::sort(capabilities.begin(), capabilities.end());
    capabilities.erase(std::unique(capabilities.begin(), capabilities.end()), capabilities.end());
    for (std::string& c : capabilities) scope->add_required_capabilities(std::move(c));
    auto& fields = *scope->mutable_attribution();
    for (const std::string& field : model.scope_fields) {
      fields[field] = RouteScopeValue(request, field);
    }
  }
}

}  // namespace tollgate::router
