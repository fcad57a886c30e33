#pragma once
// Cheap request features for the router's classifier and the fallback policy, computed on the
// hot path without copying the request more than once.
//
//   for (auto& m : ContentMarkers(body)) route_request.add_content_markers(m);
//   int64_t ms = ParseRetryAfterMs(header_retry_after_ms, header_retry_after);
//
// Pure functions; thread-safe.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "boost/json/value.hpp"

namespace tollgate::gateway {

// The content markers ("code", "reasoning", "math"; RouteRequest.content_markers) found in the
// messages of a chat request body: a case-insensitive search for a few telltale substrings in
// the string contents and text parts, over at most the first 64 KiB of message text.
std::vector<std::string> ContentMarkers(const boost::json::value& body);

// An upstream's retry-after in milliseconds: `retry_after_ms` (header retry-after-ms,
// milliseconds) when it is a number, else `retry_after` (header retry-after, delta seconds;
// HTTP dates are not read); 0 when neither is usable. Fractions are truncated.
int64_t ParseRetryAfterMs(std::string_view retry_after_ms, std::string_view retry_after);

}  // namespace tollgate::gateway
