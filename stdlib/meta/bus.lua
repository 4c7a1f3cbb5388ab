---@meta dreamos.bus
-- The message bus. `send` is durable and at-least-once: the message is on disk before
-- `send` returns, and it is delivered until a consumer acks it (or it runs out of
-- attempts and goes to the dead-letter queue). `publish` is in-memory fan-out to the
-- subscribers of this process, best-effort.
--
-- Channels: `agent:<name>` (an agent's inbox), `captain` (the coordinator), `broadcast`
-- (send-only: one copy into every known agent inbox), or any name made of letters, digits,
-- `_` and `-` in parts separated by `.` or `:` (`jobs.email`). Topics for publish use the
-- same form; subscribe patterns may add `*` (any run of characters) and `?` (one).
--
-- Errors: misuse raises an error naming the function — a malformed channel, a payload JSON
-- cannot hold (a function, userdata or a table that contains itself), a payload over
-- `bus.max_payload` (default 1 MiB), an unknown option or a bad option value. Nothing is
-- stored when `send` raises. Failures of the world return `nil, err` (see dreamos.Error):
-- kind "timeout", "store", "no_recipients" (a broadcast with no known agent inbox),
-- "stale_delivery" (an ack that came after the visibility timeout), "not_found".
--
-- Payloads are anything JSON can hold: nil, booleans, numbers, strings and tables of them.
-- JSON null inside a payload arrives as `json.null`; arrays keep their `json.array` mark.

---@class dreamos.bus
local bus = {}

---@alias dreamos.bus.Priority "critical"|"high"|"normal"|"low"

---@class dreamos.bus.SendOptions
---@field priority? dreamos.bus.Priority   default "normal"; higher first, FIFO within one priority
---@field max_attempts? integer            deliveries before the dead-letter queue; default bus.max_attempts (5)
---@field backoff? number|string           first retry delay, doubling per attempt (with jitter); default bus.backoff_base (1s)
---@field ttl? number|string               undelivered after this long, the message expires; default none
---@field headers? table<string, string>   free-form metadata (numbers and booleans are written as text)
---@field correlation_id? string           ties replies and conversations together
---@field from? string                     sender name in history; default the script's name

---@class dreamos.bus.Receipt
---@field id integer          the stored message's id (the first one, for a broadcast)
---@field ids integer[]       every stored message: one, or one per agent for a broadcast
local Receipt = {}

--- Waits until the message is final and says how it ended: "acked" (handled), "failed"
--- (nacked without retry), "dead" (out of attempts) or "expired" (ttl passed). For a
--- broadcast, the worst outcome of all copies. Returns nil, err (kind "timeout") if it is
--- still pending after `timeout`. Acks made by other processes are noticed within a second.
---@param timeout? number|string  default 30s
---@return "acked"|"failed"|"dead"|"expired"|nil
---@return dreamos.Error|nil
function Receipt:wait(timeout) end

--- Sends a durable message to `to` and returns once it is on disk. Raises on misuse;
--- returns nil, err (kind "store", or "no_recipients" for a broadcast nobody can get).
---@param to string                 agent:<name>, captain, broadcast or a named queue
---@param payload any               JSON-able data
---@param opts? dreamos.bus.SendOptions
---@return dreamos.bus.Receipt|nil
---@return dreamos.Error|nil
function bus.send(to, payload, opts) end

---@class dreamos.bus.Message
---@field id integer
---@field from string                     the sender (a script name, agent:<name>, cli, ...)
---@field to string                       what the sender addressed (the channel, or "broadcast")
---@field channel string                  the queue it came from
---@field payload any                     nil when the sender sent nil
---@field priority dreamos.bus.Priority
---@field headers table<string, string>   empty when none
---@field correlation_id? string
---@field reply_to? string                set on requests; bus.reply answers there
---@field attempt integer                 1 for the first delivery, 2 for the first redelivery, ...
---@field max_attempts integer
---@field created_at number               epoch seconds, as time.now()
---@field expires_at? number              epoch seconds, when a ttl was given
local Message = {}

--- Acknowledges the message: it is done, and the sender's receipt says "acked". Returns true
--- once the ack is on disk. With `{wait = false}` it returns at once and the ack commits with
--- the next batch (`dreamos run` still waits for it before exiting). Returns nil, err (kind
--- "stale_delivery") if this script no longer holds the message: it was already acked or
--- nacked, or its visibility timeout (bus.visibility_timeout, 30s) passed and it is being
--- delivered again.
---@param opts? {wait?: boolean}  wait defaults to true
---@return true|nil
---@return dreamos.Error|nil
function Message:ack(opts) end

--- Rejects the message with an error text (kept in history and the dead-letter queue).
--- With retry (the default) it is delivered again after an exponential backoff with
--- jitter, until max_attempts, then it is "dead"; with `{retry = false}` it is "failed" at
--- once. Returns the new status ("queued", "dead" or "failed"), or nil, err like ack.
---@param err? any                 a string, or anything tostring() can show; default "rejected by the consumer"
---@param opts? {retry?: boolean}  retry defaults to true
---@return "queued"|"dead"|"failed"|nil
---@return dreamos.Error|nil
function Message:nack(err, opts) end

--- Keeps the message for `duration` more from now, for a handler that needs longer than
--- the visibility timeout. Returns true, or nil, err like ack.
---@param duration number|string
---@return true|nil
---@return dreamos.Error|nil
function Message:extend(duration) end

--- Waits for the next message on `channel` (forever without a timeout). Returns nil, err
--- (kind "timeout") when nothing came in time. Raises for a malformed channel or
--- "broadcast" (receive broadcasts in your own agent:<name> inbox).
---
--- Settle each message with msg:ack() or msg:nack(). A message left unsettled is acked when
--- the same coroutine calls recv on the same channel again, so a loop
--- `while true do local msg = bus.recv(c) ... end` acks each message by asking for the next
--- one (that ack is pipelined: it commits with the next batch). The last message is
--- settled when the coroutine that received it ends (the script's main chunk, a
--- dreamos.spawn task, an agent's handler): acked if it returned normally, nacked for a
--- retry if it failed. A coroutine cancelled midway (a stalled handler) leaves it to be
--- delivered again after bus.visibility_timeout.
--- A consumer that keeps up gets messages claimed ahead in small batches; a slow one
--- claims one at a time. An agent that stops hands back what was claimed ahead at once.
---@param channel string
---@param timeout? number|string
---@return dreamos.bus.Message|nil
---@return dreamos.Error|nil
function bus.recv(channel, timeout) end

--- Publishes to every subscription of this process whose pattern matches `topic`, without
--- storing anything: a subscriber that is not listening now never sees it, and one that
--- falls more than bus.subscriber_buffer messages behind misses the newer ones. Returns how
--- many subscriptions got it. Raises on misuse like send.
---@param topic string
---@param payload any
---@param opts? {from?: string}   from defaults to the script's name
---@return integer|nil
---@return dreamos.Error|nil
function bus.publish(topic, payload, opts) end

---@class dreamos.bus.Published
---@field topic string
---@field from string
---@field payload any
---@field at number     epoch seconds

---@class dreamos.bus.Subscription
---@field pattern string
---@field active boolean   false once cancelled
---@field lagged integer   messages dropped because the handler fell behind
local Subscription = {}

--- Stops the subscription at once: nothing published after this reaches the handler, and
--- messages queued for it but not yet handled are dropped. Returns whether it was active.
---@return boolean
function Subscription:cancel() end

--- Calls `handler(msg)` for every published message whose topic matches `pattern`
--- (`tasks.*`, `agent:*`, `*`), one at a time and in order, in a task of this script. A
--- handler error is logged and the next message is handled. A subscription does not keep
--- `dreamos run` alive: it ends when the main chunk and the dreamos.spawn tasks are done,
--- so a script that only serves subscriptions must keep running (a recv loop, a sleep).
--- Dropping the handle does not cancel; keep it to call cancel(). Raises for a malformed
--- pattern or a handler that is not a function.
---@param pattern string
---@param handler fun(msg: dreamos.bus.Published)
---@return dreamos.bus.Subscription|nil
---@return dreamos.Error|nil
function bus.subscribe(pattern, handler) end

---@class dreamos.bus.RequestOptions
---@field timeout? number|string           how long to wait for the reply; default 30s (also the request's ttl)
---@field priority? dreamos.bus.Priority
---@field max_attempts? integer
---@field backoff? number|string
---@field headers? table<string, string>
---@field correlation_id? string           default a fresh token
---@field from? string

--- Sends `payload` to `to` as a durable request and waits for the answer the handler gives
--- with bus.reply. Returns the reply's payload (json.null for a null reply, so nil always
--- means failure), or nil, err (kind "timeout"). Raises on misuse like send.
---@param to string
---@param payload any
---@param opts? dreamos.bus.RequestOptions
---@return any
---@return dreamos.Error|nil
function bus.request(to, payload, opts) end

--- Answers a message that came from bus.request (durably, to its private reply channel).
--- Does not ack `msg`: ack it as usual. Raises if `msg` is not a message from recv or was
--- not sent with request.
---@param msg dreamos.bus.Message
---@param payload any
---@return dreamos.bus.Receipt|nil
---@return dreamos.Error|nil
function bus.reply(msg, payload) end

---@class dreamos.bus.HistoryFilter
---@field channel? string
---@field agent? string          "scout" or "agent:scout": messages to its inbox or from it
---@field since? number|string   epoch seconds or an RFC 3339 time; created at or after
---@field until? number|string   created at or before
---@field limit? integer         the newest this many (default bus.history_limit, 100)

---@class dreamos.bus.Transition
---@field status string    queued, delivered, acked, retried, timeout, failed, dead, expired, requeued
---@field at string        RFC 3339 UTC with milliseconds
---@field attempt integer
---@field error? string

---@class dreamos.bus.Record
---@field id integer
---@field from string
---@field to string
---@field channel string
---@field payload any
---@field priority dreamos.bus.Priority
---@field status "queued"|"delivered"|"acked"|"failed"|"dead"|"expired"
---@field attempts integer
---@field created_at string      RFC 3339 UTC
---@field delivered_at? string
---@field acked_at? string
---@field error? string          the last failure
---@field transitions dreamos.bus.Transition[]

--- Durable messages matching `filter` with every status change, oldest first (the same
--- record shape as `dreamos bus export`). Publish messages are not history. Returns nil,
--- err (kind "store") if the store fails.
---@param filter? dreamos.bus.HistoryFilter
---@return dreamos.bus.Record[]|nil
---@return dreamos.Error|nil
function bus.history(filter) end

--- Writes the whole history as a JSON array of records (one per line) to `path`, or to
--- bus.export_path (data/message_history.json) by default, atomically: a temporary file
--- renamed over the target. The default path needs no grant; any other path needs an `fs:`
--- grant covering it (raises otherwise). Returns {path = ..., records = n}, or nil, err
--- (kind "io" or "store").
---@param path? string
---@return {path: string, records: integer}|nil
---@return dreamos.Error|nil
function bus.export(path) end

return bus
