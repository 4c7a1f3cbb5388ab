-- X: today's devlog as a thread. The first post introduces it; each devlog entry follows
-- as a reply (split further when longer than 280 weighted characters). Posted once a day
-- however often it is scheduled (idempotency keys carry the date).
--
--   [[schedules]]
--   name = "x-thread"
--   cron = "0 18 * * *"
--   script = "scripts/social/x_thread.lua"
local strategy = require("dreamos.strategy")
local log = require("dreamos.log")

return strategy.run {
  name = "x-thread",
  platform = "x",
  compose = function(ctx)
    local since = ctx.now - 86400
    local entries = log.devlogs { since = since, limit = 20 }
    if #entries == 0 then
      return nil
    end
    local parts = { string.format("What got built today (%d updates) 🧵", #entries) }
    for _, e in ipairs(entries) do
      for _, piece in ipairs(strategy.split("x", e.text)) do
        parts[#parts + 1] = piece
      end
    end
    return parts
  end,
}
