// The official Durable Streams server conformance suite, run against a running ssehub.
// scripts/test-durable-streams.sh starts the hub and sets SSEHUB_STREAMS_URL.
import { describe } from "vitest"
import { runConformanceTests } from "@durable-streams/server-conformance-tests"

const baseUrl = process.env.SSEHUB_STREAMS_URL
if (!baseUrl) {
  throw new Error("SSEHUB_STREAMS_URL is not set: run scripts/test-durable-streams.sh")
}

describe("ssehub", () => {
  runConformanceTests({ baseUrl })
})
