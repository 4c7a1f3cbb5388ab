---@meta dreamos.agent
-- Agents: scripts supervised by `dreamos serve`. An agent script returns
-- `agent.define{...}`; each agent runs in its own sandboxed Lua state (its own memory and
-- instruction limits), with its own durable inbox `agent:<name>` (broadcasts included),
-- and `self.state`, a table saved after every handler and restored on restart and reload.
--
-- Lifecycle: stopped -> starting -> running <-> idle -> stopping -> stopped, plus crashed,
-- backoff and failed. A handler error is a crash; the restart policy decides what follows
-- (permanent: always restarted; transient: only after a crash; temporary: never), at most
-- max_restarts times within restart_window, waiting 1s, 2s, 4s, ... (capped at 60s) between.

---@class dreamos.agent
local agent = {}

---@class dreamos.AgentTasks
---@field category string   ready tasks of this category are claimed (under a lease) for on_task
---@field concurrency? integer  default 1; tasks handled at once, each in its own coroutine of the agent's state (so they share its upvalues and self)

---@class dreamos.AgentDefinition
---@field name? string            default: the name in [[agents]]
---@field description? string
---@field restart? "permanent"|"transient"|"temporary"  default "permanent"
---@field max_restarts? integer   default 5 (within restart_window)
---@field restart_window? number|string  default "60s"
---@field idle_timeout? number|string    default "10m"; no message or task this long: idle, on_idle runs; 0 disables
---@field resume_after? number|string    default "10m"; still idle this long after on_idle: restarted (a resume); 0 disables
---@field max_resumes? integer           default 3 resumes until real activity resets the count
---@field resume_cooldown? number|string default "5m" between resumes
---@field stall_timeout? number|string   default "5m"; a handler running longer is interrupted and the agent restarted
---@field tick? number|string            on_tick runs this often
---@field tasks? dreamos.AgentTasks
---@field state? table                   initial self.state (only when none was saved)
---@field on_start? fun(self: dreamos.AgentSelf)
---@field on_message? fun(self: dreamos.AgentSelf, msg: dreamos.AgentMessage)  returning acks the message; an error returns it to the queue
---@field on_task? fun(self: dreamos.AgentSelf, task: dreamos.AgentTask): any  the value completes the task (its result); an error fails it (retried while attempts remain)
---@field on_tick? fun(self: dreamos.AgentSelf)
---@field on_idle? fun(self: dreamos.AgentSelf)
---@field on_stop? fun(self: dreamos.AgentSelf, reason: string)

---@class dreamos.AgentTask
---@field id integer
---@field title string
---@field payload any
---@field priority string
---@field category? string
---@field attempts integer
---@field percent number  the progress last reported
local task_methods = {}

--- Reports progress (0 to 100) with an optional note and renews the lease.
---@param pct number
---@param note? string
---@return true|nil
---@return dreamos.Error|nil
function task_methods:progress(pct, note) end

---@class dreamos.AgentMessage
---@field id integer
---@field from string
---@field to string
---@field channel string
---@field payload any
---@field priority "critical"|"high"|"normal"|"low"
---@field headers table<string, string>
---@field correlation_id? string
---@field reply_to? string
---@field created_at integer  ms since the epoch

---@class dreamos.AgentSelf
---@field name string
---@field state table  persisted across restarts and reloads (must be JSON-able)
local self_methods = {}

--- Sends a durable message; returns its id, or nil, err (kind "bus").
---@param to string  `agent:<name>`, `captain`, `broadcast` or a named queue
---@param payload any
---@return integer|nil
---@return dreamos.Error|nil
function self_methods:send(to, payload) end

--- Publishes on a topic (not stored); returns how many subscribers got it.
---@param topic string
---@param payload any
---@return integer|nil
---@return dreamos.Error|nil
function self_methods:publish(topic, payload) end

--- Answers a message that was sent with `bus.request` (or `dreamos agent message --wait`).
---@param msg dreamos.AgentMessage
---@param payload any
---@return integer|nil
---@return dreamos.Error|nil
function self_methods:reply(msg, payload) end

--- Logs a line under the agent's name (shown by `dreamos agent logs NAME`).
---@param text any
function self_methods:log(text) end

--- Stops the agent normally once the current handler returns.
---@param reason? string
function self_methods:stop(reason) end

--- Claims a task by hand: dreamos.tasks.claim with this agent's name (the claimed task has
--- complete, fail, progress and heartbeat methods). For automatic claiming declare
--- `tasks = { category = ... }` and write on_task instead.
---@param opts? {category?: string, tags?: string[], lease?: number|string, wait?: number|string}
---@return dreamos.tasks.Claimed|nil
---@return dreamos.Error|nil
function self_methods:claim_task(opts) end

--- Validates the options and handlers and marks the table as an agent definition.
--- Raises on unknown options (with "did you mean"), wrong types and bad restart names.
---@param spec dreamos.AgentDefinition
---@return dreamos.AgentDefinition
function agent.define(spec) end

--- Whether value came from agent.define.
---@param value any
---@return boolean
function agent.is_definition(value) end

--- Every agent of the daemon with state, reason, since, started_at, restarts, resumes,
--- last_activity, handled, errors. Only inside `dreamos serve` (the Captain, `repl --attach`);
--- elsewhere nil, err (kind "unavailable").
---@return table[]|nil
---@return dreamos.Error|nil
function agent.list() end

--- One agent's status table (see list); nil, err (kind "not_found") for an unknown name.
---@param name string
---@return table|nil
---@return dreamos.Error|nil
function agent.status(name) end

--- Starts a stopped or failed agent; nil, err (kind "refused") when it already runs.
---@param name string
---@return true|nil
---@return dreamos.Error|nil
function agent.start(name) end

--- Stops an agent (on_stop runs) and returns once it has stopped.
---@param name string
---@return true|nil
---@return dreamos.Error|nil
function agent.stop(name) end

--- Restarts an agent through on_stop, or starts it if stopped.
---@param name string
---@return true|nil
---@return dreamos.Error|nil
function agent.restart(name) end

return agent
