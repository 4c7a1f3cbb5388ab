---@meta dreamos.time
-- Durations are seconds (number) or strings such as "250ms", "5m", "1h30m".

---@class dreamos.time
local time = {}

--- Current time as Unix epoch seconds, with fractions.
---@return number
function time.now() end

--- Seconds since this module was loaded, from a monotonic clock (for measuring).
---@return number
function time.monotonic() end

--- Suspends only the calling script (or task) for `d`. `sleep(0)` yields to other tasks.
--- Raises on a malformed duration.
---@param d number|string
function time.sleep(d) end

--- Converts a duration to seconds: `duration("1h30m") == 5400`. Raises on a malformed one.
---@param d number|string
---@return number
function time.duration(d) end

---@class dreamos.time.FormatOptions
---@field local? boolean  format in the local time zone instead of UTC (default false)

--- Formats epoch seconds (default: now) with a strftime format (default: RFC 3339 with
--- milliseconds, e.g. "2026-11-24T12:00:00.000Z"). Raises on an invalid format.
---@param t? number
---@param fmt? string
---@param opts? dreamos.time.FormatOptions
---@return string
function time.format(t, fmt, opts) end

return time
