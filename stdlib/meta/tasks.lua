---@meta dreamos.tasks
-- The shared task store: priorities, dependencies (a DAG), leases, retries, live progress.
-- Statuses: pending (waiting on dependencies) -> ready -> claimed -> running (first progress)
-- -> done | failed | cancelled; also blocked (a dependency failed, was cancelled, blocked or
-- timed out) and timeout (past its deadline). Every transition is published on the bus
-- topic "tasks.events" (see tasks.watch).
--
-- Misuse raises an error naming the function: unknown options ("did you mean ...?"),
-- unknown priority or status names, progress outside 0-100, finishing a task this script
-- does not hold or whose lease expired, a lease of 0, a missing dependency. A failing
-- database returns nil, err (err.kind == "store").
-- Durations are seconds or strings such as "30s", "5m", "1h30m". Times are epoch seconds,
-- like dreamos.time.now().

---@alias dreamos.tasks.Priority "critical"|"high"|"normal"|"low"
---@alias dreamos.tasks.Status "pending"|"ready"|"claimed"|"running"|"done"|"failed"|"cancelled"|"blocked"|"timeout"

---@class dreamos.tasks.Task
---@field id integer
---@field key string|nil            the symbolic id of a task imported from a plan
---@field title string
---@field description string|nil
---@field priority dreamos.tasks.Priority
---@field status dreamos.tasks.Status
---@field category string|nil
---@field tags string[]
---@field payload any               whatever the adder attached
---@field assignee string|nil       the only agent that may claim it
---@field agent string|nil          who holds it (claimed, running) or last finished it
---@field attempts integer          claims so far; the current claim is attempt number `attempts`
---@field max_attempts integer
---@field progress number           0-100, of the current attempt
---@field note string|nil           the last progress note
---@field result any                what complete() stored
---@field error string|nil          why it failed, was cancelled, blocked or timed out
---@field lease_until number|nil    when the current lease ends unless renewed
---@field deadline number|nil
---@field created_at number
---@field updated_at number
---@field depends_on integer[]|nil  only in tasks.get results

--- A task handed out by tasks.claim: the table carries its lease (id, agent, attempts).
--- `progress` is a method here (the value is in tasks.get(id).progress); `status` and
--- `note` follow the calls made through the table.
---@class dreamos.tasks.Claimed: dreamos.tasks.Task
local Claimed = {}

--- Reports progress; the task becomes "running" and its lease is renewed.
--- Raises when pct is outside 0-100 or the lease is gone; nil, err if the store fails.
---@param pct number  0 to 100
---@param note? string
---@return true|nil
---@return dreamos.Error|nil
function Claimed:progress(pct, note) end

--- Marks the task done; dependents whose dependencies are now all done become ready.
--- Raises when the lease is gone (expired, or the task was cancelled or timed out).
---@param result? any  stored as JSON
---@return true|nil
---@return dreamos.Error|nil
function Claimed:complete(result) end

--- Fails this attempt. With retry (default true) and attempts left the task is ready
--- again; otherwise it is "failed" and its dependents "blocked". Returns the new status.
---@param err string|any  why (error values are stored as their text)
---@param opts? {retry?: boolean}
---@return dreamos.tasks.Status|nil
---@return dreamos.Error|nil
function Claimed:fail(err, opts) end

--- Renews the lease for its full length from now; returns when it now ends.
--- Raises when the lease is already gone.
---@return number|nil
---@return dreamos.Error|nil
function Claimed:heartbeat() end

---@class dreamos.tasks.AddOptions
---@field title string                       required
---@field description? string
---@field priority? dreamos.tasks.Priority   default "normal"
---@field depends_on? integer[]              ids (or tasks) that must be done first; a missing one raises
---@field assignee? string                   only this agent may claim it
---@field category? string
---@field tags? string[]                     letters, digits, _ - . : /
---@field payload? any                       any JSON value, up to tasks.max_payload
---@field max_attempts? integer              default tasks.max_attempts (3)
---@field deadline? number|string            from now; past it the task times out

---@class dreamos.tasks.ListOptions
---@field status? dreamos.tasks.Status
---@field assignee? string                   reserved for or held by this agent
---@field category? string
---@field priority? dreamos.tasks.Priority
---@field limit? integer                     default 100

---@class dreamos.tasks.ClaimOptions
---@field agent string                       required: who claims
---@field category? string                   only this category
---@field tags? string[]                     only tasks carrying all these tags
---@field lease? number|string               default tasks.lease ("1m"); at least 10ms
---@field wait? number|string                wait this long for a matching task (default: answer at once)

---@class dreamos.tasks.Event
---@field seq integer          the event's own number (increases)
---@field id integer           the task
---@field title string
---@field old dreamos.tasks.Status|nil  nil when the task was just created
---@field new dreamos.tasks.Status
---@field progress number
---@field note string|nil
---@field agent string|nil
---@field at number

---@class dreamos.tasks.Watch
---@field active boolean  whether events still reach the handler
local Watch = {}

--- Stops the watch; returns whether it was still running.
---@return boolean
function Watch:cancel() end

---@class dreamos.tasks
local tasks = {}

--- Adds a task; returns its id once it is committed. Ready at once unless it has
--- dependencies not yet done (then pending), or one already failed (then blocked).
---@param opts dreamos.tasks.AddOptions
---@return integer|nil
---@return dreamos.Error|nil
function tasks.add(opts) end

--- One task (with depends_on), or nil if there is none with that id.
---@param id integer
---@return dreamos.tasks.Task|nil
---@return dreamos.Error|nil
function tasks.get(id) end

--- Tasks matching every filter given, by priority then age. Unknown status or priority
--- names raise.
---@param filters? dreamos.tasks.ListOptions
---@return dreamos.tasks.Task[]|nil
---@return dreamos.Error|nil
function tasks.list(filters) end

--- Atomically hands out the highest-priority ready task (oldest first) that matches, under
--- a lease; waits up to opts.wait for one. Returns nil when nothing matched in time.
--- A lapsed lease puts the task back to ready with the attempt counted.
---@param opts dreamos.tasks.ClaimOptions
---@return dreamos.tasks.Claimed|nil
---@return dreamos.Error|nil
function tasks.claim(opts) end

--- Same as task:progress; `task` is a claimed task or the id of one this script claimed.
---@param task dreamos.tasks.Claimed|integer
---@param pct number
---@param note? string
---@return true|nil
---@return dreamos.Error|nil
function tasks.progress(task, pct, note) end

--- Same as task:complete.
---@param task dreamos.tasks.Claimed|integer
---@param result? any
---@return true|nil
---@return dreamos.Error|nil
function tasks.complete(task, result) end

--- Same as task:fail.
---@param task dreamos.tasks.Claimed|integer
---@param err string|any
---@param opts? {retry?: boolean}
---@return dreamos.tasks.Status|nil
---@return dreamos.Error|nil
function tasks.fail(task, err, opts) end

--- Same as task:heartbeat.
---@param task dreamos.tasks.Claimed|integer
---@return number|nil
---@return dreamos.Error|nil
function tasks.heartbeat(task) end

--- Cancels a task that is not final (anyone may); its dependents are blocked. Raises for
--- an unknown id or a task already final.
---@param id integer
---@param reason? string  default "cancelled by <script>"
---@return true|nil
---@return dreamos.Error|nil
function tasks.cancel(id, reason) end

--- Calls handler(event) for every task transition committed in this process (the events
--- of the bus topic "tasks.events"). Runs beside the script until handle:cancel() or until
--- the handler returns false; it does not keep `dreamos run` alive. The handler may call
--- async functions; its errors are logged and the watch goes on.
---@param handler fun(event: dreamos.tasks.Event): boolean|nil
---@return dreamos.tasks.Watch|nil
---@return dreamos.Error|nil
function tasks.watch(handler) end

return tasks
