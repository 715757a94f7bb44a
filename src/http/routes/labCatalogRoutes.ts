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

export function labRoutes(catalog: LabCatalog): Router {
  const r = express.Router();

  r.get('/api/labs', async (_req, res) => {
    res.json({ labs: await catalog.list() });
  });

  r.get('/api/labs/:id', async (req, res) => {
    const lab = await catalog.latest(req.params.id);
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
