-- Fetch a URL and decode its JSON. Network access needs a grant:
--   dreamos run --allow net:api.github.com examples/http.lua https://api.github.com/zen
-- Failures of the network come back as nil, err instead of raising.
local http = require("dreamos.http")

local url = arg[1] or "http://127.0.0.1:8080/"
local resp, err = http.get(url, { timeout = "10s" })
if not resp then
  print("request failed: " .. tostring(err))
  os.exit(1)
end
print(resp.status, resp.headers["content-type"] or "")
print(resp.body)
