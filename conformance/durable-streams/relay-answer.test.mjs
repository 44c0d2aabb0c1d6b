// A relay answer read with the official Durable Streams client (@durable-streams/client, pinned
// in package-lock.json) at /v1/stream/__relay/{id}: part of it read while it is generated,
// the rest tailed over SSE from that offset to the close, the whole read again. The hub that
// scripts/test-durable-streams.sh starts relays to its built-in simulator, with no relay keys,
// so the answer's id is the capability.
import { describe, expect, test } from "vitest"
import { stream } from "@durable-streams/client"

const baseUrl = process.env.SSEHUB_STREAMS_URL
if (!baseUrl) {
  throw new Error("SSEHUB_STREAMS_URL is not set: run scripts/test-durable-streams.sh")
}

async function startAnswer() {
  const res = await fetch(`${baseUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: "ssehub-simulator",
      stream: true,
      messages: [{ role: "user", content: "Say a few words about durable streams." }],
    }),
  })
  expect(res.status).toBe(200)
  const id = res.headers.get("x-stream-id")
  expect(id).toMatch(/^strm_/)
  // The answer is generated whether or not this caller reads it.
  await res.body.cancel()
  return `${baseUrl}/v1/stream/__relay/${id}`
}

describe("relay answers as Durable Streams", () => {
  test("the client reads part of a running answer, resumes it over SSE to its close, and reads it again", async () => {
    const url = await startAnswer()

    // What a page had before a reload: a catch-up read, and its offset.
    const partial = await stream({ url, offset: "-1", live: false })
    const before = await partial.json()
    const offset = partial.offset

    // After the reload: the rest, tailed live until the relay's [DONE] closes the stream.
    const rest = await stream({ url, offset, live: "sse" })
    const after = []
    for await (const chunk of rest.jsonStream()) after.push(chunk)
    expect(rest.streamClosed).toBe(true)

    const whole = await stream({ url, offset: "-1", live: false })
    const all = await whole.json()
    expect(whole.streamClosed).toBe(true)
    expect([...before, ...after]).toEqual(all)
    expect(all.length).toBeGreaterThan(2)
    for (const c of all) expect(c.object).toBe("chat.completion.chunk")
  })

  test("writes to an answer are refused", async () => {
    const url = await startAnswer()
    for (const method of ["PUT", "POST", "DELETE"]) {
      const res = await fetch(url, {
        method,
        headers: { "content-type": "application/json" },
        body: method === "DELETE" ? undefined : "[{}]",
      })
      expect(res.status).toBe(405)
      expect(await res.text()).toContain("read-only")
    }
  })
})
