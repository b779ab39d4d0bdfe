-- bench/unsubscribe.lua: owns the wrk request for bench/run's one-click unsubscribe row.
-- Each request is an RFC 8058 one-click POST for a distinct address: the paths (with their
-- tokens) come from the file named by $URLS, and each wrk thread takes its own share of it,
-- so every request is a new unsubscribe, never a replay.
local paths = {}
for line in io.lines(os.getenv("URLS")) do paths[#paths + 1] = line end

local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

local threads = tonumber(os.getenv("WRK_THREADS") or "1")
local body = "List-Unsubscribe=One-Click"
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local n = 0
function request()
  -- Threads interleave: thread t of T takes paths t, t + T, t + 2T, ...
  local i = (id or 0) + threads * n
  n = n + 1
  return wrk.format("POST", paths[(i % #paths) + 1], headers, body)
end
