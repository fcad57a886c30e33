#include "services/gateway/sse_parser.h"

#include "absl/strings/str_cat.h"

namespace tollgate::gateway {

SseParser::SseParser(size_t max_event_bytes) : max_event_bytes_(max_event_bytes) {}

absl::Status SseParser::Feed(std::string_view bytes,
                             absl::FunctionRef<void(const SseEvent&)> on_event) {
  if (failed_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("SSE event exceeds ", max_event_bytes_, " bytes"));
  }
  size_t i = buf_.size();
  buf_.append(bytes.data(), bytes.size());
  const size_t n = buf_.size();
  if (skip_lf_ && i < n) {
    skip_lf_ = false;
    if (buf_[i] == '\n') {
      // Second half of a "\r\n" whose '\r' ended the previous line. If that line was a blank one,
      // the event it ended was already dispatched; the '\n' then belongs to no event.
      if (event_start_ == i) ++event_start_;
      ++i;
      line_start_ = i;
    }
  }
  while (i < n) {
    const size_t j = buf_.find_first_of("\r\n", i);
    if (j == std::string::npos) break;
    size_t end = j + 1;
    if (buf_[j] == '\r') {
      if (end < n) {
        if (buf_[end] == '\n') ++end;
      } else {
        skip_lf_ = true;
      }
    }
    const std::string_view line(buf_.data() + line_start_, j - line_start_);
    if (line.empty()) {
      if (has_lines_) {
        if (end - event_start_ > max_event_bytes_) {
          failed_ = true;
          break;
        }
        Dispatch(end, /*terminated=*/true, on_event);
      }
      event_start_ = end;
      ResetEvent();
    } else {
      ProcessLine(line);
    }
    line_start_ = end;
    i = end;
  }
  if (!failed_ && n - event_start_ > max_event_bytes_) failed_ = true;
  if (failed_) {
    buf_.clear();
    event_start_ = line_start_ = 0;
    ResetEvent();
    return absl::ResourceExhaustedError(
        absl::StrCat("SSE event exceeds ", max_event_bytes_, " bytes"));
  }
  if (event_start_ > 0) {
    buf_.erase(0, event_start_);
    line_start_ -= event_start_;
    event_start_ = 0;
  }
  return absl::OkStatus();
}

void SseParser::Finish(absl::FunctionRef<void(const SseEvent&)> on_event) {
  if (!failed_) {
    if (line_start_ < buf_.size()) {
      ProcessLine(std::string_view(buf_).substr(line_start_));
    }
    if (has_lines_) Dispatch(buf_.size(), /*terminated=*/false, on_event);
  }
  buf_.clear();
  event_start_ = line_start_ = 0;
  skip_lf_ = false;
  failed_ = false;
  ResetEvent();
}

void SseParser::ProcessLine(std::string_view line) {
  has_lines_ = true;
  if (line.front() == ':') return;  // comment
  const size_t colon = line.find(':');
  std::string_view field = line.substr(0, colon);
  std::string_view value;
  if (colon != std::string_view::npos) {
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    data_.append(value.data(), value.size());
    data_.push_back('\n');
    has_data_ = true;
  } else if (field == "event") {
    event_.assign(value.data(), value.size());
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) id_.assign(value.data(), value.size());
  }
  // "retry" and unknown fields are ignored, as the specification requires.
}

void SseParser::Dispatch(size_t raw_end, bool terminated,
                         absl::FunctionRef<void(const SseEvent&)> on_event) {
  SseEvent event;
  event.raw = std::string_view(buf_.data() + event_start_, raw_end - event_start_);
  event.data = std::string_view(data_);
  if (!event.data.empty()) event.data.remove_suffix(1);  // the '\n' after the last data line
  event.event = event_;
  event.id = id_;
  event.has_data = has_data_;
  event.terminated = terminated;
  on_event(event);
}

void SseParser::ResetEvent() {
  data_.clear();
  event_.clear();
  id_.clear();
  has_data_ = false;
  has_lines_ = false;
}

}  // namespace tollgate::gateway
