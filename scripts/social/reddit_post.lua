-- Reddit: the latest devlog entry as a self post to a subreddit, with a comment follow-up
-- (posted once the post exists, as a reply to it).
-- Reads data/social/reddit.json: {"subreddit": "test", "comment": "Questions welcome!"}.
local strategy = require("dreamos.strategy")
local log = require("dreamos.log")
local fs = require("dreamos.fs")
local json = require("dreamos.json")

local settings = { subreddit = "test", comment = "Happy to answer questions in the comments." }
if fs.exists("data/social/reddit.json") then
  for k, v in pairs(json.decode(assert(fs.read("data/social/reddit.json")))) do
    settings[k] = v
  end
end

return strategy.run {
  name = "reddit-devlog",
  platform = "reddit",
  compose = function(ctx)
    local latest = log.devlogs { limit = 1 }
    if #latest == 0 then
      return nil
    end
    return strategy.format("reddit", latest[1].text, { subreddit = settings.subreddit })
  end,
  follow_up = function(ctx, posted)
    return { text = settings.comment }
  end,
}
