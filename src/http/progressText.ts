/**
 * Provisioning progress in the viewer's language. Backends report English for logs; the lab page
 * gets the phase's words from the catalogs, with the queue position and the machines booted so far.
 */
import type { Progress, ProgressPhase } from '../backends/types.js';
import type { TextKey, Translate } from '../i18n.js';

const PHASE_TEXT: Record<ProgressPhase, TextKey> = {
  queued: 'prov.queued',
  network: 'prov.network',
  disks: 'prov.disks',
  'machines-starting': 'prov.machinesStarting',
  'machines-booted': 'prov.machinesBooted',
};

export function localProgress(p: Progress, t: Translate): Progress {
  let message: string;
  if (p.phase === 'queued' && p.queuePosition) message = t('prov.queuedAt', { position: p.queuePosition });
  else if (p.phase === 'machines-starting' && p.booted) message = t('prov.booted', { done: p.booted.done, total: p.booted.total });
  else message = t(PHASE_TEXT[p.phase] ?? 'prov.requested');
  return { ...p, message };
}
