-- Structured logs land on the console and in logs/dreamos.jsonl with this script's name.
--   dreamos run examples/logging.lua
local log = require("dreamos.log")

log.info("starting report", { items = 3, source = "example" })
log.warn("disk almost full", { free_mb = 120 })
log.devlog("development", "wrote the logging example")
print("logged 3 lines")
