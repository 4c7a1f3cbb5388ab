-- Encode and decode JSON; null and empty arrays survive the round trip.
--   dreamos run examples/json.lua
local json = require("dreamos.json")

local doc = json.decode('{"name": "scout", "tags": ["a", "b"], "owner": null, "runs": 3}')
print(doc.name, #doc.tags, doc.owner == json.null, doc.runs + 1)

local out = json.encode({ ok = true, items = setmetatable({}, json.array) })
print(out)
print(json.encode({ agent = "scout", load = 0.5 }, { pretty = true }))
