/**
 * The free pool labs of an activity as this process read them last, shared by its launches: forty
 * students launching at once read the list once (one scan of the lab records, which FerretDB answers
 * only by scanning) instead of forty times, and each launch here is offered a lab no other launch
 * here was offered. Another replica's launches may take the same labs meanwhile: the claim's insert
 * decides (store/WarmLabs.ts), a lost try moves on to the next lab. A list lives LIST_TTL_MS; an
 * empty one is read again by the next launch (labs that became ready are offered at once).
 */
import { unclaimedPoolLabs, type PoolLabSource } from '../store/WarmLabs.js';
import type { LabInstanceDoc } from '../store/LabInstance.js';

const LIST_TTL_MS = 2_000;

interface List {
  until: number;
  labs: LabInstanceDoc[];
}

export class PoolLabList implements PoolLabSource {
  private readonly lists = new Map<string, List>();
  private readonly loading = new Map<string, Promise<List>>();

  constructor(private readonly now: () => number = Date.now) {}

  async next(activityId: string, labVersion: string): Promise<LabInstanceDoc | undefined> {
    const key = `${activityId}\n${labVersion}`;
    const known = this.lists.get(key);
    const list = known && known.until > this.now() && known.labs.length > 0 ? known : await this.load(key, activityId, labVersion);
    return list.labs.pop();
  }

  /** A lab given back to the pool here (its next round) is offered again at once, not after the next read. */
  giveBack(lab: LabInstanceDoc): void {
    const list = this.lists.get(`${lab.activityId}\n${lab.labVersion}`);
    if (list && list.until > this.now()) list.labs.push(lab);
  }

  /** A cancelled session's labs are offered no more (its labs are going). */
  dropSession(sessionId: string): void {
    for (const list of this.lists.values()) list.labs = list.labs.filter((l) => l.warmSession !== sessionId);
  }

  /** One read per list, however many launches wait for it. */
  private load(key: string, activityId: string, labVersion: string): Promise<List> {
    let p = this.loading.get(key);
    if (!p) {
      p = unclaimedPoolLabs(activityId, labVersion)
        .then((labs) => {
          const list = { until: this.now() + LIST_TTL_MS, labs: shuffled(labs ?? []) };
          this.lists.set(key, list);
          if (this.lists.size > 1_000) this.lists.delete(this.lists.keys().next().value!);
          return list;
        })
        .finally(() => this.loading.delete(key));
      this.loading.set(key, p);
    }
    return p;
  }
}

/** Launches on several replicas read the same labs: each replica tries them in its own order. */
function shuffled<T>(xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}
