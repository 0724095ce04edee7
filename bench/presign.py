"""Writes a wrk Lua script that replays one botocore-signed request.

usage: presign.py ENDPOINT TARGET BODY_JSON ACCESS_KEY SECRET > request.lua
       presign.py ENDPOINT ec2 FORM_BODY ACCESS_KEY SECRET > request.lua
The first form is an Instance Connect call (JSON, X-Amz-Target, service
ec2-instance-connect); TARGET `ec2` makes it an EC2 Query call instead
(`Action=DescribeInstances&...` form body, service ec2, no X-Amz-Target).
The signature stays valid for the 15-minute clock window.
"""
import json
import sys

import botocore.auth
import botocore.awsrequest
import botocore.credentials

endpoint, target, body, akid, secret = sys.argv[1:6]
if target == "ec2":
    service, headers = "ec2", {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
else:
    service, headers = "ec2-instance-connect", {"Content-Type": "application/x-amz-json-1.1",
                                                "X-Amz-Target": target}
req = botocore.awsrequest.AWSRequest(method="POST", url=endpoint + "/", data=body.encode(), headers=headers)
botocore.auth.SigV4Auth(botocore.credentials.Credentials(akid, secret), service, "us-west-2").add_auth(req)
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
