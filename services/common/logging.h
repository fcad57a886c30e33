#pragma once
// Structured logging: one JSON object per line on stderr, through spdlog.
//
//   tollgate::InitLogging("gateway", "info");
//   tollgate::LogInfo("request served", {{"request_id", id}, {"status", "200"}});
//
// Every line carries ts (UTC, RFC 3339 with microseconds), level, service and msg, then the given
// fields. Field values are strings; they are JSON-escaped. Thread-safe.
//
// Logging never blocks the caller on I/O: a line is formatted on the calling thread and queued
// (bounded, kLogQueueLines) for one writer thread that writes stderr. When the queue is full —
// stderr blocked by a slow log collector — the oldest queued line is dropped and counted
// (LogQueueStats), so request threads keep serving. Queued lines are written at normal exit.

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace tollgate {

using LogField = std::pair<std::string_view, std::string_view>;

// Sets the service name and the minimum level ("trace", "debug", "info", "warn", "error").
// Unknown levels fall back to "info". Call once from main before any other logging.
void InitLogging(std::string_view service, std::string_view level);

void LogDebug(std::string_view msg, std::initializer_list<LogField> fields = {});
void LogInfo(std::string_view msg, std::initializer_list<LogField> fields = {});
void LogWarn(std::string_view msg, std::initializer_list<LogField> fields = {});
void LogError(std::string_view msg, std::initializer_list<LogField> fields = {});

inline constexpr size_t kLogQueueLines = 16384;

struct LogQueueStats {
  size_t depth = 0;    // lines waiting for the writer thread
  size_t dropped = 0;  // lines dropped because the queue was full, since start
};
LogQueueStats GetLogQueueStats();

// Appends `value` to `out` as JSON string contents (without the surrounding quotes).
void AppendJsonEscaped(std::string& out, std::string_view value);

}  // namespace tollgate
