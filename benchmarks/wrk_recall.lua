-- wrk script: recall requests from many agents over many namespaces (loopback benchmark only).
local words = {"apple","travel","plan","meeting","budget","project","alpha","beta","gamma","delta",
  "river","mountain","coffee","invoice","contract","launch","design","review","memory","agent"}
math.randomseed(os.getenv("WRK_SEED") or 1)
request = function()
  local body = string.format('{"namespace":"agents/%d","query":"%s %s","limit":10}',
    math.random(0, 49), words[math.random(#words)], words[math.random(#words)])
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-Agent-Id"] = "agent-" .. math.random(0, 499)
  return wrk.format("POST", "/v1/recall", nil, body)
end
