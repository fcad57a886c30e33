#include "services/gateway/route_cache.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/route_scope.h"
#include "absl/strings/str_join.h"

namespace tollgate::gateway {
namespace {

std::vector<std::string> EffectiveCapabilities(const v1::RouteRequest& request) {
  std::vector<std::string> capabilities(request.required_capabilities().begin(),
                                        request.required_capabilities().end());
  if (request.stream()) capabilities.push_back("stream");
  std::sort(capabilities.begin(), capabilities.end());
  capabilities.erase(std::unique(capabilities.begin(), capabilities.end()), capabilities.end());
  return capabilities;
}


}  // namespace


void DrawWeightedFirst(const v1::RouteResponse& answer, RouteDecision::Order& order,
                       std::mt19937_64& rng) {
  int64_t total = 0;
  for (int i : order) total += std::max<int64_t>(0, answer.candidates(i).weight());
  if (total <= 0) return;
  int64_t point = std::uniform_int_distribution<int64_t>(0, total - 1)(rng);
  size_t chosen = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    const int64_t w = std::max<int64_t>(0, answer.candidates(order[k]).weight());
    if (point < w) {
      chosen = k;
      break;
    }
    point -= w;
  }
  std::rotate(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(chosen),
              order.begin() + static_cast<std::ptrdiff_t>(chosen) + 1);
}

RouteDecision::RouteDecision(std::shared_ptr<const v1::RouteResponse> answer)
    : answer_(std::move(answer)) {
  for (int i = 0; i < answer_->candidates_size(); ++i) order_.push_back(i);
}

std::shared_ptr<const v1::RouteResponse> RouteDecision::Empty() {
  static const auto* const empty = new std::shared_ptr<const v1::RouteResponse>(
      std::make_shared<const v1::RouteResponse>());
  return *empty;
}

RouteCache::RouteCache(const std::atomic<uint64_t>* generation, NowFn now, size_t max_entries)
    : generation_(generation),
      now_(std::move(now)),
      max_entries_(std::max<size_t>(1, max_entries)) {
  seen_generation_ = this->generation();
}

std::string RouteCache::PrimaryKey(const v1::RouteRequest& request,
                                   std::string_view request_class) {
  std::string key = absl::StrCat(request.model(), "\x1f", request.attribution().team(), "\x1f",
                                 absl::string_view(request_class.data(), request_class.size()));
  for (const std::string& c : EffectiveCapabilities(request)) absl::StrAppend(&key, "\x1f", c);
  // A key limited to regions gets answers computed for exactly its regions.
  if (!request.allowed_regions().empty()) {
    std::vector<std::string> regions(request.allowed_regions().begin(),
                                     request.allowed_regions().end());
    std::sort(regions.begin(), regions.end());
    absl::StrAppend(&key, "\x1e", absl::StrJoin(regions, "\x1f"));
  }
  return key;
}

void RouteCache::SyncGeneration() {
  const uint64_t now = generation();
  if (now != seen_generation_) {
    entries_.clear();
    seen_generation_ = now;
  }
}

size_t RouteCache::size() const {
  size_t n = 0;
  for (const auto& [key, list] : entries_) n += list.size();
  return n;
}

std::optional<RouteDecision> RouteCache::Lookup(const v1::RouteRequest& request,
                                                std::string_view request_class,
                                                std::mt19937_64& rng) {
  SyncGeneration();
  auto it = entries_.find(PrimaryKey(request, request_class));
  if (it == entries_.end()) return std::nullopt;
  const Clock::time_point now = now_();
  std::vector<Entry>& list = it->second;
  list.erase(
      std::remove_if(list.begin(), list.end(), [&](const Entry& e) { return e.expires <= now; }),
      list.end());
  if (list.empty()) {
    entries_.erase(it);
    return std::nullopt;
  }
  for (const Entry& entry : list) {
    const bool match =
        std::all_of(entry.attribution.begin(), entry.attribution.end(), [&](const auto& kv) {
          return RouteScopeValue(request, kv.first) == kv.second;
        });
    if (!match) continue;
    const v1::RouteResponse& answer = *entry.answer;
    const __int128 needed =
        static_cast<__int128>(request.estimated_input_tokens()) + request.max_output_tokens();
    RouteDecision::Order order;
    for (int i = 0; i < answer.candidates_size(); ++i) {
      const int64_t window = answer.candidates(i).deployment().context_window();
      if (needed <= 0 || window <= 0 || window >= needed) order.push_back(i);
    }
    if (order.empty()) return std::nullopt;
    if (answer.draw_weighted()) DrawWeightedFirst(answer, order, rng);
    return RouteDecision(entry.answer, std::move(order));
  }
  return std::nullopt;
}

bool RouteCache::Insert(const v1::RouteRequest& request,
                        std::shared_ptr<const v1::RouteResponse> shared, uint64_t generation) {
  SyncGeneration();
  const v1::RouteResponse& answer = *shared;
  if (generation != seen_generation_) return false;  // computed before an invalidation
  if (answer.cache_ttl_ms() <= 0 || answer.candidates_size() == 0) return false;
  for (const v1::Candidate& c : answer.candidates()) {
    if (c.probe()) return false;
  }
  const v1::RouteCacheScope& scope = answer.cache_scope();
  // The scope must be the one this gateway computes for the request; otherwise later lookups
  // could not tell which requests it covers.
  if (scope.model() != request.model() || scope.team() != request.attribution().team()) {
    return false;
  }
  const std::vector<std::string> capabilities = EffectiveCapabilities(request);
  if (!std::equal(capabilities.begin(), capabilities.end(), scope.required_capabilities().begin(),
                  scope.required_capabilities().end())) {
    return false;
  }
  Entry entry;
  for (const auto& [key, value] : scope.attribution()) {
    if (!KnownRouteScopeField(key)) return false;
    entry.attribution.emplace_back(key, value);
  }
  std::sort(entry.attribution.begin(), entry.attribution.end());
  const std::string class_name =
      scope.request_class().empty() ? answer.request_class() : scope.request_class();
  entry.answer = std::move(shared);
  entry.expires = now_() + std::chrono::milliseconds(answer.cache_ttl_ms());
  if (size() >= max_entries_) entries_.clear();
  std::vector<Entry>& list = entries_[PrimaryKey(request, class_name)];
  // One entry per attribution scope: a newer answer replaces the older one.
  list.erase(std::remove_if(list.begin(), list.end(),
                            [&](const Entry& e) { return e.attribution == entry.attribution; }),
             list.end());
  list.push_back(std::move(entry));
  return true;
}

}  // namespace tollgate::gateway
