-- LinkedIn: the latest devlog entry as a post, with hashtags (LinkedIn's client escapes the
-- characters its "little text" format reserves).
local strategy = require("dreamos.strategy")
local log = require("dreamos.log")

return strategy.run {
  name = "linkedin-devlog",
  platform = "linkedin",
  compose = function(ctx)
    local latest = log.devlogs { limit = 1 }
    if #latest == 0 then
      return nil
    end
    local e = latest[1]
    local text = string.format("Dev update (%s): %s", e.category, e.text)
    return strategy.format("linkedin", text, { tags = { "buildinpublic", e.category } })
  end,
}
