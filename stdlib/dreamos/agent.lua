--- dreamos.agent: the agent SDK. An agent script returns `agent.define{...}`; the daemon
--- (`dreamos serve`) runs it in its own Lua state under the supervisor.
---
--- This chunk is run by the Rust module `dreamos.agent` (src/lua/agent.rs) with two native
--- arguments: `check`, which validates a definition (the option table and its "did you
--- mean" live in Rust, once per process, since every agent state loads this SDK), and the
--- table of operators (`list/start/stop/restart/status`, each built on first use). `define`
--- only validates and marks the table: the supervisor reads the durations and policies (one
--- parser for them, in Rust).
local check, operators = ...
local error, getmetatable, setmetatable, type = error, getmetatable, setmetatable, type

-- The metatable that marks a table as an agent definition.
local Definition = { __name = "dreamos.agent.definition" }

local M = setmetatable({}, { __index = operators })

--- Declares an agent: options and handlers in one table (see stdlib/meta/agent.lua).
function M.define(spec)
  local problem = check(spec)
  if problem then
    error(problem, 2)
  end
  return setmetatable(spec, Definition)
end

--- Whether a value came from define (the loader refuses scripts that return anything else).
function M.is_definition(value)
  return type(value) == "table" and getmetatable(value) == Definition
end

return M
