-- wrk script: PutEvents with 10 entries per request to the default bus (durably accepted).
-- bench/put-events.sh runs it; entries/s = requests/s x 10.
local entries = {}
for i = 1, 10 do
  entries[i] = string.format(
    '{"Source":"bench.orders","DetailType":"OrderPlaced","Detail":"{\\"id\\":%d,\\"total\\":42.5}"}', i)
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-amz-json-1.1"
wrk.headers["X-Amz-Target"] = "AWSEvents.PutEvents"
wrk.body = '{"Entries":[' .. table.concat(entries, ",") .. ']}'

function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"FailedEntryCount":0', 1, true) then
    wrk.thread:stop()
  end
end
