"""Prints the ten-statement policy of the policy benchmark, allowing the
bench principal (tag userName=ec2-user) as ec2-user on Team=dev instances
only in its last Allow, behind a guard Deny."""
import json

statements = [{
    "Sid": f"Team{i}", "Effect": "Allow", "Action": ["ec2-instance-connect:Send*"],
    "Resource": "arn:aws:ec2:*:111122223333:instance/*",
    "Condition": {"StringEquals": {"ec2:osuser": f"user{i}", "aws:ResourceTag/Team": f"team{i}"},
                  "IpAddress": {"aws:SourceIp": [f"10.{i}.0.0/16", "127.0.0.0/8"]}},
} for i in range(8)]
statements.append({
    "Sid": "Dev", "Effect": "Allow", "Action": ["ec2-instance-connect:Send*"],
    "Resource": "arn:aws:ec2:*:111122223333:instance/*",
    "Condition": {"StringEquals": {"ec2:osuser": "ec2-user", "aws:ResourceTag/Team": "dev"},
                  "IpAddress": {"aws:SourceIp": ["10.9.0.0/16", "127.0.0.0/8"]}},
})
statements.append({
    "Sid": "OwnUserOnly", "Effect": "Deny", "Action": "ec2-instance-connect:*", "Resource": "*",
    "Condition": {"StringNotEquals": {"ec2:osuser": "${aws:PrincipalTag/userName}"}},
})
print(json.dumps({"Version": "2012-10-17", "Statement": statements}))
