"""Checks an outgoing webhook request with independent, published implementations.

Reads {"headers": {...}, "body": "<base64>", "secret": "whsec_..."?, "cloudevent": bool} on
stdin. Verifies the Standard Webhooks signature with the `standardwebhooks` package and parses
a CloudEvents structured-mode body with the official `cloudevents` SDK; prints what they found
as JSON. Any failure raises (non-zero exit), so the calling test fails.
"""
import base64
import json
import sys

request = json.load(sys.stdin)
headers = {k.lower(): v for k, v in request["headers"].items()}
body = base64.b64decode(request["body"])
out = {}
if request.get("secret"):
    from standardwebhooks.webhooks import Webhook

    out["verified_payload"] = Webhook(request["secret"]).verify(body, headers)
if request.get("cloudevent"):
    from cloudevents.v1.http import from_http

    event = from_http(headers, body)
    out["cloudevent"] = {
        "specversion": event["specversion"],
        "id": event["id"],
        "type": event["type"],
        "source": event["source"],
        "time": str(event.get("time")),
        "data": event.data,
    }
print(json.dumps(out))
