/**
 * node:http for `keysmith api`'s streaming transport (src/tokens/http.ts). A module of its own so
 * that the bundle loads it with a plain require() when a request needs it: an import() of a
 * built-in would start Node's ES module loader, which costs more than the request.
 */
export { request } from 'node:http';
