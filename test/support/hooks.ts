/** Mocha root hooks: one FerretDB for the whole run, stopped at the end; likewise the Kubernetes
 * control plane and KubeVirt stand-in, which start lazily on first use (test/support/k8s/). */
import { startSharedFerret, stopSharedFerret } from './ferret.js';
import { stopSharedControlPlane } from './k8s/controlPlane.js';
import { stopSharedKubeVirt } from './kubevirt-standin/launcher.js';

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(60_000);
    await startSharedFerret();
  },
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    try {
      await stopSharedKubeVirt();
    } finally {
      try {
        await stopSharedControlPlane();
      } finally {
        await stopSharedFerret();
      }
    }
  },
};
