// Starts the Node reference Durable Streams server (@durable-streams/server, pinned in
// package-lock.json) for scripts/bench-durable-streams.sh.
//   node serve.mjs PORT            in memory
//   node serve.mjs PORT DATA_DIR   file-backed (append logs + LMDB, fdatasync per append)
// Prints "listening URL" once ready; stops on SIGTERM/SIGINT.
import { DurableStreamTestServer } from "@durable-streams/server";

const [port, dataDir] = process.argv.slice(2);
const server = new DurableStreamTestServer({
  host: "127.0.0.1",
  port: Number(port ?? 0),
  dataDir: dataDir || undefined,
});
const url = await server.start();
console.log(`listening ${url}`);
const stop = async () => {
  await server.stop();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
