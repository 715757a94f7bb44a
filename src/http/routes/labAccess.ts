/** Who may do what with a lab instance: its owner controls it; a teacher of its course watches it. */
import type { Request } from 'express';
import { Forbidden, NotFound, Unauthorized } from '../../errors.js';
import type { LabRuntime } from '../../labs/contracts.js';
import type { LabInstanceDoc } from '../../store/LabInstance.js';
import type { SessionClaims } from '../../auth/session.js';
import type { ChannelMode } from '../../proxy/tickets.js';

export interface LabAccess {
  inst: LabInstanceDoc;
  session: SessionClaims;
  /** 'control' for the owner; 'view' for a teacher of the lab's course. */
  mode: ChannelMode;
}

export function isTeacher(s: SessionClaims): boolean {
  return s.role === 'instructor' || s.role === 'administrator';
}

export async function labAccess(runtime: LabRuntime, req: Request, instanceId: string): Promise<LabAccess> {
  const session = req.session;
  if (!session) throw new Unauthorized('no session');
  const inst = await runtime.get(instanceId);
  if (!inst) throw new NotFound(`instance ${instanceId} not found`, { publicMessage: 'This lab does not exist.' });
  if (inst.userId === session.userId) return { inst, session, mode: 'control' };
  if (isTeacher(session) && session.contextId === inst.contextId) return { inst, session, mode: 'view' };
  throw new Forbidden('not your lab', { publicMessage: 'not your lab' });
}

/** Owner only (ticking steps, pause/resume, retry). */
export function requireOwner(a: LabAccess): void {
  if (a.mode !== 'control') throw new Forbidden('owner only', { publicMessage: 'Only the student who owns this lab can do this.' });
}
