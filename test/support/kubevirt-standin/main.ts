/**
 * The KubeVirt stand-in process (test infrastructure, never shipped): plays KubeVirt's controllers
 * and virt-api against a real API server, booting real QEMU guests. Started by launcher.ts:
 *
 *   node --import tsx test/support/kubevirt-standin/main.ts
 *   env: STANDIN_KUBECONFIG, STANDIN_TLS_CERT, STANDIN_TLS_KEY, STANDIN_WORK_DIR, STANDIN_PORT (0),
 *        STANDIN_IMAGE_DIR (default: the guest images in the tools cache),
 *        STANDIN_KUBELET_CERT, STANDIN_KUBELET_KEY (the node's kubelet), STANDIN_CLIENT_CA (the CA of
 *        the API server's kubelet client certificate),
 *        STANDIN_SERIAL_CONSOLE_LOG=default-on (the KubeVirt CR does not set disableSerialConsoleLog;
 *        default: it does, so only VMIs asking for logSerialConsole get a guest-console-log container)
 *
 * Namespaces marked under <work dir>/without-guests/ get guests without QEMU (paperGuests.ts).
 * Prints "READY <base url>" on stdout once it watches and serves. Stops every guest and exits on
 * SIGTERM/SIGINT, or when stdin closes (the parent died).
 */
import * as k8s from '@kubernetes/client-node';
import { createLogger } from '../../../src/logger.js';
import { KubeClient } from './kube.js';
import { StandInController } from './controller.js';
import { SubresourceServer } from './api.js';
import { createGuestRuntime } from './qemuGuests.js';
import { StandInCdi } from './cdi.js';
import { withPaperGuests } from './paperGuests.js';
import { ContainerDiskPuller } from './containerDisks.js';
import { StandInKubelet } from './kubelet.js';
import { NODE_NAME } from './controller.js';
import path from 'node:path';
import { defaultToolsDir } from '../../../src/config.js';

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
}

async function main(): Promise<void> {
  const log = createLogger({ level: process.env.STANDIN_LOG_LEVEL ?? 'info', format: 'json', destination: process.stderr });
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(env('STANDIN_KUBECONFIG'));
  const kube = new KubeClient(kc);
  // one node: the kubelet's pulls (containerDisks) and CDI's imports share one image store
  const puller = new ContainerDiskPuller(path.join(env('STANDIN_WORK_DIR'), 'containerdisks'), log.child({ component: 'pull' }));
  const runtime = withPaperGuests(await createGuestRuntime({ workDir: env('STANDIN_WORK_DIR'), log, puller }), env('STANDIN_WORK_DIR'), log);
  const controller = new StandInController(kc, kube, runtime, log.child({ component: 'controller' }), process.env.STANDIN_SERIAL_CONSOLE_LOG !== 'default-on');
  const kubelet = new StandInKubelet({
    kc, kube, nodeName: NODE_NAME, log: log.child({ component: 'kubelet' }),
    tlsCert: env('STANDIN_KUBELET_CERT'), tlsKey: env('STANDIN_KUBELET_KEY'), clientCa: env('STANDIN_CLIENT_CA'),
    consoleLogOf: (uid) => controller.consoleLogOf(uid),
  });
  await kubelet.start();
  const api = new SubresourceServer({ kube, controller, tlsCert: env('STANDIN_TLS_CERT'), tlsKey: env('STANDIN_TLS_KEY'), log: log.child({ component: 'virt-api' }) });
  const url = await api.listen(Number(process.env.STANDIN_PORT ?? 0));
  await controller.start();
  const cdi = new StandInCdi(kc, kube, {
    workDir: env('STANDIN_WORK_DIR'),
    imagesDir: process.env.STANDIN_IMAGE_DIR ?? path.join(defaultToolsDir(), 'images'),
    log: log.child({ component: 'cdi' }),
    puller,
    // KubeVirt's VM controller watches the DataVolumes it owns
    onDataVolume: (dv) => {
      const owner = dv.metadata.ownerReferences?.find((r) => r.kind === 'VirtualMachine');
      if (owner) controller.enqueue(`${dv.metadata.namespace}/${owner.name}`);
    },
  });
  await cdi.start();

  let stopping: Promise<void> | undefined;
  const stop = (why: string): Promise<void> => {
    stopping ??= (async () => {
      log.info({ why }, 'standin.stopping');
      await api.close().catch(() => undefined);
      await cdi.stop().catch(() => undefined);
      await controller.stop().catch((err: unknown) => log.warn({ err: String(err) }, 'standin.stop.failed'));
      await kubelet.stop().catch(() => undefined);
      log.info('standin.stopped');
      process.exit(0);
    })();
    return stopping;
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.stdin.on('end', () => void stop('stdin closed'));
  process.stdin.on('error', () => void stop('stdin error'));
  process.stdin.resume();
  log.info({ url }, 'standin.ready');
  process.stdout.write(`READY ${url}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`kubevirt-standin: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
