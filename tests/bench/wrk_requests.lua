-- wrk script: replays a pool of prepared requests (one per line: method \t path \t header \t value \t body),
-- split between wrk's threads (line i goes to thread i mod threads) and replayed in file order.
-- Bodies and signatures are computed in Python beforehand, so wrk does no crypto and the server
-- sees exactly the bytes that were signed. Prints one JSON line at the end for the Python driver.
local threads = {}
local counter = 0
local nthreads = tonumber(os.getenv("WRK_THREADS") or "2")

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "r"))
  pool = {}
  local i = 0
  for line in file:lines() do
    if i % nthreads == tid then
      local method, path, header, value, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      local headers = {}
      if header ~= "" then headers[header] = value end
      if body ~= "" then headers["Content-Type"] = "application/json" end
      pool[#pool + 1] = wrk.format(method, path, headers, body ~= "" and body or nil)
    end
    i = i + 1
  end
  file:close()
  next_index = 1
  wrapped = 0
end

function request()
  local r = pool[next_index]
  next_index = next_index + 1
  if next_index > #pool then
    next_index = 1
    wrapped = wrapped + 1
  end
  return r
end

function done(summary, latency, requests)
  local wraps = 0
  for _, thread in ipairs(threads) do wraps = wraps + (thread:get("wrapped") or 0) end
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,"p50_us":%d,"p99_us":%d,"wrapped":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), wraps))
end
