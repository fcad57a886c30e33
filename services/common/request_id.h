#pragma once
// Request ids, which are also usage event ids: 32 lowercase hex digits, time-ordered like a
// UUIDv7 — the first 12 digits are the Unix time in milliseconds, the other 20 are 80 random bits
// from a per-thread generator seeded from the OS (no locks).
//
// Time order matters to the ledger: event ids are the key of its exactly-once index, and ids that
// grow with time land on the right edge of that B-tree instead of on random pages, which keeps
// ingest fast as the index grows (docs/ledger.md). They also sort by time when read by a human.

#include <cstdint>
#include <string>

namespace tollgate {

std::string NewRequestId();
// The same for a given time (tests, benchmarks).
std::string NewRequestId(int64_t unix_ms);

}  // namespace tollgate
