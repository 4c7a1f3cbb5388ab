local t = require("dreamos.test")
local discord = require("dreamos.discord")

t.describe("discord", function()
  t.it("says it is unavailable outside the daemon's bot", function()
    local ok, err = discord.command { name = "hello", handler = function() return "hi" end }
    t.eq(ok, nil)
    t.eq(err.kind, "unavailable")
    ok, err = discord.send("123456789012345678", "hello")
    t.eq(ok, nil)
    t.eq(err.kind, "unavailable")
    ok, err = discord.on_message("^ping", function() end)
    t.eq(ok, nil)
    t.eq(err.kind, "unavailable")
  end)

  t.it("refuses bad definitions before anything else", function()
    t.raises(function() discord.command { name = "Hello", handler = print } end,
      "discord.command: name 'Hello' must be 1-32 lowercase letters")
    t.raises(function() discord.command { name = "hello" } end, "discord.command: handler must be a function")
    t.raises(function() discord.command { name = "hello", handler = print, optoins = {} } end,
      "discord.command: unknown option 'optoins' (did you mean 'options'?)")
    t.raises(function()
      discord.command { name = "hello", handler = print, options = { { name = "n", type = "int" } } }
    end, "options[1].type 'int' is not one of string, integer")
    t.raises(function()
      discord.command { name = "hello", handler = print, permissions = { users = { "me" } } }
    end, "permissions.users: 'me' is not a Discord id")
    t.raises(function() discord.send("general", "hi") end, "discord.send: channel 'general' is not a Discord id")
    t.raises(function() discord.on_message("[", print) end, "discord.on_message: bad pattern '['")
  end)
end)

return t.finish()
