import { describe, expect, it } from 'vitest';
import { colourLevel } from '../src/io/colour.js';
import { main } from '../src/cli.js';
import { fakeCtx } from './helpers/ctx.js';

describe('colour', () => {
  it.each([
    [{}, false, 0],
    [{}, true, 1],
    [{ NO_COLOR: '1' }, true, 0],
    [{ NO_COLOR: '1', FORCE_COLOR: '3' }, false, 0],
    [{ FORCE_COLOR: '1' }, false, 1],
    [{ FORCE_COLOR: '0' }, true, 0],
    [{ FORCE_COLOR: '' }, false, 1],
    [{ TERM: 'dumb' }, true, 0],
  ])('env %j, terminal %s → level %i', (env, tty, level) => {
    expect(colourLevel(fakeCtx({ env, tty }).ctx, 'stderr')).toBe(level);
  });

  it('never colours errors on a pipe, and colours them when forced', async () => {
    const plain = fakeCtx();
    expect(await main(['remove-access-key', 'X', '-k', '/nonexistent/dir/kc'], plain.ctx)).toBe(1);
    expect(plain.stderr()).toMatch(/^error: /);
    const forced = fakeCtx({ env: { FORCE_COLOR: '1' } });
    await main(['remove-access-key', 'X', '-k', '/nonexistent/dir/kc'], forced.ctx);
    expect(forced.stderr()).toContain('\u001b[31m');
  });
});
