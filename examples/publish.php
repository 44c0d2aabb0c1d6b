<?php
// Publish one update to an ssehub (or any Mercure) hub from PHP, with the curl extension.
//
//   HUB=http://127.0.0.1:8080/.well-known/mercure TOKEN=... php publish.php /demo/logs "hello from PHP"
//
// TOKEN is a publisher JWT: `ssehub serve` prints one on its first run.
$hub = getenv('HUB') ?: 'http://127.0.0.1:8080/.well-known/mercure';
[, $topic, $data] = $argv;

$curl = curl_init($hub);
curl_setopt_array($curl, [
    CURLOPT_POST => true,
    CURLOPT_POSTFIELDS => http_build_query(['topic' => $topic, 'data' => $data]),
    CURLOPT_HTTPHEADER => ['Authorization: Bearer ' . getenv('TOKEN')],
    CURLOPT_RETURNTRANSFER => true,
]);
$body = curl_exec($curl);
$status = curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
if ($body === false || $status !== 200) {
    fwrite(STDERR, "the hub answered $status: " . ($body ?: curl_error($curl)) . "\n");
    exit(1);
}
echo $body, "\n"; // the update's id
