-- wrk script of scripts/soak.sh: POST /token for one of 100,000 identities at random, through
-- an API key that may act for soak-*. SOAK_DELAY_MS paces each connection to one request per
-- that many milliseconds; 0 sends as fast as the server answers.
local key = os.getenv("SOAK_API_KEY")
local delay_ms = tonumber(os.getenv("SOAK_DELAY_MS") or "0")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function request()
  local body = string.format('{"identity":"soak-%d"}', math.random(1, 100000))
  return wrk.format(nil, nil, nil, body)
end

if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end
