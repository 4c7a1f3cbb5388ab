---@meta dreamos.fs
-- Only inside directories granted with `fs:<dir>` (default grant: "fs:data/"). A path
-- outside every grant raises, naming the grant to add; I/O failures return nil, err
-- (kind "not_found", "permission", "io").

---@class dreamos.fs
local fs = {}

--- Reads a whole file.
---@param path string
---@return string|nil
---@return dreamos.Error|nil
function fs.read(path) end

--- Replaces a file atomically (temporary file, fsync, rename).
---@param path string
---@param data string
---@return true|nil
---@return dreamos.Error|nil
function fs.write(path, data) end

--- Appends to a file, creating it if needed.
---@param path string
---@param data string
---@return true|nil
---@return dreamos.Error|nil
function fs.append(path, data) end

--- Whether the path exists.
---@param path string
---@return boolean
function fs.exists(path) end

--- Sorted names of the entries in a directory.
---@param path string
---@return string[]|nil
---@return dreamos.Error|nil
function fs.list(path) end

--- Creates a directory and its parents.
---@param path string
---@return true|nil
---@return dreamos.Error|nil
function fs.mkdir(path) end

return fs
