// Configuration files: the gateway's key file and the router's catalog. Any bytes give a clear
// error or a valid configuration, never a crash or an exception escaping.

#include <cstdint>
#include <string_view>

#include "services/gateway/config.h"
#include "services/router/catalog.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = tollgate::gateway::ParseGatewayConfig(text, "fuzz.yaml");
  if (config.ok()) {
    for (const auto& key : config->keys) FUZZ_CHECK(!key.key.empty());
  }
  auto catalog = tollgate::router::LoadCatalogFromString(std::string(text), "fuzz.yaml");
  if (catalog.ok()) FUZZ_CHECK(*catalog != nullptr);
  return 0;
}
