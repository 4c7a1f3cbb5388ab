local t = require("dreamos.test")
local tasks = require("dreamos.tasks")
local time = require("dreamos.time")
local dreamos = require("dreamos")

-- Claims everything ready as `agent` and completes it, so each spec starts from a quiet queue.
local function drain(agent)
  while true do
    local task = tasks.claim({ agent = agent or "drain" })
    if not task then return end
    task:complete()
  end
end

t.describe("tasks", function()
  t.it("adds, claims, reports progress and completes", function()
    local id = tasks.add({ title = "write report", payload = { pages = 3 }, tags = { "docs" } })
    t.eq(math.type(id), "integer")
    local got = tasks.get(id)
    t.eq(got.status, "ready")
    t.eq(got.priority, "normal")
    t.eq(got.tags, { "docs" })
    t.eq(got.payload, { pages = 3 })

    local task = tasks.claim({ agent = "writer" })
    t.eq(task.id, id)
    t.eq(task.status, "claimed")
    t.eq(task.attempts, 1)
    t.eq(task:progress(40, "outline done"), true)
    t.eq(task.status, "running")
    t.eq(tasks.get(id).note, "outline done")
    t.eq(task:heartbeat() > time.now() - 1, true)
    t.eq(task:complete({ words = 1200 }), true)
    local done = tasks.get(id)
    t.eq(done.status, "done")
    t.eq(done.result, { words = 1200 })
    t.eq(done.progress, 100)
  end)

  t.it("hands out the highest priority first, oldest first within one", function()
    drain()
    local low = tasks.add({ title = "low", priority = "low" })
    local n1 = tasks.add({ title = "n1" })
    local crit = tasks.add({ title = "crit", priority = "critical" })
    local n2 = tasks.add({ title = "n2" })
    local order = {}
    for _ = 1, 4 do
      local task = tasks.claim({ agent = "w" })
      order[#order + 1] = task.id
      task:complete()
    end
    t.eq(order, { crit, n1, n2, low })
    t.eq(tasks.claim({ agent = "w" }), nil)
  end)

  t.it("releases dependents when their dependencies are done", function()
    drain()
    local a = tasks.add({ title = "fetch" })
    local b = tasks.add({ title = "build", depends_on = { a } })
    t.eq(tasks.get(b).status, "pending")
    t.eq(tasks.get(b).depends_on, { a })
    local task = tasks.claim({ agent = "w" })
    t.eq(task.id, a)
    tasks.complete(task)
    t.eq(tasks.get(b).status, "ready")
  end)

  t.it("retries failures, then fails and blocks dependents", function()
    drain()
    local id = tasks.add({ title = "flaky", max_attempts = 2 })
    local dep = tasks.add({ title = "after flaky", depends_on = { id } })
    t.eq(tasks.claim({ agent = "w" }):fail("503 from api"), "ready")
    local again = tasks.claim({ agent = "w" })
    t.eq(again.attempts, 2)
    t.eq(tasks.fail(again.id, "503 again"), "failed")
    local blocked = tasks.get(dep)
    t.eq(blocked.status, "blocked")
    t.ok(blocked.error:find("failed: 503 again", 1, true), blocked.error)
    local once = tasks.add({ title = "hopeless" })
    t.eq(tasks.claim({ agent = "w" }):fail("bad input", { retry = false }), "failed")
    t.eq(tasks.get(once).status, "failed")
  end)

  t.it("cancels with a reason and lists with filters", function()
    drain()
    local a = tasks.add({ title = "a", category = "mail" })
    local b = tasks.add({ title = "b", category = "mail", priority = "high" })
    tasks.add({ title = "c", category = "web" })
    t.eq(tasks.cancel(a, "not needed"), true)
    t.eq(tasks.get(a).error, "not needed")
    local mail = tasks.list({ category = "mail" })
    t.eq(#mail, 2)
    t.eq(mail[1].id, b)
    t.eq(#tasks.list({ status = "cancelled", category = "mail" }), 1)
    t.eq(#tasks.list({ status = "ready", limit = 1 }), 1)
    t.eq(tasks.get(999999), nil)
  end)

  t.it("gives a lapsed lease to the next claimer", function()
    drain()
    local id = tasks.add({ title = "slow" })
    local first = tasks.claim({ agent = "a", lease = "50ms" })
    -- b waits; the lease lapsing wakes it (no sleeping here: the claim waits on the lease).
    local second = tasks.claim({ agent = "b", wait = "10s" })
    t.eq(second.id, id)
    t.eq(second.attempts, 2)
    t.raises(function() first:complete() end,
      "task:complete: task " .. id .. " is held by agent 'b', not 'a'")
    second:complete()
  end)

  t.it("wakes a waiting claim when a task is added", function()
    drain()
    local started = time.monotonic()
    dreamos.spawn(function()
      time.sleep(0)
      tasks.add({ title = "late arrival" })
    end)
    local task = tasks.claim({ agent = "patient", wait = "30s" })
    t.eq(task.title, "late arrival")
    t.ok(time.monotonic() - started < 10, "woken by the add, not the timeout")
    task:complete()
  end)

  t.it("watches transitions as they commit", function()
    drain()
    local seen = {}
    local handle = tasks.watch(function(e)
      seen[#seen + 1] = (e.old or "new") .. ">" .. e.new .. ":" .. e.title
    end)
    local id = tasks.add({ title = "watched" })
    local task = tasks.claim({ agent = "w" })
    task:progress(10)
    task:complete()
    for _ = 1, 100 do
      if #seen >= 4 then break end
      time.sleep(0)
    end
    handle:cancel()
    t.eq(seen, {
      "new>ready:watched",
      "ready>claimed:watched",
      "claimed>running:watched",
      "running>done:watched",
    })
    t.eq(tasks.get(id).status, "done")
    t.eq(handle.active, false)

    -- A handler that returns false ends its own watch.
    local once = tasks.watch(function() return false end)
    t.eq(once.active, true)
    tasks.add({ title = "one more" })
    for _ = 1, 100 do
      if not once.active then break end
      time.sleep(0)
    end
    t.eq(once.active, false)
    drain()
  end)

  t.it("works inside coroutines scripts create", function()
    local co = coroutine.wrap(function()
      return tasks.add({ title = "from a coroutine" })
    end)
    local id = co()
    t.eq(tasks.get(id).title, "from a coroutine")
  end)

  t.it("refuses misuse with exact messages", function()
    drain()
    t.raises(function() tasks.add({ title = "x", priorty = "high" }) end,
      "tasks.add: unknown option 'priorty' (did you mean 'priority'?)")
    t.raises(function() tasks.add({ title = "x", priority = "urgent" }) end,
      "tasks.add: unknown priority 'urgent' (use one of critical, high, normal, low)")
    t.raises(function() tasks.add({}) end, "tasks.add: title is required")
    t.raises(function() tasks.add({ title = "x", depends_on = { 424242 } }) end,
      "tasks.add: 'x' depends on task 424242, which does not exist")
    t.raises(function() tasks.list({ status = "doen" }) end,
      "tasks.list: unknown status 'doen' (use one of pending, ready, claimed")
    t.raises(function() tasks.claim({}) end, "tasks.claim: agent is required")
    t.raises(function() tasks.claim({ agent = "w", lease = 0 }) end,
      "tasks.claim: lease must be at least 10ms, got 0s (a lease that has already expired cannot hold a task)")
    local id = tasks.add({ title = "held" })
    t.raises(function() tasks.complete(id) end,
      "tasks.complete: this script does not hold task " .. id .. " (claim it first)")
    t.raises(function() tasks.complete(tasks.get(id)) end,
      "tasks.complete: this script does not hold task " .. id)
    local task = tasks.claim({ agent = "w" })
    t.raises(function() task:progress(150) end,
      "task:progress: progress must be between 0 and 100, got 150")
    t.raises(function() tasks.progress(task, -5) end,
      "tasks.progress: progress must be between 0 and 100, got -5")
    t.eq(tasks.get(id).status, "claimed")
    task:complete()
    t.raises(function() task:complete() end, "task:complete: task " .. id .. " is already done")
    t.raises(function() tasks.cancel(id) end, "tasks.cancel: task " .. id .. " is already done")
  end)
end)

return t.finish()
