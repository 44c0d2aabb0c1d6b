"""Publish one update to an ssehub (or any Mercure) hub from Python, with `requests`.

    HUB=http://127.0.0.1:8080/.well-known/mercure TOKEN=... python3 publish.py /demo/logs "hello from Python"

TOKEN is a publisher JWT: `ssehub serve` prints one on its first run, and
`ssehub token --key "$(cat ssehub-data/publisher-jwt-key)" --publish '/demo/{+rest}'` mints narrower ones.
"""

import os
import sys

import requests

hub = os.environ.get("HUB", "http://127.0.0.1:8080/.well-known/mercure")
topic, data = sys.argv[1], sys.argv[2]

response = requests.post(
    hub,
    headers={"Authorization": f"Bearer {os.environ['TOKEN']}"},
    data={"topic": topic, "data": data},  # form-encoded, as Mercure asks
    timeout=10,
)
response.raise_for_status()  # 401/403 carry the reason in the body and WWW-Authenticate
print(response.text)  # the update's id: subscribers resume after it with Last-Event-ID
