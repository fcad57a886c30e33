#include "services/gateway/route_features.h"

#include <algorithm>
#include <cctype>
#include <initializer_list>

namespace tollgate::gateway {
namespace {

namespace json = boost::json;

constexpr size_t kMarkerScanBytes = 64 * 1024;

bool ContainsAny(std::string_view text, std::initializer_list<std::string_view> needles) {
  for (std::string_view n : needles) {
    if (text.find(n) != std::string_view::npos) return true;
  }
  return false;
}

// Lower-cased text of the messages (string contents and text parts), at most kMarkerScanBytes.
std::string MessageText(const json::value& body) {
  std::string text;
  const json::object* object = body.if_object();
  const json::value* messages = object ? object->if_contains("messages") : nullptr;
  if (messages == nullptr || !messages->is_array()) return text;
  auto append = [&](const json::string& s) {
    if (text.size() >= kMarkerScanBytes) return;
    const size_t n = std::min(s.size(), kMarkerScanBytes - text.size());
    text.append(s.data(), n);
    text.push_back('\n');
  };
  for (const json::value& m : messages->get_array()) {
    const json::object* message = m.if_object();
    const json::value* content = message ? message->if_contains("content") : nullptr;
    if (content == nullptr) continue;
    if (content->is_string()) {
      append(content->get_string());
    } else if (content->is_array()) {
      for (const json::value& part : content->get_array()) {
        const json::object* p = part.if_object();
        const json::value* t = p ? p->if_contains("text") : nullptr;
        if (t != nullptr && t->is_string()) append(t->get_string());
      }
    }
  }
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

// Leading decimal digits of `v` (after spaces), up to an optional fraction; -1 when none or on
// anything else.
int64_t ParseNumber(std::string_view v) {
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  int64_t n = 0;
  size_t digits = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (c == '.') {
      if (digits == 0) return -1;
      for (size_t j = i + 1; j < v.size(); ++j) {
        if (v[j] < '0' || v[j] > '9') return -1;
      }
      break;
    }
    if (c < '0' || c > '9') return -1;
    if (n > 1000000000) return -1;  // absurd: ignore rather than overflow
    n = n * 10 + (c - '0');
    ++digits;
  }
  return digits == 0 ? -1 : n;
}

}  // namespace

std::vector<std::string> ContentMarkers(const json::value& body) {
  std::vector<std::string> markers;
  const std::string text = MessageText(body);
  if (text.empty()) return markers;
  if (ContainsAny(text, {"```",        "#include",    "def ",      "function ",   "function(",
                         "=>",         "};",          "import ",   "console.log", "public static",
                         "select ",    "stack trace", "traceback", "compile",     "refactor",
                         "python",     "javascript",  "c++",       "rust",        "golang",
                         "typescript", "sql",         "regex"})) {
    markers.push_back("code");
  }
  if (ContainsAny(text, {"step by step", "step-by-step", "prove", "derive", "reason through",
                         "think carefully", "explain why", "justify", "analyze", "analyse",
                         "trade-off", "tradeoff"})) {
    markers.push_back("reasoning");
  }
  if (ContainsAny(text, {"equation", "integral", "derivative", "solve for", "theorem", "\\frac",
                         "matrix", "probability", "calculate", "lemma", "polynomial"})) {
    markers.push_back("math");
  }
  return markers;
}

int64_t ParseRetryAfterMs(std::string_view retry_after_ms, std::string_view retry_after) {
  const int64_t ms = ParseNumber(retry_after_ms);
  if (ms >= 0) return ms;
  const int64_t seconds = ParseNumber(retry_after);
  return seconds >= 0 ? seconds * 1000 : 0;
}

}  // namespace tollgate::gateway
