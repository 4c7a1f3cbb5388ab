-- allow: exec
local t = require("dreamos.test")
local exec = require("dreamos.exec")

t.describe("exec", function()
  t.it("runs a program and captures output", function()
    local r = exec.run({ cmd = "sh", args = { "-c", "echo out; echo err >&2; exit 3" } })
    t.eq(r.status, 3)
    t.eq(r.stdout, "out\n")
    t.eq(r.stderr, "err\n")
  end)

  t.it("feeds stdin and environment", function()
    local r = exec.run({ cmd = "sh", args = { "-c", "cat; printf %s \"$GREETING\"" }, stdin = "in:", env = { GREETING = "hi" } })
    t.eq(r.stdout, "in:hi")
  end)

  t.it("returns nil, err when the program is missing or too slow", function()
    local r, err = exec.run({ cmd = "/nonexistent/program" })
    t.eq(r, nil)
    t.eq(err.kind, "spawn")
    r, err = exec.run({ cmd = "sleep", args = { "5" }, timeout = "50ms" })
    t.eq(r, nil)
    t.eq(err.kind, "timeout")
  end)

  t.it("refuses unknown options", function()
    t.raises(function() exec.run({ cmd = "true", arg = {} }) end, "exec.run: unknown option 'arg' (did you mean 'args'?)")
  end)
end)

return t.finish()
