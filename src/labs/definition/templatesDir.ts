/** Where lab folders live: TEMPLATES_DIR, relative paths resolved against the repository (not the working directory). */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (src/labs/definition → ../../..; the same from dist/labs/definition). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export function resolveTemplatesDir(value: string): string {
  return path.isAbsolute(value) ? value : path.resolve(REPO_ROOT, value);
}
