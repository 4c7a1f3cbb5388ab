-- Async calls work inside coroutines Lua itself creates: a generator that sleeps
-- between yields behaves exactly as it would in plain Lua.
--   dreamos run examples/coroutines.lua
local time = require("dreamos.time")

local ticks = coroutine.wrap(function()
  for i = 1, 3 do
    time.sleep("10ms")
    coroutine.yield(i)
  end
end)
print(ticks(), ticks(), ticks())

local co = coroutine.create(function(a)
  time.sleep(0.01)
  local b = coroutine.yield(a + 1)
  return a + b
end)
print(coroutine.resume(co, 1))
print(coroutine.resume(co, 10))
