---@meta dreamos.log
-- Lines go to the console and to the JSON-lines file log (`log.dir`), tagged with the
-- script's name. `fields` become keys of the JSON record.

---@class dreamos.log
local log = {}

--- Logs at TRACE. Raises if msg is nil or fields cannot be encoded as JSON.
---@param msg any
---@param fields? table<string, any>
function log.trace(msg, fields) end

--- Logs at DEBUG. Raises if msg is nil or fields cannot be encoded as JSON.
---@param msg any
---@param fields? table<string, any>
function log.debug(msg, fields) end

--- Logs at INFO. Raises if msg is nil or fields cannot be encoded as JSON.
---@param msg any
---@param fields? table<string, any>
function log.info(msg, fields) end

--- Logs at WARN. Raises if msg is nil or fields cannot be encoded as JSON.
---@param msg any
---@param fields? table<string, any>
function log.warn(msg, fields) end

--- Logs at ERROR. Raises if msg is nil or fields cannot be encoded as JSON.
---@param msg any
---@param fields? table<string, any>
function log.error(msg, fields) end

--- Appends an entry to the development log (`devlog.jsonl`). Raises on an unknown category.
---@param category "development"|"research"|"collaboration"|"system"|"tasks"
---@param text string
function log.devlog(category, text) end

---@class dreamos.log.DevlogEntry
---@field ts string       RFC 3339 time of the entry
---@field time number     the same, as epoch seconds
---@field category string
---@field text string
---@field script? string  the script that wrote it

---@class dreamos.log.DevlogsOptions
---@field category? string  only this category
---@field since? number     only entries at or after this time (epoch seconds)
---@field limit? integer    the newest this many (default 100)

--- Devlog entries read back from `<log.dir>/devlog.jsonl` and its rotated files, oldest
--- first. Raises when `[log] dir` is empty (no devlog file is kept) or on unknown options.
---@param opts? dreamos.log.DevlogsOptions
---@return dreamos.log.DevlogEntry[]
function log.devlogs(opts) end

return log
