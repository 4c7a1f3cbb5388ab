-- allow: fs:work/
local t = require("dreamos.test")
local fs = require("dreamos.fs")

t.describe("fs", function()
  t.it("writes, reads, appends and lists inside a grant", function()
    t.eq(fs.mkdir("work/sub"), true)
    t.eq(fs.write("work/sub/a.txt", "one\n"), true)
    t.eq(fs.append("work/sub/a.txt", "two\n"), true)
    t.eq(fs.read("work/sub/a.txt"), "one\ntwo\n")
    t.eq(fs.exists("work/sub/a.txt"), true)
    t.eq(fs.exists("work/sub/none.txt"), false)
    fs.write("work/sub/b.txt", "")
    t.eq(fs.list("work/sub"), { "a.txt", "b.txt" })
  end)

  t.it("returns nil, err for a missing file", function()
    local data, err = fs.read("work/missing.txt")
    t.eq(data, nil)
    t.eq(err.kind, "not_found")
    t.ok(tostring(err):find("^not_found: cannot read"), tostring(err))
  end)

  t.it("stores binary data unchanged", function()
    local bytes = "\0\255\254binary"
    fs.write("work/bin", bytes)
    t.eq(fs.read("work/bin"), bytes)
  end)

  t.it("leaves no temporary files behind", function()
    fs.write("work/clean.txt", "x")
    for _, name in ipairs(fs.list("work")) do
      t.ok(not name:find("%.tmp%."), name)
    end
  end)
end)

return t.finish()
