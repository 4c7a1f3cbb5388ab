---@meta dreamos
-- LuaCATS stubs for the `dreamos` module. Misuse raises an error naming the function and
-- the fix; failures of the world return `nil, err` (see dreamos.Error).

---@class dreamos.Error
---@field kind string     what failed: "network", "timeout", "not_found", "store", ...
---@field message string  readable detail; `tostring(err)` gives "kind: message"

---@class dreamos.TaskHandle
local TaskHandle = {}

--- Waits for the task and returns its function's results. Raises the task's error, or
--- "task was cancelled". Can be called again after it returned.
---@return any ...
function TaskHandle:join() end

--- Stops the task at its next suspension point. Returns true if it was still running.
---@return boolean
function TaskHandle:cancel() end

--- Whether the task has finished (successfully, with an error, or cancelled).
---@return boolean
function TaskHandle:done() end

---@class dreamos
---@field version string  the dreamos version, e.g. "0.1.0"
---@field config table    read-only view of the loaded configuration; durations and sizes as in dreamos.toml ("30s", "64MiB"; time.duration converts); assigning raises
local dreamos = {}

--- Runs `fn(...)` as a concurrent task in this script's state. `dreamos run` waits for
--- spawned tasks before exiting. Raises if `fn` is not a function.
---@param fn fun(...): ...
---@param ... any  arguments passed to fn
---@return dreamos.TaskHandle
function dreamos.spawn(fn, ...) end

return dreamos
