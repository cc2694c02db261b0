/**
 * The one registry of dialects: every server family keysmith can log in to is declared here once,
 * and everything else derives from it — the `DialectName` type, `login --dialect` choices, the
 * flows each dialect accepts, the order of auto-detection and the (lazy) loader of its code.
 * This module is loaded at start-up (the command table reads the names), so it imports nothing:
 * each dialect's code loads only when it is used.
 */
import type { Dialect, DialectEnv } from '../dialect.js';

export interface DialectInfo {
  /** One line for help and completion. */
  description: string;
  /** How it logs in; the first is its default. `static`: a credential kept as given, no token exchange. */
  flows: readonly string[];
  /** `login --dialect auto` asks this, in registry order, whether `base` is such a server. */
  detect?: (env: DialectEnv, base: string) => Promise<boolean>;
  load: () => Promise<Dialect>;
}

export const DIALECTS = {
  tiled: {
    description: 'Tiled (password, or device flow for external providers)',
    flows: ['password', 'device'],
    detect: async (env, base) => Boolean(await (await import('./tiled.js')).discoverTiled(env, base)),
    load: async () => (await import('./tiled.js')).tiled,
  },
  oauth2: {
    description: 'OAuth 2.0 / OpenID Connect (device flow, client credentials)',
    flows: ['device', 'client-credentials'],
    detect: async (env, base) => Boolean(await (await import('./oauth2.js')).discover(env, base)),
    load: async () => (await import('./oauth2.js')).oauth2,
  },
  wavemaker: {
    description: 'WaveMaker (/services/security/token)',
    flows: ['password'],
    detect: async (env, base) => (await import('./wavemaker.js')).detectWavemaker(env, base),
    load: async () => (await import('./wavemaker.js')).wavemaker,
  },
  'basic-login': {
    description: 'POST /login with Basic, POST /refresh (the auth-adventures pattern)',
    flows: ['password', 'device'],
    load: async () => (await import('./basic-login.js')).basicLogin,
  },
  apikey: {
    description: 'a static API key, sent as a header (Authorization: Apikey KEY) or a query parameter',
    flows: ['static'],
    load: async () => (await import('./static.js')).apikey,
  },
  basic: {
    description: 'HTTP Basic with a user and password (nginx, Apache, Flask-HTTPAuth)',
    flows: ['static'],
    load: async () => (await import('./static.js')).basic,
  },
  digest: {
    description: 'HTTP Digest (RFC 7616 and RFC 2069) with a user and password',
    flows: ['static'],
    load: async () => (await import('./digest.js')).digest,
  },
  wave: {
    description: 'an H2O Wave access key pair, sent with HTTP Basic',
    flows: ['static'],
    load: async () => (await import('./static.js')).wave,
  },
} as const satisfies Record<string, DialectInfo>;

export type DialectName = keyof typeof DIALECTS;

export const DIALECT_NAMES = Object.keys(DIALECTS) as DialectName[];

export function dialectInfo(name: DialectName): DialectInfo {
  return DIALECTS[name];
}

export function isDialectName(name: string): name is DialectName {
  return Object.hasOwn(DIALECTS, name);
}

/** Dialects whose credential is kept as given (no token exchange, no refresh, no expiry). */
export function isStatic(name: DialectName): boolean {
  return (DIALECTS[name].flows as readonly string[]).includes('static');
}
