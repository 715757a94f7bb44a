/**
 * The one access rule for a lab instance, used by every instance route, ticket and view:
 * its owner controls it; a teacher (instructor or administrator) of the lab's course watches it;
 * nobody else sees that it exists beyond "not your lab".
 */
import { Forbidden } from '../errors.js';
import type { Role } from '../store/User.js';

export type AccessMode = 'control' | 'view';

/** Who asks: the claims of a launch session that matter to the rule. */
export interface Requester {
  userId: string;
  role: Role;
  contextId: string;
}

export function isTeacher(s: Pick<Requester, 'role'>): boolean {
  return s.role === 'instructor' || s.role === 'administrator';
}

/** 'control' for the owner, 'view' for a teacher of its course; Forbidden otherwise. */
export function accessMode(inst: { userId: string; contextId: string }, who: Requester): AccessMode {
  if (inst.userId === who.userId) return 'control';
  if (isTeacher(who) && who.contextId === inst.contextId) return 'view';
  throw new Forbidden('not your lab', { publicMessage: 'not your lab', messageKey: 'err.notYourLab' });
}

/** Owner only (ticking steps, pause/resume, retry, running checks). */
export function requireControl(mode: AccessMode): void {
  if (mode !== 'control') throw new Forbidden('owner only', { publicMessage: 'Only the student who owns this lab can do this.', messageKey: 'err.ownerOnly' });
}
