/**
 * Admin API for lab definitions (mounted at /api/admin/labs behind requireAdmin; who may touch
 * which lab is auth/tenancy.ts's: the operator every lab, a platform's admins their platform's):
 *
 *   GET    /api/admin/labs            every version of every lab the caller may use (removed ones too)
 *   POST   /api/admin/labs[?id=]      add or update: body = a .tar.gz (or .tar) of a lab folder,
 *                                    or JSON { "path": "/srv/labs/net-101", "id"?: "net-101" } (operator only)
 *   PUT    /api/admin/labs/:id        the same, for that id
 *   DELETE /api/admin/labs/:id        no longer startable; running instances keep their version
 *
 * A lab a platform's admin adds belongs to that platform; the operator's belong to every platform.
 *
 * Add/update answers 201 { id, version, created: true } for a new version, 200 with created:
 * false when the content is unchanged, and 400 { error, problems: ["file:line:col path: …"] }.
 */
import express, { type Request, type RequestHandler, type Router } from 'express';
import fs from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'yaml';
import { BadRequest } from '../../errors.js';
import { translator } from '../../i18n.js';
import { requestLanguage } from '../errorHandler.js';
import { mayUseLab, mustManageLab, operatorOnly, ownerForUpload, viewerOfActor } from '../../auth/tenancy.js';
import type { LabCatalog } from '../../labs/definition/LabCatalog.js';
import { formatProblem, sortProblems } from '../../labs/definition/problems.js';
import { readLabDir } from '../../labs/definition/readLabs.js';
import { MAX_ARCHIVE_BYTES, readTarArchive } from '../../labs/definition/tarArchive.js';
import { MAX_LAB_YAML_BYTES, validateLab, type LabFiles } from '../../labs/definition/validateLab.js';

const ARCHIVE_TYPES = ['application/gzip', 'application/x-gzip', 'application/x-tar', 'application/x-gtar', 'application/octet-stream'];

function yamlId(files: LabFiles): string | undefined {
  const text = files.get('lab.yaml');
  if (!text || text.length > MAX_LAB_YAML_BYTES) return undefined;
  try {
    const doc = parse(text.toString('utf8')) as { id?: unknown } | null;
    return typeof doc?.id === 'string' ? doc.id : undefined;
  } catch {
    return undefined;
  }
}

async function labFromRequest(req: Request): Promise<{ id: string; files: LabFiles; prefix: string }> {
  const fixedId = typeof req.params.id === 'string' ? req.params.id : typeof req.query.id === 'string' ? req.query.id : undefined;
  if (Buffer.isBuffer(req.body)) {
    const { files, topFolder } = await readTarArchive(req.body);
    const id = fixedId ?? topFolder ?? yamlId(files);
    if (!id) throw new BadRequest('no lab id', { publicMessage: 'Name the lab: PUT /api/admin/labs/<id>, ?id=<id>, a single top folder in the archive, or id: in lab.yaml.', messageKey: 'admin.nameTheLab' });
    return { id, files, prefix: id };
  }
  const body = (req.body ?? {}) as { path?: unknown; id?: unknown };
  // a folder on the server is the operator's to name
  if (typeof body.path === 'string' && req.actor?.kind !== 'operator') throw operatorOnly();
  if (typeof body.path !== 'string' || !path.isAbsolute(body.path)) {
    throw new BadRequest('no archive or path', { publicMessage: 'Send a .tar.gz of the lab folder (Content-Type: application/gzip) or JSON {"path": "/absolute/folder"}.', messageKey: 'admin.sendArchive' });
  }
  const stat = await fs.stat(body.path).catch(() => undefined);
  if (!stat?.isDirectory()) throw new BadRequest(`no folder ${body.path}`, { publicMessage: `No folder ${body.path} on the server.`, messageKey: 'admin.noFolder', messageVars: { path: body.path } });
  const id = fixedId ?? (typeof body.id === 'string' ? body.id : path.basename(body.path));
  return { id, files: await readLabDir(body.path), prefix: body.path };
}

export function adminLabRoutes(catalog: LabCatalog, requireAdmin: RequestHandler): Router {
  const r = express.Router();
  r.use(requireAdmin);
  r.use(express.raw({ type: ARCHIVE_TYPES, limit: MAX_ARCHIVE_BYTES }));
  r.use(express.json({ limit: '16kb' }));

  r.get('/', async (req, res) => {
    const viewer = viewerOfActor(req.actor!);
    res.json({ versions: (await catalog.versionsOf()).filter((v) => mayUseLab(viewer, v.owner)) });
  });

  const addOrUpdate: RequestHandler = async (req, res) => {
    const { id, files, prefix } = await labFromRequest(req);
    mustManageLab(req.actor!, id, await catalog.ownerOf(id), { adding: true });
    const { lab, problems } = validateLab(id, files, prefix, catalog.images);
    if (!lab) {
      const lines = sortProblems(problems).map(formatProblem);
      req.log?.info({ lab: id, problems: lines }, 'labs.admin_rejected');
      res.status(400).json({ error: translator(requestLanguage(req))('admin.labProblems', { lab: id, count: lines.length }), status: 400, problems: lines });
      return;
    }
    const out = await catalog.add(lab, { source: 'admin', owner: ownerForUpload(req.actor!) });
    req.log?.info({ lab: id, version: out.version, created: out.created }, 'labs.admin_added');
    res.status(out.created ? 201 : 200).json({ id, ...out });
  };
  r.post('/', addOrUpdate);
  r.put('/:id', addOrUpdate);

  r.delete('/:id', async (req, res) => {
    const id = req.params.id ?? '';
    mustManageLab(req.actor!, id, await catalog.ownerOf(id));
    await catalog.remove(id);
    res.status(204).end();
  });

  return r;
}
