-- wrk: heartbeats from many instances. Each request is the next line of
-- the file $HEARTBEATS ("credential<TAB>body", from fleet_fixture), so
-- consecutive requests authenticate as different instances, each with the
-- facts it enrolled with. Requests are formatted once, in init: the load
-- generator shares the cores with the server, so it should do little.
local lines = {}
local next_line = 1
local threads = 0

function setup(thread)
  thread:set("thread_index", threads)
  threads = threads + 1
end

function init(args)
  for line in io.lines(os.getenv("HEARTBEATS")) do
    local credential, body = line:match("^([^\t]+)\t(.*)$")
    lines[#lines + 1] = wrk.format("POST", "/eic/v1/heartbeat", {
      ["Authorization"] = "Bearer " .. credential,
      ["Content-Type"] = "application/json",
    }, body)
  end
  -- Threads start apart, so two never send the same instance together.
  next_line = ((thread_index or 0) * 4999) % #lines + 1
end

function request()
  local r = lines[next_line]
  next_line = next_line % #lines + 1
  return r
end

done = function(summary, latency, requests)
  io.write(string.format("non-200 responses: %d of %d\n", summary.errors.status, summary.requests))
end
