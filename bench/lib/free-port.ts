// One implementation, shared with the tests' service harnesses.
export { freePort } from '../../test/helpers/free-port.js';
