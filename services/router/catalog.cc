#include "services/router/catalog.h"

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
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
#include "boost/url/parse.hpp"
#include "boost/url/scheme.hpp"
#include "services/common/money.h"
#include "services/common/status.h"
#include "yaml-cpp/yaml.h"

namespace tollgate::router {

const std::vector<std::string>& SupportedDialects() {
  static const std::vector<std::string> kDialects = {"openai"};
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

std::optional<std::string> ProcessGetenv(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

}  // namespace

// Turns the YAML tree into a Catalog. One instance per load; not thread-safe (it needn't be).
class CatalogParser {
 public:
  CatalogParser(absl::string_view source, const CatalogLoadOptions& options)
      : source_(source), options_(options) {}

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
  struct ParsedModel {
    CatalogModel model;
    std::vector<size_t> deployments;  // indexes into deployments
  };

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
    TOLLGATE_RETURN_IF_ERROR(
        CheckMap(node, where, {"name", "dialect", "base_url", "api_key_env", "enabled_if_env"}));
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
    if (!p.enabled_if_env.empty()) {
      const std::optional<std::string> value =
          options_.getenv ? options_.getenv(p.enabled_if_env) : ProcessGetenv(p.enabled_if_env);
      parsed.enabled = value.has_value() && !value->empty();
    }
    provider_by_name_[p.name] = providers_.size();
    providers_.push_back(std::move(parsed));
    return absl::OkStatus();
  }

  absl::Status ParsePrices(const YAML::Node& node, absl::string_view deployment_what,
                           v1::UnitPrices* prices) const {
    const std::string what = absl::StrCat(deployment_what, " prices");
    TOLLGATE_RETURN_IF_ERROR(CheckMap(
        node, what,
        {"input", "cached_input", "cache_write_5m", "cache_write_1h", "output", "reasoning"}));
    // The scalar's own text goes to the exact decimal parser: no double ever sees a price.
    auto price = [&](const char* key,
                     std::optional<int64_t> default_value) -> absl::StatusOr<int64_t> {
      TOLLGATE_ASSIGN_OR_RETURN(std::optional<std::string> text, OptionalScalar(node, key, what));
      if (!text.has_value()) {
        if (default_value.has_value()) return *default_value;
        return Error(node, absl::StrCat(what, ": '", key, "' is required"));
      }
      absl::StatusOr<int64_t> pico = ParseUsdPerMillionTokens(*text);
      if (!pico.ok()) {
        return Error(node[key], absl::StrCat(what, ": '", key, "': ", pico.status().message()));
      }
      return *pico;
    };
    TOLLGATE_ASSIGN_OR_RETURN(const int64_t input, price("input", std::nullopt));
    TOLLGATE_ASSIGN_OR_RETURN(const int64_t output, price("output", std::nullopt));
    TOLLGATE_ASSIGN_OR_RETURN(const int64_t cached, price("cached_input", input));
    TOLLGATE_ASSIGN_OR_RETURN(const int64_t write_5m, price("cache_write_5m", input));
    TOLLGATE_ASSIGN_OR_RETURN(const int64_t write_1h, price("cache_write_1h", input));
    TOLLGATE_ASSIGN_OR_RETURN(const int64_t reasoning, price("reasoning", 0));
    prices->set_input_pico(input);
    prices->set_cached_input_pico(cached);
    prices->set_cache_write_5m_pico(write_5m);
    prices->set_cache_write_1h_pico(write_1h);
    prices->set_output_pico(output);
    prices->set_reasoning_pico(reasoning);
    prices->set_price_card_version(version_);
    return absl::OkStatus();
  }

  absl::Status ParseDeployment(const YAML::Node& node, size_t index) {
    const std::string where = absl::StrCat("deployments[", index, "]");
    TOLLGATE_RETURN_IF_ERROR(
        CheckMap(node, where,
                 {"id", "provider", "upstream_model", "region", "base_url", "prices",
                  "capabilities", "context_window", "max_output_tokens"}));
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
    TOLLGATE_RETURN_IF_ERROR(ParsePrices(prices, what, d.mutable_prices()));

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

    deployment_by_id_[id] = deployments_.size();
    deployments_.push_back(std::move(parsed));
    return absl::OkStatus();
  }

  absl::Status ParseModel(const YAML::Node& node, size_t index) {
    const std::string where = absl::StrCat("models[", index, "]");
    TOLLGATE_RETURN_IF_ERROR(CheckMap(node, where, {"name", "aliases", "owned_by", "deployments"}));
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
    models_.push_back(std::move(parsed));
    return absl::OkStatus();
  }

  absl::StatusOr<std::shared_ptr<const Catalog>> ParseOrThrow(absl::string_view text) {
    version_ = ContentHash(text);
    // LoadAll, not Load: a second "---" document would otherwise be ignored without a word.
    const std::vector<YAML::Node> documents = YAML::LoadAll(std::string(text));
    if (documents.size() > 1) {
      return Error(documents[1], "catalog must be a single YAML document");
    }
    const YAML::Node root = documents.empty() ? YAML::Node() : documents[0];
    if (!root.IsDefined() || root.IsNull()) {
      return absl::InvalidArgumentError(absl::StrCat(source_, ":1: catalog is empty"));
    }
    TOLLGATE_RETURN_IF_ERROR(CheckMap(root, "catalog", {"providers", "deployments", "models"}));
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
    return Build();
  }

  // The whole file is valid: keep what is enabled.
  absl::StatusOr<std::shared_ptr<const Catalog>> Build() {
    std::shared_ptr<Catalog> catalog(new Catalog());
    catalog->version_ = version_;
    catalog->source_ = source_;
    catalog->loaded_at_unix_ = static_cast<int64_t>(std::time(nullptr));
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
    return std::shared_ptr<const Catalog>(std::move(catalog));
  }

  const std::string source_;
  const CatalogLoadOptions& options_;
  std::string version_;
  std::vector<ParsedProvider> providers_;
  absl::flat_hash_map<std::string, size_t> provider_by_name_;
  std::vector<ParsedDeployment> deployments_;
  absl::flat_hash_map<std::string, size_t> deployment_by_id_;
  std::vector<ParsedModel> models_;
  absl::flat_hash_map<std::string, std::string> model_names_;  // name or alias -> model name
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
