// Benchmarks of the kubectl exec plugin (issue 13): kubectl runs `keysmith kube-credential` for
// every command, so with a cached valid token it must start as fast as `token`:
// <= 1.25x `node -e 0`, with the token in the 0600 session file (no keyring, no network).
// For information: the same with KUBERNETES_EXEC_INFO asking for v1beta1, and `token` itself.
import { writeLoggedInProfile } from '../lib/session.mjs';

export default async function kube(b) {
  const env = writeLoggedInProfile(b.tmp, {
    name: 'bench-kube',
    url: 'https://tiled.example.com',
    dialect: 'tiled',
    provider: 'toy',
    username: 'alice',
  });
  const info = (version) => JSON.stringify({ kind: 'ExecCredential', apiVersion: `client.authentication.k8s.io/${version}`, spec: { interactive: false } });
  return [
    { name: 'kube-credential (cached valid token, v1)', argv: ['kube-credential'], env: { ...env, KUBERNETES_EXEC_INFO: info('v1') }, limit: 1.25 },
    { name: 'kube-credential (cached valid token, v1beta1)', argv: ['kube-credential', '--profile', 'bench-kube'], env: { ...env, KUBERNETES_EXEC_INFO: info('v1beta1') } },
  ];
}
