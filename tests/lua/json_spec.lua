local t = require("dreamos.test")
local json = require("dreamos.json")

t.describe("json", function()
  t.it("round-trips nested values", function()
    local v = { a = { 1, 2, { b = "c" } }, n = 1.5, yes = true }
    t.eq(json.decode(json.encode(v)), v)
  end)

  t.it("keeps null and marked empty arrays", function()
    local v = json.decode('{"x": null, "list": []}')
    t.ok(v.x == json.null)
    t.eq(json.encode({ list = setmetatable({}, json.array) }), '{"list":[]}')
  end)

  t.it("pretty-prints on request and refuses unknown options", function()
    t.ok(json.encode({ a = 1 }, { pretty = true }):find("\n"))
    t.raises(function() json.encode({}, { prety = true }) end, "json.encode: unknown option 'prety' (did you mean 'pretty'?)")
  end)

  t.it("refuses what JSON cannot hold", function()
    t.raises(function() json.encode(print) end, "json.encode: cannot encode a function")
    local cyclic = {}
    cyclic.self = cyclic
    t.raises(function() json.encode(cyclic) end, "json.encode:")
  end)

  t.it("explains invalid input", function()
    t.raises(function() json.decode("{bad") end, "json.decode: invalid JSON")
    t.raises(function() json.decode(12) end, "json.decode: expected a string, got number")
    t.raises(function() json.decode(string.rep("[", 100000)) end, "json.decode: invalid JSON")
  end)

  t.it("encodes compactly with sorted keys and escapes", function()
    t.eq(json.encode({ b = 1, a = { 1, 2.5, "x" }, c = json.null }), '{"a":[1,2.5,"x"],"b":1,"c":null}')
    t.eq(json.encode({ [1] = "a", [3] = "c" }), '{"1":"a","3":"c"}')
    t.eq(json.encode("line\n\"q\"\1"), '"line\\n\\"q\\"\\u0001"')
    t.eq(json.encode({}), "{}")
    t.eq(json.encode(json.decode('{"k":[{},[]]}')), '{"k":[{},[]]}')
  end)

  t.it("refuses NaN, bad UTF-8 and deep nesting", function()
    t.raises(function() json.encode(0 / 0) end, "JSON has no NaN or infinity")
    t.raises(function() json.encode("\255") end, "not valid UTF-8")
    local deep = {}
    local cur = deep
    for _ = 1, 200 do cur.x = {} cur = cur.x end
    t.raises(function() json.encode(deep) end, "nested deeper than 128 levels")
  end)

  t.it("decodes a large document", function()
    local parts = {}
    for i = 1, 100000 do parts[i] = tostring(i) end
    local v = json.decode("[" .. table.concat(parts, ",") .. "]")
    t.eq(#v, 100000)
  end)
end)

return t.finish()
