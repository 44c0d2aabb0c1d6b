// Publish one update to an ssehub (or any Mercure) hub from Node (18+), with the built-in fetch.
//
//   HUB=http://127.0.0.1:8080/.well-known/mercure TOKEN=... node publish.mjs /demo/logs "hello from Node"
//
// TOKEN is a publisher JWT: `ssehub serve` prints one on its first run.
const hub = process.env.HUB ?? 'http://127.0.0.1:8080/.well-known/mercure';
const [topic, data] = process.argv.slice(2);

const response = await fetch(hub, {
  method: 'POST',
  headers: { Authorization: `Bearer ${process.env.TOKEN}` },
  body: new URLSearchParams({ topic, data }), // sent as application/x-www-form-urlencoded
});
if (!response.ok) {
  console.error(`the hub answered ${response.status}: ${await response.text()}`);
  process.exit(1);
}
console.log(await response.text()); // the update's id
