--- dreamos.agent: the agent SDK. An agent script returns `agent.define{...}`; the daemon
--- (`dreamos serve`) runs it in its own Lua state under the supervisor.
---
--- This chunk is run by the Rust module `dreamos.agent` (src/lua/agent.rs) with its native
--- functions as the argument, so operators' `list/start/stop/restart/status` and the
--- script-facing `define` form one table. `define` only validates and marks the table: the
--- supervisor reads the durations and policies (one parser for them, in Rust).
local native = ...

local M = {}

-- Every key define accepts, so a typo gets "did you mean".
local KEYS = {
  name = "string",
  description = "string",
  idle_timeout = "duration",
  resume_after = "duration",
  max_resumes = "number",
  resume_cooldown = "duration",
  stall_timeout = "duration",
  restart = "string",
  max_restarts = "number",
  restart_window = "duration",
  tick = "duration",
  tasks = "table",
  state = "table",
  on_start = "function",
  on_message = "function",
  on_task = "function",
  on_tick = "function",
  on_idle = "function",
  on_stop = "function",
}

local RESTART = { permanent = true, transient = true, temporary = true }

-- The metatable that marks a table as an agent definition.
local Definition = { __name = "dreamos.agent.definition" }

local function nearest(word)
  local best, best_d
  for key in pairs(KEYS) do
    -- Levenshtein distance, small inputs only.
    local a, b = word, key
    local prev = {}
    for j = 0, #b do prev[j] = j end
    for i = 1, #a do
      local cur = { [0] = i }
      for j = 1, #b do
        local cost = (a:sub(i, i) == b:sub(j, j)) and 0 or 1
        cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
      end
      prev = cur
    end
    local d = prev[#b]
    if best_d == nil or d < best_d or (d == best_d and key < best) then
      best, best_d = key, d
    end
  end
  if best_d and best_d <= 3 then
    return best
  end
end

local function check(spec)
  if type(spec) ~= "table" then
    error("agent.define: expected a table of options and handlers, got " .. type(spec), 3)
  end
  for key, value in pairs(spec) do
    local want = KEYS[key]
    if want == nil then
      local hint = nearest(tostring(key))
      error(("agent.define: unknown option '%s'%s"):format(
        tostring(key), hint and (" (did you mean '" .. hint .. "'?)") or ""), 3)
    end
    local got = type(value)
    local ok = got == want or (want == "duration" and (got == "string" or got == "number"))
    if not ok then
      error(("agent.define: %s must be a %s, got %s"):format(key,
        want == "duration" and "duration (seconds or a string such as \"5m\")" or want, got), 3)
    end
  end
  if spec.name ~= nil and not spec.name:match("^[%w_%-%.]+$") then
    error("agent.define: name may use letters, digits, '_', '-' and '.' only, got '" .. spec.name .. "'", 3)
  end
  if spec.restart ~= nil and not RESTART[spec.restart] then
    error("agent.define: restart must be permanent, transient or temporary, got '" .. spec.restart .. "'", 3)
  end
  if spec.tasks ~= nil then
    for key in pairs(spec.tasks) do
      if key ~= "category" and key ~= "concurrency" then
        error("agent.define: unknown tasks option '" .. tostring(key) .. "' (valid options: category, concurrency)", 3)
      end
    end
  end
end

--- Declares an agent: options and handlers in one table (see stdlib/meta/agent.lua).
function M.define(spec)
  check(spec)
  return setmetatable(spec, Definition)
end

--- Whether a value came from define (the loader refuses scripts that return anything else).
function M.is_definition(value)
  return type(value) == "table" and getmetatable(value) == Definition
end

for name, fn in pairs(native) do
  M[name] = fn
end

return M
