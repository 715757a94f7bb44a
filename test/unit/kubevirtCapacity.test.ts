/** KubeVirt capacity: the operator's limits against the labs the namespace informer knows and the ones admitted in flight. */
import assert from 'node:assert/strict';
import { CapacityLedger, footprint, type LabUsage } from '../../src/backends/kubevirt/capacity.js';
import { VM_OVERHEAD_MIB } from '../../src/backends/kubevirt/manifests.js';
import { CapacityExhausted } from '../../src/errors.js';
import type { BackendLabSpec } from '../../src/backends/types.js';

function spec(vms: number, containers = 0, memoryMiB = 512): BackendLabSpec {
  const m = (kind: 'vm' | 'container', i: number) => ({ name: `${kind}${i}`, kind, image: 'lab-tiny', cpus: 1, memoryMiB, channels: ['console' as const] });
  return { labId: 'net-basics', labVersion: '1', network: { internetEgress: false }, machines: [...Array.from({ length: vms }, (_, i) => m('vm', i)), ...Array.from({ length: containers }, (_, i) => m('container', i))] };
}

describe('KubeVirt capacity', () => {
  it('counts a lab as its quota does: VMs with the virt-launcher overhead, containers by their memory', () => {
    assert.deepEqual(footprint(spec(2, 1, 512)), { vms: 2, memoryMiB: 3 * 512 + 2 * VM_OVERHEAD_MIB });
  });

  it('counts running labs, not stopped ones, and reports the operator limits', () => {
    const labs: LabUsage[] = [
      { name: 'lab-a', spec: spec(2), stopped: false },
      { name: 'lab-b', spec: spec(1), stopped: true },
      { name: 'lab-c', spec: undefined, stopped: false }, // no stored spec yet: nothing known to count
    ];
    const c = new CapacityLedger({ maxVms: 4, maxMemoryMiB: 8192 }, () => labs).current();
    assert.deepEqual(c, { maxVms: 4, maxMemoryMiB: 8192, usedVms: 2, usedMemoryMiB: 2 * (512 + VM_OVERHEAD_MIB) });
  });

  it('refuses a lab over the VM or the memory limit with CapacityExhausted, and admits one that fits', () => {
    const labs: LabUsage[] = [{ name: 'lab-a', spec: spec(2), stopped: false }];
    const byVms = new CapacityLedger({ maxVms: 3 }, () => labs);
    assert.throws(() => byVms.admit('lab-b', spec(2)), (e: unknown) => e instanceof CapacityExhausted && /Capacity reached/.test(e.publicMessage));
    byVms.admit('lab-b', spec(1));
    const byMemory = new CapacityLedger({ maxMemoryMiB: 3 * (512 + VM_OVERHEAD_MIB) }, () => labs);
    assert.throws(() => byMemory.admit('lab-c', spec(1, 1)), CapacityExhausted);
    byMemory.admit('lab-c', spec(1));
  });

  it('a lab admitted in flight holds its place until released, so two provisions never share the last one', () => {
    const labs: LabUsage[] = [];
    const l = new CapacityLedger({ maxVms: 2 }, () => labs);
    l.admit('lab-a', spec(2));
    assert.throws(() => l.admit('lab-b', spec(1)), CapacityExhausted);
    labs.push({ name: 'lab-a', spec: spec(2), stopped: false }); // its namespace appears: counted once, not twice
    assert.equal(l.current().usedVms, 2);
    l.release('lab-a');
    assert.equal(l.current().usedVms, 2, 'still counted through its namespace');
    labs.pop(); // destroyed
    l.admit('lab-b', spec(1));
  });

  it('provisioning an existing lab again (same name) is not counted against itself; no limit set admits everything', () => {
    const labs: LabUsage[] = [{ name: 'lab-a', spec: spec(2), stopped: false }];
    new CapacityLedger({ maxVms: 2 }, () => labs).admit('lab-a', spec(2));
    const open = new CapacityLedger({}, () => labs);
    open.admit('lab-z', spec(100));
    assert.deepEqual(open.current(), { usedVms: 102, usedMemoryMiB: 102 * (512 + VM_OVERHEAD_MIB) });
  });
});
