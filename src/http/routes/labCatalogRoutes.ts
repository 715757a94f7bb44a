/**
 * Public catalog routes: GET /api/labs, GET /api/labs/:id (summaries: no credentials, no
 * instructions) and the labs' media at /labs/:id/:version/media/*. Media are served only by exact
 * stored path (no file system access, so no traversal), with a CSP sandbox so an SVG opened
 * directly can never run script on our origin.
 */
import express, { type Router } from 'express';
import path from 'node:path';
import { NotFound } from '../../errors.js';
import type { LabCatalog } from '../../labs/definition/LabCatalog.js';
import type { SessionTokens } from '../../auth/session.js';
import { mayUseLab, viewerOf, type CatalogViewer } from '../../auth/tenancy.js';

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

export function labRoutes(catalog: LabCatalog, sessions?: SessionTokens): Router {
  const r = express.Router();

  r.get('/api/labs', async (req, res) => {
    const v = await viewer(req, sessions);
    res.json({ labs: (await catalog.list()).filter((l) => mayUseLab(v, l.owner ?? null)) });
  });

  r.get('/api/labs/:id', async (req, res) => {
    const found = await catalog.latest(req.params.id);
    const lab = found && mayUseLab(await viewer(req, sessions), found.owner ?? null) ? found : undefined;
    if (!lab) throw new NotFound(`lab ${req.params.id} not found`, { publicMessage: `No lab "${req.params.id}".` });
    res.json(lab);
  });

  r.get('/labs/:id/:version/media/*rel', async (req, res) => {
    const segs = (req.params as unknown as { rel: string[] }).rel;
    if (!Array.isArray(segs) || segs.some((s) => !s || s === '.' || s === '..' || s.includes('/') || s.includes('\\') || s.includes('\0'))) {
      throw new NotFound('bad media path', { publicMessage: 'No such media file.' });
    }
    const rel = segs.join('/');
    const data = await catalog.media(req.params.id, req.params.version, rel);
    res.setHeader('Content-Type', TYPES[path.extname(rel).toLowerCase()] ?? 'application/octet-stream');
    res.setHeader('Content-Security-Policy', "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox");
    // a version never changes: cache for a day
    res.setHeader('Cache-Control', 'public, max-age=86400, immutable');
    res.send(data);
  });

  return r;
}
