-- wrk script: a synchronous Lambda Invoke of the echo function (the same request for
-- Trellis and for `cargo lambda watch`, which serves the Lambda Invoke path too).
wrk.method = "POST"
wrk.body = '{"echo":"bench"}'
wrk.headers["Content-Type"] = "application/json"
