#include "services/gateway/guardrails.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "boost/json/serialize.hpp"
#include "re2/re2.h"
#include "re2/set.h"
#include "services/common/logging.h"
#include "services/gateway/gateway_metrics.h"
#include "services/gateway/openai_dialect.h"

namespace tollgate::gateway {

namespace json = boost::json;

// The blocked patterns of one level: an RE2::Set answers "does anything match" in one pass; the
// individual RE2s (in rule order) name the first matching rule only when something did.
struct GuardrailPatternSet {
  std::vector<std::string> names;
  std::vector<std::unique_ptr<re2::RE2>> regexes;
  std::unique_ptr<re2::RE2::Set> set;
};

struct Guardrails::Level {
  GuardrailPolicy policy;
  std::unique_ptr<GuardrailPatternSet> patterns;  // set iff policy.blocked_patterns is set
};

namespace {

constexpr std::array<std::string_view, kPiiDetectorCount> kDetectorNames = {
    "email", "phone", "card", "iban", "national_id", "secret"};
constexpr std::array<std::string_view, kPiiDetectorCount> kRedactions = {
    "[REDACTED:EMAIL]", "[REDACTED:PHONE]",       "[REDACTED:CARD]",
    "[REDACTED:IBAN]",  "[REDACTED:NATIONAL_ID]", "[REDACTED:SECRET]"};
constexpr std::array<std::string_view, kPiiDetectorCount> kDescriptions = {
    "an email address", "a phone number",       "a payment card number",
    "an IBAN",          "a national ID number", "an API key or secret"};

// ---------------------------------------------------------------------------------------------
// PII detection: one regex with one capturing group per candidate shape, scanned once per text;
// each candidate is then validated (checksums, ranges, separators) in C++, which RE2 cannot do.
// Alternatives are tried leftmost-first; at the same start the earlier (more specific) wins.

enum Shape : int {
  kPem = 1,
  kToken,
  kEmailShape,
  kIbanShape,
  kCardShape,
  kSsnShape,
  kE164,
  kNanp,
  kNationalPhone,
  kShapeCount  // groups are 1..kShapeCount-1
};

constexpr PiiDetector kShapeDetector[kShapeCount] = {
    PiiDetector::kSecret,  // unused (group 0)
    PiiDetector::kSecret, PiiDetector::kSecret, PiiDetector::kEmail,
    PiiDetector::kIban,   PiiDetector::kCard,   PiiDetector::kNationalId,
    PiiDetector::kPhone,  PiiDetector::kPhone,  PiiDetector::kPhone};

constexpr const char* kPiiPattern =
    // 1: PEM private key block, up to its END line or the end of the text.
    R"((-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----|\z)))"
    // 2: API keys and tokens.
    R"(|(\bsk-ant-[A-Za-z0-9_\-]{20,})"
    R"(|\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{32,})"
    R"(|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b)"
    R"(|\bgh[pousr]_[A-Za-z0-9]{36}\b)"
    R"(|\bgithub_pat_[A-Za-z0-9_]{22,})"
    R"(|\bAIza[0-9A-Za-z_\-]{35})"
    R"(|\bxox[abposr]-[A-Za-z0-9\-]{10,}))"
    // 3: email.
    R"(|([A-Za-z0-9._%+\-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})\b)"
    // 4: IBAN (validated: length, mod-97).
    R"(|\b([A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?)\b)"
    // 5: card-like digit run (validated: grouping, issuer prefix and length, Luhn).
    R"(|\b([0-9](?:[ \-]?[0-9]){12,18})\b)"
    // 6: US SSN shape (validated: separators, invalid ranges).
    R"(|\b([0-9]{3}[ \-][0-9]{2}[ \-][0-9]{4})\b)"
    // 7: E.164 (validated: 8-15 digits).
    R"(|(\+[1-9][0-9]{0,3}(?:[ .\-]?(?:\([0-9]{1,4}\)|[0-9]{1,5})){1,6})\b)"
    // 8: NANP with separators.
    R"(|((?:\([0-9]{3}\) ?|\b[0-9]{3}[ .\-])[0-9]{3}[ .\-][0-9]{4})\b)"
    // 9: national number with a trunk 0 and separators.
    R"(|\b(0[0-9]{1,4}[ \-][0-9]{3,4}[ \-]?[0-9]{3,4})\b)";

const re2::RE2& PiiRegex() {
  static const re2::RE2* const regex = [] {
    re2::RE2::Options options;
    options.set_log_errors(false);
    options.set_max_mem(64 << 20);
    // Every detector is ASCII: matching bytes (Latin-1) is faster than decoding UTF-8 and gives
    // byte offsets whatever the text's encoding.
    options.set_encoding(re2::RE2::Options::EncodingLatin1);
    return new re2::RE2(kPiiPattern, options);
  }();
  return *regex;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

int CountDigits(std::string_view s) {
  return static_cast<int>(std::count_if(s.begin(), s.end(), IsDigit));
}

// Digits only, into a fixed buffer; false when there are more than `cap`.
template <size_t N>
bool DigitsOf(std::string_view s, std::array<char, N>& out, size_t& n) {
  n = 0;
  for (char c : s) {
    if (!IsDigit(c)) continue;
    if (n == N) return false;
    out[n++] = c;
  }
  return true;
}

int PrefixValue(const char* digits, size_t n, size_t len) {
  if (n < len) return -1;
  int v = 0;
  for (size_t i = 0; i < len; ++i) v = v * 10 + (digits[i] - '0');
  return v;
}

// Digit groups separated by one consistent separator (or none), each of at least 3 digits.
bool ConsistentGroups(std::string_view s, size_t min_group) {
  char sep = 0;
  size_t group = 0;
  for (char c : s) {
    if (IsDigit(c)) {
      ++group;
      continue;
    }
    if (sep == 0) sep = c;
    if (c != sep || group < min_group) return false;
    group = 0;
  }
  return group >= min_group || sep == 0;
}

bool CardIssuerOk(const char* d, size_t n) {
  const int p2 = PrefixValue(d, n, 2), p3 = PrefixValue(d, n, 3), p4 = PrefixValue(d, n, 4),
            p6 = PrefixValue(d, n, 6);
  const bool l16_19 = n >= 16 && n <= 19;
  if (d[0] == '4') return n == 13 || n == 16 || n == 19;                     // Visa
  if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720)) return n == 16;  // Mastercard
  if (p2 == 34 || p2 == 37) return n == 15;                                  // Amex
  if (p4 == 6011 || p2 == 65 || (p3 >= 644 && p3 <= 649) || (p6 >= 622126 && p6 <= 622925)) {
    return l16_19;  // Discover
  }
  if (p4 >= 3528 && p4 <= 3589) return l16_19;  // JCB
  if (p2 == 36 || p2 == 38 || p2 == 39 || (p3 >= 300 && p3 <= 305) || p4 == 3095) {
    return n >= 14 && n <= 19;  // Diners
  }
  if (p2 == 62) return l16_19;  // UnionPay
  switch (p4) {                 // Maestro
    case 5018:
    case 5020:
    case 5038:
    case 5893:
    case 6304:
    case 6759:
    case 6761:
    case 6762:
    case 6763:
      return n >= 12 && n <= 19;
    default:
      return false;
  }
}

bool ValidCard(std::string_view s) {
  if (!ConsistentGroups(s, 3)) return false;
  std::array<char, 19> d;
  size_t n = 0;
  if (!DigitsOf(s, d, n) || n < 13 || n > 19) return false;
  if (std::all_of(d.begin(), d.begin() + n, [&](char c) { return c == d[0]; })) return false;
  return CardIssuerOk(d.data(), n) && LuhnValid(s);
}

bool ValidPhone(std::string_view s, Shape shape) {
  const int digits = CountDigits(s);
  switch (shape) {
    case kE164:
      return digits >= 8 && digits <= 15;
    case kNanp: {
      // Area code and exchange start with 2-9.
      std::array<char, 10> d;
      size_t n = 0;
      if (!DigitsOf(s, d, n) || n != 10) return false;
      return d[0] >= '2' && d[3] >= '2';
    }
    case kNationalPhone:
      // "00" is the international prefix, not a trunk code: ids like 0001-2345-6789 are not phones.
      return s.size() > 1 && s[1] != '0' && digits >= 9 && digits <= 12;
    default:
      return false;
  }
}

bool ValidToken(std::string_view s) {
  // Real keys are random: they contain digits. Identifiers like sk-learn-... do not.
  return CountDigits(s.substr(std::min<size_t>(4, s.size()))) > 0;
}

bool Validate(Shape shape, std::string_view s) {
  switch (shape) {
    case kPem:
      return true;
    case kToken:
      return ValidToken(s);
    case kEmailShape:
      return true;
    case kIbanShape:
      return IbanChecksumValid(s);
    case kCardShape:
      return ValidCard(s);
    case kSsnShape:
      return UsSsnValid(s);
    case kE164:
    case kNanp:
    case kNationalPhone:
      return ValidPhone(s, shape);
    default:
      return false;
  }
}

// Calls on_match for each validated candidate in order; stops when it returns false. Allocates
// nothing itself.
void ScanPii(std::string_view text, absl::FunctionRef<bool(const PiiMatch&)> on_match) {
  const re2::RE2& regex = PiiRegex();
  re2::StringPiece groups[kShapeCount];
  const re2::StringPiece whole(text.data(), text.size());
  size_t pos = 0;
  while (pos < text.size() &&
         regex.Match(whole, pos, text.size(), re2::RE2::UNANCHORED, groups, kShapeCount)) {
    const size_t match_end = static_cast<size_t>(groups[0].data() - text.data()) + groups[0].size();
    for (int g = 1; g < kShapeCount; ++g) {
      if (groups[g].data() == nullptr) continue;
      const std::string_view candidate(groups[g].data(), groups[g].size());
      if (Validate(static_cast<Shape>(g), candidate)) {
        const size_t begin = static_cast<size_t>(groups[g].data() - text.data());
        if (!on_match(PiiMatch{kShapeDetector[g], begin, begin + candidate.size()})) return;
      }
      break;
    }
    pos = match_end > pos ? match_end : pos + 1;
  }
}

// ---------------------------------------------------------------------------------------------
// The texts a provider would see, in the internal OpenAI form.

// Calls visit(s) for each checked string; stops (returning false) when visit returns false.
bool ForEachText(json::value& body, absl::FunctionRef<bool(json::string&)> visit) {
  json::object* root = body.if_object();
  if (root == nullptr) return true;
  auto visit_value = [&](json::value* v) {
    return v == nullptr || !v->is_string() || visit(v->get_string());
  };
  if (json::value* messages = root->if_contains("messages"); messages && messages->is_array()) {
    for (json::value& m : messages->get_array()) {
      json::object* message = m.if_object();
      if (message == nullptr) continue;
      if (json::value* content = message->if_contains("content"); content != nullptr) {
        if (content->is_string()) {
          if (!visit(content->get_string())) return false;
        } else if (content->is_array()) {
          for (json::value& part : content->get_array()) {
            if (json::object* p = part.if_object(); p && !visit_value(p->if_contains("text"))) {
              return false;
            }
          }
        }
      }
      if (json::value* calls = message->if_contains("tool_calls"); calls && calls->is_array()) {
        for (json::value& call : calls->get_array()) {
          json::object* c = call.if_object();
          json::value* function = c ? c->if_contains("function") : nullptr;
          if (function && function->is_object() &&
              !visit_value(function->get_object().if_contains("arguments"))) {
            return false;
          }
        }
      }
    }
  }
  if (json::value* tools = root->if_contains("tools"); tools && tools->is_array()) {
    for (json::value& tool : tools->get_array()) {
      json::object* t = tool.if_object();
      json::value* function = t ? t->if_contains("function") : nullptr;
      if (function && function->is_object() &&
          !visit_value(function->get_object().if_contains("description"))) {
        return false;
      }
    }
  }
  if (json::value* functions = root->if_contains("functions"); functions && functions->is_array()) {
    for (json::value& f : functions->get_array()) {
      if (json::object* o = f.if_object(); o && !visit_value(o->if_contains("description"))) {
        return false;
      }
    }
  }
  // Embeddings.
  if (json::value* input = root->if_contains("input"); input != nullptr) {
    if (input->is_string()) return visit(input->get_string());
    if (input->is_array()) {
      for (json::value& item : input->get_array()) {
        if (!visit_value(&item)) return false;
      }
    }
  }
  return true;
}

std::string_view View(const json::string& s) { return std::string_view(s.data(), s.size()); }

}  // namespace

absl::StatusOr<std::unique_ptr<Guardrails::Level>> Guardrails::CompileLevel(
    const GuardrailPolicy& policy, const std::string& where) {
  if (policy.max_input_tokens && *policy.max_input_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("guardrails.", where, ": max_input_tokens must not be negative"));
  }
  if (policy.max_request_bytes && *policy.max_request_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("guardrails.", where, ": max_request_bytes must not be negative"));
  }
  auto level = std::make_unique<Level>();
  level->policy = policy;
  if (!policy.blocked_patterns) return level;
  auto set = std::make_unique<GuardrailPatternSet>();
  re2::RE2::Options options;
  options.set_log_errors(false);
  options.set_max_mem(64 << 20);
  set->set = std::make_unique<re2::RE2::Set>(options, re2::RE2::UNANCHORED);
  absl::flat_hash_set<std::string> seen;
  for (size_t i = 0; i < policy.blocked_patterns->size(); ++i) {
    const BlockedPattern& rule = (*policy.blocked_patterns)[i];
    const std::string what = absl::StrCat("guardrails.", where, ".blocked_patterns[", i, "]");
    if (rule.name.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": empty name"));
    if (!seen.insert(rule.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": duplicate rule name '", rule.name, "'"));
    }
    if (rule.regex.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " (rule '", rule.name, "'): empty regex"));
    }
    auto regex = std::make_unique<re2::RE2>(rule.regex, options);
    if (!regex->ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " (rule '", rule.name, "'): invalid regex: ", regex->error()));
    }
    std::string error;
    if (set->set->Add(rule.regex, &error) < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " (rule '", rule.name, "'): invalid regex: ", error));
    }
    set->names.push_back(rule.name);
    set->regexes.push_back(std::move(regex));
  }
  if (set->regexes.empty()) {
    set->set.reset();
  } else if (!set->set->Compile()) {
    return absl::InvalidArgumentError(
        absl::StrCat("guardrails.", where, ": blocked_patterns exceed RE2's memory budget"));
  }
  level->patterns = std::move(set);
  return level;
}

namespace {

// The first rule of `patterns` that matches `text`, or nullptr.
const std::string* FirstBlockedRule(const GuardrailPatternSet& patterns, std::string_view text) {
  if (patterns.set == nullptr) return nullptr;
  const re2::StringPiece piece(text.data(), text.size());
  re2::RE2::Set::ErrorInfo info;
  const bool any = patterns.set->Match(piece, nullptr, &info);
  // The Set's DFA can run out of memory on adversarial input: fall back to the regexes one by
  // one rather than letting the text through.
  if (!any && info.kind == re2::RE2::Set::kNoError) return nullptr;
  for (size_t i = 0; i < patterns.regexes.size(); ++i) {
    if (re2::RE2::PartialMatch(piece, *patterns.regexes[i])) return &patterns.names[i];
  }
  return nullptr;
}

GuardrailDecision Block(GuardrailDecision d, unsigned status, std::string_view code,
                        std::string_view param, std::string message, std::string blocked_by) {
  d.blocked = true;
  d.http_status = status;
  d.code = std::string(code);
  d.param = std::string(param);
  d.message = std::move(message);
  d.blocked_by = std::move(blocked_by);
  return d;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string_view PiiDetectorName(PiiDetector detector) {
  return kDetectorNames[static_cast<size_t>(detector)];
}

std::optional<PiiDetector> PiiDetectorFromName(std::string_view name) {
  for (size_t i = 0; i < kPiiDetectorCount; ++i) {
    if (kDetectorNames[i] == name) return static_cast<PiiDetector>(i);
  }
  return std::nullopt;
}

std::string_view PiiModeName(PiiMode mode) {
  switch (mode) {
    case PiiMode::kOff:
      return "off";
    case PiiMode::kLog:
      return "log";
    case PiiMode::kRedact:
      return "redact";
    case PiiMode::kBlock:
      return "block";
  }
  return "off";
}

std::optional<PiiMode> PiiModeFromName(std::string_view name) {
  for (PiiMode m : {PiiMode::kOff, PiiMode::kLog, PiiMode::kRedact, PiiMode::kBlock}) {
    if (PiiModeName(m) == name) return m;
  }
  return std::nullopt;
}

bool LuhnValid(std::string_view digits) {
  int sum = 0, n = 0;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    if (*it == ' ' || *it == '-') continue;
    if (!IsDigit(*it)) return false;
    int d = *it - '0';
    if (n % 2 == 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    ++n;
  }
  return n > 1 && sum % 10 == 0;
}

bool IbanChecksumValid(std::string_view iban) {
  std::array<char, 34> c;
  size_t n = 0;
  for (char ch : iban) {
    if (ch == ' ' || ch == '-') continue;
    if (n == c.size()) return false;
    if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
    if (!IsDigit(ch) && !(ch >= 'A' && ch <= 'Z')) return false;
    c[n++] = ch;
  }
  if (n < 15) return false;
  if (!(c[0] >= 'A' && c[0] <= 'Z' && c[1] >= 'A' && c[1] <= 'Z' && IsDigit(c[2]) &&
        IsDigit(c[3]))) {
    return false;
  }
  // Move the first four characters to the end; letters count as 10..35; remainder mod 97 == 1.
  int remainder = 0;
  for (size_t k = 0; k < n; ++k) {
    const char ch = c[(k + 4) % n];
    if (IsDigit(ch)) {
      remainder = (remainder * 10 + (ch - '0')) % 97;
    } else {
      remainder = (remainder * 100 + (ch - 'A' + 10)) % 97;
    }
  }
  return remainder == 1;
}

bool UsSsnValid(std::string_view ssn) {
  if (ssn.size() == 11) {
    if (ssn[3] != ssn[6] || (ssn[3] != '-' && ssn[3] != ' ')) return false;
  } else if (ssn.size() != 9) {
    return false;
  }
  std::array<char, 9> d;
  size_t n = 0;
  if (!DigitsOf(ssn, d, n) || n != 9) return false;
  if (ssn.size() == 9 && CountDigits(ssn) != 9) return false;
  const int area = PrefixValue(d.data(), 3, 3);
  const int group = (d[3] - '0') * 10 + (d[4] - '0');
  const int serial = PrefixValue(d.data() + 5, 4, 4);
  if (area == 0 || area == 666 || area >= 900) return false;
  if (group == 0 || serial == 0) return false;
  // Publicised (and voided) numbers.
  if (area == 78 && group == 5 && serial == 1120) return false;
  if (area == 219 && group == 9 && serial == 9999) return false;
  return true;
}

std::vector<PiiMatch> FindPii(std::string_view text) {
  std::vector<PiiMatch> out;
  ScanPii(text, [&](const PiiMatch& m) {
    out.push_back(m);
    return true;
  });
  return out;
}

Guardrails::Guardrails() = default;
Guardrails::~Guardrails() = default;

absl::StatusOr<std::shared_ptr<const Guardrails>> Guardrails::Compile(
    const GuardrailsConfig& config) {
  if (!PiiRegex().ok()) {
    return absl::InternalError(absl::StrCat("PII regex: ", PiiRegex().error()));
  }
  std::shared_ptr<Guardrails> g(new Guardrails());
  auto defaults = CompileLevel(config.defaults, "defaults");
  if (!defaults.ok()) return defaults.status();
  g->defaults_ = std::move(*defaults);
  for (const auto& [team, policy] : config.teams) {
    auto level = CompileLevel(policy, absl::StrCat("teams.", team));
    if (!level.ok()) return level.status();
    g->teams_.emplace(team, std::move(*level));
  }
  for (const auto& [key, policy] : config.keys) {
    auto level = CompileLevel(policy, absl::StrCat("keys.", key));
    if (!level.ok()) return level.status();
    g->keys_.emplace(key, std::move(*level));
  }
  return std::shared_ptr<const Guardrails>(std::move(g));
}

Guardrails::Effective Guardrails::Resolve(std::string_view team, std::string_view key_id) const {
  const Level* levels[3] = {nullptr, nullptr, defaults_.get()};
  if (auto it = keys_.find(key_id); it != keys_.end()) levels[0] = it->second.get();
  if (auto it = teams_.find(team); it != teams_.end()) levels[1] = it->second.get();
  Effective e;
  bool have_tokens = false, have_bytes = false, have_patterns = false, have_log = false;
  std::array<bool, kPiiDetectorCount> have_pii{};
  for (const Level* level : levels) {
    if (level == nullptr) continue;
    const GuardrailPolicy& p = level->policy;
    if (!have_tokens && p.max_input_tokens) {
      e.max_input_tokens = *p.max_input_tokens;
      have_tokens = true;
    }
    if (!have_bytes && p.max_request_bytes) {
      e.max_request_bytes = *p.max_request_bytes;
      have_bytes = true;
    }
    if (!have_patterns && p.blocked_patterns) {
      e.patterns = level->patterns && level->patterns->set ? level->patterns.get() : nullptr;
      have_patterns = true;
    }
    if (!have_log && p.log_payloads) {
      e.log_payloads = *p.log_payloads;
      have_log = true;
    }
    for (size_t i = 0; i < kPiiDetectorCount; ++i) {
      if (!have_pii[i] && p.pii[i]) {
        e.pii[i] = *p.pii[i];
        have_pii[i] = true;
      }
    }
  }
  e.any_pii = std::any_of(e.pii.begin(), e.pii.end(), [](PiiMode m) { return m != PiiMode::kOff; });
  return e;
}

GuardrailDecision Guardrails::Apply(const Effective& policy, size_t body_bytes,
                                    json::value& body) const {
  GuardrailDecision d;
  d.log_payload = policy.log_payloads;
  if (policy.max_request_bytes > 0 && body_bytes > static_cast<size_t>(policy.max_request_bytes)) {
    return Block(std::move(d), 413, "request_too_large", "",
                 absl::StrCat("The request body is ", body_bytes,
                              " bytes, more than this key's guardrail limit of ",
                              policy.max_request_bytes, " bytes (max_request_bytes)."),
                 "max_request_bytes");
  }
  if (policy.max_input_tokens > 0) {
    int64_t bytes = 0;
    ForEachText(body, [&](json::string& s) {
      bytes += static_cast<int64_t>(s.size());
      return true;
    });
    const int64_t tokens = EstimateTokens(bytes);
    if (tokens > policy.max_input_tokens) {
      return Block(std::move(d), 400, "input_tokens_exceeded", "messages",
                   absl::StrCat("The request's input is about ", tokens,
                                " tokens, more than this key's guardrail limit of ",
                                policy.max_input_tokens, " input tokens (max_input_tokens)."),
                   "max_input_tokens");
    }
  }
  if (policy.patterns == nullptr && !policy.any_pii) return d;

  // Set when a text must block the request.
  const std::string* blocked_rule = nullptr;
  std::optional<PiiDetector> blocked_detector;
  ForEachText(body, [&](json::string& s) {
    const std::string_view text = View(s);
    if (policy.patterns != nullptr) {
      blocked_rule = FirstBlockedRule(*policy.patterns, text);
      if (blocked_rule != nullptr) return false;
    }
    if (!policy.any_pii) return true;
    std::string redacted;  // allocated only on the first redaction
    size_t copied = 0;     // text[0, copied) is accounted for in `redacted`
    bool changed = false;
    ScanPii(text, [&](const PiiMatch& m) {
      const size_t i = static_cast<size_t>(m.detector);
      switch (policy.pii[i]) {
        case PiiMode::kOff:
          return true;
        case PiiMode::kLog:
          ++d.logged[i];
          return true;
        case PiiMode::kBlock:
          blocked_detector = m.detector;
          return false;
        case PiiMode::kRedact:
          if (!changed) {
            redacted.reserve(text.size() + 32);
            changed = true;
          }
          redacted.append(text.substr(copied, m.begin - copied));
          redacted.append(kRedactions[i]);
          copied = m.end;
          ++d.redacted[i];
          return true;
      }
      return true;
    });
    if (blocked_detector) return false;
    if (changed) {
      redacted.append(text.substr(copied));
      s = redacted;
      d.modified = true;
    }
    return true;
  });
  if (blocked_rule != nullptr) {
    return Block(std::move(d), 400, "content_blocked", "messages",
                 absl::StrCat("The request matches the blocked pattern '", *blocked_rule,
                              "' of this key's guardrail policy."),
                 absl::StrCat("pattern:", *blocked_rule));
  }
  if (blocked_detector) {
    const size_t i = static_cast<size_t>(*blocked_detector);
    return Block(std::move(d), 400, "pii_detected", "messages",
                 absl::StrCat("The request contains ", std::string(kDescriptions[i]),
                              " (detector '", std::string(kDetectorNames[i]),
                              "'), which this key's guardrail policy blocks."),
                 std::string(kDetectorNames[i]));
  }
  return d;
}

GuardrailDecision Guardrails::Enforce(std::string_view team, std::string_view key_id,
                                      std::string_view request_id, size_t body_bytes,
                                      json::value& body, GatewayMetrics* metrics) const {
  const Effective policy = Resolve(team, key_id);
  GuardrailDecision d = Apply(policy, body_bytes, body);
  for (size_t i = 0; i < kPiiDetectorCount; ++i) {
    for (auto [count, action] : {std::pair{d.redacted[i], std::string_view("redact")},
                                 std::pair{d.logged[i], std::string_view("log")}}) {
      if (count == 0) continue;
      if (metrics != nullptr) {
        metrics->RecordGuardrailAction(team, kDetectorNames[i], action, count);
      }
      const std::string n = absl::StrCat(count);
      LogInfo("guardrail detection", {{"request_id", request_id},
                                      {"team", team},
                                      {"api_key_id", key_id},
                                      {"detector", kDetectorNames[i]},
                                      {"action", action},
                                      {"count", n}});
    }
  }
  if (d.blocked) {
    if (metrics != nullptr) metrics->RecordGuardrailAction(team, d.blocked_by, "block", 1);
    LogInfo("guardrail blocked the request", {{"request_id", request_id},
                                              {"team", team},
                                              {"api_key_id", key_id},
                                              {"detector", d.blocked_by},
                                              {"action", "block"},
                                              {"error_code", d.code}});
    return d;
  }
  if (d.log_payload) {
    const std::string payload = json::serialize(body);
    LogInfo(
        "request payload",
        {{"request_id", request_id}, {"team", team}, {"api_key_id", key_id}, {"payload", payload}});
  }
  return d;
}

}  // namespace tollgate::gateway
