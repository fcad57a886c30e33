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
       "catalog.yaml:14: catalog must be a single YAML document"},
      {"SyntaxError", "providers: [a, b\n", "catalog.yaml:2:"},
      {"UnknownTopLevelKey", m + "modles: []\n",
       "catalog.yaml:13: catalog: unknown key 'modles' (valid keys: providers, deployments, "
       "models)"},
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

TEST(CatalogTest, MinimalCatalogIsValid) {
  // Guards the error cases above: each must fail because of its own edit.
  ASSERT_NE(MustLoad(kMinimal), nullptr);
}

}  // namespace
}  // namespace tollgate::router
