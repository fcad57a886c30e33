// Differential fuzzing of the SSE parser: feeding the input whole, split at an arbitrary point,
// or byte by byte must yield the same events (or the same error).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "services/gateway/sse_parser.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

struct Result {
  bool ok = true;
  std::vector<std::string> events;
};

Result Run(std::string_view input, const std::vector<size_t>& cuts) {
  tollgate::gateway::SseParser parser(/*max_event_bytes=*/4096);
  Result r;
  auto on_event = [&](const tollgate::gateway::SseEvent& e) {
    r.events.push_back(std::string(e.event) + "\x1f" + std::string(e.data));
  };
  size_t pos = 0;
  for (size_t cut : cuts) {
    if (!parser.Feed(input.substr(pos, cut - pos), on_event).ok()) {
      r.ok = false;
      return r;
    }
    pos = cut;
  }
  if (!parser.Feed(input.substr(pos), on_event).ok()) {
    r.ok = false;
    return r;
  }
  parser.Finish(on_event);
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t split = data[0] % size;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const Result whole = Run(input, {});
  const Result two = Run(input, {std::min(split, input.size())});
  FUZZ_CHECK(whole.ok == two.ok);
  if (whole.ok) FUZZ_CHECK(whole.events == two.events);
  if (input.size() <= 512) {
    std::vector<size_t> every;
    for (size_t i = 1; i < input.size(); ++i) every.push_back(i);
    const Result bytes = Run(input, every);
    FUZZ_CHECK(whole.ok == bytes.ok);
    if (whole.ok) FUZZ_CHECK(whole.events == bytes.events);
  }
  return 0;
}
