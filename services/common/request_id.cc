#include "services/common/request_id.h"

#include <chrono>

#include "absl/random/random.h"

namespace tollgate {
namespace {

constexpr char kHex[] = "0123456789abcdef";

void PutHex(uint64_t bits, int digits, char* out) {
  for (int i = digits - 1; i >= 0; --i) {
    out[i] = kHex[bits & 0xf];
    bits >>= 4;
  }
}

}  // namespace

std::string NewRequestId(int64_t unix_ms) {
  thread_local absl::BitGen bitgen;
  std::string id(32, '0');
  PutHex(static_cast<uint64_t>(unix_ms) & 0xffff'ffff'ffffULL, 12, id.data());
  PutHex(absl::Uniform<uint64_t>(bitgen), 16, id.data() + 12);
  PutHex(absl::Uniform<uint64_t>(bitgen) & 0xffff, 4, id.data() + 28);
  return id;
}

std::string NewRequestId() {
  return NewRequestId(std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count());
}

}  // namespace tollgate
