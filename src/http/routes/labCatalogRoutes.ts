/**
 * Public catalog routes: GET /api/labs, GET /api/labs/:id (summaries: no credentials, no
 * instructions) and the labs' media at /labs/:id/:version/media/*. Media are served only by exact
 * stored path (no file system access, so no traversal), with a CSP sandbox so an SVG opened
 * directly can never run script on our origin. The media of the operator's labs are public (like
 * their summaries); those of a platform's private lab only to a viewer the catalog rule lets see
 * the lab (a signed media URL from an instruction page, or a Bearer session), privately cached;
 * anyone else gets the same 404 as for a file that does not exist. Every summary says whether this
 * deployment can run the lab (`unavailable`: the backend's reason, or null).
 */
import express, { type Router } from 'express';
import path from 'node:path';
import { NotFound } from '../../errors.js';
import type { LabCatalog } from '../../labs/definition/LabCatalog.js';
import type { SessionTokens } from '../../auth/session.js';
import { mayUseLab, viewerOf, type CatalogViewer } from '../../auth/tenancy.js';
import type { MediaTokens } from '../../auth/mediaTokens.js';
import type { LabSummary } from '../../store/LabDefinition.js';

/** Why this deployment cannot run a lab (null: it can). */
export type UnavailableReason = (lab: Pick<LabSummary, 'machines'>) => string | null;

const TYPES: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.svg': 'image/svg+xml',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
  '.mp3': 'audio/mpeg',
  '.ogg': 'audio/ogg',
  '.txt': 'text/plain; charset=utf-8',
  '.pdf': 'application/pdf',
};

/** The catalog viewer: a launch session's platform (optional Bearer), else the public, who see the operator's labs only. */
async function viewer(req: express.Request, sessions: SessionTokens | undefined): Promise<CatalogViewer> {
  const h = req.get('authorization');
  if (!sessions || !h?.startsWith('Bearer ')) return viewerOf(undefined);
  return viewerOf(await sessions.verify(h.slice(7)).catch(() => undefined));
}

export function labRoutes(catalog: LabCatalog, sessions?: SessionTokens, media?: MediaTokens, unavailableReason?: UnavailableReason): Router {
  const r = express.Router();
  const withReason = <T extends Pick<LabSummary, 'machines'>>(lab: T): T & { unavailable: string | null } => ({ ...lab, unavailable: unavailableReason?.(lab) ?? null });

  r.get('/api/labs', async (req, res) => {
    const v = await viewer(req, sessions);
    res.json({ labs: (await catalog.list()).filter((l) => mayUseLab(v, l.owner ?? null)).map(withReason) });
  });

  r.get('/api/labs/:id', async (req, res) => {
    const found = await catalog.latest(req.params.id);
    const lab = found && mayUseLab(await viewer(req, sessions), found.owner ?? null) ? found : undefined;
    if (!lab) throw new NotFound(`lab ${req.params.id} not found`, { publicMessage: `No lab "${req.params.id}".` });
    res.json(withReason(lab));
  });

  r.get('/labs/:id/:version/media/*rel', async (req, res) => {
    const segs = (req.params as unknown as { rel: string[] }).rel;
    if (!Array.isArray(segs) || segs.some((s) => !s || s === '.' || s === '..' || s.includes('/') || s.includes('\\') || s.includes('\0'))) {
      throw noMedia('bad media path');
    }
    const { id, version } = req.params;
    const owner = await catalog.ownerOf(id);
    if (owner === undefined) throw noMedia(`no lab ${id}`);
    if (owner !== null) {
      const t = typeof req.query.t === 'string' ? req.query.t : undefined;
      const v = (t ? media?.verify(id, version, t) : undefined) ?? (await viewer(req, sessions));
      if (!mayUseLab(v, owner)) throw noMedia(`media of lab ${id} are private to its platform`);
    }
    const rel = segs.join('/');
    const data = await catalog.media(id, version, rel);
    res.setHeader('Content-Type', TYPES[path.extname(rel).toLowerCase()] ?? 'application/octet-stream');
    res.setHeader('Content-Security-Policy', "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox");
    if (owner === null) {
      // a version never changes: cache for a day, anywhere
      res.setHeader('Cache-Control', 'public, max-age=86400, immutable');
    } else {
      // only this browser, for as long as the signed URL lives at most; never a shared cache
      res.setHeader('Cache-Control', 'private, max-age=3600');
      res.setHeader('Referrer-Policy', 'no-referrer');
    }
    res.send(data);
  });

  return r;
}

function noMedia(why: string): NotFound {
  return new NotFound(why, { publicMessage: 'No such media file.' });
}
