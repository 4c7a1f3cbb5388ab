local t = require("dreamos.test")
local social = require("dreamos.social")
local strategy = require("dreamos.strategy")

t.describe("social", function()
  t.it("knows each platform's limits", function()
    local x = social.limits("x")
    t.eq(x.text, 280)
    t.eq(x.weighted, true)
    t.eq(social.limits("reddit").title, 300)
    t.eq(social.limits("instagram").media_url_required, true)
    t.eq(social.limits("stocktwits").delete, false)
  end)

  t.it("counts text as the platform does", function()
    t.eq(social.length("x", "hello"), 5)
    t.eq(social.length("x", "字字"), 4)
    t.eq(social.length("x", "see https://example.com/a/very/long/path/indeed"), 27)
    t.eq(social.length("linkedin", "字字"), 2)
  end)

  t.it("refuses misuse with the fix", function()
    t.raises(function() social.limits("myspace") end,
      "social.limits: unknown platform 'myspace' (one of x, facebook, instagram, reddit, linkedin, stocktwits)")
    t.raises(function() social.post { account = "main", text = "hi", tilte = "x" } end,
      "social.post: unknown option 'tilte' (did you mean 'title'?)")
    t.raises(function() social.post { text = "hi" } end, "social.post: account is required")
    t.raises(function() social.post { account = "main", text = "hi" } end,
      "social.post: unknown account 'main' (no accounts configured: add [social.accounts.NAME] to dreamos.toml)")
    t.raises(function() social.post { account = "main", text = "hi", at = "someday" } end,
      "social.post: at: ")
    t.raises(function() social.get("one") end, "social.get: id must be a post id (number), got string")
    t.raises(function() social.list { status = "sent" } end, "social.list: unknown status 'sent'")
  end)

  t.it("lists no accounts and an empty outbox", function()
    t.eq(#social.accounts(), 0)
    t.eq(social.list(), {})
    t.eq(social.get(1), nil)
  end)
end)

t.describe("strategy", function()
  t.it("splits long text into a numbered thread within the limit", function()
    local words = {}
    for i = 1, 120 do
      words[i] = "word" .. i
    end
    local parts = strategy.split("x", table.concat(words, " "))
    t.eq(#parts, 4)
    for i, p in ipairs(parts) do
      t.ok(social.length("x", p) <= 280, "part " .. i .. " fits")
      t.ok(p:match("%(" .. i .. "/4%)$"), "part " .. i .. " is numbered")
    end
    t.eq(strategy.split("x", "short one"), { "short one" })
  end)

  t.it("fits, tags and times posts", function()
    local long = string.rep("abc ", 100)
    local fitted = strategy.fit("x", long)
    t.ok(social.length("x", fitted) <= 280)
    t.ok(fitted:sub(-3) == "…")
    t.eq(strategy.cashtags { "aapl", "$MSFT" }, "$AAPL $MSFT")
    t.eq(strategy.hashtags { "rust", "#lua" }, "#rust #lua")
    t.eq(strategy.format("linkedin", "Shipped it", { tags = { "dev" } }).text, "Shipped it\n\n#dev")
    local r = strategy.format("reddit", "Shipped it. More soon", { subreddit = "test" })
    t.eq(r.title, "Shipped it")
    t.eq(r.subreddit, "test")
    -- 09:30 UTC after 10:00 UTC is tomorrow's.
    local ten = 1800000000 - (1800000000 % 86400) + 10 * 3600
    t.eq(strategy.when({ hour = 9, minute = 30 }, ten), ten + 23 * 3600 + 1800)
    t.eq(strategy.when("+2h"), "+2h")
    t.raises(function() strategy.account_for("x") end, "no [social.accounts.<name>] with platform = \"x\"")
  end)
end)

return t.finish()
