#pragma once
// tollgatectl's ledger maintenance commands, over LedgerAdmin:
//
//   tollgatectl reprice --since T [--until T] --deployment D [--input X] [--cached-input X]
//                       [--cache-write-5m X] [--cache-write-1h X] [--output X] [--reasoning X]
//                       [--filter dim=value]... [--price-card-version V] [--reason TEXT]
//                       [--dry-run] [--format table|json]                            (Reprice)
//   tollgatectl export focus --since T [--until T] [--filter dim=value]...      (ExportFocus)
//   tollgatectl anomalies [--since T] [--until T] [--limit N] [--format table|json]
//                                                                             (ListAnomalies)
//   tollgatectl reconcile --provider P --invoice FILE.csv                        (QuerySpend)
//                       lists every difference by day and model; exit 0 when none, 3 when any
//                       writes FOCUS 1.2 CSV (RFC 4180, CRLF) to stdout
//
// Prices are decimal USD per million tokens ("2.5"); a price not given keeps the one each event
// was stored with. main.cc hands the arguments here when IsLedgerCommand() says so. Global flags
// (--ledger_admin, env TOLLGATE_LEDGER_ADMIN, --timeout; --router_admin accepted and ignored) and
// the flag syntax are ctl_lib's.
//
// Exit codes: 0 success, 1 RPC failure, 2 usage error. Pure functions are thread-safe.

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tollgate/v1/ledger.pb.h"
#include "tools/tollgatectl/ctl_lib.h"

namespace tollgate::tools::ctl {

struct LedgerCommand {
  enum class Kind { kHelp, kReprice, kExportFocus, kReconcile, kAnomalies };
  Kind kind = Kind::kHelp;
  std::string help_topic;  // kHelp: "reprice" or "export"
  GlobalOptions global;
  Format format = Format::kTable;
  v1::RepriceRequest reprice;          // kReprice
  v1::ExportFocusRequest focus;        // kExportFocus
  std::string provider;                // kReconcile
  std::string invoice_path;            // kReconcile
  v1::ListAnomaliesRequest anomalies;  // kAnomalies
};

// Anomalies: hour, dimension, value, expected, actual, ratio and top contributors; JSON
// {"anomalies": [{"hour", "hour_unix_s", "dimension", "value", "expected_usd", "actual_usd",
// "baseline_weeks", "top_contributors": [...]}]}.
std::string RenderAnomalies(const v1::ListAnomaliesResponse& response, Format format);

// One line of a provider invoice CSV (header: date,model,input_tokens,cached_input_tokens,
// output_tokens,cost_usd; date YYYY-MM-DD UTC; cost a decimal USD string).
struct InvoiceLine {
  std::string date;
  std::string model;
  int64_t input_tokens = 0;
  int64_t cached_input_tokens = 0;
  int64_t output_tokens = 0;
  int64_t cost_pico = 0;
};

// Parses the invoice CSV (RFC 4180 quoting allowed; lines for the same day and model are
// summed). Errors: kInvalidArgument naming the line.
absl::StatusOr<std::vector<InvoiceLine>> ParseInvoiceCsv(std::string_view text);

// Compares the invoice with ledger spend grouped by upstream_model and day (BUCKET_DAY) and
// returns one line per difference: "DATE MODEL FIELD invoice=X ledger=Y diff=Z" (fields
// requests-free: input_tokens, cached_input_tokens, output_tokens, cost_usd; a day/model present
// on one side only is reported field by field against 0). Sorted by date, model, field.
std::vector<std::string> ReconcileDifferences(const std::vector<InvoiceLine>& invoice,
                                              const v1::SpendResponse& ledger);

// Appends the chunk as CSV lines (the column header first when the chunk has columns).
void AppendFocusCsv(const v1::FocusChunk& chunk, std::string& out);

// True when `args` (after argv[0]) name a ledger maintenance command or ask for its help.
bool IsLedgerCommand(const std::vector<std::string>& args);

// Errors: kInvalidArgument with a one-line message.
absl::StatusOr<LedgerCommand> ParseLedgerCommand(const std::vector<std::string>& args,
                                                 const GetEnv& env, absl::Time now);

std::string LedgerUsage(std::string_view topic);
std::string LedgerCommandsOverview();

// Reprice answers: one row per deployment (events, changed, old, new and delta cost) and a TOTAL
// row; JSON {"repricing_id", "dry_run", "events", "changed_events", "old_cost_usd",
// "new_cost_usd", "delta_usd", "deployments": [{"deployment", "events", "changed_events",
// "old_cost_usd", "new_cost_usd", "delta_usd"}]} with costs as decimal strings.
std::string RenderRepriceTable(const v1::RepriceResponse& response);
std::string RenderRepriceJson(const v1::RepriceResponse& response);

// Parses `args` and runs the command against LedgerAdmin; prints help or usage errors itself.
int RunLedgerCommand(const std::vector<std::string>& args, const GetEnv& env, std::ostream& out,
                     std::ostream& err);

}  // namespace tollgate::tools::ctl
