---@meta dreamos.cron
-- Schedules in this script: cron expressions, intervals and one-shot times.
-- A handler is a function (it runs in this script, as its own coroutine, and keeps
-- `dreamos run` alive until its schedule is cancelled or, for `at`, has fired) or a script
-- path (a durable schedule, like `dreamos schedule add`: `dreamos serve` fires it).
-- Misuse (a bad expression, time zone, duration or option) raises with the position of the
-- error and a valid example; store failures return nil, err (kind "store").

---@class dreamos.cron.Options
---@field name? string            schedule id (default: generated for functions, the path for scripts); an existing one is replaced
---@field timezone? string        IANA zone for cron and local `at` times (default scheduler.timezone, "UTC")
---@field missed? "skip"|"run_once"|"run_all"  runs due while down or busy (default "run_once")
---@field catchup_window? number|string  how far back run_all catches up (default "1d")
---@field overlap? "skip"|"queue"|"allow"  a fire while the previous run goes on (default "skip")
---@field jitter? number|string   start each run up to this much late (default 0)
---@field max_failures? integer   pause after this many consecutive failures; 0 = never (default 0)

---@class dreamos.cron.Run
---@field name string       the schedule's id
---@field scheduled number  the fire time this run is for (epoch seconds)

---@class dreamos.cron.Info
---@field id string
---@field name string
---@field expr string          "0 9 * * *", "every 15m", "at 2026-12-01T08:00:00Z"
---@field timezone string
---@field action string        "Lua function", "script PATH", "message to agent NAME"
---@field next string[]        the next three fire times, RFC 3339 with the zone's offset
---@field last_outcome string|nil  "ok", "failed", "skipped", "interrupted", or nil before the first run
---@field paused boolean
---@field failures integer     consecutive failures
---@field running integer      runs in progress

---@class dreamos.cron
local cron = {}

--- Runs `handler` at the times of a cron expression: 5 fields from minutes
--- ("0 9 * * MON-FRI"), 6 from seconds ("*/10 * * * * *"), names (MON-FRI, JAN) and macros
--- (@hourly, @daily, @weekly, @monthly, @yearly). Returns the schedule's id.
---@param expr string
---@param handler fun(run: dreamos.cron.Run)|string
---@param opts? dreamos.cron.Options
---@return string|nil id
---@return dreamos.Error|nil
function cron.schedule(expr, handler, opts) end

--- Runs `handler` every `d` (at least 100ms), counted from now; fire times never drift.
---@param d number|string
---@param handler fun(run: dreamos.cron.Run)|string
---@param opts? dreamos.cron.Options
---@return string|nil id
---@return dreamos.Error|nil
function cron.every(d, handler, opts) end

--- Runs `handler` once at `t`: epoch seconds, RFC 3339 ("2026-12-01T09:00:00+01:00"), or a
--- local time ("2026-12-01 09:00") in opts.timezone. Raises if `t` is in the past.
---@param t number|string
---@param handler fun(run: dreamos.cron.Run)|string
---@param opts? dreamos.cron.Options
---@return string|nil id
---@return dreamos.Error|nil
function cron.at(t, handler, opts) end

--- This script's schedules, by id.
---@return dreamos.cron.Info[]|nil
---@return dreamos.Error|nil
function cron.list() end

--- Removes a schedule (and its history); returns whether it existed. A run in progress
--- finishes.
---@param id string
---@return boolean|nil
---@return dreamos.Error|nil
function cron.cancel(id) end

---@class dreamos.cron.NextOptions
---@field timezone? string  IANA zone (default scheduler.timezone)
---@field from? number      epoch seconds to count from (default now)

--- The next `n` (default 5, at most 1000) fire times of a cron expression, as epoch
--- seconds: a preview while writing one. Raises on a bad expression or zone.
---@param expr string
---@param n? integer
---@param opts? dreamos.cron.NextOptions
---@return number[]
function cron.next(expr, n, opts) end

return cron
