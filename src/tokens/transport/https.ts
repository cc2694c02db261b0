/** node:https for `keysmith api`'s streaming transport; see ./http.ts for why it is a module of its own. */
export { request } from 'node:https';
