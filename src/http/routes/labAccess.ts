/** The instance routes' access: the session and instance looked up, then the one rule of labs/access.ts. */
import type { Request } from 'express';
import { Forbidden, NotFound, Unauthorized } from '../../errors.js';
import { accessMode, requireControl } from '../../labs/access.js';
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

export async function labAccess(runtime: LabRuntime, req: Request, instanceId: string): Promise<LabAccess> {
  const session = req.session;
  if (!session) throw new Unauthorized('no session');
  const inst = await runtime.get(instanceId);
  if (!inst) throw new NotFound(`instance ${instanceId} not found`, { publicMessage: 'This lab does not exist.', messageKey: 'err.noSuchLab' });
  return { inst, session, mode: accessMode(inst, session) };
}

/** Owner only (ticking steps, pause/resume, retry). */
export function requireOwner(a: LabAccess): void {
  requireControl(a.mode);
}

/** The course of a course route (`:contextId`), refused unless the session is of that course (its teacher, with requireInstructor). */
export function courseOf(req: Request): string {
  const contextId = String(req.params.contextId);
  if (req.session?.contextId !== contextId) throw new Forbidden('another course', { publicMessage: 'Only teachers of this course can see this.', messageKey: 'err.teachersOnly' });
  return contextId;
}
