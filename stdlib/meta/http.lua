---@meta dreamos.http
-- Needs a `net:<host>` grant for every host contacted (redirects included).

---@class dreamos.http
local http = {}

---@class dreamos.http.Request
---@field url string
---@field method? string                   default "GET"
---@field headers? table<string, string>
---@field query? table<string, any>        appended to the URL, encoded
---@field body? string                     raw request body
---@field json? any                        encoded as the JSON body (sets Content-Type)
---@field timeout? number|string           default http.timeout from dreamos.toml (30s)
---@field error_on_status? boolean         return nil, err for a non-2xx status (default false)

---@class dreamos.http.Response
---@field status integer
---@field ok boolean                       status is 2xx
---@field url string                       final URL after redirects
---@field headers table<string, string>    lower-case names
---@field body string
local Response = {}

--- Decodes the body as JSON. Raises if it is not JSON.
---@return any
function Response:json() end

--- Sends a request. Raises on misuse (unknown option, invalid URL, unsupported scheme,
--- host not granted). Returns nil, err (kind "network", "timeout", "redirect",
--- "too_large", or "http_status" with error_on_status) when the request fails.
---@param req dreamos.http.Request
---@return dreamos.http.Response|nil
---@return dreamos.Error|nil
function http.request(req) end

--- `request` with method GET. opts takes every Request field but url and method.
---@param url string
---@param opts? dreamos.http.Request
---@return dreamos.http.Response|nil
---@return dreamos.Error|nil
function http.get(url, opts) end

--- `request` with method POST. opts takes every Request field but url and method.
---@param url string
---@param opts? dreamos.http.Request
---@return dreamos.http.Response|nil
---@return dreamos.Error|nil
function http.post(url, opts) end

return http
