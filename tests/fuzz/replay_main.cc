// Driver for fuzz targets in builds without libFuzzer (g++): runs every file of the seed corpus
// through LLVMFuzzerTestOneInput, then a bounded number of deterministic mutations of them
// (bit flips, byte insertions and deletions, truncations, splices, boundary values), so CI
// exercises each parser beyond its seeds. A failed invariant aborts, failing the test.
//
//   <target> CORPUS_DIR [--iterations=N] [--seed=S]
//
// With clang, build with -DTOLLGATE_FUZZ=ON instead to get real coverage-guided libFuzzer
// binaries (tools/fuzz/run).

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

// With TOLLGATE_FUZZ_LAST=path, each input is written there before it runs, so the input that
// crashed can be replayed.
const char* g_last_path = nullptr;

void RunOne(const std::string& input) {
  if (g_last_path != nullptr) std::ofstream(g_last_path, std::ios::binary | std::ios::trunc) << input;
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

std::string Mutate(const std::vector<std::string>& corpus, std::mt19937_64& rng) {
  std::string s = corpus[rng() % corpus.size()];
  const int steps = 1 + static_cast<int>(rng() % 4);
  static const char* kTokens[] = {"\n",   "\r\n", "\n\n", "data:", "event:", "{", "}", "[",
                                  "]",    "\"",   ":",    ",",     "null",   "-1", "1e309",
                                  "\\u0000", "=", "\xff", "18446744073709551616"};
  for (int i = 0; i < steps; ++i) {
    const size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
    switch (rng() % 6) {
      case 0:
        if (!s.empty()) s[pos % s.size()] ^= static_cast<char>(1 << (rng() % 8));
        break;
      case 1:
        s.insert(pos, 1, static_cast<char>(rng() % 256));
        break;
      case 2:
        if (!s.empty()) s.erase(pos % s.size(), 1 + rng() % 8);
        break;
      case 3:
        s.resize(pos);
        break;
      case 4: {
        const std::string& other = corpus[rng() % corpus.size()];
        const size_t from = other.empty() ? 0 : rng() % other.size();
        s.insert(pos, other.substr(from, rng() % 64));
        break;
      }
      default:
        s.insert(pos, kTokens[rng() % std::size(kTokens)]);
    }
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR [--iterations=N] [--seed=S]\n", argv[0]);
    return 2;
  }
  long iterations = 20000;
  uint64_t seed = 1;
  for (int i = 2; i < argc; ++i) {
    if (std::strncmp(argv[i], "--iterations=", 13) == 0) iterations = std::atol(argv[i] + 13);
    if (std::strncmp(argv[i], "--seed=", 7) == 0) seed = std::strtoull(argv[i] + 7, nullptr, 10);
  }
  g_last_path = std::getenv("TOLLGATE_FUZZ_LAST");
  std::vector<std::string> corpus;
  for (const auto& entry : std::filesystem::directory_iterator(argv[1])) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    corpus.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  if (corpus.empty()) {
    std::fprintf(stderr, "empty corpus %s\n", argv[1]);
    return 2;
  }
  for (const auto& input : corpus) RunOne(input);
  RunOne("");
  std::mt19937_64 rng(seed);
  for (long i = 0; i < iterations; ++i) RunOne(Mutate(corpus, rng));
  std::printf("%zu seeds and %ld mutations: no invariant failed\n", corpus.size(), iterations);
  return 0;
}
