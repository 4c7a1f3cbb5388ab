---@meta dreamos.kv
-- Durable per-script state in the embedded store (store.path), namespaced by the script's
-- name. Values are anything JSON can hold. Store failures return nil, err (kind "store").

---@class dreamos.kv
local kv = {}

--- The value stored under key, or nil.
---@param key string
---@return any
---@return dreamos.Error|nil
function kv.get(key) end

--- Stores value under key; returns after it is committed. Raises for nil (use delete) and
--- for values JSON cannot hold.
---@param key string
---@param value any
---@return true|nil
---@return dreamos.Error|nil
function kv.set(key, value) end

--- Removes key; returns whether it existed.
---@param key string
---@return boolean|nil
---@return dreamos.Error|nil
function kv.delete(key) end

return kv
