local t = require("dreamos.test")
local cron = require("dreamos.cron")
local time = require("dreamos.time")

t.describe("cron", function()
  t.it("previews fire times in a time zone across DST", function()
    local from = 1774656000 -- 2026-03-28T00:00:00Z
    t.eq(cron.next("0 9 * * *", 3, { timezone = "Europe/Berlin", from = from }),
      { 1774684800, 1774767600, 1774854000 })
    t.eq(#cron.next("@hourly"), 5)
    t.eq(#cron.next("*/10 * * * * *", 2), 2)
  end)

  t.it("runs a function every interval until cancelled", function()
    local runs = {}
    local id = cron.every("100ms", function(run) runs[#runs + 1] = run end)
    time.sleep(0.35)
    t.eq(cron.cancel(id), true)
    local count = #runs
    t.eq(count >= 2 and count <= 4, true)
    t.eq(runs[1].name, id)
    t.eq(type(runs[1].scheduled), "number")
    time.sleep(0.25)
    t.eq(#runs, count)
    t.eq(cron.cancel(id), false)
  end)

  t.it("runs a one-shot once", function()
    local fired = 0
    cron.at(time.now() + 0.1, function() fired = fired + 1 end)
    time.sleep(0.3)
    t.eq(fired, 1)
  end)

  t.it("lists schedules with their next three fire times", function()
    local id = cron.schedule("0 9 * * MON-FRI", function() end,
      { name = "morning", timezone = "Europe/Berlin", overlap = "queue" })
    local list = cron.list()
    local cancelled = cron.cancel(id)
    t.eq(cancelled, true)
    t.eq(id, "morning")
    local found
    for _, s in ipairs(list) do if s.id == "morning" then found = s end end
    t.eq(found.expr, "0 9 * * MON-FRI")
    t.eq(found.timezone, "Europe/Berlin")
    t.eq(found.action, "Lua function")
    t.eq(#found.next, 3)
    t.eq(found.next[1]:match("T09:00:00%+0[12]:00$") ~= nil, true)
    t.eq(found.paused, false)
  end)

  t.it("pauses a schedule after max_failures consecutive failures", function()
    local calls = 0
    local id = cron.every("100ms", function()
      calls = calls + 1
      error("nope")
    end, { max_failures = 2 })
    time.sleep(0.45)
    local info
    for _, s in ipairs(cron.list()) do if s.id == id then info = s end end
    cron.cancel(id)
    t.eq(calls, 2)
    t.eq(info.paused, true)
    t.eq(info.failures, 2)
    t.eq(info.last_outcome, "failed")
  end)

  t.it("makes a durable schedule from a script path", function()
    local fs = require("dreamos.fs")
    fs.write("data/job.lua", "-- a scheduled job\n")
    local id = cron.schedule("@daily", "data/job.lua", { name = "nightly-job", missed = "skip" })
    local found
    for _, s in ipairs(cron.list()) do if s.id == id then found = s end end
    t.eq(cron.cancel(id), true)
    t.eq(id, "nightly-job")
    t.eq(found.action, "script data/job.lua")
    t.eq(found.expr, "@daily")
  end)

  t.it("refuses bad input with the position and an example", function()
    local f = function() end
    t.raises(function() cron.schedule("0 25 * * *", f) end, "field 2 (hour) '25' at position 3")
    t.raises(function() cron.schedule("0 25 * * *", f) end, "0 9 * * MON-FRI")
    t.raises(function() cron.next("0 9 * *") end, "it has 4 fields")
    t.raises(function() cron.schedule("@daily", f, { timezone = "Europe/Berln" }) end,
      "did you mean 'Europe/Berlin'")
    t.raises(function() cron.schedule("@daily", f, { overlpa = "skip" }) end,
      "cron.schedule: unknown option 'overlpa' (did you mean 'overlap'?)")
    t.raises(function() cron.schedule("@daily", f, { missed = "sometimes" }) end,
      "missed: 'sometimes' is not one of skip, run_once, run_all")
    t.raises(function() cron.schedule("@daily", "no/such/script.lua") end, "does not exist")
    t.raises(function() cron.at("2020-01-01T00:00:00Z", f) end, "is in the past")
    t.raises(function() cron.every("10ms", f) end, "too short")
    t.raises(function() cron.every("5m", 42) end, "handler must be a function or a script path, got number")
    t.eq(#cron.list(), 0)
  end)
end)

return t.finish()
