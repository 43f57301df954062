-- wrk script: remember (create) requests from many agents over many namespaces (loopback benchmark only).
local words = {"apple","travel","plan","meeting","budget","project","alpha","beta","gamma","delta",
  "river","mountain","coffee","invoice","contract","launch","design","review","memory","agent"}
math.randomseed(os.getenv("WRK_SEED") or 1)
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"id":"w%s-%d","namespace":"agents/%d","text":"%s %s %s %s %s %s"}',
    os.getenv("WRK_SEED") or "1", n, math.random(0, 49), words[math.random(#words)], words[math.random(#words)],
    words[math.random(#words)], words[math.random(#words)], words[math.random(#words)], words[math.random(#words)])
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-Agent-Id"] = "agent-" .. math.random(0, 499)
  return wrk.format("POST", "/v1/memories", nil, body)
end
