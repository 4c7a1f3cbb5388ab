--- dreamos.inspect: readable text for any Lua value, used by the REPL to print results.
--- Tables print nested and sorted; a table met again on the current path prints as
--- `<cycle: table 0x...>` and one seen elsewhere as `<table 0x...>`, so cyclic structures
--- terminate and shared ones are not printed twice.
local M = {}

local function is_identifier(s)
  return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil
end

local function sort_keys(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then
    return ta < tb
  end
  if ta == "number" or ta == "string" then
    return a < b
  end
  return tostring(a) < tostring(b)
end

local function render(value, opts, depth, path, seen, out)
  local t = type(value)
  if t == "string" then
    out[#out + 1] = string.format("%q", value):gsub("\\\n", "\\n")
    return
  end
  if t ~= "table" then
    out[#out + 1] = tostring(value)
    return
  end
  local mt = getmetatable(value)
  if type(mt) == "table" and rawget(mt, "__tostring") then
    out[#out + 1] = tostring(value)
    return
  end
  if path[value] then
    out[#out + 1] = "<cycle: " .. tostring(value) .. ">"
    return
  end
  if seen[value] then
    out[#out + 1] = "<" .. tostring(value) .. ">"
    return
  end
  if depth >= opts.depth then
    out[#out + 1] = "{...}"
    return
  end
  seen[value], path[value] = true, true
  local n = #value
  local keys = {}
  for k in pairs(value) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then
      keys[#keys + 1] = k
    end
  end
  table.sort(keys, sort_keys)
  if n == 0 and #keys == 0 then
    out[#out + 1] = "{}"
    path[value] = nil
    return
  end
  local indent = string.rep(opts.indent, depth + 1)
  out[#out + 1] = "{\n"
  for i = 1, n do
    out[#out + 1] = indent
    render(value[i], opts, depth + 1, path, seen, out)
    out[#out + 1] = ",\n"
  end
  for _, k in ipairs(keys) do
    out[#out + 1] = indent
    if is_identifier(k) then
      out[#out + 1] = k
    else
      out[#out + 1] = "["
      render(k, opts, depth + 1, path, seen, out)
      out[#out + 1] = "]"
    end
    out[#out + 1] = " = "
    render(value[k], opts, depth + 1, path, seen, out)
    out[#out + 1] = ",\n"
  end
  out[#out + 1] = string.rep(opts.indent, depth) .. "}"
  path[value] = nil
end

--- Returns `value` as readable text.
--- @param value any
--- @param opts? { depth?: integer, indent?: string }  depth defaults to 8, indent to two spaces
--- @return string
function M.inspect(value, opts)
  opts = opts or {}
  local o = { depth = opts.depth or 8, indent = opts.indent or "  " }
  local out = {}
  render(value, o, 0, {}, {}, out)
  return table.concat(out)
end

return setmetatable(M, {
  __call = function(_, value, opts)
    return M.inspect(value, opts)
  end,
})
