/**
 * The guest side of the check agent (lab-agent.sh beside this file), as text: cloud-init writes it
 * into Debian guests on both backends, the lab-tiny image build copies the same file.
 */
import fs from 'node:fs';

/** lab-agent.sh, read once (it ships next to the compiled module). */
export const AGENT_SCRIPT: string = fs.readFileSync(new URL('./lab-agent.sh', import.meta.url), 'utf8');
