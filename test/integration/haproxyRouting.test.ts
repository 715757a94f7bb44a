/**
 * The repository's deploy/haproxy.cfg in a real HAProxy, in front of three plain HTTP servers that
 * answer with their own name (what is under test is the proxy's routing, not the tool): when one
 * of them dies, every lab it served is sent, from the first retried request on, to the replica that
 * lab keeps hashing to once the health checks have marked the dead one down. Otherwise a lab's
 * sockets reconnected right after the death and those opened later would land on two replicas.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { startHaproxy, type Proxy } from '../support/replicas.js';
import { waitFor } from '../support/tool.js';

describe('HAProxy routing of labs when a replica dies (deploy/haproxy.cfg, three plain servers)', function () {
  this.timeout(60_000);
  const servers: http.Server[] = [];
  /** When the proxy last checked each server's health. */
  const checked: number[] = [0, 0, 0];
  let proxy: Proxy;

  before(async () => {
    for (let i = 1; i <= 3; i++) {
      const s = http.createServer((req, res) => {
        if (req.url === '/healthz') checked[i - 1] = Date.now();
        res.setHeader('x-served-by', `tool${i}`); res.end('{}'); });
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      servers.push(s);
    }
    proxy = await startHaproxy(...servers.map((s) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`));
  });
  after(async () => {
    proxy?.child.kill();
    await proxy?.exited;
    for (const s of servers) { s.closeAllConnections(); s.close(); }
  });

  const servedBy = async (id: string): Promise<string> => {
    const res = await fetch(`${proxy.url}/api/instances/${id}/state`, { headers: { connection: 'close' } });
    assert.equal(res.status, 200, `lab ${id} answered through the proxy`);
    return res.headers.get('x-lab-replica')!;
  };

  it('moves each of the dead replica\'s labs once, straight to the replica it hashes to afterwards', async () => {
    const ids = Array.from({ length: 240 }, () => randomBytes(8).toString('hex'));
    const before = new Map<string, string>();
    for (const id of ids) before.set(id, await servedBy(id));
    for (const id of ids) assert.equal(await servedBy(id), before.get(id), 'a lab keeps its replica while all are up');
    const orphans = ids.filter((id) => before.get(id) === 'tool1');
    assert.ok(orphans.length >= 20, `tool1 served ${orphans.length} of ${ids.length} labs`);

    // die half a check interval after a check (2 s apart): the first requests below are retried
    // while the proxy still counts tool1 as up, as when a replica dies between two checks
    const seen = checked[0]!;
    await waitFor(() => checked[0]! > seen, 10_000, 'the proxy to check tool1');
    await new Promise((r) => setTimeout(r, 500));
    servers[0]!.closeAllConnections();
    await new Promise<void>((r) => servers[0]!.close(() => r()));
    const right = new Map<string, string>();
    for (const id of orphans) right.set(id, await servedBy(id));
    for (const [id, to] of right) assert.notEqual(to, 'tool1', `lab ${id} answered by a living replica`);
    await waitFor(() => /tool1 is DOWN/.test(proxy.log()), 15_000, 'the proxy to mark tool1 down');
    const later = new Map<string, string>();
    for (const id of orphans) later.set(id, await servedBy(id));
    const split = orphans.filter((id) => later.get(id) !== right.get(id));
    assert.deepEqual(split.map((id) => `${id}: ${right.get(id)} then ${later.get(id)}`), [], 'every lab stays where its first request after the death went');
    for (const id of ids.filter((i) => before.get(i) !== 'tool1')) assert.equal(await servedBy(id), before.get(id), 'the other replicas\' labs do not move');
  });
});
