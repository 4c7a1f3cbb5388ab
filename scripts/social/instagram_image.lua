-- Instagram: an image post (Instagram fetches the image from a public URL, so the file's
-- URL is required) with a caption and hashtags.
-- Reads data/social/instagram.json: {"image": "data/social/today.jpg",
-- "url": "https://example.com/today.jpg", "caption": "...", "tags": ["rust"]}.
local strategy = require("dreamos.strategy")
local fs = require("dreamos.fs")
local json = require("dreamos.json")

return strategy.run {
  name = "instagram-image",
  platform = "instagram",
  compose = function(ctx)
    if not fs.exists("data/social/instagram.json") then
      return nil
    end
    local s = json.decode(assert(fs.read("data/social/instagram.json")))
    local content = strategy.format("instagram", s.caption or "", { tags = s.tags })
    content.media = { { path = s.image, url = s.url, alt = s.alt } }
    return content
  end,
}
