/** Builds the QEMU backend from the configuration (called from the composition root). */
import path from 'node:path';
import type { Config } from '../../config.js';
import type { Logger } from '../../logger.js';
import { QemuBackend } from './QemuBackend.js';

export function createQemuBackend(config: Config, deps: { log: Logger }): QemuBackend {
  return new QemuBackend({
    dataDir: path.resolve(config.DATA_DIR),
    imageDir: path.resolve(config.GUEST_IMAGE_DIR ?? path.join(config.TOOLS_DIR, 'images')),
    qemuBin: config.QEMU_BIN,
    accel: config.QEMU_ACCEL,
    maxVms: config.QEMU_MAX_VMS,
    maxMemoryMiB: config.QEMU_MAX_MEMORY_MIB,
    savedStates: config.QEMU_SAVED_STATES,
    log: deps.log,
  });
}
