-- dreamos.tasks: a small pipeline with dependencies, two workers and a live watch.
-- Tasks are durable (data/dreamos.db); `dreamos task list` shows them after the run.
local tasks = require("dreamos.tasks")
local dreamos = require("dreamos")
local time = require("dreamos.time")

-- Print every transition as it commits.
local watch = tasks.watch(function(e)
  print(string.format("  #%d %-14s %s -> %s%s", e.id, e.title, e.old or "new", e.new,
    e.note and ("  (" .. e.note .. ")") or ""))
end)

local fetch = tasks.add({ title = "fetch sources", priority = "high" })
local build = tasks.add({ title = "build", depends_on = { fetch } })
local docs = tasks.add({ title = "write docs", depends_on = { fetch } })
tasks.add({ title = "ship", depends_on = { build, docs }, payload = { to = "prod" } })

-- Two workers claim whatever is ready; a claim waits (without polling) for the next task.
local function worker(name)
  while true do
    local task = tasks.claim({ agent = name, wait = "1s" })
    if not task then return end           -- nothing became ready within a second: done
    task:progress(50, name .. " is on it")
    time.sleep(0.05)                       -- the work
    task:complete({ by = name })
  end
end
local a, b = dreamos.spawn(worker, "ada"), dreamos.spawn(worker, "bob")
a:join()
b:join()
watch:cancel()

for _, t in ipairs(tasks.list()) do
  print(string.format("%-14s %-5s by %s", t.title, t.status, t.result and t.result.by or "-"))
end
