---@meta dreamos.social
-- Social posting through the durable outbox. `post` validates and stores a post;
-- `dreamos serve` sends it when due (retries, rate limits, crash reconciliation), so a
-- script never waits for a platform. Misuse (unknown account or option, a media file the
-- script may not read, a bad time) raises; the world's answers return nil, err with
-- err.kind one of "invalid", "duplicate", "auth", "rate_limited", "unavailable",
-- "network", "store".

---@class dreamos.social
local social = {}

---@class dreamos.social.Media
---@field path string  the file (needs an fs: grant covering it)
---@field url? string  a public URL of the same file (Instagram requires one)
---@field alt? string  alt text

---@class dreamos.social.PostOptions
---@field account string   a [social.accounts.<name>] from dreamos.toml
---@field text string      validated against the platform's limit (X: weighted, URLs 23)
---@field media? string|string[]|dreamos.social.Media[]
---@field link? string
---@field subreddit? string  Reddit: without "r/"
---@field title? string      Reddit: the post title
---@field at? number|string  when to post: epoch seconds, RFC 3339, local time, or "+30m" (default now)
---@field idempotency_key? string  the same key returns the same post instead of a new one (default: fresh)
---@field reply_to? integer|dreamos.social.Post  post as a reply to this outbox post once it is posted (X threads, Reddit comments)
---@field extra? table<string, string|number|boolean>  platform options, e.g. { sentiment = "bullish" } for StockTwits
---@field dry_run? boolean   only return the request it would make (default: the account's dry_run)

---@class dreamos.social.Post
---@field id integer
---@field account string
---@field platform string
---@field status "queued"|"sending"|"posted"|"failed"|"dead"|"cancelled"|"deleted"
---@field text string
---@field idempotency_key string
---@field reply_to? integer
---@field created_at number   epoch seconds
---@field not_before number   due time, epoch seconds
---@field attempts integer
---@field platform_id? string
---@field url? string
---@field posted_at? number
---@field error_kind? string
---@field error? string

---@class dreamos.social.DryRun
---@field status "dry_run"
---@field dry_run true
---@field note? string  why it is a dry run when not asked (account setting, no credentials)
---@field requests {method: string, url: string, headers: string[][], body: string}[]

--- Queues a post (stored durably before anything is sent). Returns the post record, the
--- existing record for a repeated idempotency_key, or for dry runs the exact requests.
--- nil, err: "invalid" (too long...), "duplicate" (same content within [social]
--- dedup_window; err.id is the earlier post), "auth" (credentials not set), "store".
---@param opts dreamos.social.PostOptions
---@return dreamos.social.Post|dreamos.social.DryRun|nil
---@return dreamos.Error|nil
function social.post(opts) end

--- One post of the outbox, or nil.
---@param id integer|dreamos.social.Post
---@return dreamos.social.Post|nil
---@return dreamos.Error|nil
function social.get(id) end

--- Posts of the outbox, newest first. Raises on an unknown status.
---@param opts? {account?: string, status?: string, limit?: integer}  limit default 100
---@return dreamos.social.Post[]|nil
---@return dreamos.Error|nil
function social.list(opts) end

--- Deletes a posted post on its platform (X, Reddit, Facebook, LinkedIn), then marks it
--- "deleted". nil, err when the platform has no delete or refuses.
---@param id integer|dreamos.social.Post
---@return true|nil
---@return dreamos.Error|nil
function social.delete(id) end

--- A posted post's engagement counters, read from the platform now (and stored as a sample
--- beside the ones the daemon reads at [social] metrics_after), e.g. { like_count = 3 }.
---@param id integer|dreamos.social.Post
---@return table<string, integer>|nil
---@return dreamos.Error|nil
function social.metrics(id) end

---@class dreamos.social.Account
---@field name string
---@field platform string
---@field dry_run boolean
---@field daily_max integer   0 = no cap
---@field hourly_max integer  0 = no cap
---@field min_gap number      seconds

--- The configured accounts, by name.
---@return dreamos.social.Account[]
function social.accounts() end

---@class dreamos.social.Limits
---@field platform string
---@field text integer       longest text
---@field weighted boolean   X: URLs count 23, wide characters 2 (see social.length)
---@field title? integer     Reddit titles
---@field media integer      most images per post
---@field delete boolean     whether social.delete works there
---@field media_url_required boolean  images need a public URL (Instagram)

--- A platform's limits. Raises on an unknown platform.
---@param platform "x"|"facebook"|"instagram"|"reddit"|"linkedin"|"stocktwits"
---@return dreamos.social.Limits
function social.limits(platform) end

--- The length of text as the platform counts it (X: weighted; others: characters).
---@param platform string
---@param text string
---@return integer
function social.length(platform, text) end

return social
