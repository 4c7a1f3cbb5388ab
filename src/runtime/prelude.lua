-- Runs once in every new Lua state, before any user code, with the sandbox's raw
-- functions as arguments. It does two things the C library cannot do for us:
--
-- 1. Async functions inside Lua-made coroutines. An async Rust function suspends by
--    yielding mlua's private "pending" marker to whoever resumed it. When a script's own
--    coroutine.resume receives that marker, the marker is meant for the driver at the top,
--    so we pass it up with our own yield and resume the inner coroutine when the driver
--    resumes us. The waker the inner future registered is the driver's, so the wake-up
--    arrives where it should. A generator that sleeps between yields therefore behaves as
--    in plain Lua: only real yields come back from resume.
--
-- 2. Text-only load: load() accepts precompiled bytecode, which can crash the VM.
--
-- 3. Plain error values: errors raised by Rust functions arrive as userdata whose tostring
--    adds "runtime error:" and a traceback. pcall, xpcall and resume hand scripts the plain
--    "file:line: message" instead. Sandbox stops (instruction limit, timeout, Ctrl-C,
--    os.exit) are re-raised: a script cannot catch its way past a limit.
local pending, co_resume, co_yield, co_create, co_status, co_close, raw_load, raw_pcall, raw_xpcall, clean =
  ...
local pack, unpack, select, error, type = table.pack, table.unpack, select, error, type

local function caught(ok, ...)
  if ok then
    return ok, ...
  end
  local message, fatal = clean((...))
  if fatal then
    error((...), 0)
  end
  return false, message
end

pcall = function(...)
  return caught(raw_pcall(...))
end

xpcall = function(f, handler, ...)
  return raw_xpcall(f, function(e)
    local message, fatal = clean(e)
    if fatal then
      return e
    end
    return handler(message)
  end, ...)
end

local function resume(co, ...)
  local r = pack(co_resume(co, ...))
  while r[1] and r.n == 2 and r[2] == pending and co_status(co) == "suspended" do
    r = pack(co_resume(co, co_yield(pending)))
  end
  if not r[1] then
    local message, fatal = clean(r[2])
    if fatal then
      error(r[2], 0)
    end
    r[2] = message
  end
  return unpack(r, 1, r.n)
end

local function wrap(f)
  local co = co_create(f)
  return function(...)
    local r = pack(resume(co, ...))
    if r[1] then
      return unpack(r, 2, r.n)
    end
    if co_status(co) == "dead" then
      co_close(co)
    end
    error(r[2], type(r[2]) == "string" and 2 or 0)
  end
end

coroutine.resume = resume
coroutine.wrap = wrap

load = function(chunk, name, _mode, ...)
  if select("#", ...) > 0 then
    return raw_load(chunk, name, "t", ...)
  end
  return raw_load(chunk, name, "t")
end
