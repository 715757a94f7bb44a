/** Mocha root hooks: one FerretDB for the whole run, stopped at the end. */
import { startSharedFerret, stopSharedFerret } from './ferret.js';

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(60_000);
    await startSharedFerret();
  },
  async afterAll(this: Mocha.Context) {
    this.timeout(30_000);
    await stopSharedFerret();
  },
};
