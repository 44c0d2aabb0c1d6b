#!/usr/bin/env python3
"""Writes parse-cases.json: the event-stream parsing cases shared by the Rust
codec, `ssehub parse` and the JavaScript parser. Edit the cases here, then
run `python3 conformance/gen_cases.py` (the output is committed)."""
import json, os

def ev(data, type="message", id=""):
    return {"type": type, "data": data, "id": id}

def case(name, chunks, events, retry=None, last_event_id=""):
    c = {"name": name}
    if all(isinstance(x, str) for x in chunks):
        c["chunks"] = chunks
    else:
        c["chunks_hex"] = [x.hex() if isinstance(x, bytes) else x.encode().hex() for x in chunks]
    c.update(events=events, retry=retry, last_event_id=last_event_id)
    return c

BOM = b"\xef\xbb\xbf"
cases = [
    case("single event", ["data: hello\n\n"], [ev("hello")]),
    case("multi-line data joined with LF", ["data: a\ndata: b\ndata: c\n\n"], [ev("a\nb\nc")]),
    case("empty data line inside data", ["data: a\ndata:\ndata: b\n\n"], [ev("a\n\nb")]),
    case("trailing empty data line keeps one LF", ["data: a\ndata:\n\n"], [ev("a\n")]),
    case("lone empty data line dispatches empty data", ["data:\n\n"], [ev("")]),
    case("two events", ["data: 1\n\ndata: 2\n\n"], [ev("1"), ev("2")]),
    case("BOM skipped at stream start", [BOM + b"data: x\n\n"], [ev("x")]),
    case("BOM split across chunks", [b"\xef", b"\xbb", b"\xbfdata: x\n\n"], [ev("x")]),
    case("BOM skipped only once", [BOM + BOM + b"data: x\n\ndata: y\n\n"], [ev("y")]),
    case("BOM after the first line is not skipped", [b"\n" + BOM + b"data: x\n\ndata: y\n\n"], [ev("y")]),
    case("partial BOM is line content", [b"\xef\xbb", b"data: x\n\ndata: y\n\n"], [ev("y")]),
    case("LF line endings", ["data: a\n\n"], [ev("a")]),
    case("CR line endings", ["data: a\rdata: b\r\r"], [ev("a\nb")]),
    case("CRLF line endings", ["data: a\r\ndata: b\r\n\r\n"], [ev("a\nb")]),
    case("mixed line endings", ["data: a\rdata: b\ndata: c\r\n\n"], [ev("a\nb\nc")]),
    case("CRLF split across chunks", ["data: a\r", "\ndata: b\r", "\n\r", "\n"], [ev("a\nb")]),
    case("CR at chunk end then a field", ["data: a\r", "data: b\r", "\r"], [ev("a\nb")]),
    case("CR CR is a blank line", ["data: a\r", "\r"], [ev("a")]),
    case("comment ignored", [": hi\ndata: a\n:\n\n"], [ev("a")]),
    case("comment between data lines does not dispatch", ["data: a\n: x\ndata: b\n\n"], [ev("a\nb")]),
    case("only comments dispatch nothing", [": one\n\n: two\n\n"], []),
    case("line without colon is a field with empty value", ["data\n\n"], [ev("")]),
    case("data line without colon appends an empty line", ["data: a\ndata\n\n"], [ev("a\n")]),
    case("no space after colon", ["data:x\n\n"], [ev("x")]),
    case("only one leading space dropped", ["data:  x \n\n"], [ev(" x ")]),
    case("leading space dropped in event and id", ["event:  t\nid:  1\ndata\n\n"], [ev("", " t", " 1")], last_event_id=" 1"),
    case("value may contain colons", ["data: a: b:c\n\n"], [ev("a: b:c")]),
    case("event type", ["event: add\ndata: x\n\n"], [ev("x", "add")]),
    case("empty event type means message", ["event\ndata: x\n\n"], [ev("x")]),
    case("event type reset after dispatch", ["event: t\ndata: a\n\ndata: b\n\n"], [ev("a", "t"), ev("b")]),
    case("event type reset by blank line without data", ["event: t\n\ndata: b\n\n"], [ev("b")]),
    case("id set", ["id: 1\ndata: a\n\n"], [ev("a", id="1")], last_event_id="1"),
    case("id persists across events", ["id: 1\ndata: a\n\ndata: b\n\n"], [ev("a", id="1"), ev("b", id="1")], last_event_id="1"),
    case("id with NUL ignored", ["id: 1\ndata: a\n\nid: 2\u0000x\ndata: b\n\n"], [ev("a", id="1"), ev("b", id="1")], last_event_id="1"),
    case("empty id resets", ["id: 1\ndata: a\n\nid\ndata: b\n\n"], [ev("a", id="1"), ev("b")]),
    case("id: with empty value resets", ["id: 1\ndata: a\n\nid:\ndata: b\n\n"], [ev("a", id="1"), ev("b")]),
    case("id sticks without data", ["id: 5\n\n"], [], last_event_id="5"),
    case("id from a data-less block carries to the next event", ["id: 5\n\ndata: x\n\n"], [ev("x", id="5")], last_event_id="5"),
    case("last event id changes only at the blank line", ["id: 1\n\nid: 2\n"], [], last_event_id="1"),
    case("id set after data still applies to that event", ["data: a\nid: 3\n\n"], [ev("a", id="3")], last_event_id="3"),
    case("retry digits", ["retry: 1500\ndata: x\n\n"], [ev("x")], retry=1500),
    case("retry applies without dispatch", ["retry: 10\n\n"], [], retry=10),
    case("retry with letters ignored", ["retry: 12a\n\n"], []),
    case("retry negative ignored", ["retry: -1\n\n"], []),
    case("retry decimal ignored", ["retry: 1.5\n\n"], []),
    case("retry empty ignored", ["retry:\n\n"], []),
    case("retry with two leading spaces ignored", ["retry:  10\n\n"], []),
    case("last valid retry wins", ["retry: 10\nretry: x\n\nretry: 20\n\nretry: 3s\n\n"], [], retry=20),
    case("unknown field ignored", ["foo: bar\ndata: x\n\n"], [ev("x")]),
    case("wrong-case fields ignored", ["Data: no\nID: 9\nEvent: t\nRetry: 5\ndata: x\n\n"], [ev("x")]),
    case("blank line without data dispatches nothing", ["\n\n\n"], []),
    case("unfinished final event dropped", ["data: a\n\ndata: b\n"], [ev("a")]),
    case("unterminated final line dropped", ["data: a"], []),
    case("invalid UTF-8 replaced", [b"data: a\xffb\n\n"], [ev("a\ufffdb")]),
    case("invalid UTF-8 in event and id", [b"event: \xc0t\nid: \xfe\ndata: x\n\n"], [ev("x", "\ufffdt", "\ufffd")], last_event_id="\ufffd"),
    case("truncated UTF-8 at line end does not stall", [b"data: \xe2\x82\n\ndata: ok\n\n"], [ev("\ufffd"), ev("ok")]),
    case("multi-byte character split across chunks", [b"data: \xe2", b"\x82", b"\xac\n", b"\n"], [ev("\u20ac")]),
    case("four-byte character split across chunks", [b"data: \xf0\x9f", b"\x98\x80\n\n"], [ev("\U0001F600")]),
    case("one byte per chunk", [c for c in "event: e\r\nid: 7\r\ndata: a\r\ndata: b\r\n\r\n"], [ev("a\nb", "e", "7")], last_event_id="7"),
    case("OpenAI-style stream", ['data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n', "data: [DONE]\n\n"],
         [ev('{"choices":[{"delta":{"content":"Hi"}}]}'), ev("[DONE]")]),
    case("Mercure-style stream", [":\n", "id: urn:uuid:1\nevent: update\nretry: 3000\ndata: {}\n\n"], [ev("{}", "update", "urn:uuid:1")], retry=3000, last_event_id="urn:uuid:1"),
]

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "parse-cases.json"), "w") as f:
    json.dump(cases, f, indent=1, ensure_ascii=True)
    f.write("\n")
