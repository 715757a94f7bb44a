/**
 * Screen thumbnails on the course overview's cards: fetched only for cards on screen
 * (IntersectionObserver) and only while the tab is visible, each again every REFRESH_MS, a few at a
 * time. The cards are drawn again on every reload, so images are kept here by lab and put back.
 */
import type { Session } from './api.js';

const REFRESH_MS = 5000;
const PARALLEL = 4;

interface Shot {
  url: string;
  at: number;
}

export class ScreenThumbnails {
  private readonly shots = new Map<string, Shot>();
  private readonly visible = new Set<string>();
  private readonly imgs = new Map<string, HTMLImageElement>();
  private readonly busy = new Set<string>();
  private readonly observer: IntersectionObserver;
  /** Thumbnails fetched (for tests through the page). */
  fetched = 0;

  constructor(private readonly s: Session, private readonly contextId: string) {
    this.observer = new IntersectionObserver((entries) => {
      for (const e of entries) {
        const id = (e.target as HTMLElement).dataset.screen ?? '';
        if (e.isIntersecting) this.visible.add(id);
        else this.visible.delete(id);
      }
      this.tick();
    });
    document.addEventListener('visibilitychange', () => this.tick());
    setInterval(() => this.tick(), 1000);
  }

  /** Cards were drawn again: watch their images (the previous elements are gone). */
  attach(imgs: HTMLImageElement[]): void {
    this.observer.disconnect();
    this.visible.clear();
    this.imgs.clear();
    for (const img of imgs) {
      const id = img.dataset.screen ?? '';
      this.imgs.set(id, img);
      const shot = this.shots.get(id);
      if (shot?.url) {
        img.src = shot.url;
        img.closest('.glance')?.classList.add('has-screen');
      }
      this.observer.observe(img);
    }
    for (const [id, shot] of this.shots) {
      if (!this.imgs.has(id)) {
        if (shot.url) URL.revokeObjectURL(shot.url);
        this.shots.delete(id);
      }
    }
  }

  /** Fetch what is due: visible cards whose image is older than REFRESH_MS, at most PARALLEL at once. */
  private tick(): void {
    if (document.visibilityState !== 'visible') return;
    const now = Date.now();
    for (const id of this.visible) {
      if (this.busy.size >= PARALLEL) return;
      if (this.busy.has(id) || now - (this.shots.get(id)?.at ?? 0) < REFRESH_MS) continue;
      this.busy.add(id);
      void this.fetch(id).finally(() => {
        this.busy.delete(id);
        this.tick();
      });
    }
  }

  private async fetch(id: string): Promise<void> {
    const at = Date.now();
    try {
      const res = await fetch(`/api/courses/${encodeURIComponent(this.contextId)}/instances/${encodeURIComponent(id)}/screen`, {
        headers: { authorization: `Bearer ${this.s.token}` }, cache: 'no-store',
      });
      if (!res.ok) {
        // keep the last image; try again after the interval
        this.shots.set(id, { url: this.shots.get(id)?.url ?? '', at });
        return;
      }
      const url = URL.createObjectURL(await res.blob());
      this.fetched++;
      const old = this.shots.get(id);
      this.shots.set(id, { url, at });
      const img = this.imgs.get(id);
      if (img) {
        img.src = url;
        img.closest('.glance')?.classList.add('has-screen');
      }
      if (old?.url) URL.revokeObjectURL(old.url);
    } catch {
      this.shots.set(id, { url: this.shots.get(id)?.url ?? '', at });
    }
  }
}
