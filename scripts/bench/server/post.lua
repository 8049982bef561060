-- wrk script for scripts/bench/server/run.sh: POST /token with a small JSON body, and the API
-- key from the BENCH_API_KEY environment variable as a bearer token when it is set. The key
-- stays out of wrk's command line.
wrk.method = "POST"
wrk.body = '{"grants":["chat"]}'
wrk.headers["Content-Type"] = "application/json"

local key = os.getenv("BENCH_API_KEY")
if key ~= nil and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
