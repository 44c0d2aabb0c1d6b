// Compares a vitest JSON report of the Durable Streams conformance suite with
// expected-failures.txt and exits non-zero on any surprise: a failure that is not listed, or a
// listed failure that now passes (or no longer exists). Prints "N passed, N failed, N skipped".
//
// expected-failures.txt: one test per line, `<full test name> | <why it fails>`; `#` comments.
import { readFileSync } from "node:fs"

const [reportPath, expectedPath] = process.argv.slice(2)
const report = JSON.parse(readFileSync(reportPath, "utf8"))

const expected = new Map()
for (const raw of readFileSync(expectedPath, "utf8").split("\n")) {
  const line = raw.trim()
  if (!line || line.startsWith("#")) continue
  const bar = line.lastIndexOf(" | ")
  if (bar < 0) {
    console.error(`expected-failures.txt: no " | reason" in: ${line}`)
    process.exit(2)
  }
  expected.set(line.slice(0, bar).trim(), line.slice(bar + 3).trim())
}

const counts = { passed: 0, failed: 0, skipped: 0 }
const unexpected = []
const seen = new Set()
for (const file of report.testResults ?? []) {
  for (const t of file.assertionResults ?? []) {
    const name = t.fullName
    if (t.status === "passed") {
      counts.passed++
      if (expected.has(name)) unexpected.push(`now passes (remove it from expected-failures.txt): ${name}`)
    } else if (t.status === "failed") {
      counts.failed++
      if (expected.has(name)) seen.add(name)
      else unexpected.push(`failed: ${name}\n    ${(t.failureMessages ?? []).join("\n    ").split("\n").slice(0, 6).join("\n    ")}`)
    } else {
      counts.skipped++
    }
  }
  if (file.status === "failed" && (file.assertionResults ?? []).length === 0) {
    unexpected.push(`test file failed to run: ${file.name}: ${file.message ?? ""}`)
  }
}
for (const [name, why] of expected) {
  if (!seen.has(name) && !unexpected.some((u) => u.endsWith(name))) {
    unexpected.push(`listed as expected to fail but did not run: ${name} (${why})`)
  }
}
for (const name of seen) console.log(`expected failure: ${name} (${expected.get(name)})`)
for (const u of unexpected) console.log(`UNEXPECTED ${u}`)
console.log(`durable-streams: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`)
if (counts.passed === 0 || unexpected.length > 0) process.exit(1)
