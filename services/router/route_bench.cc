// Decision-time micro benchmark: how long the router takes to decide a Route call in process
// (DecideRoute + FillRouteResponse, i.e. RouterService::Route minus gRPC), per policy, with a
// live health snapshot. Google Benchmark reports means; then each case is timed call by call to
// print p50/p99/p99.9 against the 20 µs p99 target.
//
//   build-router/services/router/route_bench [--benchmark_filter=...] [--percentile_calls=N]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "services/router/catalog.h"
#include "services/router/clock.h"
#include "services/router/health.h"
#include "services/router/route_engine.h"

namespace tollgate::router {
namespace {

constexpr char kCatalog[] = R"yaml(
providers:
  - name: openai
    dialect: openai
    base_url: https://api.openai.com/v1
    api_key_env: OPENAI_API_KEY
  - name: mock
    dialect: openai
    base_url: http://127.0.0.1:9090/v1
deployments:
  - id: mini-us
    provider: openai
    upstream_model: gpt-4o-mini
    region: us
    prices: {input: "0.15", cached_input: "0.075", output: "0.60"}
    capabilities: [chat, stream, tools, json, json_schema, vision]
    limits: {rpm: 10000, tpm: 10000000}
    quality: {simple: 80, general: 65, code: 60, reasoning: 50, tools: 70, long: 55}
  - id: mini-eu
    provider: mock
    upstream_model: gpt-4o-mini
    region: eu
    prices: {input: "0.16", output: "0.65"}
    capabilities: [chat, stream, tools, json]
    limits: {rpm: 5000}
    quality: {simple: 80, general: 65, code: 60, reasoning: 50, tools: 70, long: 55}
  - id: big-us
    provider: openai
    upstream_model: gpt-4o
    region: us
    prices: {input: "2.50", cached_input: "1.25", output: "10.00"}
    capabilities: [chat, stream, tools, json, json_schema, vision]
    limits: {rpm: 10000, tpm: 30000000}
    quality: {default: 90, code: 88}
  - id: long-eu
    provider: mock
    upstream_model: gpt-4.1
    region: eu
    prices: {input: "2.00", cached_input: "0.50", output: "8.00"}
    capabilities: [chat, stream, tools]
    context_window: 1047576
    max_output_tokens: 32768
    quality: {default: 92, long: 95}
models:
  - name: priority
    deployments: [mini-us, mini-eu, big-us, long-eu]
  - name: weighted
    deployments: [mini-us, mini-eu, big-us, long-eu]
    policy: {type: weighted, weights: {mini-us: 5, mini-eu: 3, big-us: 1, long-eu: 1}}
  - name: least-latency
    deployments: [mini-us, mini-eu, big-us, long-eu]
    policy: {type: least-latency, exploration: "0.05"}
  - name: least-cost
    deployments: [big-us, long-eu, mini-eu, mini-us]
    policy: least-cost
  - name: cost-quality
    deployments: [big-us, long-eu, mini-eu, mini-us]
    policy: {type: cost-quality, min_quality: 85}
  - name: auto
    deployments: [mini-us, mini-eu, big-us, long-eu]
    policy:
      type: auto
      classes:
        simple: least-cost
        code: {type: cost-quality, min_quality: 85}
        reasoning: {type: priority, deployments: [big-us, long-eu]}
        long: {type: priority, deployments: [long-eu]}
        default: {type: cost-quality, min_quality: 60}
    rules:
      - name: gold
        when: {tags: {tier: gold}}
        policy: priority
rules:
  - name: research-eu
    when: {team: research}
    regions: [eu]
)yaml";

// The catalog and a health tracker that has seen some traffic, shared by every case.
struct Fixture {
  Fixture() : health(HealthOptions{}, Clock::Real(), nullptr) {
    catalog = *LoadCatalogFromString(kCatalog, "bench.yaml");
    health.SetCatalog(*catalog);
    google::protobuf::RepeatedPtrField<v1::Outcome> outcomes;
    const int64_t latency[] = {180000, 220000, 450000, 600000};
    for (int round = 0; round < 20; ++round) {
      for (size_t i = 0; i < catalog->deployments().size(); ++i) {
        v1::Outcome* o = outcomes.Add();
        o->set_deployment_id(catalog->deployments()[i].id());
        o->set_http_status(200);
        o->set_latency_us(latency[i] + round * 100);
        o->set_ttft_us(latency[i] / 4);
        o->set_input_tokens(500);
        o->set_output_tokens(200);
      }
    }
    health.Report(outcomes);
  }
  std::shared_ptr<const Catalog> catalog;
  HealthTracker health;
};

Fixture& Shared() {
  static Fixture* fixture = new Fixture();
  return *fixture;
}

v1::RouteRequest MakeRequest(const std::string& model, bool rich) {
  v1::RouteRequest request;
  request.set_request_id("0123456789abcdef0123456789abcdef");
  request.set_model(model);
  request.mutable_attribution()->set_team("core");
  request.mutable_attribution()->set_feature("chat");
  request.mutable_attribution()->set_api_key_id("key-1");
  request.set_estimated_input_tokens(rich ? 3200 : 350);
  request.set_max_output_tokens(rich ? 0 : 256);
  request.set_stream(true);
  if (rich) {
    request.add_content_markers("code");
    request.add_required_capabilities("tools");
    (*request.mutable_attribution()->mutable_tags())["tier"] = "silver";
  }
  return request;
}

struct Case {
  const char* name;
  std::string model;
  bool rich;
};

const std::vector<Case>& Cases() {
  static const std::vector<Case>* cases = new std::vector<Case>{
      {"priority", "priority", false},           {"weighted", "weighted", false},
      {"least-latency", "least-latency", false}, {"least-cost", "least-cost", false},
      {"cost-quality", "cost-quality", true},    {"auto/simple", "auto", false},
      {"auto/code+rules", "auto", true},
  };
  return *cases;
}

// One Route decision as the service makes it: snapshots, decide, fill the answer.
bool DecideOnce(const Fixture& f, const v1::RouteRequest& request, std::mt19937_64& rng) {
  const std::shared_ptr<const HealthSnapshot> health = f.health.Get();
  RouteEnv env;
  env.health = health.get();
  env.now = absl::Now();
  env.rng = &rng;
  RouteDecision decision;
  v1::RouteResponse response;
  if (!DecideRoute(*f.catalog, request, env, &decision).ok()) return false;
  FillRouteResponse(*f.catalog, request, decision, &response);
  benchmark::DoNotOptimize(response);
  return response.candidates_size() > 0;
}

void BM_Decide(benchmark::State& state, const Case& c) {
  const Fixture& f = Shared();
  const v1::RouteRequest request = MakeRequest(c.model, c.rich);
  std::mt19937_64 rng(1);
  for (auto _ : state) {
    if (!DecideOnce(f, request, rng)) state.SkipWithError("decision failed");
  }
}

void PrintPercentiles(int64_t calls) {
  const Fixture& f = Shared();
  std::printf("\nDecision time per call (DecideRoute + FillRouteResponse), %lld calls per case\n",
              static_cast<long long>(calls));
  std::printf("%-18s %10s %10s %10s %10s  %s\n", "case", "p50_us", "p99_us", "p99.9_us", "max_us",
              "p99 < 20 us");
  bool all_ok = true;
  for (const Case& c : Cases()) {
    const v1::RouteRequest request = MakeRequest(c.model, c.rich);
    std::mt19937_64 rng(1);
    for (int i = 0; i < 1000; ++i) DecideOnce(f, request, rng);  // warm up
    std::vector<double> us;
    us.reserve(static_cast<size_t>(calls));
    for (int64_t i = 0; i < calls; ++i) {
      const auto start = std::chrono::steady_clock::now();
      DecideOnce(f, request, rng);
      const auto end = std::chrono::steady_clock::now();
      us.push_back(std::chrono::duration<double, std::micro>(end - start).count());
    }
    std::sort(us.begin(), us.end());
    auto at = [&](double q) {
      return us[static_cast<size_t>(q * static_cast<double>(us.size() - 1))];
    };
    const bool ok = at(0.99) < 20.0;
    all_ok = all_ok && ok;
    std::printf("%-18s %10.2f %10.2f %10.2f %10.2f  %s\n", c.name, at(0.5), at(0.99), at(0.999),
                us.back(), ok ? "yes" : "NO");
  }
  std::printf("%s\n", all_ok ? "target met: p99 < 20 us for every case"
                             : "target MISSED for at least one case");
}

}  // namespace
}  // namespace tollgate::router

int main(int argc, char** argv) {
  int64_t calls = 200000;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    constexpr char kFlag[] = "--percentile_calls=";
    if (std::strncmp(argv[i], kFlag, sizeof(kFlag) - 1) == 0) {
      calls = std::max<int64_t>(100, std::atoll(argv[i] + sizeof(kFlag) - 1));
    } else {
      args.push_back(argv[i]);
    }
  }
  int benchmark_argc = static_cast<int>(args.size());
  for (const tollgate::router::Case& c : tollgate::router::Cases()) {
    benchmark::RegisterBenchmark((std::string("BM_Decide/") + c.name).c_str(),
                                 tollgate::router::BM_Decide, c);
  }
  benchmark::Initialize(&benchmark_argc, args.data());
  if (benchmark::ReportUnrecognizedArguments(benchmark_argc, args.data())) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  tollgate::router::PrintPercentiles(calls);
  return 0;
}
