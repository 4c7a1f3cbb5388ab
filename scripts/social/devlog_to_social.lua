-- Devlog to social: every devlog entry of the last day, formatted per platform, posted
-- once to every configured account. The idempotency key is derived from the entry itself
-- (its time and text), so running this again, or from a cron schedule, never reposts one.
local social = require("dreamos.social")
local strategy = require("dreamos.strategy")
local log = require("dreamos.log")

-- A short stable fingerprint of an entry (FNV-1a, 32 bits).
local function fingerprint(s)
  local h = 2166136261
  for i = 1, #s do
    h = ((h ~ s:byte(i)) * 16777619) & 0xffffffff
  end
  return string.format("%08x", h)
end

local since = os.time() - 86400
local entries = log.devlogs { since = since, limit = 50 }
local queued = 0
-- Platforms where a devlog line makes a post by itself (Instagram needs an image, Reddit a
-- subreddit, StockTwits market talk: they have their own strategies).
local TEXT_PLATFORMS = { x = true, linkedin = true, facebook = true }

for _, account in ipairs(social.accounts()) do
  if TEXT_PLATFORMS[account.platform] then
    for _, e in ipairs(entries) do
      local content = strategy.format(account.platform, e.text, { tags = { e.category } })
      local key = "devlog:" .. fingerprint(e.ts .. "\0" .. e.text)
      local rec = strategy.post(account.name, content, { idempotency_key = key })
      if rec then
        queued = queued + 1
      end
    end
  end
end
log.info("devlog to social: queued", { posts = queued, entries = #entries })
