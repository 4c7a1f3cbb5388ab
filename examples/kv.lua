-- Durable per-script state: a counter that survives restarts.
--   dreamos run examples/kv.lua   (run it twice)
local kv = require("dreamos.kv")

local runs = (kv.get("runs") or 0) + 1
assert(kv.set("runs", runs))
kv.set("last_run", { at = require("dreamos.time").format(), by = arg[1] or "someone" })
print(("this script has run %d time(s)"):format(runs))
