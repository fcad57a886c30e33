#include "services/router/catalog.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/money.h"
#include "services/common/price_schedule.h"
#include "services/router/route_engine.h"

namespace tollgate::router {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kValid[] = R"yaml(
providers:
  - name: mock
    dialect: openai
    base_url: http://127.0.0.1:9090/v1/
    api_key_env: MOCK_API_KEY
  - name: openai
    dialect: openai
    base_url: https://api.openai.com/v1
    api_key_env: OPENAI_API_KEY
    enabled_if_env: OPENAI_API_KEY
deployments:
  - id: openai-mini
    provider: openai
    upstream_model: gpt-4o-mini
    region: us
    prices: {input: "0.15", cached_input: "0.075", output: "0.60"}
    capabilities: [chat, stream, tools, json]
  - id: mock-mini
    provider: mock
    upstream_model: gpt-4o-mini
    prices:
      input: 0.15
      output: 0.60
  - id: mock-big
    provider: mock
    upstream_model: gpt-4.1
    region: local
    base_url: http://127.0.0.1:9191/v1
    prices:
      input: "2"
      cached_input: "0.5"
      cache_write_5m: "2.5"
      cache_write_1h: "4"
      output: "8.00"
      reasoning: "9"
    capabilities: [chat]
    context_window: 1047576
    max_output_tokens: 32768
models:
  - name: gpt-4o-mini
    aliases: [mini, small]
    owned_by: openai
    deployments: [openai-mini, mock-mini]
  - name: gpt-4.1
    deployments: [mock-big]
  - name: only-openai
    deployments: [openai-mini]
)yaml";

CatalogLoadOptions Env(std::map<std::string, std::string> vars) {
  CatalogLoadOptions options;
  options.getenv = [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
  return options;
}

// Env(vars) with the load time fixed at `now_unix_ms`.
CatalogLoadOptions At(int64_t now_unix_ms, std::map<std::string, std::string> vars = {}) {
  CatalogLoadOptions options = Env(std::move(vars));
  options.now_unix_ms = [now_unix_ms] { return now_unix_ms; };
  return options;
}

std::shared_ptr<const Catalog> MustLoad(const std::string& text,
                                        const CatalogLoadOptions& options = Env({})) {
  absl::StatusOr<std::shared_ptr<const Catalog>> catalog =
      LoadCatalogFromString(text, "catalog.yaml", options);
  EXPECT_TRUE(catalog.ok()) << catalog.status();
  return catalog.ok() ? *catalog : nullptr;
}

std::vector<std::string> DeploymentIds(const CatalogModel& model) {
  std::vector<std::string> ids;
  for (const v1::Deployment* d : model.deployments) ids.push_back(d->id());
  return ids;
}

TEST(CatalogTest, LoadsValidCatalogWithProviderEnabled) {
  auto catalog = MustLoad(kValid, Env({{"OPENAI_API_KEY", "sk-test"}}));
  ASSERT_NE(catalog, nullptr);
  ASSERT_EQ(catalog->providers().size(), 2u);
  EXPECT_EQ(catalog->providers()[0].name, "mock");
  EXPECT_EQ(catalog->providers()[0].base_url, "http://127.0.0.1:9090/v1");  // trailing '/' gone
  EXPECT_EQ(catalog->providers()[1].enabled_if_env, "OPENAI_API_KEY");
  EXPECT_EQ(catalog->deployments().size(), 3u);
  ASSERT_EQ(catalog->models().size(), 3u);
  EXPECT_TRUE(catalog->notes().empty());

  const CatalogModel* mini = catalog->FindModel("gpt-4o-mini");
  ASSERT_NE(mini, nullptr);
  EXPECT_EQ(mini->owned_by, "openai");
  EXPECT_THAT(mini->aliases, ElementsAre("mini", "small"));
  EXPECT_THAT(DeploymentIds(*mini), ElementsAre("openai-mini", "mock-mini"));

  const v1::Deployment* openai = catalog->FindDeployment("openai-mini");
  ASSERT_NE(openai, nullptr);
  EXPECT_EQ(openai->provider(), "openai");
  EXPECT_EQ(openai->dialect(), "openai");
  EXPECT_EQ(openai->base_url(), "https://api.openai.com/v1");
  EXPECT_EQ(openai->api_key_env(), "OPENAI_API_KEY");
  EXPECT_EQ(openai->upstream_model(), "gpt-4o-mini");
  EXPECT_EQ(openai->region(), "us");
  EXPECT_THAT(openai->capabilities(), ElementsAre("chat", "stream", "tools", "json"));
  EXPECT_EQ(openai->prices().input_pico(), 150000);
  EXPECT_EQ(openai->prices().cached_input_pico(), 75000);
  EXPECT_EQ(openai->prices().output_pico(), 600000);

  const v1::Deployment* big = catalog->FindDeployment("mock-big");
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(big->base_url(), "http://127.0.0.1:9191/v1");  // override wins
  EXPECT_EQ(big->region(), "local");
  EXPECT_EQ(big->prices().input_pico(), 2000000);
  EXPECT_EQ(big->prices().cached_input_pico(), 500000);
  EXPECT_EQ(big->prices().cache_write_5m_pico(), 2500000);
  EXPECT_EQ(big->prices().cache_write_1h_pico(), 4000000);
  EXPECT_EQ(big->prices().output_pico(), 8000000);
  EXPECT_EQ(big->prices().reasoning_pico(), 9000000);
  EXPECT_EQ(big->context_window(), 1047576);
  EXPECT_EQ(big->max_output_tokens(), 32768);
  EXPECT_THAT(big->capabilities(), ElementsAre("chat"));
}

TEST(CatalogTest, AppliesDefaults) {
  auto catalog = MustLoad(kValid);
  ASSERT_NE(catalog, nullptr);
  const v1::Deployment* d = catalog->FindDeployment("mock-mini");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->region(), "global");
  EXPECT_EQ(d->base_url(), "http://127.0.0.1:9090/v1");  // the provider's
  EXPECT_EQ(d->api_key_env(), "MOCK_API_KEY");
  EXPECT_THAT(d->capabilities(), ElementsAre("chat", "stream"));
  EXPECT_EQ(d->context_window(), 128000);
  EXPECT_EQ(d->max_output_tokens(), 16384);
  EXPECT_EQ(d->prices().cached_input_pico(), d->prices().input_pico());
  EXPECT_EQ(d->prices().cache_write_5m_pico(), d->prices().input_pico());
  EXPECT_EQ(d->prices().cache_write_1h_pico(), d->prices().input_pico());
  EXPECT_EQ(d->prices().reasoning_pico(), 0);
  const CatalogModel* model = catalog->FindModel("gpt-4.1");
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->owned_by, "tollgate");
  EXPECT_TRUE(model->aliases.empty());
}

TEST(CatalogTest, NumericScalarPricesAreExact) {
  // 0.15 and 0.075 have no exact binary representation; the scalar's text must be used.
  auto catalog = MustLoad(kValid);
  ASSERT_NE(catalog, nullptr);
  const v1::Deployment* d = catalog->FindDeployment("mock-mini");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->prices().input_pico(), 150000);
  EXPECT_EQ(d->prices().output_pico(), 600000);

  std::string text = kValid;
  const std::string from = "input: 0.15\n      output: 0.60";
  text.replace(text.find(from), from.size(),
               "input: 0.000001\n      cached_input: 0.075\n      output: 1234567.123456");
  catalog = MustLoad(text);
  ASSERT_NE(catalog, nullptr);
  d = catalog->FindDeployment("mock-mini");
  EXPECT_EQ(d->prices().input_pico(), 1);
  EXPECT_EQ(d->prices().cached_input_pico(), 75000);
  EXPECT_EQ(d->prices().output_pico(), 1234567123456);
}

TEST(CatalogTest, ResolvesNamesAndAliases) {
  auto catalog = MustLoad(kValid, Env({{"OPENAI_API_KEY", "sk"}}));
  ASSERT_NE(catalog, nullptr);
  const CatalogModel* by_name = catalog->FindModel("gpt-4o-mini");
  ASSERT_NE(by_name, nullptr);
  EXPECT_EQ(catalog->FindModel("mini"), by_name);
  EXPECT_EQ(catalog->FindModel("small"), by_name);
  EXPECT_EQ(catalog->FindModel("MINI"), nullptr);  // case-sensitive
  EXPECT_EQ(catalog->FindModel("gpt-4o"), nullptr);
  EXPECT_EQ(catalog->FindModel(""), nullptr);
  EXPECT_EQ(&catalog->models()[by_name->index], by_name);
}

TEST(CatalogTest, EnabledIfEnvSkipsProviderAndDropsEmptyModels) {
  for (const char* value : std::initializer_list<const char*>{"", nullptr}) {
    std::map<std::string, std::string> vars;
    if (value != nullptr) vars["OPENAI_API_KEY"] = value;  // set but empty counts as unset
    auto catalog = MustLoad(kValid, Env(vars));
    ASSERT_NE(catalog, nullptr);
    ASSERT_EQ(catalog->providers().size(), 1u);
    EXPECT_EQ(catalog->providers()[0].name, "mock");
    EXPECT_EQ(catalog->FindDeployment("openai-mini"), nullptr);
    EXPECT_EQ(catalog->deployments().size(), 2u);
    const CatalogModel* mini = catalog->FindModel("mini");
    ASSERT_NE(mini, nullptr);
    EXPECT_THAT(DeploymentIds(*mini), ElementsAre("mock-mini"));
    EXPECT_EQ(catalog->FindModel("only-openai"), nullptr);
    ASSERT_EQ(catalog->models().size(), 2u);
    for (const CatalogModel& m : catalog->models()) {
      EXPECT_EQ(&catalog->models()[m.index], &m);
    }
    ASSERT_EQ(catalog->notes().size(), 2u);
    EXPECT_THAT(catalog->notes()[0], HasSubstr("provider 'openai' skipped"));
    EXPECT_THAT(catalog->notes()[1], HasSubstr("model 'only-openai' dropped"));
  }
}

TEST(CatalogTest, EnabledIfEnvReadsProcessEnvironmentByDefault) {
  const std::string var = "TOLLGATE_CATALOG_TEST_ENABLE";
  std::string text = kValid;
  for (size_t at; (at = text.find("enabled_if_env: OPENAI_API_KEY")) != std::string::npos;) {
    text.replace(at, 30, "enabled_if_env: " + var);
  }
  unsetenv(var.c_str());
  auto off = LoadCatalogFromString(text, "catalog.yaml");
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ((*off)->FindDeployment("openai-mini"), nullptr);
  setenv(var.c_str(), "1", 1);
  auto on = LoadCatalogFromString(text, "catalog.yaml");
  unsetenv(var.c_str());
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_NE((*on)->FindDeployment("openai-mini"), nullptr);
}

TEST(CatalogTest, VersionIsContentHash) {
  auto a = MustLoad(kValid);
  auto b = MustLoad(kValid);
  auto c = MustLoad(std::string(kValid) + "\n# comment\n");
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->version(), b->version());
  EXPECT_NE(a->version(), c->version());
  EXPECT_EQ(a->version().size(), 16u);
  EXPECT_EQ(a->version().find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(a->version(), ContentHash(kValid));
  for (const v1::Deployment& d : a->deployments()) {
    EXPECT_EQ(d.prices().price_card_version(), a->version());
  }
  // FNV-1a 64 reference values.
  EXPECT_EQ(ContentHash(""), "cbf29ce484222325");
  EXPECT_EQ(ContentHash("a"), "af63dc4c8601ec8c");
}

TEST(CatalogTest, LoadsFile) {
  const std::string path = absl::StrCat(testing::TempDir(), "catalog_test_", getpid(), ".yaml");
  {
    FILE* f = fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    fputs(kValid, f);
    fclose(f);
  }
  auto catalog = LoadCatalogFile(path, Env({}));
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  EXPECT_EQ((*catalog)->source(), path);
  EXPECT_EQ((*catalog)->version(), ContentHash(kValid));

  auto missing = LoadCatalogFile(path + ".missing");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr(path + ".missing"));
}

TEST(CatalogTest, ShippedCatalogsAreValid) {
  const std::string dir = TOLLGATE_SOURCE_DIR "/deploy/config/";
  // Without a key the mock serves every model.
  auto dev = LoadCatalogFile(dir + "catalog.dev.yaml", Env({}));
  ASSERT_TRUE(dev.ok()) << dev.status();
  for (const char* name : {"gpt-4o-mini", "mini", "gpt-4o", "gpt-4.1"}) {
    const CatalogModel* model = (*dev)->FindModel(name);
    ASSERT_NE(model, nullptr) << name;
    for (const v1::Deployment* d : model->deployments) EXPECT_EQ(d->provider(), "mock");
  }
  const v1::Deployment* mock_mini = (*dev)->FindDeployment("mock-gpt-4o-mini");
  ASSERT_NE(mock_mini, nullptr);
  EXPECT_EQ(mock_mini->base_url(), "http://127.0.0.1:9090/v1");
  EXPECT_EQ(mock_mini->prices().input_pico(), 150000);
  EXPECT_EQ(mock_mini->prices().cached_input_pico(), 75000);
  EXPECT_EQ(mock_mini->prices().output_pico(), 600000);

  // With a key, real OpenAI comes first and the mock is the fallback.
  auto with_key = LoadCatalogFile(dir + "catalog.dev.yaml", Env({{"OPENAI_API_KEY", "sk"}}));
  ASSERT_TRUE(with_key.ok()) << with_key.status();
  EXPECT_THAT(DeploymentIds(*(*with_key)->FindModel("gpt-4o-mini")),
              ElementsAre("openai-gpt-4o-mini", "mock-gpt-4o-mini"));
  EXPECT_THAT(DeploymentIds(*(*with_key)->FindModel("gpt-4o")),
              ElementsAre("openai-gpt-4o", "mock-gpt-4o"));
  EXPECT_EQ((*with_key)->FindDeployment("openai-gpt-4o")->api_key_env(), "OPENAI_API_KEY");

  auto example = LoadCatalogFile(dir + "catalog.example.yaml", Env({{"OPENAI_API_KEY", "sk"}}));
  ASSERT_TRUE(example.ok()) << example.status();
}

TEST(CatalogTest, ShippedModelsCatalogLoadsWithListPrices) {
  const std::string path = TOLLGATE_SOURCE_DIR "/deploy/config/catalog.models.yaml";
  const std::map<std::string, std::string> keys = {
      {"OPENAI_API_KEY", "k"}, {"AZURE_OPENAI_API_KEY", "k"}, {"ANTHROPIC_API_KEY", "k"},
      {"GEMINI_API_KEY", "k"}, {"MISTRAL_API_KEY", "k"},      {"DEEPSEEK_API_KEY", "k"},
      {"GROQ_API_KEY", "k"},   {"TOGETHER_API_KEY", "k"},     {"TOLLGATE_VLLM_ENABLED", "1"}};
  // It must load now (real clock) and at a fixed date, every provider enabled.
  auto now = LoadCatalogFile(path, Env(keys));
  ASSERT_TRUE(now.ok()) << now.status();
  auto loaded = LoadCatalogFile(path, At(1795305600000, keys));  // 2026-11-22T00:00:00Z
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Catalog& c = **loaded;
  EXPECT_TRUE(c.notes().empty());
  EXPECT_EQ(c.providers().size(), 10u);
  EXPECT_GE(c.models().size(), 20u);
  for (const v1::Deployment& d : c.deployments()) {
    EXPECT_GT(d.capabilities_size(), 0) << d.id();
    const bool self_hosted = d.provider() == "vllm" || d.provider() == "ollama";
    if (!self_hosted) {
      EXPECT_GT(d.prices().input_pico(), 0) << d.id();
      EXPECT_FALSE(d.api_key_env().empty()) << d.id();
    }
  }
  for (const char* name : {"gpt-4o",
                           "gpt-4o-mini",
                           "gpt-4.1",
                           "gpt-4.1-mini",
                           "o3",
                           "o4-mini",
                           "text-embedding-3-small",
                           "text-embedding-3-large",
                           "claude-sonnet-4",
                           "claude-opus-4.1",
                           "claude-opus-4.5",
                           "claude-haiku-4.5",
                           "claude-haiku-4-5",
                           "gemini-2.5-pro",
                           "gemini-2.5-flash",
                           "gemini-2.5-flash-lite",
                           "mistral-large",
                           "mistral-small",
                           "deepseek-chat",
                           "deepseek-reasoner",
                           "llama-3.3-70b",
                           "llama3.2"}) {
    EXPECT_NE(c.FindModel(name), nullptr) << name;
  }
  EXPECT_THAT(DeploymentIds(*c.FindModel("gpt-4o")), ElementsAre("openai-gpt-4o", "azure-gpt-4o"));

  // PROVIDERS.md 5.2 figures, to the pico-dollar.
  const v1::Deployment* mini = c.FindDeployment("openai-gpt-4o-mini");
  ASSERT_NE(mini, nullptr);
  EXPECT_EQ(mini->prices().input_pico(), 150'000);
  EXPECT_EQ(mini->prices().cached_input_pico(), 75'000);
  EXPECT_EQ(mini->prices().output_pico(), 600'000);

  const v1::Deployment* sonnet = c.FindDeployment("anthropic-claude-sonnet-4");
  ASSERT_NE(sonnet, nullptr);
  EXPECT_EQ(sonnet->dialect(), "anthropic");
  EXPECT_EQ(sonnet->options().at("anthropic_version"), "2023-06-01");
  EXPECT_EQ(sonnet->api_key_env(), "ANTHROPIC_API_KEY");
  EXPECT_EQ(sonnet->prices().cache_write_5m_pico(), 3'750'000);
  EXPECT_EQ(sonnet->prices().cache_write_1h_pico(), 6'000'000);
  EXPECT_EQ(sonnet->prices().long_context_threshold_tokens(), 200000);
  EXPECT_EQ(sonnet->prices().long_context().output_pico(), 22'500'000);
  v1::TokenUsage u;  // 250k input: 40k plain, 150k read, 40k 5m write, 20k 1h write; 3k out
  u.set_input_tokens(250000);
  u.set_cached_input_tokens(150000);
  u.set_cache_write_5m_tokens(40000);
  u.set_cache_write_1h_tokens(20000);
  u.set_output_tokens(3000);
  EXPECT_EQ(*PriceUsage(u, PricesAt(*sonnet, 1795305600000)), 937'500'000'000);

  const v1::Deployment* haiku = c.FindDeployment("anthropic-claude-haiku-4.5");
  ASSERT_NE(haiku, nullptr);
  EXPECT_EQ(haiku->prices().cached_input_pico(), 100'000);
  EXPECT_EQ(haiku->prices().cache_write_5m_pico(), 1'250'000);
  EXPECT_EQ(haiku->prices().cache_write_1h_pico(), 2'000'000);

  const v1::Deployment* pro = c.FindDeployment("gemini-2.5-pro");
  ASSERT_NE(pro, nullptr);
  EXPECT_EQ(pro->dialect(), "gemini");
  EXPECT_EQ(pro->prices().input_pico(), 1'250'000);
  EXPECT_EQ(pro->prices().cached_input_pico(), 125'000);
  EXPECT_EQ(pro->prices().long_context().input_pico(), 2'500'000);
  EXPECT_EQ(pro->prices().long_context().cached_input_pico(), 250'000);
  EXPECT_EQ(pro->prices().long_context().output_pico(), 15'000'000);

  const v1::Deployment* azure = c.FindDeployment("azure-gpt-4o");
  ASSERT_NE(azure, nullptr);
  EXPECT_EQ(azure->dialect(), "azure_openai");
  EXPECT_EQ(azure->options().at("api_version"), "2024-10-21");
  EXPECT_EQ(azure->options().at("url_style"), "deployments");

  EXPECT_EQ(c.FindDeployment("mistral-large")->options().at("compat"), "mistral");
  EXPECT_EQ(c.FindDeployment("groq-llama-3.3-70b")->options().at("compat"), "groq");
  EXPECT_EQ(c.FindDeployment("ollama-llama3.2")->prices().input_pico(), 0);

  // DeepSeek: dated cards; the current one is PROVIDERS.md's.
  const v1::Deployment* deepseek = c.FindDeployment("deepseek-chat");
  ASSERT_NE(deepseek, nullptr);
  EXPECT_EQ(deepseek->options().at("compat"), "deepseek");
  ASSERT_EQ(deepseek->price_schedule_size(), 2);
  EXPECT_EQ(deepseek->prices().input_pico(), 280'000);
  EXPECT_EQ(deepseek->prices().cached_input_pico(), 28'000);
  EXPECT_EQ(deepseek->prices().output_pico(), 420'000);
  EXPECT_EQ(deepseek->prices().price_card_version(), c.version() + "@2025-09-29T00:00:00Z");

  // No key at all: only the always-on local Ollama model is left.
  auto bare = LoadCatalogFile(path, Env({}));
  ASSERT_TRUE(bare.ok()) << bare.status();
  ASSERT_EQ((*bare)->models().size(), 1u);
  EXPECT_EQ((*bare)->models()[0].name, "llama3.2");
  // One key: that provider's models only; gpt-4o without its Azure fallback.
  auto openai_only = LoadCatalogFile(path, Env({{"OPENAI_API_KEY", "k"}}));
  ASSERT_TRUE(openai_only.ok()) << openai_only.status();
  EXPECT_THAT(DeploymentIds(*(*openai_only)->FindModel("gpt-4o")), ElementsAre("openai-gpt-4o"));
  EXPECT_EQ((*openai_only)->FindModel("claude-sonnet-4"), nullptr);
}

// --- Prices: long-context tiers and dated cards ---------------------------------------------

constexpr int64_t kJan2025Ms = 1735689600000;    // 2025-01-01T00:00:00Z
constexpr int64_t kSep5th16hMs = 1757088000000;  // 2025-09-05T16:00:00Z
constexpr int64_t kSep29Ms = 1759104000000;      // 2025-09-29T00:00:00Z

constexpr char kPriced[] = R"yaml(
providers:
  - name: anthropic
    dialect: anthropic
    base_url: https://api.anthropic.com/v1
  - name: deepseek
    dialect: openai
    base_url: https://api.deepseek.com
deployments:
  - id: sonnet-4
    provider: anthropic
    upstream_model: claude-sonnet-4-20250514
    context_window: 1000000
    max_output_tokens: 64000
    prices:
      input: "3.00"
      cached_input: "0.30"
      cache_write_5m: "3.75"
      cache_write_1h: "6.00"
      output: "15.00"
      long_context:
        above_input_tokens: 200000
        input: "6.00"
        cached_input: "0.60"
        cache_write_5m: "7.50"
        cache_write_1h: "12.00"
        output: "22.50"
  - id: deepseek-chat
    provider: deepseek
    upstream_model: deepseek-chat
    prices:
      - effective_from: 2025-01-01T00:00:00Z
        input: "0.27"
        cached_input: "0.07"
        output: "1.10"
      - {effective_from: "2025-09-05T16:00:00Z", input: "0.56", cached_input: "0.07", output: "1.68"}
      - effective_from: 2025-09-29T00:00:00Z
        input: "0.28"
        cached_input: "0.028"
        output: "0.42"
        long_context: {above_input_tokens: 100000, input: "0.56", cached_input: "0.056", output: "0.84"}
models:
  - name: claude-sonnet-4
    deployments: [sonnet-4]
  - name: deepseek-chat
    deployments: [deepseek-chat]
)yaml";

TEST(CatalogPricesTest, LongContextTier) {
  auto catalog = MustLoad(kPriced, At(kSep29Ms));
  ASSERT_NE(catalog, nullptr);
  const v1::Deployment* d = catalog->FindDeployment("sonnet-4");
  ASSERT_NE(d, nullptr);
  const v1::UnitPrices& p = d->prices();
  EXPECT_EQ(p.input_pico(), 3'000'000);
  EXPECT_EQ(p.cached_input_pico(), 300'000);
  EXPECT_EQ(p.cache_write_5m_pico(), 3'750'000);
  EXPECT_EQ(p.cache_write_1h_pico(), 6'000'000);
  EXPECT_EQ(p.output_pico(), 15'000'000);
  EXPECT_EQ(p.long_context_threshold_tokens(), 200000);
  ASSERT_TRUE(p.has_long_context());
  EXPECT_EQ(p.long_context().input_pico(), 6'000'000);
  EXPECT_EQ(p.long_context().cached_input_pico(), 600'000);
  EXPECT_EQ(p.long_context().cache_write_5m_pico(), 7'500'000);
  EXPECT_EQ(p.long_context().cache_write_1h_pico(), 12'000'000);
  EXPECT_EQ(p.long_context().output_pico(), 22'500'000);
  EXPECT_EQ(p.long_context().reasoning_pico(), 0);
  EXPECT_EQ(p.price_card_version(), catalog->version());
  EXPECT_EQ(d->price_schedule_size(), 0);  // one undated card

  // End to end through the money functions: 250k input (150k read, 40k 5m, 20k 1h), 3k out.
  v1::TokenUsage u;
  u.set_input_tokens(250000);
  u.set_cached_input_tokens(150000);
  u.set_cache_write_5m_tokens(40000);
  u.set_cache_write_1h_tokens(20000);
  u.set_output_tokens(3000);
  EXPECT_EQ(*PriceUsage(u, PricesAt(*d, kSep29Ms)), 937'500'000'000);
}

TEST(CatalogPricesTest, DatedCardsFillTheScheduleAndTheCurrentCard) {
  auto catalog = MustLoad(kPriced, At(kSep5th16hMs + 1000));
  ASSERT_NE(catalog, nullptr);
  const v1::Deployment* d = catalog->FindDeployment("deepseek-chat");
  ASSERT_NE(d, nullptr);
  const std::string& v = catalog->version();
  ASSERT_EQ(d->price_schedule_size(), 3);
  EXPECT_EQ(d->price_schedule(0).effective_from_unix_ms(), kJan2025Ms);
  EXPECT_EQ(d->price_schedule(1).effective_from_unix_ms(), kSep5th16hMs);
  EXPECT_EQ(d->price_schedule(2).effective_from_unix_ms(), kSep29Ms);
  EXPECT_EQ(d->price_schedule(0).prices().price_card_version(), v + "@2025-01-01T00:00:00Z");
  EXPECT_EQ(d->price_schedule(1).prices().price_card_version(), v + "@2025-09-05T16:00:00Z");
  EXPECT_EQ(d->price_schedule(2).prices().price_card_version(), v + "@2025-09-29T00:00:00Z");
  // Defaults apply per card: no cache writes given -> input price.
  EXPECT_EQ(d->price_schedule(0).prices().cache_write_5m_pico(), 270'000);
  EXPECT_EQ(d->price_schedule(0).prices().cached_input_pico(), 70'000);
  EXPECT_EQ(d->price_schedule(2).prices().cached_input_pico(), 28'000);
  EXPECT_EQ(d->price_schedule(2).prices().long_context_threshold_tokens(), 100000);
  EXPECT_EQ(d->price_schedule(2).prices().long_context().cached_input_pico(), 56'000);
  EXPECT_FALSE(d->price_schedule(1).prices().has_long_context());

  // `prices` is the card in effect at load: the second.
  EXPECT_EQ(d->prices().price_card_version(), v + "@2025-09-05T16:00:00Z");
  EXPECT_EQ(d->prices().input_pico(), 560'000);
  EXPECT_EQ(d->prices().output_pico(), 1'680'000);

  // Each request by its start time; the switch is exact to the millisecond.
  v1::TokenUsage u;
  u.set_input_tokens(1'000'000);
  u.set_cached_input_tokens(400'000);
  u.set_output_tokens(100'000);
  // 600k*0.27 + 400k*0.07 + 100k*1.10 = 0.162 + 0.028 + 0.110 = $0.30
  EXPECT_EQ(*PriceUsage(u, PricesAt(*d, kSep5th16hMs - 1)), 300'000'000'000);
  // 600k*0.56 + 400k*0.07 + 100k*1.68 = 0.336 + 0.028 + 0.168 = $0.532
  EXPECT_EQ(*PriceUsage(u, PricesAt(*d, kSep5th16hMs)), 532'000'000'000);
  // From Sep 29 a request over 100k input is at that card's tier:
  // 600k*0.56 + 400k*0.056 + 100k*0.84 = 0.336 + 0.0224 + 0.084 = $0.4424
  EXPECT_EQ(*PriceUsage(u, PricesAt(*d, kSep29Ms)), 442'400'000'000);
  const v1::UnitPrices flat = EffectivePrices(PricesAt(*d, kSep29Ms), u);
  EXPECT_EQ(flat.input_pico(), 560'000);
  EXPECT_EQ(flat.price_card_version(), v + "@2025-09-29T00:00:00Z/long_context");

  // Loaded after the last switch, `prices` is the last card.
  catalog = MustLoad(kPriced, At(kSep29Ms));
  ASSERT_NE(catalog, nullptr);
  EXPECT_EQ(catalog->FindDeployment("deepseek-chat")->prices().input_pico(), 280'000);
}

TEST(CatalogPricesTest, FirstCardMustBeInEffectAtLoad) {
  auto early = LoadCatalogFromString(kPriced, "catalog.yaml", At(kJan2025Ms - 1));
  ASSERT_FALSE(early.ok());
  EXPECT_THAT(std::string(early.status().message()),
              HasSubstr("deployment 'deepseek-chat' prices: no card is in effect yet: the first "
                        "effective_from (2025-01-01T00:00:00Z) is after the catalog's load time "
                        "(2024-12-31T23:59:59Z)"));
  auto on_time = LoadCatalogFromString(kPriced, "catalog.yaml", At(kJan2025Ms));
  ASSERT_TRUE(on_time.ok()) << on_time.status();
  EXPECT_EQ((*on_time)->FindDeployment("deepseek-chat")->prices().input_pico(), 270'000);
  EXPECT_EQ((*on_time)->loaded_at_unix(), kJan2025Ms / 1000);
}

// The router's cost policies price each deployment by its card in effect at the decision time,
// at the long-context tier when the estimated input is above it.
constexpr char kPricedRouting[] = R"yaml(
providers:
  - name: p
    dialect: openai
    base_url: http://127.0.0.1:9/v1
deployments:
  - id: dated
    provider: p
    upstream_model: a
    prices:
      - {effective_from: 2025-01-01T00:00:00Z, input: "1.00", output: "1.00"}
      - {effective_from: 2025-09-29T00:00:00Z, input: "0.10", output: "0.10"}
  - id: flat
    provider: p
    upstream_model: b
    prices: {input: "0.50", output: "0.50"}
  - id: tiered
    provider: p
    upstream_model: c
    prices:
      input: "0.20"
      output: "0.20"
      long_context: {above_input_tokens: 1000, input: "2.00", output: "2.00"}
models:
  - name: dated-vs-flat
    deployments: [dated, flat]
    policy: {type: least-cost, cache_ttl_ms: 60000}
  - name: tiered-vs-flat
    deployments: [flat, tiered]
    policy: {type: least-cost, cache_ttl_ms: 60000}
)yaml";

std::vector<std::string> CandidateIds(const RouteDecision& decision) {
  std::vector<std::string> ids;
  for (const RankedCandidate& c : decision.candidates) ids.push_back(c.deployment->id());
  return ids;
}

TEST(CatalogPricesTest, LeastCostUsesTheCardInEffectAtDecisionTime) {
  auto catalog = MustLoad(kPricedRouting, At(kJan2025Ms));
  ASSERT_NE(catalog, nullptr);
  v1::RouteRequest request;
  request.set_model("dated-vs-flat");
  request.set_estimated_input_tokens(100);
  request.set_max_output_tokens(100);
  RouteEnv env;
  // 10 s before the switch: the old card (1.00) is dearer than flat (0.50).
  env.now = absl::FromUnixMillis(kSep29Ms - 10000);
  RouteDecision before;
  ASSERT_TRUE(DecideRoute(*catalog, request, env, &before).ok());
  EXPECT_THAT(CandidateIds(before), ElementsAre("flat", "dated"));
  EXPECT_EQ(before.candidates[1].cost_pico, 200 * 1'000'000LL);
  // Cacheable (flat is cheaper in both prices), but not past the switch.
  EXPECT_EQ(before.cache_ttl_ms, 10000);
  // At the switch the same (unreloaded) catalog orders by the new card.
  env.now = absl::FromUnixMillis(kSep29Ms);
  RouteDecision after;
  ASSERT_TRUE(DecideRoute(*catalog, request, env, &after).ok());
  EXPECT_THAT(CandidateIds(after), ElementsAre("dated", "flat"));
  EXPECT_EQ(after.candidates[0].cost_pico, 200 * 100'000LL);
  EXPECT_EQ(after.cache_ttl_ms, 60000);  // no further change scheduled
}

TEST(CatalogPricesTest, LeastCostEstimatesAtTheLongContextTier) {
  auto catalog = MustLoad(kPricedRouting, At(kJan2025Ms));
  ASSERT_NE(catalog, nullptr);
  v1::RouteRequest request;
  request.set_model("tiered-vs-flat");
  request.set_estimated_input_tokens(1000);  // at the threshold: base prices
  request.set_max_output_tokens(10);
  RouteEnv env;
  env.now = absl::FromUnixMillis(kSep29Ms);
  RouteDecision small;
  ASSERT_TRUE(DecideRoute(*catalog, request, env, &small).ok());
  EXPECT_THAT(CandidateIds(small), ElementsAre("tiered", "flat"));
  EXPECT_EQ(small.candidates[0].cost_pico, 1010 * 200'000LL);
  // The order changes with the input size: never cached.
  EXPECT_EQ(small.cache_ttl_ms, 0);
  request.set_estimated_input_tokens(1001);  // above it: the whole request at 2.00
  RouteDecision large;
  ASSERT_TRUE(DecideRoute(*catalog, request, env, &large).ok());
  EXPECT_THAT(CandidateIds(large), ElementsAre("flat", "tiered"));
  EXPECT_EQ(large.candidates[1].cost_pico, 1011 * 2'000'000LL);
  EXPECT_EQ(large.cache_ttl_ms, 0);
}

struct BadCase {
  std::string name;
  std::string yaml;
  std::string error;  // expected substring, "catalog.yaml:<line>: ..." included
};

// A minimal valid catalog; each case below breaks one thing.
constexpr char kMinimal[] = R"yaml(providers:
  - name: p
    dialect: openai
    base_url: http://h/v1
deployments:
  - id: d
    provider: p
    upstream_model: m
    prices: {input: "1", output: "2"}
models:
  - name: m
    deployments: [d]
)yaml";

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  if (at == std::string::npos)
    ADD_FAILURE() << "'" << from << "' not in the catalog";
  else
    text.replace(at, from.size(), to);
  return text;
}

// kMinimal with its `prices:` line replaced by `text`.
std::string Prices(const std::string& minimal, const std::string& text) {
  return Replace(minimal, "    prices: {input: \"1\", output: \"2\"}", text);
}

class CatalogErrorTest : public testing::TestWithParam<BadCase> {};

TEST_P(CatalogErrorTest, RejectsWithPreciseError) {
  auto catalog = LoadCatalogFromString(GetParam().yaml, "catalog.yaml", Env({}));
  ASSERT_FALSE(catalog.ok()) << GetParam().yaml;
  EXPECT_EQ(catalog.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(catalog.status().message()), HasSubstr(GetParam().error));
}

std::vector<BadCase> BadCases() {
  const std::string m = kMinimal;
  return {
      {"Empty", "", "catalog.yaml:1: catalog is empty"},
      {"NotAMap", "- a\n- b\n", "catalog.yaml:1: catalog must be a mapping"},
      {"TwoDocuments", m + "---\nproviders: []\n",
       "catalog.yaml:13: catalog must be a single YAML document"},
      // Regression: yaml-cpp 0.7 LoadAll looped forever, allocating, on this (found by fuzzing).
      {"MalformedFirstDocument",
       ",keys:\n  - key: tg-dev-0123456789\n   1e309 id: deam: platform\n", "catalog.yaml:"},
      {"SyntaxError", "providers: [a, b\n", "catalog.yaml:2:"},
      {"UnknownTopLevelKey", m + "modles: []\n",
       "catalog.yaml:13: catalog: unknown key 'modles' (valid keys: providers, deployments, "
       "models, rules, teams, classifier, routing)"},
      {"DuplicateTopLevelKey", m + "models: []\n",
       "catalog.yaml:13: catalog: duplicate key 'models'"},
      {"MissingProviders",
       Replace(m,
               "providers:\n  - name: p\n    dialect: openai\n    "
               "base_url: http://h/v1\n",
               ""),
       "'providers' is required"},
      {"EmptyDeployments",
       Replace(m,
               "deployments:\n  - id: d\n    provider: p\n    upstream_model: m\n"
               "    prices: {input: \"1\", output: \"2\"}\n",
               "deployments: []\n"),
       "catalog.yaml:5: catalog: 'deployments' must be a non-empty list"},
      {"ProvidersNotList",
       Replace(m, "providers:\n  - name: p\n    dialect: openai\n    base_url: http://h/v1\n",
               "providers: {a: 1}\n"),
       "catalog.yaml:1: catalog: 'providers' must be a non-empty list"},
      {"UnknownProviderKey",
       Replace(m, "    dialect: openai", "    dialect: openai\n    apikey: X"),
       "catalog.yaml:4: providers[0]: unknown key 'apikey'"},
      {"DuplicateProviderKey",
       Replace(m, "    dialect: openai", "    dialect: openai\n    dialect: openai"),
       "catalog.yaml:4: providers[0]: duplicate key 'dialect'"},
      {"ProviderWithoutName", Replace(m, "  - name: p\n", "  - dialect2: x\n"),
       "unknown key 'dialect2'"},
      {"ProviderNameMissing", Replace(m, "  - name: p\n    dialect", "  - dialect"),
       "catalog.yaml:2: providers[0]: 'name' is required"},
      {"DuplicateProvider",
       Replace(m, "deployments:",
               "  - name: p\n    dialect: openai\n    base_url: http://h\ndeployments:"),
       "catalog.yaml:5: duplicate provider name 'p'"},
      {"UnknownDialect", Replace(m, "dialect: openai", "dialect: bedrock"),
       "catalog.yaml:3: provider 'p': unknown dialect 'bedrock' (valid: openai, azure_openai, "
       "anthropic, gemini)"},
      {"MissingBaseUrl", Replace(m, "    base_url: http://h/v1\n", ""),
       "provider 'p': 'base_url' is required"},
      {"BadUrl", Replace(m, "http://h/v1", "http://[bad/v1"),
       "catalog.yaml:4: provider 'p': 'base_url' is not a valid URL: 'http://[bad/v1'"},
      {"FtpUrl", Replace(m, "http://h/v1", "ftp://h/v1"),
       "catalog.yaml:4: provider 'p': 'base_url' must be an http or https URL"},
      {"RelativeUrl", Replace(m, "http://h/v1", "/v1"), "catalog.yaml:4: provider 'p': 'base_url'"},
      {"UrlWithQuery", Replace(m, "http://h/v1", "http://h/v1?x=1"),
       "must not carry credentials, a query or a fragment"},
      {"UrlWithCredentials", Replace(m, "http://h/v1", "http://u:pw@h/v1"),
       "must not carry credentials"},
      {"BadEnvName",
       Replace(m, "    dialect: openai", "    dialect: openai\n    api_key_env: MY-KEY"),
       "catalog.yaml:4: provider 'p': 'api_key_env' must be an environment variable name"},
      {"BadEnabledIfEnv",
       Replace(m, "    dialect: openai", "    dialect: openai\n    enabled_if_env: 1KEY"),
       "provider 'p': 'enabled_if_env' must be an environment variable name"},
      {"UnknownDeploymentKey",
       Replace(m, "    upstream_model: m", "    upstream_model: m\n    regoin: us"),
       "catalog.yaml:9: deployments[0]: unknown key 'regoin'"},
      {"DeploymentIdMissing", Replace(m, "  - id: d\n    provider", "  - provider"),
       "catalog.yaml:6: deployments[0]: 'id' is required"},
      {"DeploymentIdWithSpace", Replace(m, "  - id: d\n", "  - id: d x\n"),
       "catalog.yaml:6: deployments[0]: 'id' must not contain whitespace"},
      {"DuplicateDeployment",
       Replace(m, "models:",
               "  - id: d\n    provider: p\n    upstream_model: m\n"
               "    prices: {input: 1, output: 1}\nmodels:"),
       "catalog.yaml:10: duplicate deployment id 'd'"},
      {"UnknownProvider", Replace(m, "provider: p", "provider: q"),
       "catalog.yaml:7: deployment 'd' references unknown provider 'q'"},
      {"MissingUpstreamModel", Replace(m, "    upstream_model: m\n", ""),
       "deployment 'd': 'upstream_model' is required"},
      {"MissingPrices", Replace(m, "    prices: {input: \"1\", output: \"2\"}\n", ""),
       "catalog.yaml:6: deployment 'd': 'prices' is required"},
      {"PricesNotMap", Replace(m, "{input: \"1\", output: \"2\"}", "\"1\""),
       "catalog.yaml:9: deployment 'd' prices must be a mapping"},
      {"MissingInputPrice", Replace(m, "input: \"1\", ", ""),
       "catalog.yaml:9: deployment 'd' prices: 'input' is required"},
      {"MissingOutputPrice", Replace(m, ", output: \"2\"", ""),
       "catalog.yaml:9: deployment 'd' prices: 'output' is required"},
      {"UnknownPriceKey", Replace(m, "output: \"2\"", "output: \"2\", cache_read: 1"),
       "catalog.yaml:9: deployment 'd' prices: unknown key 'cache_read'"},
      {"NegativePrice", Replace(m, "input: \"1\"", "input: -1"),
       "catalog.yaml:9: deployment 'd' prices: 'input': invalid price"},
      {"ExponentPrice", Replace(m, "input: \"1\"", "input: 1e-6"),
       "deployment 'd' prices: 'input': invalid price"},
      {"TooPrecisePrice", Replace(m, "input: \"1\"", "input: 0.0000001"),
       "more than 6 fractional digits"},
      {"TextPrice", Replace(m, "output: \"2\"", "output: cheap"),
       "deployment 'd' prices: 'output': invalid price"},
      // Dated price cards (prices: [...]); line 9 is `prices:`, the cards follow.
      {"PricesEmptyList", Prices(m, "    prices: []"),
       "catalog.yaml:9: deployment 'd' prices must be a mapping (one price card) or a non-empty "
       "list of dated price cards"},
      {"EffectiveFromInUndatedCard",
       Prices(m, "    prices: {effective_from: \"2025-01-01T00:00:00Z\", input: 1, output: 2}"),
       "catalog.yaml:9: deployment 'd' prices: 'effective_from' belongs to a list of dated price "
       "cards"},
      {"DatedCardNotMap", Prices(m, "    prices:\n      - \"1\""),
       "catalog.yaml:10: deployment 'd' prices[0] must be a mapping"},
      {"DatedCardWithoutDate", Prices(m, "    prices:\n      - {input: \"1\", output: \"2\"}"),
       "catalog.yaml:10: deployment 'd' prices[0]: 'effective_from' is required"},
      {"DatedCardDateOnly",
       Prices(m, "    prices:\n      - {effective_from: 2025-01-01, input: 1, output: 2}"),
       "catalog.yaml:10: deployment 'd' prices[0]: 'effective_from' must be an RFC 3339 UTC time "
       "like 2025-01-01T00:00:00Z, got '2025-01-01'"},
      {"DatedCardWithOffset",
       Prices(m,
              "    prices:\n      - {effective_from: \"2025-01-01T00:00:00+01:00\", input: 1, "
              "output: 2}"),
       "'effective_from' must be an RFC 3339 UTC time like 2025-01-01T00:00:00Z, got "
       "'2025-01-01T00:00:00+01:00'"},
      {"DatedCardImpossibleDay",
       Prices(m,
              "    prices:\n      - {effective_from: 2025-02-29T00:00:00Z, input: 1, output: 2}"),
       "catalog.yaml:10: deployment 'd' prices[0]: 'effective_from' must be an RFC 3339"},
      {"DatedCardsUnsorted",
       Prices(m,
              "    prices:\n"
              "      - {effective_from: 2025-02-01T00:00:00Z, input: 1, output: 2}\n"
              "      - {effective_from: 2025-01-01T00:00:00Z, input: 1, output: 3}"),
       "catalog.yaml:11: deployment 'd' prices card effective_from 2025-01-01T00:00:00Z: not "
       "after the previous card's 2025-02-01T00:00:00Z (cards must be listed oldest first, one "
       "per date)"},
      {"DatedCardsSameDate",
       Prices(m,
              "    prices:\n"
              "      - {effective_from: 2025-01-01T00:00:00Z, input: 1, output: 2}\n"
              "      - {effective_from: 2025-01-01T00:00:00Z, input: 1, output: 3}"),
       "catalog.yaml:11: deployment 'd' prices card effective_from 2025-01-01T00:00:00Z: not "
       "after the previous card's 2025-01-01T00:00:00Z"},
      {"DatedCardsAllInTheFuture",
       Prices(m,
              "    prices:\n      - {effective_from: 9999-01-01T00:00:00Z, input: 1, output: 2}"),
       "catalog.yaml:10: deployment 'd' prices: no card is in effect yet: the first "
       "effective_from (9999-01-01T00:00:00Z) is after the catalog's load time"},
      {"DatedCardUnknownKey",
       Prices(m,
              "    prices:\n      - {effective_from: 2025-01-01T00:00:00Z, input: 1, output: 2, "
              "inptu: 3}"),
       "catalog.yaml:10: deployment 'd' prices card effective_from 2025-01-01T00:00:00Z: unknown "
       "key 'inptu'"},
      {"DatedCardMissingOutput",
       Prices(m, "    prices:\n      - {effective_from: 2025-01-01T00:00:00Z, input: 1}"),
       "catalog.yaml:10: deployment 'd' prices card effective_from 2025-01-01T00:00:00Z: "
       "'output' is required"},
      // Long-context tiers; line 12 is `long_context:`.
      {"LongContextWithoutThreshold",
       Prices(m,
              "    prices:\n      input: 1\n      output: 2\n"
              "      long_context: {input: 2, output: 3}"),
       "catalog.yaml:12: deployment 'd' prices long_context: 'above_input_tokens' is required"},
      {"LongContextThresholdNotPositive",
       Prices(m,
              "    prices:\n      input: 1\n      output: 2\n"
              "      long_context: {above_input_tokens: 0, input: 2, output: 3}"),
       "catalog.yaml:12: deployment 'd' prices long_context: 'above_input_tokens' must be a "
       "positive integer, got '0'"},
      {"LongContextThresholdUnreachable",
       Prices(m,
              "    prices:\n      input: 1\n      output: 2\n"
              "      long_context: {above_input_tokens: 128000, input: 2, output: 3}"),
       "catalog.yaml:12: deployment 'd' prices long_context: 'above_input_tokens' (128000) must "
       "be below the deployment's context_window (128000), or the tier never applies"},
      {"LongContextMissingOutput",
       Prices(m,
              "    prices:\n      input: 1\n      output: 2\n"
              "      long_context: {above_input_tokens: 1000, input: 2}"),
       "catalog.yaml:12: deployment 'd' prices long_context: 'output' is required"},
      {"LongContextMissingKeyTheCardSets",
       Prices(m,
              "    prices:\n      input: 1\n      cached_input: 0.1\n      output: 2\n"
              "      long_context: {above_input_tokens: 1000, input: 2, output: 3}"),
       "catalog.yaml:13: deployment 'd' prices long_context: 'cached_input' is required because "
       "the card sets it"},
      {"LongContextUnknownKey",
       Prices(m,
              "    prices:\n      input: 1\n      output: 2\n"
              "      long_context: {above_input_tokens: 1000, input: 2, output: 3, "
              "cache_read: 1}"),
       "catalog.yaml:12: deployment 'd' prices long_context: unknown key 'cache_read'"},
      {"LongContextBadPrice",
       Prices(m,
              "    prices:\n      input: 1\n      output: 2\n"
              "      long_context: {above_input_tokens: 1000, input: \"-2\", output: 3}"),
       "catalog.yaml:12: deployment 'd' prices long_context: 'input': invalid price"},
      {"LongContextNotMap",
       Prices(m, "    prices:\n      input: 1\n      output: 2\n      long_context: 200000"),
       "catalog.yaml:12: deployment 'd' prices long_context must be a mapping"},
      {"LongContextInDatedCardChecked",
       Prices(m,
              "    prices:\n"
              "      - effective_from: 2025-01-01T00:00:00Z\n"
              "        input: 1\n        output: 2\n"
              "        long_context: {above_input_tokens: 1000, output: 3}"),
       "catalog.yaml:13: deployment 'd' prices card effective_from 2025-01-01T00:00:00Z "
       "long_context: 'input' is required"},
      {"BadContextWindow",
       Replace(m, "    upstream_model: m", "    upstream_model: m\n    context_window: 0"),
       "catalog.yaml:9: deployment 'd': 'context_window' must be a positive integer, got '0'"},
      {"FractionalMaxOutput",
       Replace(m, "    upstream_model: m", "    upstream_model: m\n    max_output_tokens: 1.5"),
       "deployment 'd': 'max_output_tokens' must be a positive integer, got '1.5'"},
      {"MaxOutputAboveWindow",
       Replace(m, "    upstream_model: m",
               "    upstream_model: m\n    context_window: 100\n    max_output_tokens: 200"),
       "deployment 'd': max_output_tokens (200) exceeds context_window (100)"},
      {"UnknownCapability",
       Replace(m, "    upstream_model: m", "    upstream_model: m\n    capabilities: [chat, tool]"),
       "catalog.yaml:9: deployment 'd': unknown capability 'tool' (valid: chat, stream, tools"},
      {"DuplicateCapability",
       Replace(m, "    upstream_model: m", "    upstream_model: m\n    capabilities: [chat, chat]"),
       "deployment 'd': duplicate capability 'chat'"},
      {"EmptyCapabilities",
       Replace(m, "    upstream_model: m", "    upstream_model: m\n    capabilities: []"),
       "deployment 'd': 'capabilities' must not be empty"},
      {"CapabilitiesNotList",
       Replace(m, "    upstream_model: m", "    upstream_model: m\n    capabilities: chat"),
       "deployment 'd': 'capabilities' must be a list"},
      {"DeploymentBadBaseUrl",
       Replace(m, "    upstream_model: m", "    upstream_model: m\n    base_url: nope"),
       "catalog.yaml:9: deployment 'd': 'base_url'"},
      {"UnknownModelKey", Replace(m, "  - name: m\n", "  - name: m\n    owner: me\n"),
       "catalog.yaml:12: models[0]: unknown key 'owner'"},
      {"ModelNameMissing", Replace(m, "  - name: m\n    deployments", "  - deployments"),
       "catalog.yaml:11: models[0]: 'name' is required"},
      {"ModelUnknownDeployment", Replace(m, "deployments: [d]", "deployments: [d, e]"),
       "catalog.yaml:12: model 'm' references unknown deployment 'e'"},
      {"ModelDeploymentTwice", Replace(m, "deployments: [d]", "deployments: [d, d]"),
       "catalog.yaml:12: model 'm' lists deployment 'd' twice"},
      {"ModelNoDeployments", Replace(m, "deployments: [d]", "deployments: []"),
       "catalog.yaml:12: model 'm': 'deployments' must not be empty"},
      {"ModelDeploymentsMissing", Replace(m, "    deployments: [d]\n", "    owned_by: x\n"),
       "catalog.yaml:11: model 'm': 'deployments' is required"},
      {"DuplicateModel", m + "  - name: m\n    deployments: [d]\n",
       "catalog.yaml:13: model name or alias 'm' is already used by model 'm'"},
      {"AliasClashesWithName", m + "  - name: n\n    aliases: [x, m]\n    deployments: [d]\n",
       "catalog.yaml:14: model name or alias 'm' is already used by model 'm'"},
      {"AliasClashesWithAlias",
       Replace(m, "  - name: m\n", "  - name: m\n    aliases: [a]\n") +
           "  - name: n\n    aliases: [a]\n    deployments: [d]\n",
       "catalog.yaml:15: model name or alias 'a' is already used by model 'm'"},
      {"AliasEqualsOwnName", Replace(m, "  - name: m\n", "  - name: m\n    aliases: [m]\n"),
       "catalog.yaml:12: model name or alias 'm' is already used by model 'm'"},
      {"NoModelLeft",
       Replace(m, "    base_url: http://h/v1",
               "    base_url: http://h/v1\n    enabled_if_env: NOPE"),
       "catalog.yaml: no model is left with an enabled deployment"},
  };
}

INSTANTIATE_TEST_SUITE_P(Catalog, CatalogErrorTest, testing::ValuesIn(BadCases()),
                         [](const testing::TestParamInfo<BadCase>& info) {
                           return info.param.name;
                         });

constexpr char kRouting[] = R"yaml(
providers:
  - name: p
    dialect: openai
    base_url: http://h/v1
  - name: off
    dialect: openai
    base_url: http://off/v1
    enabled_if_env: NOT_SET_ANYWHERE
deployments:
  - id: a
    provider: p
    upstream_model: m
    region: us
    prices: {input: "1", output: "2"}
    limits: {rpm: 500, tpm: 200000}
    quality: {default: 70, code: 90}
  - id: b
    provider: p
    upstream_model: m
    region: eu
    prices: {input: "2", output: "4"}
  - id: c
    provider: off
    upstream_model: m
    region: eu
    prices: {input: "1", output: "1"}
models:
  - name: w
    deployments: [a, b, c]
    policy: {type: weighted, weights: {a: 3, b: 0, c: 5}, cache_ttl_ms: 100}
  - name: smart
    deployments: [a, b]
    policy:
      type: auto
      cache: false
      classes:
        code: {type: cost-quality, min_quality: 80, strict: true}
        long: {type: priority, deployments: [b], cache: true}
        default: {type: least-latency, exploration: "0.25", metric: ttft}
    rules:
      - name: gold
        when: {customer: [acme, globex], tags: {tier: gold}}
        deployments: [a]
        policy: least-cost
  - name: plain
    deployments: [b]
rules:
  - name: eu-only
    when: {team: research, environment: prod}
    regions: [eu]
teams:
  - name: research
    allowed_regions: [eu]
    allowed_models: [smart, w]
  - name: ops
    allowed_models: [plain]
classifier:
  long_input_tokens: 50000
  simple_max_input_tokens: 500
routing:
  cache_ttl_ms: 900
)yaml";

TEST(CatalogTest, LoadsRoutingSections) {
  auto catalog = MustLoad(kRouting);
  ASSERT_NE(catalog, nullptr);
  const v1::Deployment* a = catalog->FindDeployment("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->limits().rpm(), 500);
  EXPECT_EQ(a->limits().tpm(), 200000);
  EXPECT_EQ(a->quality().at("code"), 90);
  const size_t ia = catalog->IndexOf(a);
  EXPECT_EQ(catalog->Quality(ia, RequestClass::kCode), 90);
  EXPECT_EQ(catalog->Quality(ia, RequestClass::kSimple), 70);  // default
  const size_t ib = catalog->IndexOf(catalog->FindDeployment("b"));
  EXPECT_EQ(catalog->Quality(ib, RequestClass::kCode), -1);  // not rated
  EXPECT_EQ(catalog->FindDeployment("b")->limits().rpm(), 0);

  const CatalogModel* w = catalog->FindModel("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->policy->kind, PolicyKind::kWeighted);
  ASSERT_EQ(w->policy->weights.size(), 2u);  // c is disabled
  EXPECT_EQ(w->policy->weights[ia], 3);
  EXPECT_EQ(w->policy->weights[ib], 0);
  EXPECT_EQ(w->policy->cache_ttl_ms, 100);

  const CatalogModel* smart = catalog->FindModel("smart");
  ASSERT_NE(smart, nullptr);
  EXPECT_EQ(smart->policy->kind, PolicyKind::kAuto);
  EXPECT_EQ(smart->policy->cache_ttl_ms, 0);
  const PolicySpec& code = *smart->policy->classes[static_cast<size_t>(RequestClass::kCode)];
  EXPECT_EQ(code.kind, PolicyKind::kCostQuality);
  EXPECT_EQ(code.min_quality, 80);
  EXPECT_TRUE(code.strict);
  EXPECT_EQ(code.cache_ttl_ms, 0);  // inherits cache: false
  const PolicySpec& long_policy = *smart->policy->classes[static_cast<size_t>(RequestClass::kLong)];
  EXPECT_EQ(long_policy.kind, PolicyKind::kPriority);
  EXPECT_EQ(long_policy.cache_ttl_ms, 0);  // cache: true, but nothing to inherit a TTL from
  EXPECT_EQ(long_policy.allowed, (std::vector<bool>{false, true}));
  const PolicySpec& general = *smart->policy->classes[static_cast<size_t>(RequestClass::kGeneral)];
  EXPECT_EQ(general.kind, PolicyKind::kLeastLatency);  // from default
  EXPECT_EQ(general.exploration_ppm, 250000);
  EXPECT_EQ(general.metric, LatencyMetric::kTtft);
  ASSERT_EQ(smart->rules.size(), 1u);
  EXPECT_EQ(smart->rules[0].name, "gold");
  EXPECT_THAT(smart->rules[0].when.customer, ElementsAre("acme", "globex"));
  EXPECT_EQ(smart->rules[0].allowed, (std::vector<bool>{true, false}));
  EXPECT_EQ(smart->rules[0].policy->kind, PolicyKind::kLeastCost);
  EXPECT_EQ(smart->rules[0].policy->cache_ttl_ms, 900);
  EXPECT_THAT(smart->scope_fields, ElementsAre("customer", "environment", "tag:tier"));
  EXPECT_THAT(catalog->FindModel("plain")->scope_fields, ElementsAre("environment"));
  EXPECT_EQ(catalog->FindModel("plain")->policy->kind, PolicyKind::kPriority);
  EXPECT_EQ(catalog->FindModel("plain")->policy->cache_ttl_ms, 900);

  ASSERT_EQ(catalog->rules().size(), 1u);
  EXPECT_THAT(catalog->rules()[0].regions, ElementsAre("eu"));
  v1::Attribution attribution;
  attribution.set_team("research");
  EXPECT_FALSE(catalog->rules()[0].when.Matches(attribution));
  attribution.set_environment("prod");
  EXPECT_TRUE(catalog->rules()[0].when.Matches(attribution));
  v1::Attribution gold;
  gold.set_customer("globex");
  EXPECT_FALSE(smart->rules[0].when.Matches(gold));
  (*gold.mutable_tags())["tier"] = "gold";
  EXPECT_TRUE(smart->rules[0].when.Matches(gold));

  const TeamSettings* research = catalog->FindTeam("research");
  ASSERT_NE(research, nullptr);
  EXPECT_THAT(research->allowed_regions, ElementsAre("eu"));
  EXPECT_EQ(research->allowed_models, (std::vector<bool>{true, true, false}));
  EXPECT_TRUE(catalog->FindTeam("ops")->allowed_regions.empty());
  EXPECT_EQ(catalog->FindTeam("nobody"), nullptr);
  EXPECT_EQ(catalog->classifier().long_input_tokens, 50000);
  EXPECT_EQ(catalog->classifier().simple_max_input_tokens, 500);
  EXPECT_EQ(catalog->classifier().simple_max_output_tokens, 1024);
  EXPECT_EQ(catalog->default_cache_ttl_ms(), 900);
}

TEST(CatalogTest, RoutingDefaults) {
  auto catalog = MustLoad(kValid);
  ASSERT_NE(catalog, nullptr);
  EXPECT_EQ(catalog->default_cache_ttl_ms(), 500);
  EXPECT_EQ(catalog->classifier().long_input_tokens, 32000);
  EXPECT_TRUE(catalog->rules().empty());
  for (const CatalogModel& m : catalog->models()) {
    EXPECT_EQ(m.policy->kind, PolicyKind::kPriority);
    EXPECT_EQ(m.policy->cache_ttl_ms, 500);
    EXPECT_TRUE(m.scope_fields.empty());
  }
}

class RoutingErrorTest : public testing::TestWithParam<BadCase> {};

TEST_P(RoutingErrorTest, RejectsWithPreciseError) {
  auto catalog = LoadCatalogFromString(GetParam().yaml, "catalog.yaml", Env({}));
  ASSERT_FALSE(catalog.ok()) << GetParam().yaml;
  EXPECT_EQ(catalog.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(catalog.status().message()), HasSubstr(GetParam().error));
}

// Two deployments (d in us, e in eu) and a model m over both; each case adds one mistake.
constexpr char kTwo[] = R"yaml(providers:
  - name: p
    dialect: openai
    base_url: http://h/v1
deployments:
  - id: d
    provider: p
    upstream_model: m
    region: us
    prices: {input: "1", output: "2"}
  - id: e
    provider: p
    upstream_model: m
    region: eu
    prices: {input: "1", output: "2"}
models:
  - name: m
    deployments: [d, e]
  - name: n
    deployments: [d]
)yaml";

std::string WithModelKey(const std::string& yaml_block) {
  return Replace(kTwo, "    deployments: [d, e]\n",
                 absl::StrCat("    deployments: [d, e]\n", yaml_block));
}

std::vector<BadCase> RoutingBadCases() {
  const std::string t = kTwo;
  return {
      {"BadLimitKey", Replace(t, "    region: us\n", "    region: us\n    limits: {rps: 1}\n"),
       "catalog.yaml:10: deployment 'd' limits: unknown key 'rps' (valid keys: rpm, tpm)"},
      {"ZeroRpm", Replace(t, "    region: us\n", "    region: us\n    limits: {rpm: 0}\n"),
       "deployment 'd' limits: 'rpm' must be a positive integer, got '0'"},
      {"QualityUnknownClass",
       Replace(t, "    region: us\n", "    region: us\n    quality: {poetry: 3}\n"),
       "catalog.yaml:10: deployment 'd' quality: unknown class 'poetry' (valid: simple, general, "
       "code, reasoning, tools, long, default)"},
      {"QualityOutOfRange",
       Replace(t, "    region: us\n", "    region: us\n    quality: {code: 101}\n"),
       "deployment 'd' quality: 'code' must be an integer from 0 to 100"},
      {"QualityNotMap", Replace(t, "    region: us\n", "    region: us\n    quality: 5\n"),
       "deployment 'd' quality must be a mapping"},
      {"UnknownPolicy", WithModelKey("    policy: fastest\n"),
       "catalog.yaml:19: model 'm' policy: unknown policy type 'fastest' (valid: priority, "
       "weighted, least-latency, least-cost, cost-quality, auto)"},
      {"PolicyWithoutType", WithModelKey("    policy: {cache: false}\n"),
       "model 'm' policy: 'type' is required"},
      {"WeightedWithoutWeights", WithModelKey("    policy: weighted\n"),
       "catalog.yaml:19: model 'm' policy: policy 'weighted' needs 'weights'"},
      {"WeightsForeignDeployment",
       Replace(t, "    deployments: [d]\n",
               "    deployments: [d]\n    policy: {type: weighted, weights: {d: 1, e: 1}}\n"),
       "catalog.yaml:21: model 'n' policy weights: deployment 'e' is not a deployment of model "
       "'n'"},
      {"WeightsUnknownDeployment", WithModelKey("    policy: {type: weighted, weights: {x: 1}}\n"),
       "model 'm' policy weights references unknown deployment 'x'"},
      {"AllWeightsZero", WithModelKey("    policy: {type: weighted, weights: {d: 0}}\n"),
       "model 'm' policy: at least one weight must be positive"},
      {"NegativeWeight", WithModelKey("    policy: {type: weighted, weights: {d: -1}}\n"),
       "model 'm' policy: weight of 'd' must be an integer from 0 to 1000000"},
      {"OptionOfOtherPolicy", WithModelKey("    policy: {type: least-cost, min_quality: 3}\n"),
       "catalog.yaml:19: model 'm' policy (least-cost): unknown key 'min_quality' (valid keys: "
       "type, cache, cache_ttl_ms, default_output_tokens)"},
      {"BadExploration", WithModelKey("    policy: {type: least-latency, exploration: 1.5}\n"),
       "model 'm' policy: 'exploration' must be a decimal from 0 to 1 with at most 6 fractional "
       "digits, got '1.5'"},
      {"BadMetric", WithModelKey("    policy: {type: least-latency, metric: p99}\n"),
       "model 'm' policy: unknown metric 'p99' (valid: auto, latency, ttft)"},
      {"CostQualityWithoutThreshold", WithModelKey("    policy: {type: cost-quality}\n"),
       "model 'm' policy: policy 'cost-quality' needs 'min_quality'"},
      {"ThresholdOutOfRange", WithModelKey("    policy: {type: cost-quality, min_quality: 200}\n"),
       "model 'm' policy: 'min_quality' must be an integer from 0 to 100, got '200'"},
      {"BadBool", WithModelKey("    policy: {type: priority, cache: yes}\n"),
       "model 'm' policy: 'cache' must be true or false, got 'yes'"},
      {"TtlWithCacheOff",
       WithModelKey("    policy: {type: priority, cache: false, cache_ttl_ms: 5}\n"),
       "model 'm' policy: 'cache_ttl_ms' makes no sense with 'cache: false'"},
      {"DeploymentsOutsideClass", WithModelKey("    policy: {type: priority, deployments: [d]}\n"),
       "model 'm' policy (priority): unknown key 'deployments'"},
      {"AutoUnknownClass", WithModelKey("    policy: {type: auto, classes: {hard: priority}}\n"),
       "model 'm' policy: unknown class 'hard' (valid: simple, general, code, reasoning, tools, "
       "long, default)"},
      {"AutoInAuto", WithModelKey("    policy: {type: auto, classes: {code: auto}}\n"),
       "model 'm' policy class 'code': an auto class cannot use policy 'auto'"},
      {"ClassForeignDeployment",
       Replace(t, "    deployments: [d]\n",
               "    deployments: [d]\n    policy: {type: auto, classes: {code: {type: priority, "
               "deployments: [e]}}}\n"),
       "model 'n' policy class 'code': deployment 'e' is not a deployment of model 'n'"},
      {"RuleWithoutWhen", WithModelKey("    rules: [{name: r, regions: [eu]}]\n"),
       "catalog.yaml:19: rule 'r': 'when' is required"},
      {"RuleEmptyWhen", WithModelKey("    rules: [{name: r, when: {}, regions: [eu]}]\n"),
       "rule 'r' when must name at least one condition"},
      {"RuleUnknownCondition",
       WithModelKey("    rules: [{name: r, when: {group: x}, regions: [eu]}]\n"),
       "rule 'r' when: unknown key 'group' (valid keys: team, feature, customer, environment, "
       "api_key_id, tags, budget_used_percent)"},
      {"RuleBadBudgetPercent",
       WithModelKey("    rules: [{name: r, when: {budget_used_percent: 0}, regions: [eu]}]\n"),
       "rule 'r' when budget_used_percent must be a whole number from 1 to 1000"},
      {"RuleFractionalBudgetPercent",
       WithModelKey("    rules: [{name: r, when: {budget_used_percent: 80.5}, regions: [eu]}]\n"),
       "rule 'r' when budget_used_percent must be a whole number from 1 to 1000"},
      {"RuleNoAction", WithModelKey("    rules: [{name: r, when: {team: x}}]\n"),
       "rule 'r': needs at least one of 'regions', 'deployments', 'policy'"},
      {"RuleUnknownRegion",
       WithModelKey("    rules: [{name: r, when: {team: x}, regions: [mars]}]\n"),
       "rule 'r': region 'mars' is not the region of any deployment (regions: eu, us)"},
      {"RuleDuplicateName",
       WithModelKey("    rules:\n      - {name: r, when: {team: x}, regions: [eu]}\n"
                    "      - {name: r, when: {team: y}, regions: [us]}\n"),
       "catalog.yaml:21: duplicate rule name 'r'"},
      {"RuleForeignDeployment",
       Replace(t, "    deployments: [d]\n",
               "    deployments: [d]\n    rules: [{name: r, when: {team: x}, deployments: [e]}]\n"),
       "rule 'r': deployment 'e' is not a deployment of model 'n'"},
      {"RuleEmptyValueList",
       WithModelKey("    rules: [{name: r, when: {team: []}, regions: [eu]}]\n"),
       "rule 'r' when team must be a string or a non-empty list of strings"},
      {"GlobalRuleUnknownDeployment",
       t + "rules: [{name: g, when: {team: x}, deployments: [zz]}]\n",
       "catalog.yaml:21: rule 'g' references unknown deployment 'zz'"},
      {"RulesNotList", t + "rules: {name: g}\n", "catalog.yaml:21: rules must be a list"},
      {"TeamUnknownModel", t + "teams: [{name: x, allowed_models: [gpt-9]}]\n",
       "catalog.yaml:21: team 'x' references unknown model 'gpt-9'"},
      {"TeamUnknownRegion", t + "teams: [{name: x, allowed_regions: [apac]}]\n",
       "team 'x': region 'apac' is not the region of any deployment"},
      {"TeamNoRestriction", t + "teams: [{name: x}]\n",
       "team 'x': needs 'allowed_regions' and/or 'allowed_models'"},
      {"DuplicateTeam",
       t + "teams:\n  - {name: x, allowed_regions: [eu]}\n  - {name: x, allowed_regions: [us]}\n",
       "catalog.yaml:23: duplicate team name 'x'"},
      {"ClassifierUnknownKey", t + "classifier: {long_tokens: 5}\n",
       "catalog.yaml:21: classifier: unknown key 'long_tokens'"},
      {"ClassifierInconsistent",
       t + "classifier: {long_input_tokens: 100, simple_max_input_tokens: 100}\n",
       "classifier: simple_max_input_tokens (100) must be below long_input_tokens (100)"},
      {"RoutingBadTtl", t + "routing: {cache_ttl_ms: -1}\n",
       "routing: 'cache_ttl_ms' must be an integer from 0 to 3600000, got '-1'"},
  };
}

INSTANTIATE_TEST_SUITE_P(Routing, RoutingErrorTest, testing::ValuesIn(RoutingBadCases()),
                         [](const testing::TestParamInfo<BadCase>& info) {
                           return info.param.name;
                         });

TEST(CatalogTest, TwoDeploymentCatalogIsValid) { ASSERT_NE(MustLoad(kTwo), nullptr); }

TEST(CatalogTest, MinimalCatalogIsValid) {
  // Guards the error cases above: each must fail because of its own edit.
  ASSERT_NE(MustLoad(kMinimal), nullptr);
}

}  // namespace
}  // namespace tollgate::router
