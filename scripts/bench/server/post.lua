-- wrk script for scripts/bench/server/run.sh and oidc.sh: POST /token with a small JSON body,
-- and as the bearer token BENCH_BEARER when set (oidc.sh puts an OpenID Connect token there),
-- else the API key from BENCH_API_KEY when that is set. Both stay out of wrk's command line.
wrk.method = "POST"
wrk.body = '{"grants":["chat"]}'
wrk.headers["Content-Type"] = "application/json"

local key = os.getenv("BENCH_BEARER")
if key == nil or key == "" then
  key = os.getenv("BENCH_API_KEY")
end
if key ~= nil and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
