/** Image catalogs for tests. */
import path from 'node:path';

/** IMAGE_CATALOG for tools on the KubeVirt stand-in: containerDisk references it maps back to this host's images. */
export const STANDIN_IMAGE_CATALOG = path.resolve('test/fixtures/images/kubevirt-standin.yaml');
