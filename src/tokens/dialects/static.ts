/** Static credentials: API keys, HTTP Basic, H2O Wave access keys. (Being written.) */
import { KeysmithError } from '../../io/errors.js';
import type { Dialect } from '../dialect.js';

function pending(name: Dialect['name']): Dialect {
  const no = () => Promise.reject(new KeysmithError(`${name} profiles are not supported yet`, 2));
  return { name, login: no, refresh: no };
}
export const apikey = pending('apikey');
export const basic = pending('basic');
export const wave = pending('wave');
