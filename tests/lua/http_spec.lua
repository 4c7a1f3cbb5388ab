-- allow: net:127.0.0.1
-- The harness passes the base URL of a local test server as arg[1].
local t = require("dreamos.test")
local http = require("dreamos.http")
local base = assert(arg[1], "the harness passes the fake server's URL")

t.describe("http", function()
  t.it("gets JSON", function()
    local resp = assert(http.get(base .. "/json"))
    t.eq(resp.status, 200)
    t.eq(resp.ok, true)
    t.eq(resp:json(), { hello = "world" })
    t.eq(resp.headers["content-type"], "application/json")
  end)

  t.it("posts JSON and sends headers and query", function()
    local resp = assert(http.request({
      method = "POST", url = base .. "/echo", json = { a = 1 },
      headers = { ["x-token"] = "t1" }, query = { q = "a b" },
    }))
    local echo = resp:json()
    t.eq(echo.method, "POST")
    t.eq(echo.path, "/echo?q=a+b")
    t.eq(echo.body, '{"a":1}')
    t.eq(echo.token, "t1")
  end)

  t.it("returns non-2xx as a response, or nil, err when asked", function()
    local resp = assert(http.get(base .. "/status/503"))
    t.eq(resp.status, 503)
    t.eq(resp.ok, false)
    local r, err = http.get(base .. "/status/503", { error_on_status = true })
    t.eq(r, nil)
    t.eq(err.kind, "http_status")
  end)

  t.it("times out with nil, err", function()
    local r, err = http.get(base .. "/slow", { timeout = "100ms" })
    t.eq(r, nil)
    t.eq(err.kind, "timeout")
  end)

  t.it("reports a refused connection as nil, err", function()
    local r, err = http.get("http://127.0.0.1:1/")
    t.eq(r, nil)
    t.eq(err.kind, "network")
  end)

  t.it("refuses redirects to hosts without a grant", function()
    local r, err = http.get(base .. "/redirect-away")
    t.eq(r, nil)
    t.ok(err.message:find("redirect refused", 1, true), err.message)
  end)

  t.it("refuses misuse", function()
    t.raises(function() http.get("ftp://127.0.0.1/") end, "http.get: unsupported scheme 'ftp'")
    t.raises(function() http.get("not a url") end, "http.get: invalid url 'not a url'")
    t.raises(function() http.request({ url = base, timout = 1 }) end, "unknown option 'timout' (did you mean 'timeout'?)")
  end)
end)

return t.finish()
