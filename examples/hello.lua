-- The smallest script: print, read arguments, log a line.
--   dreamos run examples/hello.lua Ada
local name = arg[1] or "world"
print("hello, " .. name .. "!")
