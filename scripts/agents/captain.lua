--- The Captain: coordinates a swarm of worker agents through the task store.
---
--- Talk to it on its inbox (agent:captain), from the CLI
--- (`dreamos agent message captain '{"goal": "..."}'`), from another agent, or with
--- bus.request for an answer:
---   {goal = "text", category = "research"}   one task for the workers of that category
---   {plan = { {id = "a", title = "...", category = "...", depends_on = {"b"}, payload = ...}, ... }}
---                                             a set of tasks; depends_on names earlier ids
---   "help"                                    (from a worker) its current tasks, as a reply
---   "status"                                  counts of the plan's tasks, as a reply
---   "task_complete:<id>"                      a worker reports a task done; checked and counted
--- Workers claim by category (`tasks = {category = ...}` in their define): the category is
--- the assignment. Progress goes to the log (`dreamos agent logs captain`) and is published
--- on the topic "captain" as {done, failed, total, statuses}.
local agent = require("dreamos.agent")
local tasks = require("dreamos.tasks")

local ACTIVE = { claimed = true, running = true }
local FINAL = { done = true, failed = true, cancelled = true, blocked = true, timeout = true }

local function answer(self, msg, payload)
  if msg.reply_to then
    return self:reply(msg, payload)
  end
  if msg.from:match("^agent:") then
    return self:send(msg.from, payload)
  end
end

local function add_plan(self, plan)
  local ids = {}
  local added = {}
  for i, item in ipairs(plan) do
    if type(item) ~= "table" or type(item.title) ~= "string" then
      error(("plan entry %d needs a title"):format(i))
    end
    local deps = {}
    for _, dep in ipairs(item.depends_on or {}) do
      local id = ids[dep]
      if not id then
        error(("plan entry %s depends on '%s', which is not an earlier entry"):format(item.id or i, tostring(dep)))
      end
      deps[#deps + 1] = id
    end
    local id = assert(tasks.add {
      title = item.title,
      category = item.category,
      priority = item.priority,
      payload = item.payload,
      depends_on = deps,
    })
    ids[item.id or tostring(i)] = id
    added[#added + 1] = id
  end
  return added
end

local function counts(self)
  local c = { total = 0, done = 0, failed = 0, statuses = {} }
  for _, id in ipairs(self.state.tasks) do
    local t = tasks.get(id)
    local status = t and t.status or "missing"
    c.total = c.total + 1
    c.statuses[status] = (c.statuses[status] or 0) + 1
    if status == "done" then
      c.done = c.done + 1
    elseif FINAL[status] then
      c.failed = c.failed + 1
    end
  end
  return c
end

local function report(self)
  if #self.state.tasks == 0 then return end
  local c = counts(self)
  local line = ("progress: %d/%d done, %d failed"):format(c.done, c.total, c.failed)
  if line ~= self.state.last_report then
    self.state.last_report = line
    self:log(line)
    self:publish("captain", c)
  end
  if c.done + c.failed == c.total and not self.state.finished then
    self.state.finished = true
    self:log(("plan complete: %d/%d done, %d failed"):format(c.done, c.total, c.failed))
    self:publish("captain", { finished = true, done = c.done, failed = c.failed, total = c.total })
  end
end

local function track(self, ids)
  for _, id in ipairs(ids) do
    table.insert(self.state.tasks, id)
  end
  self.state.finished = false
end

return agent.define {
  name = "captain",
  restart = "permanent",
  tick = "1s",
  -- The Captain waits for work by design: no idle nudges or resumes.
  idle_timeout = 0,

  on_start = function(self)
    self.state.tasks = self.state.tasks or {}
    self:log(("captain on duty, tracking %d task(s)"):format(#self.state.tasks))
  end,

  on_message = function(self, msg)
    local p = msg.payload
    if type(p) == "string" then
      local id = p:match("^task_complete:(%d+)$")
      if id then
        local t = tasks.get(tonumber(id))
        self:log(("%s reports task %s complete (status %s)"):format(msg.from, id, t and t.status or "unknown"))
        return report(self)
      elseif p == "help" then
        local name = msg.from:match("^agent:(.+)$") or msg.from
        local mine = {}
        for _, t in ipairs(tasks.list { assignee = name }) do
          if ACTIVE[t.status] then
            mine[#mine + 1] = { id = t.id, title = t.title, status = t.status, payload = t.payload }
          end
        end
        self:log(("help for %s: %d current task(s)"):format(name, #mine))
        return answer(self, msg, { tasks = mine })
      elseif p == "status" then
        return answer(self, msg, counts(self))
      end
      self:log("unknown request: " .. p)
      return
    end
    if type(p) ~= "table" then
      self:log("ignored a message that is neither text nor a table")
      return
    end
    if p.goal then
      local ids = add_plan(self, { { title = p.goal, category = p.category, payload = p.payload } })
      track(self, ids)
      self:log(("goal accepted as task %d: %s"):format(ids[1], p.goal))
      return answer(self, msg, { tasks = ids })
    elseif p.plan then
      local ids = add_plan(self, p.plan)
      track(self, ids)
      self:log(("plan accepted: %d task(s)"):format(#ids))
      return answer(self, msg, { tasks = ids })
    end
    self:log("unknown request: expected goal, plan, help, status or task_complete:<id>")
  end,

  on_tick = report,

  on_stop = function(self, reason)
    self:log("captain stepping down: " .. reason)
  end,
}
