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
// Providers whose `enabled_if_env` variable is unset or empty are skipped with their deployments;
// models left without deployments are dropped. Each skip is recorded in notes() for the caller to
// log. The file must still be valid as a whole, skipped entries included.
//
// Thread-safety: a Catalog is immutable once loaded; share it freely across threads through
// std::shared_ptr<const Catalog>. The loader functions are thread-safe.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tollgate/v1/router.pb.h"

namespace tollgate::router {

// The wire dialects a provider may declare. Only "openai" for now.
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
};

struct CatalogModel {
  std::string name;  // canonical name clients may ask for
  std::vector<std::string> aliases;
  std::string owned_by;
  // Priority (= fallback) order; never empty. Points into the owning Catalog's deployments().
  std::vector<const v1::Deployment*> deployments;
  size_t index = 0;  // position in Catalog::models()
};

class Catalog {
 public:
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;

  // The model whose name or alias is `name_or_alias` (exact, case-sensitive), or nullptr.
  const CatalogModel* FindModel(absl::string_view name_or_alias) const;
  // The enabled deployment with this id, or nullptr.
  const v1::Deployment* FindDeployment(absl::string_view id) const;

  // Enabled entries only, in file order. Each deployment carries its provider's dialect,
  // api_key_env and (unless overridden) base_url, and its prices with price_card_version set.
  const std::vector<CatalogProvider>& providers() const { return providers_; }
  const std::vector<v1::Deployment>& deployments() const { return deployments_; }
  const std::vector<CatalogModel>& models() const { return models_; }

  // Short hex content hash of the file (FNV-1a 64); also every deployment's price_card_version.
  const std::string& version() const { return version_; }
  // Where the catalog came from (file path or the name given to LoadCatalogFromString).
  const std::string& source() const { return source_; }
  // Unix seconds at load; reported as ModelInfo.created.
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
  std::string version_;
  std::string source_;
  int64_t loaded_at_unix_ = 0;
  std::vector<std::string> notes_;
};

struct CatalogLoadOptions {
  // Reads an environment variable for `enabled_if_env`; nullopt when unset. Default (empty
  // function): the process environment.
  std::function<std::optional<std::string>(const std::string& name)> getenv;
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
