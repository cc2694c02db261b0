/**
 * The safety policy's pieces, one by one: the HTTP seam (redirects stay on their origin, answers
 * are capped), the checks of what servers send (lifetimes, intervals, token characters), and the
 * escaping of server text before it reaches a terminal. End-to-end cases against a hostile server
 * are in trust-http.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { hasUnsafeChars, printable, redactUrlPasswords, safeLine } from '../src/io/escape.js';
import { checkSession, lifetimeSeconds, sessionFromTokenBody } from '../src/tokens/dialect.js';
import { codeLifetime, pollInterval } from '../src/tokens/flows/device.js';
import { MAX_BODY, checkSameOrigin, guardFetch, serverMessage, type Fetch, type HttpResponse } from '../src/tokens/http.js';

interface Seen {
  url: string;
  method: string;
  body: string | null;
  headers: Record<string, string>;
  redirect: string | undefined;
}

/** A fetch that answers from a script and records what it was asked. */
function scripted(answer: (url: URL, seen: Seen) => Response): { fetch: Fetch; seen: Seen[] } {
  const seen: Seen[] = [];
  const fetchFn = (async (input: string, init: RequestInit = {}) => {
    const entry: Seen = {
      url: input,
      method: init.method ?? 'GET',
      body: typeof init.body === 'string' ? init.body : init.body == null ? null : String(init.body),
      headers: Object.fromEntries(new Headers(init.headers).entries()),
      redirect: init.redirect,
    };
    seen.push(entry);
    return answer(new URL(input), entry);
  }) as unknown as Fetch;
  return { fetch: fetchFn, seen };
}

function redirect(status: number, location: string): Response {
  return new Response(null, { status, headers: { location } });
}

const A = 'http://127.0.0.1:1001';
const B = 'http://127.0.0.1:1002';

describe('guardFetch: redirects', () => {
  it.each([301, 302, 303, 307, 308])('refuses a %i to another origin, naming both, and sends nothing there', async (status) => {
    const { fetch, seen } = scripted((url) => (url.origin === A ? redirect(status, `${B}/login`) : Response.json({ stolen: true })));
    const err = await guardFetch(fetch)(`${A}/login`, { method: 'POST', body: 'password=hunter2' }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain(A);
    expect((err as Error).message).toContain(B);
    expect(seen.map((s) => s.url)).toEqual([`${A}/login`]);
    expect(seen[0]!.redirect).toBe('manual');
  });

  it('refuses https → http on the same host, and says it is a downgrade', async () => {
    const { fetch, seen } = scripted(() => redirect(307, 'http://id.example/token'));
    const err = (await guardFetch(fetch)('https://id.example/token', { method: 'POST', body: 'x' }).catch((e: Error) => e)) as Error;
    expect(err.message).toMatch(/from https:\/\/id\.example to http:\/\/id\.example \(from https down to plain http\)/);
    expect(seen).toHaveLength(1);
  });

  it('refuses a hop to another origin after a same-origin hop', async () => {
    const { fetch, seen } = scripted((url) => (url.pathname === '/login' ? redirect(307, '/login-2') : url.origin === A ? redirect(308, `${B}/x`) : Response.json({})));
    const err = (await guardFetch(fetch)(`${A}/login`, { method: 'POST', body: 'p' }).catch((e: Error) => e)) as Error;
    expect(err.message).toContain(B);
    expect(seen.map((s) => s.url)).toEqual([`${A}/login`, `${A}/login-2`]);
  });

  it('follows same-origin 307/308 with method, body and headers; 303 and a POST 301/302 become a GET', async () => {
    for (const [status, method, body] of [[307, 'POST', 'a=1'], [308, 'POST', 'a=1'], [303, 'GET', null], [301, 'GET', null], [302, 'GET', null]] as const) {
      const { fetch, seen } = scripted((url) => (url.pathname === '/start' ? redirect(status, '/end') : Response.json({ ok: true })));
      const res = await guardFetch(fetch)(`${A}/start`, { method: 'POST', body: 'a=1', headers: { authorization: 'Basic x', 'content-type': 'application/x-www-form-urlencoded' } });
      expect(await res.json()).toEqual({ ok: true });
      expect(seen[1]).toMatchObject({ url: `${A}/end`, method, body });
      expect(seen[1]!.headers.authorization).toBe('Basic x');
      if (method === 'GET') expect(seen[1]!.headers['content-type']).toBeUndefined();
    }
  });

  it('gives up after 5 same-origin hops', async () => {
    const { fetch, seen } = scripted((url) => redirect(302, `/hop${Number(url.pathname.slice(4) || 0) + 1}`));
    const err = (await guardFetch(fetch)(`${A}/hop0`).catch((e: Error) => e)) as Error;
    expect(err.message).toMatch(/redirected more than 5 times/);
    expect(seen).toHaveLength(6);
  });

  it('returns a 3xx without a Location as it is', async () => {
    const { fetch } = scripted(() => new Response('moved', { status: 302 }));
    expect((await guardFetch(fetch)(`${A}/`)).status).toBe(302);
  });
});

describe('guardFetch: answers are capped', () => {
  it('reads an answer up to the cap, and names the server in the response', async () => {
    const body = 'x'.repeat(MAX_BODY);
    const { fetch } = scripted(() => new Response(body));
    const res = await guardFetch(fetch)(`${A}/big`);
    expect((await res.text()).length).toBe(MAX_BODY);
    expect(res.url).toBe(`${A}/big`);
  });

  it('refuses an answer one byte over the cap, whether or not it declares its length', async () => {
    const { fetch } = scripted(() => new Response('x'.repeat(MAX_BODY + 1)));
    await expect(guardFetch(fetch)(`${A}/big`)).rejects.toThrow(/larger than 1 MiB/);
    const declared = scripted(() => new Response('{}', { headers: { 'content-length': String(10 * MAX_BODY) } }));
    await expect(guardFetch(declared.fetch)(`${A}/big`)).rejects.toThrow(/larger than 1 MiB/);
  });

  it('stops reading an endless answer at the cap and cancels it', async () => {
    let pulled = 0;
    let cancelled = false;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        controller.enqueue(new Uint8Array(64 * 1024).fill(0x20));
      },
      cancel() {
        cancelled = true;
      },
    });
    const { fetch } = scripted(() => new Response(endless));
    await expect(guardFetch(fetch)(`${A}/endless`)).rejects.toThrow(/larger than 1 MiB/);
    expect(cancelled).toBe(true);
    expect(pulled).toBeLessThanOrEqual(MAX_BODY / (64 * 1024) + 2);
  });
});

describe('checkSameOrigin', () => {
  it('accepts the server\'s own absolute and relative links, refuses any other origin', () => {
    expect(checkSameOrigin(`${A}/api/v1/auth/session/refresh`, `${A}/`, 'refresh')).toBe(`${A}/api/v1/auth/session/refresh`);
    expect(checkSameOrigin('/api/v1/auth/whoami', A, 'whoami')).toBe(`${A}/api/v1/auth/whoami`);
    expect(() => checkSameOrigin(`${B}/refresh`, A, 'refresh_session link')).toThrow(/named http:\/\/127\.0\.0\.1:1002 as its refresh_session link/);
    expect(() => checkSameOrigin('http://127.0.0.1:1001/x', 'https://127.0.0.1:1001', 'x')).toThrow(/http:\/\/127\.0\.0\.1:1001/);
  });
});

describe('what servers send is checked before it is saved', () => {
  it('lifetimes: positive seconds up to ten years; absent or null is unknown; anything else refuses the answer', () => {
    expect(lifetimeSeconds({ expires_in: 3600 }, 'expires_in', 'login')).toBe(3600);
    expect(lifetimeSeconds({ expires_in: '3600' }, 'expires_in', 'login')).toBe(3600);
    expect(lifetimeSeconds({ expires_in: 900.5 }, 'expires_in', 'login')).toBe(900.5);
    expect(lifetimeSeconds({}, 'expires_in', 'login')).toBeUndefined();
    expect(lifetimeSeconds({ expires_in: null }, 'expires_in', 'login')).toBeUndefined();
    for (const bad of [-1, 0, Number.NaN, Infinity, 1e308, 2 ** 53, 11 * 365 * 24 * 3600, '3600abc', 'NaN', '', '-5', {}, [], true]) {
      expect(() => lifetimeSeconds({ expires_in: bad }, 'expires_in', 'login'), JSON.stringify(bad)).toThrow(/login: the server's expires_in is not a usable number of seconds/);
    }
  });

  it('a token answer with an absurd refresh_token_expires_in is refused as a whole', () => {
    expect(() => sessionFromTokenBody({ access_token: 'a', refresh_token: 'r', refresh_token_expires_in: -60 }, 0, 'refresh')).toThrow(/refresh_token_expires_in/);
  });

  it('a JWT exp that is not a finite number leaves the expiry unknown', () => {
    const jwt = (claims: object) => `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;
    expect(sessionFromTokenBody({ access_token: jwt({ exp: 'soon' }) }, 0).expiresAt).toBeUndefined();
    expect(sessionFromTokenBody({ access_token: jwt({ exp: 2_000_000_000 }) }, 0).expiresAt).toBe(2_000_000_000_000);
  });

  it('device-flow interval: never below 1 s or above 60 s; 5 s when not a number', () => {
    expect(pollInterval(0)).toBe(1);
    expect(pollInterval(-3)).toBe(1);
    expect(pollInterval(0.01)).toBe(1);
    expect(pollInterval(1e9)).toBe(60);
    expect(pollInterval('7')).toBe(7);
    for (const bad of [undefined, null, 'x', {}, Number.NaN, Infinity]) expect(pollInterval(bad)).toBe(5);
  });

  it('device-flow code lifetime: positive, at most an hour; 900 s otherwise', () => {
    expect(codeLifetime(600)).toBe(600);
    expect(codeLifetime(1e12)).toBe(3600);
    for (const bad of [0, -1, undefined, 'soon', Infinity]) expect(codeLifetime(bad)).toBe(900);
  });

  it('tokens are visible ASCII: CR, LF, space, controls and non-ASCII are refused', () => {
    const ok = { accessToken: 'eyJ.a-b_c~d+e/f=', tokenType: 'bearer', obtainedAt: 0, refreshToken: 'r.1' };
    expect(checkSession(ok, 'login')).toBe(ok);
    for (const bad of ['abc\r\nX-Injected: 1', 'abc def', 'abc\u001b[2Jdef', 'tökén', 'a\tb', '', 'a\u007f']) {
      expect(() => checkSession({ ...ok, accessToken: bad }, 'login'), JSON.stringify(bad)).toThrow(/access token has characters a token cannot have/);
      expect(() => checkSession({ ...ok, refreshToken: bad }, 'refresh'), JSON.stringify(bad)).toThrow(/refresh: the server's refresh token/);
    }
    expect(() => checkSession({ ...ok, tokenType: 'X-Evil\r\nHost' }, 'login')).toThrow(/token type/);
  });
});

describe('server text on a terminal', () => {
  it('escapes controls, DEL, C1, bidi and zero-width characters; keeps other text', () => {
    expect(printable('bad\u001b[2J\r\nline\u0007')).toBe('bad\\u001b[2J\\u000d\\u000aline\\u0007');
    expect(printable('a\u009bb\u007fc')).toBe('a\\u009bb\\u007fc');
    expect(printable('user\u202egnp.exe\u200b')).toBe('user\\u202egnp.exe\\u200b');
    expect(printable('a\u2028b')).toBe('a\\u2028b');
    expect(printable('Grüße, 東京 ✓')).toBe('Grüße, 東京 ✓');
    expect(hasUnsafeChars('fine')).toBe(false);
    expect(hasUnsafeChars('x\u2066')).toBe(true);
  });

  it('cuts long text', () => {
    expect(printable('x'.repeat(10), 4)).toBe('xxxx…');
  });

  it('blanks out passwords written inside URLs, anywhere in a message', () => {
    expect(redactUrlPasswords('cannot reach http://u:pr0xyPW@127.0.0.1:1/ now')).toBe('cannot reach http://u:***@127.0.0.1:1/ now');
    expect(redactUrlPasswords('https://alice:s3c:ret@host/x and https://bob@host')).toBe('https://alice:***@host/x and https://bob@host');
    expect(safeLine('not a URL: "http://a:pw@[bad"\n')).toBe('not a URL: "http://a:***@[bad"\\u000a');
  });

  it('serverMessage: one escaped line of at most 300 characters', () => {
    const res = (json: unknown, text = JSON.stringify(json)): HttpResponse => ({ status: 400, statusText: 'Bad Request', headers: new Headers(), text, json, url: A });
    expect(serverMessage(res({ error: 'invalid_grant', error_description: 'gone\u001b]0;pwned\u0007\r\nerror: fake' }))).toBe('invalid_grant: gone\\u001b]0;pwned\\u0007\\u000d\\u000aerror: fake');
    expect(serverMessage(res({ detail: 'x'.repeat(5000) }))).toHaveLength(301);
    expect(serverMessage(res(undefined, '\u001b[31mplain\u001b[0m text\nsecond line'))).toBe('\\u001b[31mplain\\u001b[0m text');
  });
});
