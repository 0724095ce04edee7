"""Writes a wrk Lua script that replays one botocore-signed request.

usage: presign.py ENDPOINT TARGET BODY_JSON ACCESS_KEY SECRET > request.lua
The signature stays valid for the 15-minute clock window.
"""
import json
import sys

import botocore.auth
import botocore.awsrequest
import botocore.credentials

endpoint, target, body, akid, secret = sys.argv[1:6]
req = botocore.awsrequest.AWSRequest(method="POST", url=endpoint + "/", data=body.encode(),
                                     headers={"Content-Type": "application/x-amz-json-1.1",
                                              "X-Amz-Target": target})
botocore.auth.SigV4Auth(botocore.credentials.Credentials(akid, secret), "ec2-instance-connect", "us-west-2").add_auth(req)
headers = dict(req.prepare().headers.items())
print("wrk.method = 'POST'")
print(f"wrk.body = {json.dumps(body)}")
for k, v in headers.items():
    print(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}")
print("""
local bad = 0
response = function(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format("non-200 responses: %d of %d\\n", summary.errors.status, summary.requests))
end
""")
