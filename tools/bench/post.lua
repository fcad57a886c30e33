-- wrk script: POST a chat completion. Body and key come from the environment
-- (BENCH_BODY, BENCH_KEY); counts non-2xx responses so the harness can fail on errors.
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["content-type"] = "application/json"
local key = os.getenv("BENCH_KEY")
if key and key ~= "" then wrk.headers["authorization"] = "Bearer " .. key end

errors = 0  -- a global: done() reads it from each thread with thread:get
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function response(status, headers, body)
  if status ~= 200 then errors = errors + 1 end
end
function done(summary, latency, requests)
  local non2xx = 0
  for _, t in ipairs(threads) do non2xx = non2xx + (t:get("errors") or 0) end
  io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d non200=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), non2xx,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  -- The latency distribution, for the plot: percentile and microseconds.
  local pcts = {}
  for _, p in ipairs({0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99}) do
    local v = (p == 0) and latency.min or latency:percentile(p)
    table.insert(pcts, string.format("%s:%d", p, v))
  end
  io.write("PCTS " .. table.concat(pcts, " ") .. "\n")
end
