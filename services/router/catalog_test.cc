#include "services/router/catalog.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

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
      {"UnknownDialect", Replace(m, "dialect: openai", "dialect: anthropic"),
       "catalog.yaml:3: provider 'p': unknown dialect 'anthropic' (valid: openai)"},
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
       "api_key_id, tags)"},
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
