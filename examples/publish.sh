#!/bin/sh
# Publish one update with curl: the whole protocol is one form POST with a bearer token.
#   HUB=http://127.0.0.1:8080/.well-known/mercure TOKEN=... ./publish.sh /demo/logs "hello from curl"
curl -fsS -H "Authorization: Bearer $TOKEN" --data-urlencode "topic=$1" --data-urlencode "data=$2" "${HUB:-http://127.0.0.1:8080/.well-known/mercure}"
echo
