import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

function files(dir: string, ext: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? files(p, ext) : p.endsWith(ext) ? [p] : [];
  });
}

describe('wording the user sees', () => {
  it('instructions name the check button by its label', () => {
    // the button's label comes from the English catalog
    assert.match(fs.readFileSync('public/src/instructions.ts', 'utf8'), /t\('ins\.checkWork'\)/);
    assert.match(fs.readFileSync('src/locales/en.ts', 'utf8'), /'ins\.checkWork': 'Check my work'/);
    for (const f of files('templates', '.md')) {
      const text = fs.readFileSync(f, 'utf8');
      for (const m of text.matchAll(/\*\*(Check[^*]*)\*\*/g)) assert.equal(m[1], 'Check my work', `${f}: **${m[1]}**`);
    }
  });

  it('README tells Moodle admins to show the tool in the course activity chooser', () => {
    const readme = fs.readFileSync('README.md', 'utf8');
    assert.match(readme, /LTI External tools\*\*,?\s+switch on \*\*Show in activity chooser\*\*/);
  });
});
