#pragma once
// Incremental parser for a Server-Sent Events stream (WHATWG HTML "event stream interpretation").
//
//   SseParser parser(/*max_event_bytes=*/1 << 20);
//   absl::Status st = parser.Feed(bytes_just_read, [&](const SseEvent& event) {
//     if (event.has_data) Inspect(event.data);
//     Forward(event.raw);
//   });
//   ...
//   parser.Finish([&](const SseEvent& event) { ... });  // at end of stream
//
// Bytes may be split at any position between calls to Feed. Lines end in "\n", "\r\n" or "\r";
// "data:" lines of one event are joined with "\n"; lines starting with ':' are comments. An event
// is dispatched as soon as its terminating blank line has been fed: the parser never waits for
// more input to dispatch a complete event (so a "\r\n" split right after its '\r' dispatches at
// the '\r' and the following '\n' is swallowed instead of being counted as an empty line).
//
// Every block of non-blank lines is reported, comment-only blocks included (has_data false), so
// a proxy can forward keep-alive comments. Runs of blank lines between events are not reported.
//
// Not thread-safe; one parser per stream. Pure: no I/O, no allocation beyond its own buffers.

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

namespace tollgate::gateway {

struct SseEvent {
  // The exact bytes of the event as received: its lines and their terminators, through the blank
  // line that ended it. When `terminated` is false (event flushed by Finish) the blank line is
  // missing, and possibly the last line's terminator too.
  std::string_view raw;
  std::string_view data;   // "data" field values joined with '\n'
  std::string_view event;  // "event" field; empty when absent
  std::string_view id;     // "id" field; empty when absent
  bool has_data = false;   // at least one "data" line
  bool terminated = true;
};

class SseParser {
 public:
  // `max_event_bytes` bounds the raw size of one event (and so the parser's memory).
  explicit SseParser(size_t max_event_bytes);

  SseParser(const SseParser&) = delete;
  SseParser& operator=(const SseParser&) = delete;

  // Consumes `bytes`, calling `on_event` for every event completed by them, in order. The views
  // in SseEvent are valid only during the callback. Errors: kResourceExhausted when an event
  // exceeds max_event_bytes; the parser then stays failed and reports the same error.
  absl::Status Feed(std::string_view bytes, absl::FunctionRef<void(const SseEvent&)> on_event);

  // End of stream: reports a trailing event that was never terminated by a blank line (its last
  // line is taken as complete), if it has any field. The parser is then reset to empty.
  void Finish(absl::FunctionRef<void(const SseEvent&)> on_event);

  // Bytes of the incomplete event held back, waiting for more input.
  size_t buffered_bytes() const { return buf_.size() - event_start_; }

 private:
  void ProcessLine(std::string_view line);
  void Dispatch(size_t raw_end, bool terminated, absl::FunctionRef<void(const SseEvent&)> on_event);
  void ResetEvent();

  const size_t max_event_bytes_;
  std::string buf_;         // unconsumed input; the current event starts at event_start_
  size_t event_start_ = 0;  // offset in buf_ of the current event's first byte
  size_t line_start_ = 0;   // offset in buf_ of the current (incomplete) line
  bool skip_lf_ = false;    // the last line ended with '\r' at the end of the input
  bool failed_ = false;

  // Fields of the event being parsed.
  std::string data_;
  std::string event_;
  std::string id_;
  bool has_data_ = false;
  bool has_lines_ = false;
};

}  // namespace tollgate::gateway
