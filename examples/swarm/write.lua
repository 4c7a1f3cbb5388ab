-- A worker: claims "write" tasks, reports progress, tells the Captain when one is done.
local agent = require("dreamos.agent")
local time = require("dreamos.time")
return agent.define {
  tasks = { category = "write" },
  idle_timeout = 0,
  on_task = function(self, task)
    self:log("working on " .. task.id .. ": " .. task.title)
    task:progress(50, "halfway")
    time.sleep(0.05)
    self:send("agent:captain", "task_complete:" .. task.id)
    return { by = self.name, summary = "write finished: " .. task.title }
  end,
}
