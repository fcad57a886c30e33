#include "services/gateway/attribution.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "services/gateway/openai_dialect.h"

namespace tollgate::gateway {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Printable: no ASCII control characters (bytes >= 0x80 are allowed, for UTF-8).
bool IsPrintable(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

bool IsTagKeyChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == ':' ||
         c == '/' || c == '-';
}

absl::Status CheckValue(std::string_view header, std::string_view value) {
  if (value.size() > kMaxAttributionValueBytes) {
    return InvalidParamError(header,
                             absl::StrCat("header ", std::string(header), " is longer than ",
                                          kMaxAttributionValueBytes, " bytes"));
  }
  if (!IsPrintable(value)) {
    return InvalidParamError(
        header, absl::StrCat("header ", std::string(header), " contains control characters"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> ParseTags(std::string_view header) {
  std::map<std::string, std::string> tags;
  const std::string name(kTagsHeader);
  header = Trim(header);
  if (header.empty()) return tags;
  while (true) {
    const size_t comma = header.find(',');
    const std::string_view entry = Trim(header.substr(0, comma));
    const size_t eq = entry.find('=');
    if (eq == std::string_view::npos) {
      return InvalidParamError(kTagsHeader, absl::StrCat(name, ": entry '", std::string(entry),
                                                         "' is not of the form key=value"));
    }
    const std::string_view key = Trim(entry.substr(0, eq));
    const std::string_view value = Trim(entry.substr(eq + 1));
    if (key.empty() || key.size() > kMaxTagKeyBytes) {
      return InvalidParamError(
          kTagsHeader, absl::StrCat(name, ": tag keys must be 1 to ", kMaxTagKeyBytes, " bytes"));
    }
    for (char c : key) {
      if (!IsTagKeyChar(c)) {
        return InvalidParamError(kTagsHeader,
                                 absl::StrCat(name, ": tag key '", std::string(key),
                                              "' may contain only letters, digits and _.:/-"));
      }
    }
    if (value.size() > kMaxTagValueBytes) {
      return InvalidParamError(
          kTagsHeader, absl::StrCat(name, ": value of tag '", std::string(key), "' is longer than ",
                                    kMaxTagValueBytes, " bytes"));
    }
    if (!IsPrintable(value)) {
      return InvalidParamError(kTagsHeader, absl::StrCat(name, ": value of tag '", std::string(key),
                                                         "' contains control characters"));
    }
    if (!tags.emplace(std::string(key), std::string(value)).second) {
      return InvalidParamError(kTagsHeader,
                               absl::StrCat(name, ": duplicate tag '", std::string(key), "'"));
    }
    if (tags.size() > kMaxTags) {
      return InvalidParamError(kTagsHeader, absl::StrCat(name, ": more than ", kMaxTags, " tags"));
    }
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return tags;
}

absl::StatusOr<v1::Attribution> BuildAttribution(const AttributionInputs& in) {
  v1::Attribution out;
  out.set_team(std::string(in.team));
  out.set_api_key_id(std::string(in.api_key_id));

  const std::string_view feature = Trim(in.feature);
  if (absl::Status st = CheckValue(kFeatureHeader, feature); !st.ok()) return st;
  out.set_feature(std::string(feature));

  std::string_view customer = Trim(in.customer);
  std::string_view customer_source = kCustomerHeader;
  if (customer.empty()) {
    customer = in.body_user;
    customer_source = "user";
  }
  if (absl::Status st = CheckValue(customer_source, customer); !st.ok()) return st;
  out.set_customer(std::string(customer));

  const std::string_view environment = Trim(in.environment);
  if (absl::Status st = CheckValue(kEnvironmentHeader, environment); !st.ok()) return st;
  out.set_environment(std::string(environment.empty() ? in.key_environment : environment));

  auto tags = ParseTags(in.tags);
  if (!tags.ok()) return tags.status();
  for (auto& [k, v] : *tags) (*out.mutable_tags())[k] = std::move(v);
  return out;
}

}  // namespace tollgate::gateway
