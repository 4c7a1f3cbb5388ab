-- dreamos.strategy: the base of social posting strategies.
--
-- A strategy composes what to say, formats it for a platform, chooses when to post it and
-- follows up (a reply, a comment). Posting goes through dreamos.social, so every post is
-- durable, deduplicated, rate limited and sent by `dreamos serve`.
--
--   local strategy = require("dreamos.strategy")
--   return strategy.run {
--     name = "daily-watchlist",
--     platform = "stocktwits",            -- the first configured account of it, or:
--     account = nil,                      -- a [social.accounts.<name>]
--     compose = function(ctx) return { text = "$SPY on watch", extra = { sentiment = "bullish" } } end,
--     when = nil,                         -- nil = now, "+2h", epoch seconds, or {hour=14, minute=30}
--     follow_up = function(ctx, posted) return { text = "details ..." } end,  -- replies to posted
--   }
--
-- compose may return a content table, a string, a list of them (a thread: each replies to
-- the one before), or nil (nothing to post this time). Each post gets the idempotency key
-- "<name>:<ctx.key>:<n>", with ctx.key the UTC date by default, so a strategy scheduled
-- more often than it has news still posts each thing once.

local social = require("dreamos.social")
local log = require("dreamos.log")

local M = {}

--- The first configured account (by name) on `platform`; raises if there is none.
function M.account_for(platform)
  for _, a in ipairs(social.accounts()) do
    if a.platform == platform then
      return a.name
    end
  end
  error(string.format(
    "strategy: no [social.accounts.<name>] with platform = %q in dreamos.toml", platform), 2)
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

--- Cuts `text` to what `platform` accepts, at a word boundary, ending with "…".
function M.fit(platform, text)
  local limit = social.limits(platform).text
  text = trim(text)
  if social.length(platform, text) <= limit then
    return text
  end
  local words, out = {}, ""
  for w in text:gmatch("%S+") do
    words[#words + 1] = w
  end
  for _, w in ipairs(words) do
    local next_out = out == "" and w or (out .. " " .. w)
    if social.length(platform, next_out .. " …") > limit then
      break
    end
    out = next_out
  end
  return out .. " …"
end

--- Splits `text` into posts within the platform's limit, at word boundaries, numbered
--- " (i/n)" when there is more than one (an X thread).
function M.split(platform, text)
  local limit = social.limits(platform).text - 8 -- room for " (12/12)"
  local parts, cur = {}, ""
  for w in trim(text):gmatch("%S+") do
    local candidate = cur == "" and w or (cur .. " " .. w)
    if social.length(platform, candidate) > limit and cur ~= "" then
      parts[#parts + 1] = cur
      cur = w
    else
      cur = candidate
    end
  end
  if cur ~= "" then
    parts[#parts + 1] = cur
  end
  if #parts > 1 then
    for i, p in ipairs(parts) do
      parts[i] = string.format("%s (%d/%d)", p, i, #parts)
    end
  end
  return parts
end

--- "$AAPL $MSFT" from {"AAPL", "msft"}.
function M.cashtags(symbols)
  local out = {}
  for _, s in ipairs(symbols) do
    out[#out + 1] = "$" .. tostring(s):upper():gsub("^%$", "")
  end
  return table.concat(out, " ")
end

--- "#rust #lua" from {"rust", "#lua"}.
function M.hashtags(tags)
  local out = {}
  for _, t in ipairs(tags) do
    out[#out + 1] = "#" .. tostring(t):gsub("^#", ""):gsub("%s+", "")
  end
  return table.concat(out, " ")
end

--- Formats one devlog entry (or any text) for a platform: a title line for Reddit,
--- hashtags where they are the custom, the platform's length limit for all.
function M.format(platform, text, opts)
  opts = opts or {}
  local tags = opts.tags and M.hashtags(opts.tags) or ""
  local body = trim(text)
  if platform == "linkedin" or platform == "instagram" or platform == "facebook" then
    if tags ~= "" then
      body = body .. "\n\n" .. tags
    end
  elseif platform == "x" then
    if tags ~= "" then
      body = body .. " " .. tags
    end
  elseif platform == "stocktwits" then
    if opts.symbols then
      body = M.cashtags(opts.symbols) .. " " .. body
    end
  end
  local content = { text = M.fit(platform, body) }
  if platform == "reddit" then
    local first = body:match("^[^\n%.!?]+") or body
    content.title = opts.title or M.fit_title(first)
    content.subreddit = opts.subreddit
  end
  return content
end

function M.fit_title(text)
  local limit = social.limits("reddit").title
  text = trim(text)
  if #text <= limit then
    return text
  end
  return text:sub(1, limit - 3) .. "..."
end

--- The next time of day (UTC) at `hour:minute`, as epoch seconds; now if `spec` is nil;
--- strings ("+2h", RFC 3339) and numbers pass through for social.post to read.
function M.when(spec, now)
  if spec == nil or type(spec) == "string" or type(spec) == "number" then
    return spec
  end
  now = now or os.time()
  local d = os.date("!*t", math.floor(now))
  local t = now - (d.hour * 3600 + d.min * 60 + d.sec) + (spec.hour or 0) * 3600 + (spec.minute or 0) * 60
  if t <= now then
    t = t + 86400
  end
  return t
end

local function as_content(c)
  if type(c) == "string" then
    return { text = c }
  end
  return c
end

local function is_list(c)
  return type(c) == "table" and c[1] ~= nil
end

--- Posts `content` on `account`; `opts` adds at, reply_to, idempotency_key, dry_run.
--- Returns the record, or nil, err (logged).
function M.post(account, content, opts)
  local o = {}
  for k, v in pairs(as_content(content)) do
    o[k] = v
  end
  for k, v in pairs(opts or {}) do
    o[k] = v
  end
  o.account = account
  local rec, err = social.post(o)
  if not rec then
    log.warn("strategy: post refused", { account = account, error = tostring(err) })
  end
  return rec, err
end

--- Runs a strategy definition now; returns the records it queued.
function M.run(def)
  assert(type(def) == "table" and def.name and def.compose,
    "strategy.run: give at least name and compose")
  local platform = def.platform
  local account = def.account or M.account_for(platform)
  if not platform then
    for _, a in ipairs(social.accounts()) do
      if a.name == account then
        platform = a.platform
      end
    end
  end
  local ctx = {
    name = def.name,
    account = account,
    platform = platform,
    now = os.time(),
    key = def.key or os.date("!%Y-%m-%d"),
    args = def.args or {},
    dry_run = def.dry_run,
  }
  local composed = def.compose(ctx)
  if composed == nil then
    log.info("strategy: nothing to post", { strategy = def.name })
    return {}
  end
  local items = is_list(composed) and composed or { composed }
  local at = M.when(def.when, ctx.now)
  local records, previous = {}, nil
  for i, item in ipairs(items) do
    local content = as_content(item)
    if def.format then
      content = def.format(ctx, content) or content
    end
    local rec = M.post(account, content, {
      at = at,
      reply_to = previous and previous.id or nil,
      idempotency_key = string.format("%s:%s:%d", def.name, ctx.key, i),
      dry_run = ctx.dry_run,
    })
    if not rec then
      break
    end
    records[#records + 1] = rec
    previous = rec.id and rec or nil
  end
  if def.follow_up and records[1] and records[1].id then
    local extra = def.follow_up(ctx, records[1])
    if extra then
      local rec = M.post(account, extra, {
        at = at,
        reply_to = records[1].id,
        idempotency_key = string.format("%s:%s:follow-up", def.name, ctx.key),
        dry_run = ctx.dry_run,
      })
      records[#records + 1] = rec
    end
  end
  for _, r in ipairs(records) do
    log.info("strategy: queued", { strategy = def.name, id = r.id, status = r.status })
  end
  return records
end

return M
