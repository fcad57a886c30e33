#pragma once
// Versioned, forward-only SQL migrations of the ledger's PostgreSQL schema.
//
// The files services/ledger/migrations/NNNN_name.sql are compiled into the binary at build time
// (embed_migrations.cmake), so the ledger needs no files at run time. PostgresUsageStore::Migrate()
// applies the ones a database lacks, in version order, in one transaction under an advisory lock,
// and records them in tollgate_schema_migrations. An applied migration is never edited: a schema
// change is a new file with the next version. Because they run inside a transaction, migrations
// cannot use statements that refuse one (CREATE INDEX CONCURRENTLY, VACUUM). Keep them additive so
// that an older binary still works against a newer schema during a rolling upgrade.
//
// All functions are thread-safe; the returned data is immutable and lives for the whole program.

#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace tollgate::ledger {

struct Migration {
  int version = 0;        // from the file name's numeric prefix: 0001_usage_events.sql -> 1
  std::string_view name;  // the rest of the file name: "usage_events"
  std::string_view sql;   // the file's contents, verbatim
};

// Every migration compiled into this binary, in file-name order (defined in the generated
// migrations_embedded.cc).
const std::vector<Migration>& EmbeddedMigrations();

// Checks that versions run 1, 2, 3, ... without gaps or repeats, and that every migration has a
// name and SQL. Errors: kFailedPrecondition naming the first offending migration.
absl::Status ValidateMigrations(const std::vector<Migration>& migrations);

}  // namespace tollgate::ledger
