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

return log
