// Benchmark cases for the secret commands (issue 4). The runner (bench/run.mjs) times each argv
// against `node -e 0`; `limit` is the largest ratio allowed.
export default async function secrets(_b) {
  return [
    { name: 'generate-secret', argv: ['generate-secret'], limit: 1.2 },
    { name: 'generate-secret --count 100000', argv: ['generate-secret', '--count', '100000'], limit: 1.5 },
  ];
}
