import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["conformance.test.mjs", "relay-answer.test.mjs"],
    // The machine is shared with other builds; the suite's own per-test timeouts still apply
    // where it sets them.
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
})
