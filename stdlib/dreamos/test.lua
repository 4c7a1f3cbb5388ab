--- dreamos.test: a small spec runner for `tests/lua/*_spec.lua` and for users' own scripts.
---
---   local t = require("dreamos.test")
---   t.describe("json", function()
---     t.it("round-trips", function() t.eq(json.decode(json.encode({1})), {1}) end)
---   end)
---   return t.finish()   -- raises "N of M specs failed" when any failed
---
--- Specs run in order; each `it` runs in its own coroutine-safe pcall, so async calls
--- (time.sleep, http.get) work inside specs.
local inspect = require("dreamos.inspect")

local M = { passed = 0, failed = 0, failures = {} }
local prefix = {}

function M.describe(name, fn)
  prefix[#prefix + 1] = name
  fn()
  prefix[#prefix] = nil
end

function M.it(name, fn)
  local full = table.concat(prefix, " ") .. (#prefix > 0 and " " or "") .. name
  local ok, err = xpcall(fn, function(e)
    return debug.traceback(tostring(e), 2)
  end)
  if ok then
    M.passed = M.passed + 1
    io.write("ok   ", full, "\n")
  else
    M.failed = M.failed + 1
    M.failures[#M.failures + 1] = full
    io.write("FAIL ", full, "\n", err, "\n")
  end
end

local function deep_equal(a, b, seen)
  if a == b then
    return true
  end
  if type(a) ~= "table" or type(b) ~= "table" then
    return false
  end
  seen = seen or {}
  if seen[a] == b then
    return true
  end
  seen[a] = b
  for k, v in pairs(a) do
    if not deep_equal(v, b[k], seen) then
      return false
    end
  end
  for k in pairs(b) do
    if a[k] == nil then
      return false
    end
  end
  return true
end

--- Fails unless `actual` deep-equals `expected`.
function M.eq(actual, expected, what)
  if not deep_equal(actual, expected) then
    error(string.format("%sexpected %s, got %s", what and (what .. ": ") or "", inspect(expected), inspect(actual)), 2)
  end
end

--- Fails unless `cond` is truthy.
function M.ok(cond, what)
  if not cond then
    error("expected a true value" .. (what and (": " .. what) or ""), 2)
  end
end

--- Fails unless `fn` raises an error whose text contains `needle` (plain match).
function M.raises(fn, needle)
  local ok, err = pcall(fn)
  if ok then
    error("expected an error containing '" .. needle .. "', but none was raised", 2)
  end
  if not tostring(err):find(needle, 1, true) then
    error("expected an error containing '" .. needle .. "', got: " .. tostring(err), 2)
  end
  return err
end

--- Prints the summary line and raises if any spec failed.
function M.finish()
  io.write(string.format("%d passed, %d failed\n", M.passed, M.failed))
  if M.failed > 0 then
    error(string.format("%d of %d specs failed: %s", M.failed, M.passed + M.failed, table.concat(M.failures, "; ")), 0)
  end
  return M.passed
end

return M
