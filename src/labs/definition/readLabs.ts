/**
 * Read lab folders from disk into LabFiles and validate them. Symlinks are not followed (a lab
 * folder can never pull in files from elsewhere on the server); sizes, entry counts and nesting
 * are bounded as they are for uploaded archives.
 */
import type { ImageCatalog } from '../../images/ImageCatalog.js';
import fs from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '../../errors.js';
import { MAX_ARCHIVE_ENTRIES, MAX_PATH_DEPTH, nestedTooDeep, tooManyEntries } from './tarArchive.js';
import { formatProblem, sortProblems, type Problem } from './problems.js';
import { MAX_LAB_BYTES, validateLab, type LabFiles, type ValidLab } from './validateLab.js';

export async function readLabDir(dir: string): Promise<LabFiles> {
  const files: LabFiles = new Map();
  let total = 0;
  let count = 0;
  const walk = async (rel: string, depth: number): Promise<void> => {
    if (depth > MAX_PATH_DEPTH) throw nestedTooDeep(rel);
    const entries = await fs.readdir(path.join(dir, rel), { withFileTypes: true });
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      if (++count > MAX_ARCHIVE_ENTRIES) throw tooManyEntries();
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(p, depth + 1);
      else if (e.isFile()) {
        const data = await fs.readFile(path.join(dir, p));
        total += data.length;
        if (total > MAX_LAB_BYTES * 2) throw new Error(`lab folder ${dir} is larger than ${(MAX_LAB_BYTES * 2) / 1048576} MiB`);
        files.set(p, data);
      }
    }
  };
  await walk('', 0);
  return files;
}

export interface DirResult {
  labs: ValidLab[];
  /** Every problem, formatted `file:line:col path: message`, sorted by file and position. */
  problems: string[];
  /** Lab ids that had problems (skipped). */
  invalid: string[];
}

/**
 * Validate every lab under `dir` (each sub-folder is a lab; folders without lab.yaml are
 * reported). `display` is how the folder is named in messages (e.g. "templates").
 */
export async function validateDir(dir: string, display = dir, images?: ImageCatalog): Promise<DirResult> {
  const out: DirResult = { labs: [], problems: [], invalid: [] };
  let entries;
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    out.problems.push(`${display}:1:1 (folder): expected a folder of labs, got ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    return out;
  }
  for (const e of entries.filter((x) => x.isDirectory() && !x.name.startsWith('.')).sort((a, b) => a.name.localeCompare(b.name))) {
    const prefix = `${display.replace(/\/+$/, '')}/${e.name}`;
    let problems: Problem[];
    let lab: ValidLab | undefined;
    try {
      ({ lab, problems } = validateLab(e.name, await readLabDir(path.join(dir, e.name)), prefix, images));
    } catch (err) {
      const why = err instanceof AppError ? err.publicMessage : (err as Error).message;
      problems = [{ file: prefix, line: 1, col: 1, path: '(folder)', message: `expected a readable lab folder, got ${why}` }];
    }
    if (lab) out.labs.push(lab);
    else {
      out.invalid.push(e.name);
      out.problems.push(...sortProblems(problems).map(formatProblem));
    }
  }
  return out;
}
