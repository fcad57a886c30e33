#pragma once
// Who a request is billed to (DESIGN.md "Attribution on the wire"): team, api key id and
// environment from the virtual key; feature from `x-tollgate-feature`; customer from
// `x-tollgate-customer`, else the body's `user`; tags from `x-tollgate-tags: k=v,k2=v2`;
// environment overridden by `x-tollgate-environment`.
//
//   AttributionInputs in;
//   in.team = key.team; in.api_key_id = key.id; in.key_environment = key.environment;
//   in.feature = request["x-tollgate-feature"]; ...
//   absl::StatusOr<v1::Attribution> attribution = BuildAttribution(in);
//
// Values are bounded so that one client cannot blow up the ledger's dimensions: header values at
// most kMaxAttributionValueBytes bytes of printable text (no control characters), at most kMaxTags
// tags, tag keys of [A-Za-z0-9_.:/-]{1,kMaxTagKeyBytes}, tag values of at most kMaxTagValueBytes
// printable bytes without ','. Errors are kInvalidArgument with ParamOf (openai_dialect.h) naming
// the header. Pure and thread-safe.

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tollgate/v1/common.pb.h"

namespace tollgate::gateway {

inline constexpr size_t kMaxAttributionValueBytes = 256;
inline constexpr size_t kMaxTags = 32;
inline constexpr size_t kMaxTagKeyBytes = 64;
inline constexpr size_t kMaxTagValueBytes = 256;

inline constexpr std::string_view kFeatureHeader = "x-tollgate-feature";
inline constexpr std::string_view kCustomerHeader = "x-tollgate-customer";
inline constexpr std::string_view kTagsHeader = "x-tollgate-tags";
inline constexpr std::string_view kEnvironmentHeader = "x-tollgate-environment";

struct AttributionInputs {
  // From the virtual key (trusted configuration).
  std::string_view team;
  std::string_view api_key_id;
  std::string_view key_environment;
  // Request headers; empty means absent (an empty header carries no attribution).
  std::string_view feature;
  std::string_view customer;
  std::string_view tags;
  std::string_view environment;
  // The body's "user" string, the customer when no customer header is given.
  std::string_view body_user;
};

absl::StatusOr<v1::Attribution> BuildAttribution(const AttributionInputs& in);

// Parses "k=v,k2=v2" (spaces around keys and values are trimmed). Errors: an entry without '=',
// an empty or malformed key, a duplicate key, too many tags, a value too long or not printable.
absl::StatusOr<std::map<std::string, std::string>> ParseTags(std::string_view header);

}  // namespace tollgate::gateway
