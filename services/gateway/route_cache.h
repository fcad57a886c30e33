#pragma once
// The gateway's decision cache: reuses a Router.Route answer for later requests in the answer's
// RouteCacheScope (model as requested, team, request class, sorted effective capabilities, and
// the attribution fields the catalog's rules look at) until its cache_ttl_ms runs out or the
// global generation changes (any non-heartbeat Watch event, see SnapshotStore).
//
//   RouteCache cache(store.generation_counter(), clock);   // one per I/O thread
//   uint64_t gen = cache.generation();                      // before calling Route
//   if (auto hit = cache.Lookup(request, "code", rng)) { ... }
//   ... Route answer arrives ...
//   cache.Insert(request, answer, gen);
//
// Answers with cache_ttl_ms == 0 or a probe candidate are never stored. A hit shares the stored
// answer (no copy) in a RouteDecision whose candidate order leaves out the candidates whose
// context window cannot hold this request's estimated input + max output (a miss when none
// remains) and, when draw_weighted, puts first a candidate drawn among those with weight > 0 in
// proportion to weight, the others kept in the listed order.
//
// Not thread-safe: each I/O thread owns its own cache, so lookups take no lock. The generation
// counter and the clock must outlive the cache.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "tollgate/v1/router.pb.h"

namespace tollgate::gateway {

// A routing answer as one request uses it: the answer, shared read-only with the cache and other
// requests, and the order in which this request may try its candidates.
class RouteDecision {
 public:
  using Order = absl::InlinedVector<int, 8>;

  RouteDecision() = default;
  // Every candidate of `answer`, in its order.
  explicit RouteDecision(std::shared_ptr<const v1::RouteResponse> answer);
  RouteDecision(std::shared_ptr<const v1::RouteResponse> answer, Order order)
      : answer_(std::move(answer)), order_(std::move(order)) {}

  int candidates_size() const { return static_cast<int>(order_.size()); }
  const v1::Candidate& candidates(int i) const {
    return answer_->candidates(order_[static_cast<size_t>(i)]);
  }
  const v1::RouteResponse& answer() const { return *answer_; }
  const std::string& model() const { return answer_->model(); }

 private:
  std::shared_ptr<const v1::RouteResponse> answer_ = Empty();
  Order order_;

  static std::shared_ptr<const v1::RouteResponse> Empty();
};

class RouteCache {
 public:
  using Clock = std::chrono::steady_clock;
  using NowFn = std::function<Clock::time_point()>;

  // `max_entries` bounds memory: when full, the cache is cleared before inserting.
  RouteCache(const std::atomic<uint64_t>* generation, NowFn now = &Clock::now,
             size_t max_entries = 4096);

  uint64_t generation() const { return generation_->load(std::memory_order_acquire); }

  // A usable cached answer for `request` whose class is `request_class`, or nullopt.
  std::optional<RouteDecision> Lookup(const v1::RouteRequest& request,
                                      std::string_view request_class, std::mt19937_64& rng);

  // Stores `answer` (given for `request`) when cacheable. `generation` is the generation read
  // before the Route call was made: an answer computed before an invalidation is not stored.
  // Returns true when stored.
  bool Insert(const v1::RouteRequest& request, std::shared_ptr<const v1::RouteResponse> answer,
              uint64_t generation);
  bool Insert(const v1::RouteRequest& request, const v1::RouteResponse& answer,
              uint64_t generation) {
    return Insert(request, std::make_shared<const v1::RouteResponse>(answer), generation);
  }

  size_t size() const;
  void Clear() { entries_.clear(); }

  // The scope's primary key of `request` with class `request_class` (model, team, class,
  // sorted effective capabilities with "stream" for streaming requests). Exposed for tests.
  static std::string PrimaryKey(const v1::RouteRequest& request, std::string_view request_class);

 private:
  struct Entry {
    std::shared_ptr<const v1::RouteResponse> answer;
    std::vector<std::pair<std::string, std::string>> attribution;  // scope key -> value
    Clock::time_point expires;
  };

  void SyncGeneration();

  const std::atomic<uint64_t>* const generation_;
  const NowFn now_;
  const size_t max_entries_;
  uint64_t seen_generation_ = 0;
  absl::flat_hash_map<std::string, std::vector<Entry>> entries_;
};


// Moves to the front of `order` (indexes into answer.candidates) a candidate with weight > 0,
// drawn in proportion to weight; keeps the others in order. No-op when no candidate in `order`
// has a positive weight.
void DrawWeightedFirst(const v1::RouteResponse& answer, RouteDecision::Order& order,
                       std::mt19937_64& rng);

}  // namespace tollgate::gateway
