-- wrk script for bench/sfn-bench.sh and bench/sfn-parked.sh: posts one Step Functions call
-- (SFN_OP: StartSyncExecution or StartExecution) on the machine SFN_ARN and counts answers
-- that are not a success (HTTP 200 and, for StartSyncExecution, status SUCCEEDED).
-- SFN_LIMIT, when set, stops each thread after that many answers (for an exact count).
local op = os.getenv("SFN_OP")
local arn = os.getenv("SFN_ARN")
local limit = tonumber(os.getenv("SFN_LIMIT") or "0")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-amz-json-1.0"
wrk.headers["X-Amz-Target"] = "AWSStepFunctions." .. op
wrk.body = '{"stateMachineArn":"' .. arn .. '","input":"{\\"order\\":\\"o-1\\",\\"amount\\":42}"}'

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  answers = 0
  failures = 0
end

function response(status, headers, body)
  answers = answers + 1
  if status ~= 200 or (op == "StartSyncExecution" and not string.find(body, '"SUCCEEDED"', 1, true)) then
    failures = failures + 1
    if failures == 1 then io.stderr:write("first failure: " .. status .. " " .. body .. "\n") end
  end
  if limit > 0 and answers >= limit then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local answered, failed = 0, 0
  for _, t in ipairs(threads) do
    answered = answered + t:get("answers")
    failed = failed + t:get("failures")
  end
  io.write(string.format("SFN answered=%d failed=%d\n", answered, failed))
end
