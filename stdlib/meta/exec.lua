---@meta dreamos.exec
-- Needs the `exec` grant. No shell is involved: cmd is the program, args its arguments.

---@class dreamos.exec
local exec = {}

---@class dreamos.exec.Options
---@field cmd string
---@field args? string[]
---@field stdin? string
---@field cwd? string
---@field env? table<string, string>   added to the inherited environment
---@field timeout? number|string       kill the process after this long

---@class dreamos.exec.Result
---@field status integer   exit status (-1 if killed by a signal)
---@field stdout string
---@field stderr string

--- Runs a process to completion. Raises without the exec grant or on misuse; returns
--- nil, err (kind "spawn", "timeout", "io") when it cannot start or runs too long.
---@param opts dreamos.exec.Options
---@return dreamos.exec.Result|nil
---@return dreamos.Error|nil
function exec.run(opts) end

return exec
