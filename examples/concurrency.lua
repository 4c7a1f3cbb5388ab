-- A thousand concurrent tasks, each sleeping one second, finish in about one second:
-- sleeping suspends only the task, never the thread.
--   dreamos run examples/concurrency.lua
local dreamos = require("dreamos")
local time = require("dreamos.time")

local n = tonumber(arg[1]) or 1000
local started = time.monotonic()
local handles = {}
for i = 1, n do
  handles[i] = dreamos.spawn(function(k)
    time.sleep(1)
    return k * 2
  end, i)
end
local sum = 0
for _, h in ipairs(handles) do
  sum = sum + h:join()
end
print(("%d tasks, sum %d, %.2f s"):format(n, sum, time.monotonic() - started))
