#pragma once
// Client authentication with virtual keys: "Authorization: Bearer <key>".
//
//   KeyStore store(KeySnapshot::Build(config.keys));
//   absl::StatusOr<ApiKeyInfo> key = Authenticate(store, request[http::field::authorization]);
//
// The keys live in an immutable KeySnapshot (a hash map from secret to key info) behind an atomic
// shared pointer, so a control-plane push can swap in a new set while requests keep reading the
// old one. KeySnapshot is immutable and KeyStore is thread-safe; lookups take no lock beyond the
// atomic pointer load.

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "services/gateway/config.h"

namespace tollgate::gateway {

// What a key grants: the identity recorded in the ledger. Never holds the secret.
struct ApiKeyInfo {
  std::string id;
  std::string team;
  std::string environment;
};

class KeySnapshot {
 public:
  // `keys` must be validated (config.h): unique secrets.
  static std::shared_ptr<const KeySnapshot> Build(const std::vector<ApiKeyConfig>& keys);

  // The key whose secret is `secret`, or nullptr.
  const ApiKeyInfo* Find(std::string_view secret) const;
  size_t size() const { return by_secret_.size(); }

 private:
  absl::flat_hash_map<std::string, ApiKeyInfo> by_secret_;
};

class KeyStore {
 public:
  explicit KeyStore(std::shared_ptr<const KeySnapshot> snapshot);

  std::shared_ptr<const KeySnapshot> Get() const;
  void Replace(std::shared_ptr<const KeySnapshot> snapshot);

 private:
  std::atomic<std::shared_ptr<const KeySnapshot>> snapshot_;
};

// The token of an "Authorization: Bearer <token>" header value (scheme case-insensitive, spaces
// around the token trimmed), or nullopt when the header is not of that form.
std::optional<std::string_view> BearerToken(std::string_view authorization);

// Errors: kUnauthenticated when the header is missing, not a bearer token, or the key is unknown.
// The message never echoes the presented key.
absl::StatusOr<ApiKeyInfo> Authenticate(const KeyStore& store, std::string_view authorization);

}  // namespace tollgate::gateway
