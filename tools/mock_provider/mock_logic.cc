#include "tools/mock_provider/mock_logic.h"

#include <algorithm>
#include <charconv>

#include "absl/strings/str_cat.h"
#include "boost/json/object.hpp"
#include "boost/json/parse.hpp"
#include "boost/json/string.hpp"
#include "services/common/logging.h"

namespace tollgate::tools::mock {
namespace json = boost::json;
namespace {

constexpr int64_t kMaxTokensDirective = 1'000'000;
constexpr int64_t kMaxDelayMs = 3'600'000;
// Salt of the reasoning-text generator, so thinking text differs from the answer.
constexpr uint64_t kReasoningSalt = 0x5DEECE66DULL;

// Common English words; the generated text only has to be deterministic and readable.
constexpr std::array<std::string_view, 64> kWords = {
    "the",     "quick",  "brown",   "fox",    "jumps",   "over",    "lazy",   "dog",
    "gateway", "token",  "budget",  "cost",   "ledger",  "router",  "model",  "stream",
    "answer",  "simple", "careful", "exact",  "bright",  "river",   "stone",  "cloud",
    "signal",  "number", "garden",  "window", "yellow",  "silver",  "ocean",  "forest",
    "memory",  "engine", "planet",  "winter", "summer",  "orange",  "purple", "copper",
    "little",  "gentle", "rapid",   "steady", "hidden",  "golden",  "quiet",  "honest",
    "paper",   "market", "bridge",  "harbor", "valley",  "meadow",  "candle", "pencil",
    "rocket",  "castle", "island",  "mirror", "thunder", "crystal", "shadow", "lantern"};

struct ErrorTypeEntry {
  std::string_view type;
  int status;
};
constexpr std::array<ErrorTypeEntry, 10> kErrorTypes = {{{"invalid_request_error", 400},
                                                         {"authentication_error", 401},
                                                         {"billing_error", 402},
                                                         {"permission_error", 403},
                                                         {"not_found_error", 404},
                                                         {"request_too_large", 413},
                                                         {"rate_limit_error", 429},
                                                         {"api_error", 500},
                                                         {"timeout_error", 504},
                                                         {"overloaded_error", 529}}};

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

bool ParseNonNegative(std::string_view text, int64_t& out) {
  if (text.empty()) return false;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size() && out >= 0;
}

std::string NormalizeKey(std::string_view name) {
  std::string key(name);
  for (char& c : key) {
    if (c == '-') c = '_';
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return key;
}

bool IsIdentifier(std::string_view value) {
  if (value.empty() || value.size() > 128) return false;
  return std::all_of(value.begin(), value.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.' || c == ':';
  });
}

std::string FirstWord(std::string_view prompt) {
  size_t end = 0;
  while (end < prompt.size() && !IsSpace(prompt[end])) ++end;
  return std::string(prompt.substr(0, end));
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string_view JsonTypeName(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
      return "an integer";
    case json::kind::double_:
      return "a decimal";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "a value";
}

std::optional<int64_t> AsInteger(const json::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64() && v.get_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(v.get_uint64());
  }
  return std::nullopt;
}

json::value ParseJsonBody(std::string_view body, json::storage_ptr storage,
                          boost::system::error_code& ec) {
  json::parse_options options;
  options.max_depth = 256;  // tool JSON schemas nest deeply
  return json::parse(json::string_view(body.data(), body.size()), ec, std::move(storage), options);
}

const json::value& RequestJson::Parse(std::string_view body, boost::system::error_code& ec) {
  value_ = ParseJsonBody(body, &resource_, ec);
  return value_;
}

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t Fnv1a64(std::string_view text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string ContentText(const json::value& content) {
  if (content.is_string()) return std::string(ToStd(content.get_string()));
  std::string text;
  if (!content.is_array()) return text;
  for (const json::value& part : content.get_array()) {
    const json::object* obj = part.if_object();
    if (obj == nullptr) continue;
    const json::value* type = obj->if_contains("type");
    const json::value* t = obj->if_contains("text");
    if (type != nullptr && type->is_string() && type->get_string() == "text" && t != nullptr &&
        t->is_string()) {
      text += ToStd(t->get_string());
    }
  }
  return text;
}

int64_t CountPromptTokens(const json::array& messages) {
  int64_t tokens = kPromptBaseTokens;
  for (const json::value& m : messages) {
    const json::object* obj = m.if_object();
    const json::value* content = obj == nullptr ? nullptr : obj->if_contains("content");
    if (content == nullptr) {
      tokens += MessageTokens(0);
    } else if (content->is_string()) {
      tokens += MessageTokens(content->get_string().size());
    } else {
      tokens += MessageTokens(ContentText(*content).size());
    }
  }
  return tokens;
}

// ---------------------------------------------------------------------------------------------

std::optional<int> ErrorTypeStatus(std::string_view type) {
  for (const auto& e : kErrorTypes) {
    if (e.type == type) return e.status;
  }
  return std::nullopt;
}

std::string_view ErrorTypeForStatus(int status) {
  for (const auto& e : kErrorTypes) {
    if (e.status == status) return e.type;
  }
  return status >= 500 ? "api_error" : "invalid_request_error";
}

absl::Status ApplyDirective(std::string_view name, std::string_view value, Directives& out) {
  const std::string key = NormalizeKey(name);
  auto error = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("mock directive ", key, "=", Av(value), ": ", Av(why)));
  };
  if (key == "key") {
    if (!IsIdentifier(value)) return error("key must be 1..128 characters of [A-Za-z0-9_.:-]");
    out.key = std::string(value);
    return absl::OkStatus();
  }
  if (key == "block") {
    if (!IsIdentifier(value)) return error("block must be a reason such as SAFETY");
    out.block = std::string(value);
    return absl::OkStatus();
  }
  int64_t n = 0;
  const bool is_int = ParseNonNegative(value, n);
  if (key == "stream_error") {
    const std::optional<int> status =
        is_int ? std::optional<int>(static_cast<int>(n)) : ErrorTypeStatus(value);
    if (!status.has_value() || *status < 400 || *status > 599) {
      return error(
          "expected an Anthropic error type (e.g. overloaded_error, api_error) or a status "
          "400..599");
    }
    out.stream_error = *status;
    return absl::OkStatus();
  }
  auto need_int = [&](int64_t max, std::optional<int64_t>& field) -> absl::Status {
    if (!is_int) return error("expected a non-negative integer");
    if (n > max) return error(absl::StrCat("must be <= ", max));
    field = n;
    return absl::OkStatus();
  };
  if (key == "status") {
    if (!is_int || !(n == 200 || (n >= 400 && n <= 599))) {
      return error("status must be 200 or 400..599");
    }
    out.status = static_cast<int>(n);
    return absl::OkStatus();
  }
  if (key == "retry_after") return need_int(86400, out.retry_after);
  if (key == "tokens") return need_int(kMaxTokensDirective, out.tokens);
  if (key == "cached") return need_int(INT64_MAX / 4, out.cached);
  if (key == "cache_write_5m") return need_int(INT64_MAX / 4, out.cache_write_5m);
  if (key == "cache_write_1h") return need_int(INT64_MAX / 4, out.cache_write_1h);
  if (key == "reasoning" || key == "thinking" || key == "thoughts") {
    return need_int(kMaxTokensDirective, out.reasoning);
  }
  if (key == "stream_error_after") return need_int(kMaxTokensDirective, out.stream_error_after);
  if (key == "ttft_ms") return need_int(kMaxDelayMs, out.ttft_ms);
  if (key == "inter_token_ms") return need_int(kMaxDelayMs, out.inter_token_ms);
  if (key == "latency_ms") return need_int(kMaxDelayMs, out.latency_ms);
  if (key == "stall_ms") return need_int(kMaxDelayMs, out.stall_ms);
  if (key == "disconnect_after") return need_int(kMaxTokensDirective, out.disconnect_after);
  if (key == "fail_first") return need_int(1'000'000'000, out.fail_first);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown mock directive '", key,
                   "' (known: status, retry_after, tokens, cached, cache_write_5m, cache_write_1h, "
                   "reasoning|thinking|thoughts, block, stream_error, stream_error_after, ttft_ms, "
                   "inter_token_ms, latency_ms, stall_ms, disconnect_after, fail_first, key)"));
}

absl::Status ParseDirectives(std::string_view text, Directives& out) {
  constexpr std::string_view kOpen = "[[mock:";
  size_t pos = 0;
  while ((pos = text.find(kOpen, pos)) != std::string_view::npos) {
    const size_t start = pos + kOpen.size();
    const size_t end = text.find("]]", start);
    if (end == std::string_view::npos) {
      return absl::InvalidArgumentError("unterminated [[mock: ...]] directive");
    }
    std::string_view body = text.substr(start, end - start);
    while (true) {
      body = Trim(body);
      if (body.empty()) break;
      size_t len = 0;
      while (len < body.size() && !IsSpace(body[len])) ++len;
      const std::string_view token = body.substr(0, len);
      body.remove_prefix(len);
      const size_t eq = token.find('=');
      if (eq == std::string_view::npos || eq == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("mock directive '", Av(token), "' is not of the form key=value"));
      }
      absl::Status st = ApplyDirective(token.substr(0, eq), token.substr(eq + 1), out);
      if (!st.ok()) return st;
    }
    pos = end + 2;
  }
  return absl::OkStatus();
}

std::string PromptText(std::string_view text) {
  constexpr std::string_view kOpen = "[[mock:";
  std::string out;
  size_t pos = 0;
  while (true) {
    const size_t open = text.find(kOpen, pos);
    const size_t close = open == std::string_view::npos ? open : text.find("]]", open);
    if (close == std::string_view::npos) {
      out += text.substr(pos);
      break;
    }
    out += text.substr(pos, open - pos);
    pos = close + 2;
  }
  return std::string(Trim(out));
}

// ---------------------------------------------------------------------------------------------

std::string GenerateWords(uint64_t seed, int64_t count) {
  std::string out;
  out.reserve(static_cast<size_t>(count) * 7);
  uint64_t state = seed;
  for (int64_t i = 0; i < count; ++i) {
    if (i > 0) out += ' ';
    out += kWords[SplitMix64(state) % kWords.size()];
  }
  return out;
}

int64_t ToolCallTokens(std::string_view name, std::string_view arguments) {
  return 7 + static_cast<int64_t>((name.size() + arguments.size() + 3) / 4);
}

Completion BuildCompletion(const ChatRequest& request, const Directives& directives, uint64_t seq,
                           int64_t created_unix_s, IdStyle ids) {
  Completion c;
  c.id = absl::StrCat(Av(ids.completion), seq);
  c.seq = seq;
  c.created = created_unix_s;
  c.model = request.model;
  const std::string prompt = PromptText(request.last_user_text);
  const uint64_t hash = Fnv1a64(prompt);
  c.seed = hash;
  c.usage.prompt_tokens = request.prompt_tokens;
  int64_t rest = request.prompt_tokens;
  auto take = [&rest](const std::optional<int64_t>& wanted) {
    const int64_t n = std::min(wanted.value_or(0), rest);
    rest -= n;
    return n;
  };
  c.usage.cached_tokens = take(directives.cached);
  c.usage.cache_write_5m_tokens = take(directives.cache_write_5m);
  c.usage.cache_write_1h_tokens = take(directives.cache_write_1h);
  if (directives.block.has_value()) {
    c.block_reason = *directives.block;
    return c;
  }

  const int64_t reasoning = directives.reasoning.value_or(0);
  int64_t completion_tokens = 0;
  c.choices.resize(static_cast<size_t>(std::max(request.n, 1)));
  for (size_t i = 0; i < c.choices.size(); ++i) {
    Choice& choice = c.choices[i];
    if (!request.tool_to_call.empty()) {
      choice.tool_call_id = i == 0 ? absl::StrCat(Av(ids.tool_call), seq)
                                   : absl::StrCat(Av(ids.tool_call), seq, "_", i);
      choice.tool_name = request.tool_to_call;
      choice.tool_arguments = "{\"query\":";
      AppendJsonString(choice.tool_arguments, FirstWord(prompt));
      choice.tool_arguments += '}';
      choice.finish_reason = "tool_calls";
      completion_tokens +=
          directives.tokens.value_or(ToolCallTokens(choice.tool_name, choice.tool_arguments));
      continue;
    }
    int64_t words = directives.tokens.value_or(8 + static_cast<int64_t>(hash % 17));
    choice.finish_reason = "stop";
    if (request.max_completion_tokens > 0) {
      const int64_t budget = std::max<int64_t>(request.max_completion_tokens - reasoning, 0);
      if (words > budget) {
        words = budget;
        choice.finish_reason = "length";
      }
    }
    choice.words = words;
    choice.content = GenerateWords(hash + i * 0x9E3779B97F4A7C15ULL, words);
    completion_tokens += words;
  }
  c.usage.reasoning_tokens = reasoning;
  c.usage.completion_tokens = completion_tokens + reasoning;
  return c;
}

std::string ReasoningText(const Completion& completion) {
  return GenerateWords(completion.seed ^ kReasoningSalt, completion.usage.reasoning_tokens);
}

std::array<std::string_view, 3> SplitToolArguments(std::string_view arguments) {
  if (arguments.size() < 2) return {arguments, {}, {}};
  const size_t colon = arguments.find(':');
  const size_t head = colon == std::string_view::npos ? 1 : colon + 1;
  return {arguments.substr(0, head), arguments.substr(head, arguments.size() - 1 - head),
          arguments.substr(arguments.size() - 1)};
}

}  // namespace tollgate::tools::mock
