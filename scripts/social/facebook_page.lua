-- Facebook Page: a weekly summary of the devlog (last 7 days), one line per entry.
local strategy = require("dreamos.strategy")
local log = require("dreamos.log")

return strategy.run {
  name = "facebook-weekly",
  platform = "facebook",
  key = os.date("!%G-W%V"), -- once per ISO week
  compose = function(ctx)
    local entries = log.devlogs { since = ctx.now - 7 * 86400, limit = 50 }
    if #entries == 0 then
      return nil
    end
    local lines = { "This week in the project:" }
    for _, e in ipairs(entries) do
      lines[#lines + 1] = "• " .. e.text
    end
    return strategy.format("facebook", table.concat(lines, "\n"), { tags = { "devlog" } })
  end,
}
