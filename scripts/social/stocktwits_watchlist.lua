-- StockTwits: a daily watchlist post with cashtags and a sentiment.
-- Reads data/social/watchlist.json: {"symbols": ["AAPL", "NVDA"], "sentiment": "bullish",
-- "note": "earnings week"}; without it, nothing is posted.
--
--   [[schedules]]
--   name = "stocktwits-watchlist"
--   cron = "30 13 * * MON-FRI"
--   script = "scripts/social/stocktwits_watchlist.lua"
local strategy = require("dreamos.strategy")
local fs = require("dreamos.fs")
local json = require("dreamos.json")

local SENTIMENTS = { bullish = true, bearish = true, neutral = true }

return strategy.run {
  name = "stocktwits-watchlist",
  platform = "stocktwits",
  compose = function(ctx)
    if not fs.exists("data/social/watchlist.json") then
      return nil
    end
    local list = json.decode(assert(fs.read("data/social/watchlist.json")))
    if not list.symbols or #list.symbols == 0 then
      return nil
    end
    local sentiment = SENTIMENTS[list.sentiment or ""] and list.sentiment or "neutral"
    local text = string.format("%s on my watchlist today%s", strategy.cashtags(list.symbols),
      list.note and (": " .. list.note) or "")
    return {
      text = strategy.fit("stocktwits", text),
      extra = { sentiment = sentiment },
    }
  end,
}
