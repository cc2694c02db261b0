/**
 * End to end: the device flows of Tiled external providers and of /authorize-style servers
 * (auth-adventures), against the fixture servers; the test approves the code through their
 * /__admin/approve hook, as the user's browser round trip would.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { loginInBackground } from './helpers/device-login.js';
import { keysmith, oneErrorLine, tempHome } from './helpers/keysmith.js';
import { startServer, stopAllServers } from './helpers/servers.js';

afterAll(stopAllServers);

const JWT = /^[\w-]+\.[\w-]+\.[\w-]+$/;

describe('tiled external provider', () => {
  it('logs in with the device flow: the user opens authorization_uri, keysmith polls verification_uri', async () => {
    const server = await startServer('tiled', { providers: ['toy', 'orcid'], deviceInterval: 1 });
    const env = tempHome();
    const login = loginInBackground([server.url, '--provider', 'orcid'], env);
    const codes = await login.codes;
    // What the user opens is the identity provider's page, not the endpoint keysmith polls.
    expect(codes.verification_uri).toContain('/__idp/auth?');
    expect(codes.verification_uri_complete).toBeNull();
    expect(codes.user_code).toMatch(/^[0-9A-F]{4}-[0-9A-F]{4}$/);
    expect(codes.expires_in).toBe(900);
    await server.approve(codes.user_code, 'carol');
    const result = await login.result;
    expect(result.exitCode, String(result.stderr)).toBe(0);
    expect(result.stderr).toContain('Logged in to');
    expect(result.stderr).toContain('as carol');
    const token = await keysmith(['token'], { env });
    expect(token.stdout).toMatch(JWT);
    expect((await keysmith(['whoami'], { env })).stdout).toBe('carol');
    expect((await keysmith(['refresh'], { env })).exitCode).toBe(0);
    expect(await server.count('refresh')).toBe(1);
    expect(await server.count('authorize')).toBe(1);
  });

  it('--flow password with an external provider is a usage error', async () => {
    const server = await startServer('tiled', { providers: ['orcid'] });
    const result = await keysmith(['login', server.url, '--provider', 'orcid', '--flow', 'password'], { env: tempHome() });
    expect(result.exitCode).toBe(2);
    expect(oneErrorLine(result.stderr)).toMatch(/orcid logs in through a browser \(--flow device\)/);
  });

  it('stops when the code expires', async () => {
    const server = await startServer('tiled', { providers: ['orcid'], deviceInterval: 1, deviceExpiresIn: 2 });
    const result = await loginInBackground([server.url, '--provider', 'orcid'], tempHome()).result;
    expect(result.exitCode).toBe(1);
    expect(oneErrorLine(String(result.stderr))).toMatch(/^error: the code expired before the login was approved/);
  });
});

describe('basic-login --flow device', () => {
  it('logs in through POST /authorize and polls POST /token with the device code', async () => {
    const server = await startServer('basic-login', { deviceInterval: 1 });
    const env = tempHome();
    const login = loginInBackground([server.url, '--dialect', 'basic-login', '--flow', 'device'], env);
    const codes = await login.codes;
    expect(codes.user_code).toMatch(/^[0-9A-F]{8}$/);
    await server.approve(codes.user_code, 'dave');
    const result = await login.result;
    expect(result.exitCode, String(result.stderr)).toBe(0);
    expect(result.stderr).toContain('as dave');
    const token = await keysmith(['token'], { env });
    expect(token.stdout).toMatch(JWT);
    expect((await keysmith(['whoami'], { env })).stdout).toBe('dave');
    expect(await server.count('token')).toBeGreaterThanOrEqual(1);
  });

  it('wavemaker has no device flow', async () => {
    const server = await startServer('wavemaker', {});
    const result = await keysmith(['login', `${server.url}/Demo`, '--dialect', 'wavemaker', '--flow', 'device'], { env: tempHome() });
    expect(result.exitCode).toBe(2);
    expect(oneErrorLine(result.stderr)).toMatch(/wavemaker servers log in with --flow password, not device/);
  });
});
