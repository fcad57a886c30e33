// Attribution headers are client input: parsing never crashes, and accepted tags respect the
// documented bounds.

#include <cstdint>
#include <string_view>

#include "services/gateway/attribution.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto tags = tollgate::gateway::ParseTags(text);
  if (tags.ok()) {
    FUZZ_CHECK(tags->size() <= tollgate::gateway::kMaxTags);
    for (const auto& [k, v] : *tags) {
      FUZZ_CHECK(!k.empty() && k.size() <= tollgate::gateway::kMaxTagKeyBytes);
      FUZZ_CHECK(v.size() <= tollgate::gateway::kMaxTagValueBytes);
    }
  }
  // Split the input into the four headers at NUL bytes.
  std::string_view parts[4];
  size_t n = 0, start = 0;
  for (size_t i = 0; i <= text.size() && n < 4; ++i) {
    if (i == text.size() || text[i] == '\0') {
      parts[n++] = text.substr(start, i - start);
      start = i + 1;
    }
  }
  tollgate::gateway::AttributionInputs in;
  in.team = "team";
  in.api_key_id = "key";
  in.feature = parts[0];
  in.customer = parts[1];
  in.tags = parts[2];
  in.body_user = parts[3];
  auto attribution = tollgate::gateway::BuildAttribution(in);
  if (attribution.ok()) FUZZ_CHECK(attribution->team() == "team");
  return 0;
}
