---@meta dreamos.json

---@class dreamos.json
---@field null lightuserdata  JSON null; decode gives it for null, encode writes null for it
---@field array table         metatable marking a table as a JSON array: setmetatable({}, json.array) encodes as []
local json = {}

---@class dreamos.json.EncodeOptions
---@field pretty? boolean  indent the output (default false)

--- Encodes a value as JSON. Raises on functions, userdata, threads, cyclic tables and
--- unknown options.
---@param value any
---@param opts? dreamos.json.EncodeOptions
---@return string
function json.encode(value, opts) end

--- Decodes JSON text. Raises on invalid JSON (with the line and column) and on
--- nesting deeper than 128.
---@param text string
---@return any
function json.decode(text) end

return json
