-- Each request is the next raw, pre-signed POST from a pool file (NUL-separated),
-- so every request in a run carries a distinct payload unless the pool repeats it.
-- Args: POOL_FILE [STOP_MARGIN]. One wrk thread (-t1) is assumed.
-- A thread stops once it has used the pool (less the requests in flight), so no
-- request is ever sent twice by wrap-around; the done() hook prints one JSON line
-- with wall-clock start/end measured here (wrk's own duration is the -d value even
-- when the thread stops early).
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

pool = {}
sent = 0
answered = 0
wrapped = 0
first = 0
last = 0
non200 = 0
margin = 0

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local data = f:read("*a")
  f:close()
  for req in data:gmatch("([^%z]+)%z") do
    pool[#pool + 1] = req
  end
  margin = tonumber(args[2] or "0")
end

function request()
  if first == 0 then first = now() end
  sent = sent + 1
  local i = sent
  if i > #pool then
    wrapped = wrapped + 1
    i = ((i - 1) % #pool) + 1
  end
  return pool[i]
end

function response(status, headers, body)
  answered = answered + 1
  last = now()
  if status ~= 200 then non200 = non200 + 1 end
  if answered + margin >= #pool then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local t = threads[1]
  local out = string.format(
    '{"pool": %d, "sent": %d, "answered": %d, "wrapped": %d, "non200": %d, "wall_s": %.6f, ' ..
    '"wrk_requests": %d, "wrk_duration_us": %d, "errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}, "latency_us": {"p50": %d, "p90": %d, ' ..
    '"p99": %d, "max": %d, "mean": %.1f}}',
    #t:get("pool"), t:get("sent"), t:get("answered"), t:get("wrapped"), t:get("non200"),
    t:get("last") - t:get("first"), summary.requests, summary.duration,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean)
  io.write("BENCH_JSON " .. out .. "\n")
end
