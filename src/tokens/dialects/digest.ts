/** HTTP Digest (RFC 7616, RFC 2069). (Being written.) */
import { KeysmithError } from '../../io/errors.js';
import type { Dialect } from '../dialect.js';

const no = () => Promise.reject(new KeysmithError('digest profiles are not supported yet', 2));
export const digest: Dialect = { name: 'digest', login: no, refresh: no };
