import assert from 'node:assert/strict';
import fs from 'node:fs';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config.js';

describe('docker-compose.yml', () => {
  const doc = parse(fs.readFileSync('docker-compose.yml', 'utf8')) as {
    services: Record<string, { image?: string; build?: string; environment?: Record<string, string>; depends_on?: unknown }>;
  };

  it('parses and runs the tool against a real MongoDB service', () => {
    assert.match(doc.services.mongo?.image ?? '', /^mongo:\d/);
    assert.equal(doc.services['lab-orchestrator']?.build, '.');
    assert.match(doc.services['lab-orchestrator']?.environment?.MONGODB_URI ?? '', /^mongodb:\/\/mongo:27017\//);
  });

  it('only sets config keys the schema knows, with values it accepts', () => {
    const env = doc.services['lab-orchestrator']!.environment!;
    const resolved: Record<string, string> = {};
    for (const [k, v] of Object.entries(env)) {
      // ${VAR:-default} → default; ${VAR:?msg} → a valid stand-in
      resolved[k] = String(v).replace(/\$\{(\w+):-([^}]*)\}/g, '$2').replace(/\$\{(\w+):\?[^}]*\}/g, 'x'.repeat(40));
      if (resolved[k] === '') delete resolved[k];
    }
    assert.doesNotThrow(() => loadConfig(resolved));
  });

  it('the Dockerfile builds from files that exist', () => {
    const df = fs.readFileSync('Dockerfile', 'utf8');
    for (const m of df.matchAll(/^COPY (?!--from)(\S+)/gm)) assert.ok(fs.existsSync(m[1]!), `${m[1]} exists`);
  });
});
