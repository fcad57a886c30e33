#pragma once
// Client authentication with virtual keys: "Authorization: Bearer <key>".
//
//   KeyStore store(KeySnapshot::Build(config.keys));
//   absl::StatusOr<ApiKeyInfo> key = Authenticate(store, request[http::field::authorization]);
//
// The keys live in immutable KeySnapshots (hash maps from the SHA-256 of the secret to key info:
// no secret is kept in memory) behind atomic shared pointers, so a control-plane push can swap in
// a new set while requests keep reading the old one. KeySnapshot is immutable and KeyStore is
// thread-safe; lookups take no lock beyond the atomic pointer loads.
//
// Two sources (docs/tenancy.md): the static keys of --config (KeyStore's constructor / Replace)
// and the virtual keys the ledger pushes on TenancyAdmin.WatchKeys (ReplaceLedger, from
// KeyWatcher in key_watch.h). A presented key is looked up in the static set first, then in the
// ledger set; a ledger key is refused once its expiry has passed, and a revoked key is simply
// absent from the next ledger snapshot. No database or RPC call happens on the request path.

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/gateway/config.h"
#include "tollgate/v1/tenancy.pb.h"

namespace tollgate::gateway {

// What a ledger-managed key may be used for (tenancy.proto KeyRestrictions). Empty / 0 means
// unrestricted. rpm/tpm are carried for the rate limiter.
struct KeyRestrictions {
  std::vector<std::string> models;  // model ids, aliases or virtual models
  std::string feature;
  std::vector<std::string> regions;
  int64_t rpm = 0;
  int64_t tpm = 0;
};

// What a key grants: the identity recorded in the ledger. Never holds the secret.
struct ApiKeyInfo {
  std::string id;
  std::string team;
  std::string environment;
  bool from_ledger = false;    // a virtual key pushed by the ledger (else: --config)
  int64_t expires_unix_s = 0;  // 0 = never
  std::shared_ptr<const KeyRestrictions> restrictions;  // null: unrestricted
};

class KeySnapshot {
 public:
  // `keys` must be validated (config.h): unique secrets.
  static std::shared_ptr<const KeySnapshot> Build(const std::vector<ApiKeyConfig>& keys);
  // The active keys of a WatchKeys snapshot (entries without a 32-byte hash are skipped).
  static std::shared_ptr<const KeySnapshot> FromLedger(const v1::KeySetSnapshot& snapshot);

  // The key whose secret is `secret`, or nullptr.
  const ApiKeyInfo* Find(std::string_view secret) const;
  // The key whose secret's raw SHA-256 is `sha256`, or nullptr.
  const ApiKeyInfo* FindHash(std::string_view sha256) const;
  size_t size() const { return by_hash_.size(); }

 private:
  absl::flat_hash_map<std::string, ApiKeyInfo> by_hash_;
};

class KeyStore {
 public:
  // `snapshot`: the static keys of --config. The ledger set starts empty.
  explicit KeyStore(std::shared_ptr<const KeySnapshot> snapshot);

  // The static (--config) keys.
  std::shared_ptr<const KeySnapshot> Get() const;
  void Replace(std::shared_ptr<const KeySnapshot> snapshot);

  // The ledger's virtual keys (never null).
  std::shared_ptr<const KeySnapshot> GetLedger() const;
  void ReplaceLedger(std::shared_ptr<const KeySnapshot> snapshot);

 private:
  std::atomic<std::shared_ptr<const KeySnapshot>> snapshot_;
  std::atomic<std::shared_ptr<const KeySnapshot>> ledger_;
};

// Raw 32-byte SHA-256 of `data` (OpenSSL).
std::string KeySha256(std::string_view data);

// The token of an "Authorization: Bearer <token>" header value (scheme case-insensitive, spaces
// around the token trimmed), or nullopt when the header is not of that form.
std::optional<std::string_view> BearerToken(std::string_view authorization);

// Errors: kUnauthenticated when the header is missing, not a bearer token, the key is unknown
// (or revoked), or it expired at `now`. The message never echoes the presented key.
absl::StatusOr<ApiKeyInfo> Authenticate(const KeyStore& store, std::string_view authorization,
                                        absl::Time now);
// As above at absl::Now().
absl::StatusOr<ApiKeyInfo> Authenticate(const KeyStore& store, std::string_view authorization);

// Whether `key` may request `model` (the client's "model" field): OK when the key has no model
// list or lists it. Errors: kPermissionDenied naming the model (for a 403
// "model_not_allowed" answer; the request handler calls this after parsing the body).
absl::Status CheckModelAllowed(const ApiKeyInfo& key, std::string_view model);

}  // namespace tollgate::gateway
