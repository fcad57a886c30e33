#pragma once
// The pure part of tollgatectl, the operator CLI over Tollgate's control-plane gRPC APIs:
// command-line parsing, duration/time parsing, and rendering of RPC answers as aligned tables,
// RFC 4180 CSV or JSON. main.cc only does the RPCs and the printing. All functions are pure and
// thread-safe.
//
//   auto command = ParseCommandLine({"spend", "--group-by", "team", "--since", "24h"}, env, now);
//   if (!command.ok()) { print Usage(...) ; exit 2; }
//   ... stub->QuerySpend(&ctx, command->spend_query, &response) ...
//   std::cout << RenderSpend(response, command->spend_query.bucket(), command->format);
//
// Command line:
//   tollgatectl [global flags] <command> [command flags]     (global flags may also follow)
//   global: --router_admin=HOST:PORT (env TOLLGATE_ROUTER_ADMIN, default 127.0.0.1:7002)
//           --ledger_admin=HOST:PORT (env TOLLGATE_LEDGER_ADMIN, default 127.0.0.1:7004)
//           --timeout=DURATION (default 10s)
//   commands: spend, catalog, help [command]; --help / -h anywhere prints the command's help.
//   Flags take "--name=value" or "--name value"; '_' and '-' are interchangeable in names.

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "grpcpp/channel.h"
#include "services/common/grpc_tls.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "tollgate/v1/ledger.pb.h"
#include "tollgate/v1/router.pb.h"

namespace grpc {
class ClientContext;
class Status;
}  // namespace grpc

namespace tollgate::tools::ctl {

// One command-line flag: "--name=value", "-name=value", "--name value", or a boolean "--name"
// (value "true", has_value false). '_' in names reads as '-'.
struct CtlFlag {
  std::string name;
  std::string value;
  bool has_value = false;
};

struct CtlArgs {
  std::vector<CtlFlag> flags;
  std::vector<std::string> positional;  // everything that is not a flag or a flag's value
  bool help = false;                    // -h / --help / -help was given
};

// Splits a command line; `is_bool(name)` flags (normalized names) never take the next argument
// as their value. Errors: kInvalidArgument for "--" / "-=" and a non-boolean flag without value.
absl::StatusOr<CtlArgs> SplitArgs(const std::vector<std::string>& args,
                                  const std::function<bool(std::string_view)>& is_bool);

// Whether `args` name a command of a family: the first positional argument is one of its
// topics, or "help <topic>". False when `args` do not split (SplitArgs with `is_bool`).
bool NamesCommand(const std::vector<std::string>& args,
                  const std::function<bool(std::string_view)>& is_bool,
                  const std::function<bool(std::string_view)>& is_topic);

// A whole decimal int64 (optional '-', no '+', spaces or trailing text).
bool ParseInt64(std::string_view text, int64_t& out);

inline constexpr const char* kDefaultRouterAdmin = "127.0.0.1:7002";
inline constexpr const char* kDefaultLedgerAdmin = "127.0.0.1:7004";

// A duration as a sequence of <non-negative integer><unit>, units ms, s, m, h, d (24h), w (7d):
// "30m", "24h", "7d", "1h30m", "500ms". Errors: kInvalidArgument (empty, missing or unknown
// unit, negative, overflow).
absl::StatusOr<absl::Duration> ParseDuration(std::string_view text);

// A --since/--until value as unix seconds: "now"; a duration back from `now` ("24h");
// an RFC 3339 time ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00+02:00"); or a date
// "2024-05-01" (00:00 UTC). Errors: kInvalidArgument.
absl::StatusOr<int64_t> ParseTimeSpec(std::string_view text, absl::Time now);

// The dimensions the ledger groups and filters by (ledger.proto SpendQuery).
const std::vector<std::string>& SpendDimensions();

// Comma-separated dimension lists, possibly several (repeated --group-by), into one ordered list.
// Errors: kInvalidArgument for unknown, empty or repeated dimensions.
absl::StatusOr<std::vector<std::string>> ParseGroupBy(const std::vector<std::string>& values);

// "dimension=value" (value may be empty or contain '='). Errors: kInvalidArgument.
absl::StatusOr<std::pair<std::string, std::string>> ParseFilter(std::string_view text);

enum class Format { kTable, kJson, kCsv };

struct GlobalOptions {
  std::string router_admin = kDefaultRouterAdmin;
  std::string ledger_admin = kDefaultLedgerAdmin;
  absl::Duration timeout = absl::Seconds(10);
  // Control-plane bearer token (--token, env TOLLGATE_ADMIN_TOKEN), sent to the ledger as
  // "authorization: Bearer <token>" when not empty (docs/tenancy.md).
  std::string token;
  // TLS to the admin services (--tls_ca_file, --tls_cert_file, --tls_key_file,
  // --tls_server_name; env TOLLGATE_TLS_CA_FILE, ..._CERT_FILE, ..._KEY_FILE, ..._SERVER_NAME;
  // docs/security.md). No CA file: plaintext.
  GrpcTlsFiles tls;
};

struct Command {
  enum class Kind { kHelp, kSpend, kCatalog };
  Kind kind = Kind::kHelp;
  std::string help_topic;  // kHelp: "" (overview), "spend" or "catalog"
  GlobalOptions global;
  Format format = Format::kTable;
  v1::SpendQuery spend_query;  // kSpend
};

// Reads an environment variable; nullopt when unset.
using GetEnv = std::function<std::optional<std::string>(const char* name)>;

// Parses the arguments after argv[0]. Flags override the environment, which overrides defaults.
// Errors: kInvalidArgument with a one-line message (the caller prints it with Usage and exits 2).
absl::StatusOr<Command> ParseCommandLine(const std::vector<std::string>& args, const GetEnv& env,
                                         absl::Time now);

// ---- Shared by the command families (spend/catalog, route, ledger, tenancy, quotas) ------------

// GlobalOptions from the environment: TOLLGATE_ROUTER_ADMIN, TOLLGATE_LEDGER_ADMIN,
// TOLLGATE_ADMIN_TOKEN (unset or empty: the defaults).
GlobalOptions GlobalOptionsFromEnv(const GetEnv& env);

// Which of the flags every command takes (ApplyCommonFlag) a command family takes, and how its
// errors read.
struct CommonFlagSpec {
  // The --format values taken; empty: --format is not a common flag (the command's own, if any).
  std::vector<Format> formats = {};
  // Named in a --format error ("bad --format 'x' for <command> (use ...)"); empty: not named.
  std::string command = {};
  // The list in a --format error; empty: the formats, "table, json or csv" style.
  std::string formats_text = {};
  // Whether --token is taken (the router's admin API takes none: route commands reject it).
  bool token = true;
};

// Applies one of the flags every command takes: --router_admin, --ledger_admin, --token,
// --timeout, and --format restricted to spec.formats. Returns true when `flag` was one of them,
// false when it is the command's own. Errors: kInvalidArgument for an empty address, a bad or
// non-positive timeout, or a format not in spec.formats (the message lists the allowed ones).
absl::StatusOr<bool> ApplyCommonFlag(const CtlFlag& flag, const CommonFlagSpec& spec,
                                     GlobalOptions& global, Format& format);

// Applies `flags` in order: the common ones through ApplyCommonFlag, every other one through
// `own`, which returns the command's error for a flag it does not take. Stops at the first error.
absl::Status ApplyFlags(const std::vector<CtlFlag>& flags, const CommonFlagSpec& spec,
                        GlobalOptions& global, Format& format,
                        const std::function<absl::Status(const CtlFlag&)>& own);

// A --since / --until style flag's value through ParseTimeSpec; errors name the flag
// ("--since: bad time ...").
absl::StatusOr<int64_t> ParseTimeFlag(const CtlFlag& flag, absl::Time now);

// Sets a call's deadline to now + `timeout`. Not pure (reads the clock).
void SetDeadline(grpc::ClientContext& context, absl::Duration timeout);

// A control-plane call's context: deadline now + global.timeout and, when global.token is not
// empty, "authorization: Bearer <token>". For the ledger's services (the router's admin API takes
// no token: SetDeadline alone). Not pure (reads the clock).
void PrepareContext(grpc::ClientContext& context, const GlobalOptions& global);

// Prints RpcErrorLine for a failed call to `service` at `address` on `err`; returns exit code 1.
int PrintRpcError(std::ostream& err, std::string_view service, std::string_view address,
                  const grpc::Status& status);

// Prints "tollgatectl: <message>", a blank line and `usage` on `err`; returns exit code 2.
int PrintUsageError(std::ostream& err, const absl::Status& status, std::string_view usage);
// Prints "tollgatectl: <message>" on `err`; returns exit code 2.
int PrintError(std::ostream& err, const absl::Status& status);

// A channel to an admin service at `address` with the TLS settings of `global`. Errors
// (kInvalidArgument naming the flag): unreadable or inconsistent TLS files.
absl::StatusOr<std::shared_ptr<grpc::Channel>> AdminChannel(const std::string& address,
                                                            const GlobalOptions& global);

// A message as one line of JSON with the proto field names and default values printed, then
// "\n".
std::string ProtoJson(const google::protobuf::Message& message);

// Rows as RFC 4180 CSV (lines through AppendCsvLine); the first row is the header.
std::string RenderCsv(const std::vector<std::vector<std::string>>& rows);

// Help text: the overview for "" (or an unknown topic), else the command's.
std::string Usage(std::string_view topic);

// Spend answers. Columns: bucket (when `bucket` != BUCKET_NONE; hour buckets as
// "2024-05-01T13:00:00Z", day buckets as "2024-05-01"), the group-by dimensions, requests,
// input, cached_input, cache_write (5m + 1h), output, reasoning, cost_usd (the decimal string as
// received). The table ends with a TOTAL row; JSON is
//   {"group_by":[...],"rows":[{...}],"total":{...}}
// where a row (and the total) is {"bucket_start","bucket_start_unix_s" (bucketed rows only),
// <dimension>: "value" for each group-by dimension (rows only), "requests", "input",
// "cached_input", "cache_write", "cache_write_5m", "cache_write_1h", "output", "reasoning" (JSON
// integers), "cost_usd": "<decimal string>"}. CSV (RFC 4180, CRLF line ends) has the table's
// header and one line per row, without the total.
std::string RenderSpendTable(const v1::SpendResponse& response, v1::Bucket bucket);
std::string RenderSpendCsv(const v1::SpendResponse& response, v1::Bucket bucket);
std::string RenderSpendJson(const v1::SpendResponse& response, v1::Bucket bucket);
std::string RenderSpend(const v1::SpendResponse& response, v1::Bucket bucket, Format format);

// Catalog answers: providers, models (aliases, deployments in priority order) and deployments
// (provider, upstream model, region, prices in USD per million tokens).
std::string RenderCatalogTable(const v1::ListCatalogResponse& response);
std::string RenderCatalogJson(const v1::ListCatalogResponse& response);

// Aligned columns separated by two spaces (widths in UTF-8 code points), a dashed rule after the
// header row (unless !header_rule) and before row `rule_before` (if non-zero); `right_aligned`
// per column (numbers); no trailing spaces. Every row has the header's column count.
std::string RenderAligned(const std::vector<std::vector<std::string>>& rows,
                          const std::vector<bool>& right_aligned, size_t rule_before,
                          bool header_rule = true);

// One CSV field, quoted when it contains a comma, quote, CR or LF (quotes doubled).
std::string CsvField(std::string_view value);

// Appends one RFC 4180 CSV line: `fields` (strings) through CsvField, comma-separated, CRLF.
template <typename Fields>
void AppendCsvLine(const Fields& fields, std::string& out) {
  bool first = true;
  for (const std::string& field : fields) {
    if (!first) out += ',';
    first = false;
    out += CsvField(field);
  }
  out += "\r\n";
}

// "tollgatectl: <service> at <address>: <CODE>: <message>" on one line.
std::string RpcErrorLine(std::string_view service, std::string_view address, int grpc_code,
                         std::string_view message);

}  // namespace tollgate::tools::ctl
